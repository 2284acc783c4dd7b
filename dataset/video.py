"""Reading frames from video files with OpenCV, as RGB uint8 arrays.

A file that cannot be opened or decoded raises VideoReadError, one exception type that
callers (preprocessing, driving) catch to skip or report the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


class VideoReadError(RuntimeError):
    """A video file that cannot be opened or has no decodable frame."""


def _open(path: Path) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise VideoReadError(f"cannot open video {path}")
    return capture


def frame_count(path: str | Path) -> int:
    """Number of frames; counted by decoding when the container does not say."""
    capture = _open(Path(path))
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if count <= 0:
            count = 0
            while capture.grab():
                count += 1
    finally:
        capture.release()
    if count == 0:
        raise VideoReadError(f"no frames in video {path}")
    return count


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Every frame in order, RGB uint8 (H, W, 3)."""
    capture = _open(Path(path))
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def read_frames(path: str | Path, indices: Iterable[int]) -> dict[int, np.ndarray]:
    """The frames at the given indices (RGB uint8), decoding sequentially.

    Frames in between are grabbed but not converted, which is faster and more reliable than
    seeking in compressed streams. Indices past the real end are missing from the result (the
    container's frame count can be wrong); no decodable frame at all raises VideoReadError.
    """
    wanted = sorted(set(indices))
    frames: dict[int, np.ndarray] = {}
    capture = _open(Path(path))
    try:
        position = 0
        for index in wanted:
            while position <= index:
                if not capture.grab():
                    break
                position += 1
            if position <= index:
                break
            ok, frame = capture.retrieve()
            if ok:
                frames[index] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()
    if wanted and not frames:
        raise VideoReadError(f"no decodable frame in video {path}")
    return frames
