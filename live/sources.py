"""Where driving frames come from: a webcam, a video file or a folder of images.

Video files are decoded as a player shows them, each frame with its presentation time
(dataset/video.py); a camera's frames are stamped with the time they were read, a folder's are
spaced at the given frame rate.

A capture thread reads ahead, so that reading and generating overlap and the slower of the two
sets the frame rate, not their sum. A live camera keeps only the newest frame (a slow
generator drops camera frames instead of falling ever further behind); a file or folder loses
none, so an output video has exactly the input's frames.
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dataset.video import VideoFrame, VideoReadError, decode, probe
from utils.folders import is_os_file
from utils.images import IMAGE_SUFFIXES, read_image

_END = object()


@dataclass
class Frame:
    image: np.ndarray  # RGB uint8
    index: int
    read_ms: float  # time spent reading and decoding it
    time: float  # when it is shown, seconds from the start of the source


def frame_rate(text: str) -> float:
    """An argparse type: a frame rate in frames per second, finite, from 0.1 to 1000."""
    try:
        value = float(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from error
    if not 0.1 <= value <= 1000.0:  # also refuses nan and infinities
        raise argparse.ArgumentTypeError(f"{text}: a frame rate from 0.1 to 1000 frames/s")
    return value


def camera_help() -> str:
    """What to check when a camera does not open. macOS asks the user's permission at the first
    use, and OpenCV meanwhile gets a closed camera (so it does once refused); Windows has a
    switch for desktop apps' cameras. Else the camera is missing or in use."""
    if sys.platform == "darwin":
        return (
            "allow the camera for this terminal (or app) in System Settings > Privacy & "
            "Security > Camera, then run again; else is it connected and free?"
        )
    if sys.platform == "win32":
        return (
            "allow desktop apps to use the camera in Settings > Privacy (& security) > Camera, "
            "then run again; else is it connected and free?"
        )
    return "is it connected and free?"


class FrameSource:
    """Frames of a webcam (index), a video file or an image folder, read by a thread."""

    def __init__(self, source: str, fps: float | None = None) -> None:
        self.live = source.isdigit() and not Path(source).exists()  # a file named "0" is a file
        self.name = source
        path = Path(source)
        self._images: list[Path] | None = None
        self._video: Iterator[VideoFrame] | None = None
        self.file: Path | None = None  # the video file, when the source is one
        self.unreadable: list[str] = []  # images of a folder that could not be read
        self.error: Exception | None = None  # what ended the reading early, if anything
        if self.live:
            self._capture = cv2.VideoCapture(int(source))
            if not self._capture.isOpened():
                raise VideoReadError(f"cannot open webcam {source}: {camera_help()}")
            self.fps = fps or self._capture.get(cv2.CAP_PROP_FPS) or 30.0
        elif path.is_dir():
            self._images = sorted(
                p
                for p in path.iterdir()
                if p.suffix.lower() in IMAGE_SUFFIXES and not is_os_file(p)
            )
            if not self._images:
                raise VideoReadError(f"no images in folder {path}")
            self.fps = fps or 25.0
        else:
            info = probe(path)  # raises VideoReadError with the reason
            self.fps = fps or info.fps
            self.file = path
            self._video = decode(path)
        self._queue: queue.Queue = queue.Queue(maxsize=1 if self.live else 4)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read_all, daemon=True)
        self._thread.start()

    def _read_one(self, index: int, started: float) -> tuple[np.ndarray, float] | None:
        """The next (image, time in seconds), or None at the end."""
        while self._images:
            path = self._images.pop(0)
            try:
                return read_image(path), index / self.fps
            except OSError:
                self.unreadable.append(path.name)  # skipped, counted, said at the end
        if self._images is not None:
            return None
        if self._video is not None:
            frame = next(self._video, None)
            return None if frame is None else (frame.image, frame.time)
        ok, image = self._capture.read()
        if not ok:
            return None
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), time.perf_counter() - started

    def _read_all(self) -> None:
        index, started = 0, time.perf_counter()
        try:
            while not self._stop.is_set():
                start = time.perf_counter()
                read = self._read_one(index, started)
                if read is None:
                    break
                frame = Frame(read[0], index, (time.perf_counter() - start) * 1e3, read[1])
                index += 1
                if self.live:  # keep only the newest frame
                    with contextlib.suppress(queue.Empty):
                        self._queue.get_nowait()
                    self._queue.put(frame)
                else:
                    while not self._stop.is_set():
                        try:
                            self._queue.put(frame, timeout=0.1)
                            break
                        except queue.Full:
                            continue
        except (OSError, VideoReadError) as error:  # said by the reader, not a thread traceback
            self.error = error
        finally:
            self._put_end()

    def _put_end(self) -> None:
        """Tell the reader the stream ended: after every frame (a file), or at once (a
        camera, or a reader that stopped reading)."""
        while True:
            try:
                self._queue.put(_END, timeout=0.1)
                return
            except queue.Full:
                if self.live or self._stop.is_set():
                    with contextlib.suppress(queue.Empty):
                        self._queue.get_nowait()

    def __iter__(self) -> Iterator[Frame]:
        while True:
            try:  # short waits: a stop request (utils/signals.py) is taken between them
                item = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if item is _END:
                if self.error is not None:
                    raise VideoReadError(f"reading {self.name} failed: {self.error}")
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        if self._video is not None:
            if not self._thread.is_alive():
                self._video.close()
        elif self._images is None:
            self._capture.release()
