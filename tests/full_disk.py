"""A full disk and a read-only folder, simulated where the bytes are written.

``fill(monkeypatch, folder, room)``: files opened for writing in binary under folder (whose
names match ``names``) share room bytes; a write that does not fit writes what fits, then
raises OSError(ENOSPC) with no file name, as Python's file objects do on a real full disk.
torch.save to a path writes from C++, out of Python's reach: it is sent through Python's open,
the way torch itself writes a path that is not ASCII, so that torch's zip writer fails as it
does on a real full disk (RuntimeError '[enforce fail at inline_container.cc:...] unexpected
pos ...', measured on a full tmpfs with torch 2.14).

``read_only(monkeypatch, folder)``: creating a file under folder raises OSError(EROFS) naming
the file, as os.open does on a read-only mount.
"""

from __future__ import annotations

import builtins
import errno
import fnmatch
import io
import os
from pathlib import Path

import pytest
import torch.serialization

NO_SPACE = os.strerror(errno.ENOSPC)


class FullDiskFile:
    """A binary file whose writes draw on the disk's room (a list of one int, shared)."""

    def __init__(self, handle, room: list[int]) -> None:
        self.handle, self.room = handle, room

    def write(self, data) -> int:
        data = memoryview(data).cast("B")
        fits = max(0, min(len(data), self.room[0]))
        self.handle.write(data[:fits])
        self.room[0] -= fits
        if fits < len(data):
            raise OSError(errno.ENOSPC, NO_SPACE)
        return len(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.handle.close()

    def __getattr__(self, name):
        return getattr(self.handle, name)


def _inside(path, folder: Path, names: str) -> bool:
    if not isinstance(path, (str, os.PathLike)):
        return False  # a file descriptor
    path = Path(os.fsdecode(path)).absolute()
    return folder in path.parents and fnmatch.fnmatch(path.name, names)


def fill(monkeypatch: pytest.MonkeyPatch, folder: Path, room: int = 0, names: str = "*") -> None:
    """Writes to files under folder named like names (a glob) get room bytes in all."""
    folder, left = Path(folder).absolute(), [room]
    real_open = io.open

    def open_(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        writes = any(flag in mode for flag in "wax+")
        if "b" in mode and writes and _inside(file, folder, names):
            return FullDiskFile(handle, left)
        return handle

    class ThroughPython(torch.serialization._open_zipfile_writer_file):
        def __init__(self, name: str) -> None:
            self.name, self.file_stream = name, open_(name, "wb")
            torch.serialization._opener.__init__(
                self,
                torch._C.PyTorchFileWriter(
                    self.file_stream,
                    torch.serialization.get_crc32_options(),
                    torch.serialization._get_storage_alignment(),
                ),
            )

    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(io, "open", open_)
    monkeypatch.setattr(torch.serialization, "_open_zipfile_writer_file", ThroughPython)


def read_only(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Creating a file under folder fails as on a read-only mount (mkstemp's temp files too)."""
    folder, real = Path(folder).absolute(), os.open

    def open_(path, flags, *args, **kwargs):
        if flags & os.O_CREAT and _inside(path, folder, "*"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
