"""Where the avatar goes: an OpenCV window, an mp4 file, a virtual camera.

The window shows the frame rate and takes keys (q or Esc quit, r recalibrate the retargeting
reference, s side by side, l landmarks). The virtual camera (pyvirtualcam) appears to Zoom,
Meet or OBS as a webcam. Without a display, only the file and the virtual camera work; asking
for the window then says so instead of crashing.
"""

from __future__ import annotations

import collections
import contextlib
import os
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from dataset.video import VideoReadError, frame_count
from utils.files import FILE_MODE, describe_os_error, replace_file

KEYS = {
    ord("q"): "quit",
    27: "quit",
    ord("r"): "recalibrate",
    ord("s"): "side",
    ord("l"): "landmarks",
}


class SinkError(RuntimeError):
    """An output that cannot be opened; the message says what to install or change."""


def display_available() -> bool:
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def overlay(image: np.ndarray, fps: float, face: bool) -> np.ndarray:
    """Frame rate, and a note when the driver's face is lost (the preview window's)."""
    shown = image.copy()
    cv2.putText(shown, f"{fps:.1f} fps", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1)
    if not face:
        cv2.putText(shown, "no face", (6, 38), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 64, 64), 1)
    return shown


class WindowSink:
    def __init__(self, title: str = "talking head") -> None:
        if not display_available():
            raise SinkError(
                "no display: use --no-window with --output FILE.mp4 or --virtual-camera"
            )
        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE)

    def write(self, image: np.ndarray, fps: float, face: bool) -> str | None:
        """Show an RGB frame with the frame rate (and 'no face' when the driver's is lost);
        returns the action of a pressed key, if any."""
        cv2.imshow(self.title, cv2.cvtColor(overlay(image, fps, face), cv2.COLOR_RGB2BGR))
        return KEYS.get(cv2.waitKey(1) & 0xFF)

    def close(self) -> None:
        cv2.destroyWindow(self.title)


# Containers the file sink writes, by the output's suffix (FFmpeg muxer names).
VIDEO_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


