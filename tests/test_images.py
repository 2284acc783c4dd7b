"""Reading pictures: a file that declares more pixels than allowed is refused undecoded."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from utils.images import read_image, save_image


def png_declaring(width: int, height: int) -> bytes:
    """A small PNG whose header declares width x height (its data is one empty row)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * (width + 1)))
        + chunk(b"IEND", b"")
    )


def test_a_picture_declaring_too_many_pixels_is_refused_before_decoding(tmp_path):
    """A 30000x30000 PNG of a few KB: before, 19 s and 5.9 GB to decode."""
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declaring(30000, 30000))
    assert bomb.stat().st_size < 100_000
    with pytest.raises(OSError, match=r"30000x30000 = 900 MP, more than data.max_image_pixels"):
        read_image(bomb)
    picture = np.zeros((20, 30, 3), np.uint8)
    save_image(picture, tmp_path / "small.png")
    assert read_image(tmp_path / "small.png").shape == (20, 30, 3)
    with pytest.raises(OSError, match="more than data.max_image_pixels"):
        read_image(tmp_path / "small.png", max_pixels=599)
