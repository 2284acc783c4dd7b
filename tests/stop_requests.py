"""Asking the command that runs in this process to stop, each way a user can: Ctrl-C, kill
(SIGTERM; neither can be sent on Windows, where os.kill ends the process at once), or the app's
stop file (utils/signals.py), which works everywhere."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from utils.signals import STOP_FILE_VARIABLE

WAYS = [
    pytest.param(
        way,
        marks=pytest.mark.skipif(sys.platform == "win32", reason="os.kill ends it at once"),
    )
    for way in ("Ctrl-C", "SIGTERM")
] + ["stop file"]


def stop_file(monkeypatch: pytest.MonkeyPatch, folder: Path) -> Path:
    """Name a stop file for the commands run in this test, as the app does for its jobs."""
    path = folder / "job.stop"
    monkeypatch.setenv(STOP_FILE_VARIABLE, str(path))
    return path


def ask_to_stop(way: str, path: Path) -> None:
    """Ask; return once the command's Ctrl-C handler has taken the request (a handler that
    raises KeyboardInterrupt raises it here, as a signal would)."""
    if way != "stop file":
        os.kill(os.getpid(), {"Ctrl-C": signal.SIGINT, "SIGTERM": signal.SIGTERM}[way])
        return
    handler = signal.getsignal(signal.SIGINT)
    path.touch()
    deadline = time.monotonic() + 10
    while not getattr(getattr(handler, "__self__", None), "requested", False):
        assert time.monotonic() < deadline, "the stop file was not taken as Ctrl-C"
        time.sleep(0.01)
