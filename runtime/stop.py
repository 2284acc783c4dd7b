"""Ctrl-C (or a stop request: SIGTERM, Ctrl-Break, the app's stop file; utils/signals.py)
during training or fine-tuning: finish the step, save it, stop.

A KeyboardInterrupt raised in the middle of a step would leave the generator updated and the
discriminator not, and a checkpoint of that state would not resume exactly. The first Ctrl-C
only asks for a stop at the next step boundary; a second one stops at once, without saving.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

log = logging.getLogger(__name__)


class StopRequest:
    """A SIGINT handler for a step loop (training, fine-tuning), installed in the main thread of
    one process: ``requested`` tells the loop to save after the step and raise
    KeyboardInterrupt.

    Under torchrun each rank gets the signal at its own moment and ranks must agree on the
    step, so there Ctrl-C stops at once and the run resumes from its newest checkpoint.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested = False
        self._previous = None

    def install(self) -> None:
        if self.enabled:
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.info("stop requested: stopping after this step (again: at once, unsaved)")
