"""SIGTERM handled as Ctrl-C: what `kill`, Slurm, Kubernetes and `docker stop` send.

Long work (training, fine-tuning, preprocessing, evaluation, driving into a file) already stops
cleanly on Ctrl-C: training finishes and saves its step, driving closes a playable mp4, the
others keep what they finished and say how to continue. Inside ``sigterm_as_ctrl_c`` a SIGTERM
goes the same way, through whatever SIGINT handler is installed at that moment (training's
StopRequest, or Python's default, which raises KeyboardInterrupt).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType


def _as_ctrl_c(signum: int, frame: FrameType | None) -> None:
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:  # SIGINT ignored or left to the system: still stop as Ctrl-C would by default
        raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """Within the block, SIGTERM acts as Ctrl-C (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _as_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


STOPPED = 130  # the shell's status for a command ended by SIGINT (128 + 2)


def report_stop(how_to_continue: str) -> int:
    """Say that the work stopped on request and how to continue; returns the exit status."""
    print(f"stopped; {how_to_continue}", file=sys.stderr)
    return STOPPED
