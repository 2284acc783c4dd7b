"""Stop requests handled as Ctrl-C, on every OS.

Long work (training, fine-tuning, preprocessing, evaluation, driving into a file) already stops
cleanly on Ctrl-C: training finishes and saves its step, driving closes a playable mp4, the
others keep what they finished and say how to continue. Inside ``stop_requests_as_ctrl_c`` the
other ways of asking go the same way, through whatever SIGINT handler is installed at that
moment (training's StopRequest, or Python's default, which raises KeyboardInterrupt):

- SIGTERM, what `kill`, Slurm, Kubernetes and `docker stop` send (POSIX; on Windows nothing can
  deliver it: ``os.kill`` and ``terminate()`` end a process at once there);
- Ctrl-Break in a Windows console (SIGBREAK), and SIGHUP when the terminal closes (unless
  ignored, as under nohup);
- a stop file: when the environment variable ``STOP_FILE_VARIABLE`` names a path, the file
  appearing there is a stop request. This is how the app's Stop reaches its jobs on every OS
  (webapp/jobs.py), since a signal that a job handles cannot be sent on Windows.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from types import FrameType

STOP_FILE_VARIABLE = "TALKING_HEADS_STOP_FILE"
POLL_SECONDS = 0.2  # how often the stop file is looked for


def _as_ctrl_c(signum: int, frame: FrameType | None) -> None:
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:  # SIGINT ignored or left to the system: still stop as Ctrl-C would by default
        raise KeyboardInterrupt


def _stop_signals() -> list[int]:
    """SIGTERM everywhere Python can handle it, Windows' Ctrl-Break, and SIGHUP (the terminal
    closed) unless it is ignored, as under nohup."""
    found = [signal.SIGTERM] + ([signal.SIGBREAK] if hasattr(signal, "SIGBREAK") else [])
    if hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        found.append(signal.SIGHUP)
    return found


class _StopFileWatcher(threading.Thread):
    """Looks for the stop file every POLL_SECONDS; each time it appears (a second Stop stops
    at once, as a second Ctrl-C does), it is removed and the main thread gets SIGTERM's
    handler, i.e. Ctrl-C's (through the SIGTERM route even where SIGINT is ignored, as for a
    job of an app started in the background). ``close`` ends the watching for good: no
    request is delivered after the block has let its handlers go."""

    def __init__(self, path: str) -> None:
        super().__init__(daemon=True)
        self.path = path
        self._done = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        while not self._done.wait(POLL_SECONDS):
            if not os.path.exists(self.path):
                continue
            with contextlib.suppress(OSError):
                os.remove(self.path)  # taken: a resumed run must not stop again at once
            with self._lock:
                if not self._done.is_set():
                    _thread.interrupt_main(signal.SIGTERM)  # Python 3.10+

    def close(self) -> None:
        with self._lock:
            self._done.set()
        self.join()


@contextlib.contextmanager
def stop_requests_as_ctrl_c() -> Iterator[None]:
    """Within the block, SIGTERM, Ctrl-Break, SIGHUP and the stop file act as Ctrl-C (main
    thread only; elsewhere a no-op). A stop file that exists on entry was asked for while the
    command started up: the work stops at its first chance (whoever names the file removes old
    ones)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _as_ctrl_c) for signum in _stop_signals()}
    path = os.environ.get(STOP_FILE_VARIABLE)
    watcher = _StopFileWatcher(path) if path else None
    if watcher is not None:
        watcher.start()
    try:
        yield
    finally:
        if watcher is not None:
            watcher.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def new_process_group() -> dict[str, object]:
    """subprocess.Popen's arguments that start a child outside our console's process group,
    so that Ctrl-C in our terminal reaches only us (we then ask the child to stop, once):
    a new session on POSIX; on Windows a new process group without a console of its own
    (CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW: neither Ctrl-C nor closing our console
    window ends it unsaved; the stop file still reaches it)."""
    if sys.platform == "win32":
        # The constants exist only in Windows' subprocess module; their values are Windows'.
        group = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)
        return {"creationflags": group | getattr(subprocess, "CREATE_NO_WINDOW", 0x08000000)}
    return {"start_new_session": True}


STOPPED = 130  # the shell's status for a command ended by SIGINT (128 + 2)


def report_stop(how_to_continue: str) -> int:
    """Say that the work stopped on request and how to continue; returns the exit status."""
    print(f"stopped; {how_to_continue}", file=sys.stderr)
    return STOPPED
