"""Where the avatar goes: an OpenCV window, an mp4 file, a virtual camera.

The window shows the frame rate and takes keys (q or Esc quit, r recalibrate the retargeting
reference, s side by side, l landmarks). The virtual camera (pyvirtualcam) appears to Zoom,
Meet or OBS as a webcam. Without a display, only the file and the virtual camera work; asking
for the window then says so instead of crashing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2
import numpy as np

from utils.files import FILE_MODE

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


class WindowSink:
    def __init__(self, title: str = "talking head") -> None:
        if not display_available():
            raise SinkError(
                "no display: use --no-window with --output FILE.mp4 or --virtual-camera"
            )
        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE)

    def write(self, image: np.ndarray) -> str | None:
        """Show an RGB frame; returns the action of a pressed key, if any."""
        cv2.imshow(self.title, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        return KEYS.get(cv2.waitKey(1) & 0xFF)

    def close(self) -> None:
        cv2.destroyWindow(self.title)


class VideoFileSink:
    """An mp4 written to a temporary name and renamed when complete (never a half file)."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        self.temp = path.with_name(f".{path.stem}.tmp{path.suffix}")
        self.writer: cv2.VideoWriter | None = None
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            height, width = image.shape[:2]
            self.writer = cv2.VideoWriter(
                str(self.temp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (width, height)
            )
            if not self.writer.isOpened():
                raise SinkError(f"OpenCV cannot write {self.path}")
        self.writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            os.chmod(self.temp, FILE_MODE)
            os.replace(self.temp, self.path)


class VirtualCameraSink:
    def __init__(self, width: int, height: int, fps: float) -> None:
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

    def write(self, image: np.ndarray) -> None:
        self.camera.send(np.ascontiguousarray(image))
        self.camera.sleep_until_next_frame()

    def close(self) -> None:
        self.camera.close()


def open_sinks(
    output: Path | None, virtual_camera: bool, size: tuple[int, int], fps: float
) -> list[VideoFileSink | VirtualCameraSink]:
    """The file and/or virtual-camera sinks asked for; size: (width, height) of the pictures."""
    sinks: list[VideoFileSink | VirtualCameraSink] = []
    if output is not None:
        sinks.append(VideoFileSink(output, fps))
    if virtual_camera:
        sinks.append(VirtualCameraSink(*size, fps))
    return sinks
