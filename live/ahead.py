"""One stage of a loop run a step ahead in a worker thread: while the consumer works on item n,
the worker computes item n+1 (live driving: the next frame's landmarks, crop and landmark
picture while the generator draws this frame's avatar).

At most one result waits for the consumer, so a live source adds at most one frame of latency
and drops what it would drop anyway (live/sources.FrameSource keeps only a camera's newest
frame); results come in the items' order, the last one included; an exception in the worker
(the source's or the stage's) is raised in the consumer at the item it happened, after every
result before it, and the worker stops once the consumer stops.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

WAIT = 0.1  # seconds of each wait: a stop request (Ctrl-C, utils/signals.py) is taken between
JOIN = 2.0  # seconds the consumer waits for a worker still blocked in its source at the end
_END = object()


def run_ahead(items: Iterable[T], stage: Callable[[T], R]) -> Iterator[R]:
    """stage(item) for each of items, in order, computed one item ahead in a worker thread.

    Close the returned generator (or exhaust it) to stop the worker: use it under
    contextlib.closing when the loop may break early. Raises whatever items or stage raised.
    """
    results: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                results.put(item, timeout=WAIT)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put((stage(item), None)):
                    return
        except BaseException as error:  # handed to the consumer, raised there
            put((None, error))
            return
        put(_END)

    worker = threading.Thread(target=work, name="run_ahead", daemon=True)
    worker.start()
    try:
        while True:
            try:
                got = results.get(timeout=WAIT)
            except queue.Empty:
                continue
            if got is _END:
                return
            result, error = got
            if error is not None:
                raise error
            yield result
    finally:
        stop.set()
        worker.join(JOIN)
