"""Reading video files as a player shows them: RGB frames with their times (PyAV, FFmpeg).

Each frame comes with its presentation time in seconds (variable-frame-rate phone clips keep
their real timing), is scaled to square pixels when the stream's sample aspect ratio says its
pixels are not square (a 512x480 stream with SAR 15:16 is shown 480x480), and is turned by the
stream's display rotation (a phone's portrait clip stored landscape). Cameras are read with
OpenCV (live/sources.py); files are read here.

A file that cannot be opened or has no decodable frame raises VideoReadError, one exception type
that callers (preprocessing, embedding, driving, evaluation) catch to skip or report the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # PyAV loads where a file is read: importers need not have it (a GPU box)
    import av

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
PREVIEW_WIDTH = 256  # side of the small frames handed to a preview callback (shot detection)


class VideoReadError(RuntimeError):
    """A video file that cannot be opened or has no decodable frame."""


# File signatures of still-image formats: such a file renamed to a video suffix opens in
# FFmpeg as a one-frame "video"; it must be reported as unreadable instead.
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


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame: its index in decoding order, time (s) and RGB uint8 (H, W, 3) image."""

    index: int
    time: float
    image: np.ndarray


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a file's video stream (and whether it has sound).

    frames: the container's count, 0 when it does not say; fps: the average frame rate;
    width, height: the picture as displayed (square pixels, rotation applied); pixel_aspect:
    the sample aspect ratio (1 for square pixels); rotation: degrees counter-clockwise, a
    multiple of 90; audio: whether there is an audio stream.
    """

    frames: int
    fps: float
    width: int
    height: int
    pixel_aspect: Fraction
    rotation: int
    audio: bool


def _open(path: Path) -> av.container.InputContainer:
    import av

    if not path.is_file():
        raise VideoReadError(f"no such video file: {path}")
    image_format = _image_format(path)
    if image_format is not None:
        raise VideoReadError(f"{path} is a {image_format} image, not a video")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError) as error:
        raise VideoReadError(f"cannot open video {path}: {error}") from error
    if not container.streams.video:
        container.close()
        raise VideoReadError(f"no video stream in {path}")
    return container


def _pixel_aspect(stream: av.video.stream.VideoStream) -> Fraction:
    aspect = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    return Fraction(aspect) if aspect and aspect > 0 else Fraction(1)


def _display_size(width: int, height: int, pixel_aspect: Fraction) -> tuple[int, int]:
    """Stored size -> shown size (before rotation): the width scaled by the pixel aspect."""
    return max(1, round(width * pixel_aspect)), height


def _rotation(stream: av.video.stream.VideoStream, first: av.VideoFrame | None) -> int:
    """Display rotation in degrees counter-clockwise, rounded to a quarter turn."""
    degrees = first.rotation if first is not None else 0
    if not degrees:
        tag = stream.metadata.get("rotate")  # older muxers: clockwise degrees as a tag
        degrees = -int(tag) if tag and tag.lstrip("-").isdigit() else 0
    return round(degrees / 90.0) % 4 * 90


def probe(path: str | Path) -> VideoInfo:
    """The file's video stream as a player would show it; VideoReadError if unreadable."""
    import av

    path = Path(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError as error:
            raise VideoReadError(f"cannot decode video {path}: {error}") from error
        if first is None:
            raise VideoReadError(f"no frames in video {path}")
        aspect = _pixel_aspect(stream)
        width, height = _display_size(first.width, first.height, aspect)
        rotation = _rotation(stream, first)
        if rotation in (90, 270):
            width, height = height, width
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate and 1.0 <= float(rate) <= 1000.0 else 25.0
        audio = bool(container.streams.audio)
        return VideoInfo(stream.frames or 0, fps, width, height, aspect, rotation, audio)
    finally:
        container.close()


def decode(
    path: str | Path,
    indices: Iterable[int] | None = None,
    preview: Callable[[int, np.ndarray], None] | None = None,
) -> Iterator[VideoFrame]:
    """Frames in order, as displayed, with their times; only those at indices when given.

    Every frame is decoded (compressed streams cannot skip), but only the wanted ones are
    converted to full-size RGB. preview, when given, receives (index, small RGB frame of
    PREVIEW_WIDTH px width) for every frame up to the last wanted one, e.g. for shot detection.
    Times are seconds from the stream's first frame. Indices past the real end are left out
    (the container's count can be wrong); a file that decodes no frame raises VideoReadError,
    after the frames that did decode; a stream broken midway ends at the break.
    """
    import av

    path = Path(path)
    wanted = None if indices is None else set(indices)
    last = None if wanted is None else max(wanted, default=-1)
    container = _open(path)
    decoded = 0
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        aspect = _pixel_aspect(stream)
        start, rotation = None, 0
        frames = container.decode(stream)
        while last is None or decoded <= last:
            try:
                frame = next(frames, None)
            except av.FFmpegError:
                break  # a broken stream: what decoded so far stands
            if frame is None:
                break
            if start is None:
                rotation = _rotation(stream, frame)
                start = frame.time or 0.0
            index = decoded
            decoded += 1
            time = (frame.time - start) if frame.time is not None else index / 25.0
            if preview is not None:
                preview(index, _to_rgb(frame, aspect, rotation, PREVIEW_WIDTH))
            if wanted is None or index in wanted:
                yield VideoFrame(index, time, _to_rgb(frame, aspect, rotation))
    finally:
        container.close()
    if decoded == 0 and (wanted is None or wanted):
        raise VideoReadError(f"no decodable frame in video {path}")


def _to_rgb(
    frame: av.VideoFrame, aspect: Fraction, rotation: int, width: int | None = None
) -> np.ndarray:
    """The frame as shown: square pixels, rotated; scaled to width (before rotation) if given."""
    shown_w, shown_h = _display_size(frame.width, frame.height, aspect)
    if width is not None:
        shown_w, shown_h = width, max(1, round(shown_h * width / shown_w))
    if (shown_w, shown_h) == (frame.width, frame.height):
        image = frame.to_ndarray(format="rgb24")
    else:
        image = frame.reformat(shown_w, shown_h, "rgb24", interpolation="AREA").to_ndarray()
    return np.ascontiguousarray(np.rot90(image, rotation // 90)) if rotation else image


def frame_count(path: str | Path) -> int:
    """Number of frames: the container's count, or counted by decoding when it does not say."""
    import av

    count = probe(path).frames
    if count > 0:
        return count
    container = _open(Path(path))
    try:
        for _ in container.decode(container.streams.video[0]):
            count += 1
    except av.FFmpegError:
        pass  # a broken stream: the frames before the break count
    finally:
        container.close()
    return count


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Every frame in order, as displayed, RGB uint8 (H, W, 3)."""
    for frame in decode(path):
        yield frame.image


def read_frames(path: str | Path, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
    """(index, frame) for the frames at the given indices, in order, RGB uint8 as displayed."""
    for frame in decode(path, indices):
        yield frame.index, frame.image


def video_fps(path: str | Path) -> float:
    """Average frame rate from the container (25 when it does not say)."""
    return probe(path).fps
