"""Pictures in and out: reading and saving images, the JPEG bytes that stores and person files
keep of every crop, image grids for demos and training samples, short animations."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image

from utils.files import atomic_write, atomic_write_bytes

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")  # photo files we read


def image_grid(rows: list[list[np.ndarray]]) -> np.ndarray:
    """RGB uint8 tiles of one size -> one picture, rows top to bottom."""
    return np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)


def save_image(image: np.ndarray, path: str | Path) -> None:
    """Write an RGB uint8 picture atomically; the format follows the suffix.

    Encoded in memory and written by Python: OpenCV's own file functions (imwrite, imread)
    cannot open a path with non-ASCII characters on Windows ("C:\\Users\\Zoë\\me.png").
    """
    suffix = Path(path).suffix
    try:
        ok, data = cv2.imencode(suffix, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    except cv2.error as error:  # no encoder for this suffix
        raise OSError(f"could not write image {path}: no image format '{suffix}'") from error
    if not ok:
        raise OSError(f"could not write image {path}")
    atomic_write_bytes(path, data.tobytes())


MAX_IMAGE_PIXELS = 200_000_000  # data.max_image_pixels: 14000x14000, a 200 MP phone photo


def image_size(path: str | Path | BinaryIO) -> tuple[int, int]:
    """(width, height) that an image file (a path, or bytes in io.BytesIO) declares, read from
    its header (Pillow), undecoded. OSError when it is no image."""
    Image.MAX_IMAGE_PIXELS = None  # the caller sets the limit; Pillow would only warn or raise
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise OSError(f"cannot read image {path}: {error}") from error


def read_image(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """An image file as RGB uint8; a clear OSError for a missing, unreadable or too large file.

    The size the file declares is checked against max_pixels before anything is decoded: a
    109 KB PNG can declare 30000x30000 pixels (19 s and 5.9 GB to decode).
    """
    if Path(path).is_file():
        width, height = image_size(path)
        if width * height > max_pixels:
            raise OSError(
                f"image {path} is {width}x{height} = {width * height / 1e6:.0f} MP, more than "
                f"data.max_image_pixels ({max_pixels / 1e6:.0f} MP)"
            )
    data = np.fromfile(str(path), dtype=np.uint8) if Path(path).is_file() else None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data is not None and data.size else None
    if image is None:
        raise OSError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def encode_jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    """RGB uint8 (H, W, 3) -> JPEG bytes (OpenCV, quality 0-100): how every crop is stored."""
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise OSError("could not encode a JPEG")
    return data.tobytes()


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes -> RGB uint8 (H, W, 3); ValueError for bytes that do not decode."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("bytes that do not decode as a JPEG")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def save_animation(frames: list[np.ndarray], path: str | Path, fps: float) -> None:
    """RGB uint8 frames -> a looping GIF (for READMEs and chats, where mp4 does not play)."""
    if not frames:
        raise ValueError(f"no frames to write to {path}")
    pictures = [Image.fromarray(frame) for frame in frames]
    duration = round(1000 / fps)

    def write(temp: str) -> None:
        pictures[0].save(temp, save_all=True, append_images=pictures[1:], duration=duration, loop=0)

    atomic_write(path, write)
