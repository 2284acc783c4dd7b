"""Small videos with what phones and other cameras put in files: variable frame rate,
non-square pixels, a display rotation, a sound track. Written with PyAV (FFmpeg)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

TIME_BASE = Fraction(1, 90000)


def write_video(
    path: Path,
    frames: list[np.ndarray],
    times: list[float],
    pixel_aspect: Fraction | None = None,
    rotation: int = 0,
    audio_seconds: float = 0.0,
    audio_codec: str = "aac",
) -> None:
    """RGB frames shown at the given times (s), stored with these metadata; an A440 tone of
    audio_seconds when > 0."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w", format="mp4" if path.suffix == ".mp4" else None) as container:
        video = container.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.time_base = TIME_BASE
        if pixel_aspect is not None:
            video.codec_context.sample_aspect_ratio = pixel_aspect
        if rotation:
            video.set_display_rotation(rotation)
        audio = None
        if audio_seconds > 0:
            audio = container.add_stream(audio_codec, rate=16000)
            audio.layout = "mono"
        for image, time in zip(frames, times, strict=True):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts, frame.time_base = round(time / TIME_BASE), TIME_BASE
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if audio is not None:
            samples = np.arange(round(audio_seconds * 16000)) / 16000.0
            tone = (0.3 * np.sin(2 * np.pi * 440.0 * samples)).astype(np.float32)
            fmt = "fltp" if audio_codec == "aac" else "s16"
            for start in range(0, len(tone), 1024):
                chunk = tone[None, start : start + 1024]
                if fmt == "s16":
                    chunk = (chunk * 32767).astype(np.int16)
                frame = av.AudioFrame.from_ndarray(chunk, format=fmt, layout="mono")
                frame.sample_rate, frame.pts = 16000, start
                container.mux(audio.encode(frame))
            container.mux(audio.encode(None))


def numbered_frames(count: int, size: tuple[int, int] = (64, 48)) -> list[np.ndarray]:
    """Frames whose grey level is 3 * their number (at most 85 frames); size: (width, height)."""
    return [np.full((size[1], size[0], 3), 3 * i, np.uint8) for i in range(count)]


def audio_seconds(path: Path) -> float:
    """Duration of the first audio stream, from its decoded samples; 0 without audio."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return 0.0
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.codec_context.sample_rate
