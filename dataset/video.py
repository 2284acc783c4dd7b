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


# File signatures of still-image formats: such a file renamed to a video suffix opens in
# OpenCV's FFmpeg backend as a one-frame "video"; it must be reported as unreadable instead.
_IMAGE_SIGNATURES = {
    b"\xff\xd8\xff": "JPEG",
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"GIF8": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}


def _image_format(path: Path) -> str | None:
    """The still-image format a file's first bytes announce, or None."""
    with path.open("rb") as handle:
        head = handle.read(16)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return next((name for sig, name in _IMAGE_SIGNATURES.items() if head.startswith(sig)), None)


def _open(path: Path) -> cv2.VideoCapture:
    if not path.is_file():
        raise VideoReadError(f"no such video file: {path}")
    image_format = _image_format(path)
    if image_format is not None:
        raise VideoReadError(f"{path} is a {image_format} image, not a video")
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


def read_frames(path: str | Path, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
    """(index, frame) for the frames at the given indices, in order, RGB uint8.

    Decodes sequentially: frames in between are grabbed but not converted, which is faster and
    more reliable than seeking in compressed streams. Indices past the real end are left out
    (the container's frame count can be wrong); no decodable frame at all raises
    VideoReadError, after the frames that did decode.
    """
    wanted = sorted(set(indices))
    found = 0
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
                found += 1
                yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()
    if wanted and not found:
        raise VideoReadError(f"no decodable frame in video {path}")


def video_fps(path: str | Path, default: float = 25.0) -> float:
    """Frame rate from the container; default when it does not say (image folders, odd files)."""
    capture = _open(Path(path))
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS))
    finally:
        capture.release()
    return fps if 1.0 <= fps <= 1000.0 else default