class VideoFileSink:
    """An H.264 video written to a temporary name and renamed when complete (never a half file).

    Each frame is stamped with its input time (seconds), so the output plays with the input's
    timing, variable frame rates included; without a time, frames are spaced at fps. The audio
    of audio_from (the driving video) is carried over: copied as it is when the container can
    hold its codec, else re-encoded to AAC. Written with PyAV (FFmpeg's libx264). Any failure
    to write (a full disk, a folder without write access) raises SinkError naming the file and
    the reason, and leaves no temporary file; the finished file is decoded once before it
    takes its name, so "wrote" is never said of a file without a playable frame.
    """

    TIME_BASE = Fraction(1, 90000)  # the MPEG clock: exact for 24, 25, 30, 60 and 29.97 fps

    def __init__(self, path: Path, fps: float, audio_from: Path | None = None) -> None:
        if path.suffix.lower() not in VIDEO_FORMATS:
            known = ", ".join(VIDEO_FORMATS)
            raise SinkError(f"--output {path}: not a video file name (use one of {known})")
        self.path, self.fps, self.audio_from = path, fps, audio_from
        self.temp = path.with_name(f".{path.stem}.tmp{path.suffix}")
        self.container: av.container.OutputContainer | None = None
        self.stream: av.video.stream.VideoStream | None = None
        self.audio: AudioCopy | None = None
        self.frames = 0
        self._last_pts = -1

    def _failed(self, error: Exception) -> SinkError:
        """Drop the temporary file; the error to raise, naming the output and the reason."""
        self.discard()
        reason = getattr(error, "strerror", None) or str(error)
        return SinkError(f"cannot write {self.path}: {reason}")

    def _open(self, width: int, height: int) -> None:
        if width % 2 or height % 2:
            raise SinkError(f"H.264 needs even picture sides, got {width}x{height}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.container = av.open(
                str(self.temp), "w", format=VIDEO_FORMATS[self.path.suffix.lower()]
            )
        except (OSError, av.FFmpegError) as error:
            raise self._failed(error) from error
        rate = Fraction(self.fps).limit_denominator(1001)
        self.stream = self.container.add_stream("libx264", rate=rate)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "yuv420p"
        self.stream.time_base = self.stream.codec_context.time_base = self.TIME_BASE
        self.stream.options = {"crf": "18", "preset": "veryfast"}
        if self.audio_from is not None:
            self.audio = AudioCopy.open(self.audio_from, self.container)

    def write(self, image: np.ndarray, time: float | None = None) -> None:
        """Add an RGB uint8 (H, W, 3) frame shown at time seconds (default: frames / fps)."""
        if self.container is None:
            self._open(image.shape[1], image.shape[0])
        seconds = self.frames / self.fps if time is None else time
        pts = max(round(seconds / self.TIME_BASE), self._last_pts + 1)  # strictly increasing
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts, frame.time_base = pts, self.TIME_BASE
        try:
            self.container.mux(self.stream.encode(frame))
        except (OSError, av.FFmpegError) as error:
            raise self._failed(error) from error
        self._last_pts = pts
        self.frames += 1

    def close(self) -> None:
        """Finish the file and give it its name; SinkError if it could not be written whole."""
        if self.container is None:
            return
        try:
            self.container.mux(self.stream.encode(None))
            if self.audio is not None:
                end = (self._last_pts + 1) * self.TIME_BASE + Fraction(1) / Fraction(self.fps)
                self.audio.copy(self.container, float(end))
            self.container.close()
            self.container = None
            written = frame_count(self.temp)
            if written != self.frames:
                raise OSError(f"{written} of {self.frames} frames could be read back")
            os.chmod(self.temp, FILE_MODE)
        except (OSError, av.FFmpegError, VideoReadError) as error:
            raise self._failed(error) from error
        try:
            replace_file(self.temp, self.path)
        except PermissionError as error:  # the old file is open in a player (Windows): keep ours
            kept = self.path.with_name(f"{self.path.stem}.new{self.path.suffix}")
            try:
                if kept.exists():
                    raise FileExistsError(kept)  # never replaced unasked
                replace_file(self.temp, kept)
            except OSError:
                kept = self.temp
            raise SinkError(
                f"{describe_os_error(error)}; the new video is kept as {kept}"
            ) from error
        except OSError as error:
            raise self._failed(error) from error

    def discard(self) -> None:
        """Stop without a file: close what is open and delete the temporary file."""
        if self.container is not None:
            with contextlib.suppress(OSError, av.FFmpegError):
                self.container.close()
            self.container = None
        if self.audio is not None:
            self.audio.source.close()
            self.audio = None
        with contextlib.suppress(OSError):  # e.g. its folder could not be made
            self.temp.unlink(missing_ok=True)


# Audio codecs the mp4 container holds as they are; others are re-encoded to AAC.
MP4_AUDIO_CODECS = {"aac", "mp3", "ac3", "eac3", "opus", "flac", "alac"}


class AudioCopy:
    """The first audio stream of a video, into an output container, up to a time."""

    def __init__(self, source: av.container.InputContainer, stream, copy: bool) -> None:
        self.source, self.copy_packets = source, copy
        self.input = source.streams.audio[0]
        self.output = stream

    @classmethod
    def open(cls, path: Path, container: av.container.OutputContainer) -> AudioCopy | None:
        """None when path has no audio stream (or does not open: the video then goes alone)."""
        try:
            source = av.open(str(path))
        except av.FFmpegError:
            return None
        if not source.streams.audio:
            source.close()
            return None
        audio = source.streams.audio[0]
        if audio.codec_context.name in MP4_AUDIO_CODECS:
            return cls(source, container.add_stream_from_template(audio), copy=True)
        stream = container.add_stream("aac", rate=audio.codec_context.sample_rate or 48000)
        return cls(source, stream, copy=False)

    def copy(self, container: av.container.OutputContainer, end: float) -> None:
        """Every audio packet (copied) or frame (re-encoded) that starts before end seconds."""
        try:
            if self.copy_packets:
                for packet in self.source.demux(self.input):
                    if packet.dts is None:
                        continue  # the demuxer's flush packet
                    if packet.pts is not None and packet.pts * packet.time_base >= end:
                        break
                    packet.stream = self.output
                    container.mux(packet)
                return
            for frame in self.source.decode(self.input):
                if frame.time is not None and frame.time >= end:
                    break
                frame.pts = None  # the encoder stamps its own, in its sample clock
                container.mux(self.output.encode(frame))
            container.mux(self.output.encode(None))
        finally:
            self.source.close()


# A camera that shows, frame after frame, what we send to the virtual camera is that virtual
# camera (OBS's is often camera 0 on Windows and macOS): the avatar would drive itself.
ECHO_FRAMES = 15  # consecutive frames
ECHO_LEVELS = 6.0  # mean difference of 32 x 32 grey thumbnails, in 8-bit levels


def _thumbnail(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)


class VirtualCameraSink:
    def __init__(self, width: int, height: int, fps: float) -> None:
        self._sent: collections.deque[np.ndarray] = collections.deque(maxlen=4)  # newest last
        self._echoes = 0
        try:
            import pyvirtualcam
        except ImportError as error:
            raise SinkError(
                "the virtual camera needs the package pyvirtualcam (pip install pyvirtualcam) and "
                "a "
                "virtual camera device: v4l2loopback on Linux (sudo modprobe v4l2loopback), OBS's "
                "virtual camera on Windows and macOS"
            ) from error
        try:
            self.camera = pyvirtualcam.Camera(width=width, height=height, fps=fps)
        except RuntimeError as error:
            raise SinkError(
                f"no virtual camera device ({error}): on Linux load v4l2loopback (sudo modprobe "
                "v4l2loopback devices=1 exclusive_caps=1); on Windows and macOS install OBS and "
                "start its virtual camera once"
            ) from error

    def write(self, image: np.ndarray, time: float | None = None) -> None:
        self._sent.append(_thumbnail(image))
        self.camera.send(np.ascontiguousarray(image))
        self.camera.sleep_until_next_frame()

    def check_not_echoed(self, camera_image: np.ndarray, camera: str) -> None:
        """SinkError when the camera being driven from (RGB uint8, any size) has shown what
        was sent here, a frame or a few late, for ECHO_FRAMES frames in a row."""
        if not self._sent:
            return
        seen = _thumbnail(camera_image)
        echoed = min(float(np.abs(seen - sent).mean()) for sent in self._sent) < ECHO_LEVELS
        self._echoes = self._echoes + 1 if echoed else 0
        if self._echoes >= ECHO_FRAMES:
            raise SinkError(
                f"camera {camera} shows what is sent to the virtual camera "
                f"({getattr(self.camera, 'device', 'pyvirtualcam')}): it is that virtual camera "
                "itself; drive from your real camera instead (--source 1, 2, ...)"
            )

    def close(self) -> None:
        self.camera.close()

    discard = close


def open_sinks(
    output: Path | None,
    virtual_camera: bool,
    size: tuple[int, int],
    fps: float,
    audio_from: Path | None = None,
) -> list[VideoFileSink | VirtualCameraSink]:
    """The file and/or virtual-camera sinks asked for; size: (width, height) of the pictures.

    audio_from: the driving video, whose sound goes into the output file."""
    sinks: list[VideoFileSink | VirtualCameraSink] = []
    if output is not None:
        sinks.append(VideoFileSink(output, fps, audio_from))
    if virtual_camera:
        sinks.append(VirtualCameraSink(*size, fps))
    return sinks
