"""Windows' file rules, enforced on Linux: a file that is held open can be neither deleted nor
renamed, and no rename may replace it (Python opens files without FILE_SHARE_DELETE there);
os.rename onto an existing name fails. conftest.py applies them to every test, so that code
which deletes or replaces a file it (or a library it calls) still has open fails here as it
would for a Windows user. Open files are this process's (/proc/self/fd); another process's
hold (the app's page reading a picture its job rewrites) is the same kind, tested by holding
the file open in this process."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

real_unlink = os.unlink  # for a test that must do what Windows refuses, on purpose
IN_USE = "The process cannot access the file because it is being used by another process"


def _open_files() -> set[str]:
    held = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("/") and not target.startswith(("/dev/", "/proc/")):
            held.add(target)  # /dev/shm: torch's shared memory, which Windows does otherwise
    return held


def _full(path, dir_fd: int | None) -> str:
    path = os.fsdecode(path)
    if dir_fd is not None and not os.path.isabs(path):
        path = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path)
    path = os.path.abspath(path)
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def _refuse_if_held(*paths: str) -> None:
    held = _open_files()
    for path in paths:
        if path in held:
            raise PermissionError(errno.EACCES, IN_USE, path)


def apply(monkeypatch: pytest.MonkeyPatch) -> None:
    """Patch os's delete and rename calls (pathlib's and shutil's go through them). Where
    there is no /proc/self/fd (macOS; Windows, which enforces these rules itself) nothing is
    patched."""
    if not os.path.isdir("/proc/self/fd"):
        return
    unlink, rename, replace = os.unlink, os.rename, os.replace

    def checked_unlink(path, *, dir_fd=None):
        _refuse_if_held(_full(path, dir_fd))
        return unlink(path, dir_fd=dir_fd)

    def checked_replace(src, dst, *, src_dir_fd=None, dst_dir_fd=None):
        _refuse_if_held(_full(src, src_dir_fd), _full(dst, dst_dir_fd))
        return replace(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)

    def checked_rename(src, dst, *, src_dir_fd=None, dst_dir_fd=None):
        _refuse_if_held(_full(src, src_dir_fd), _full(dst, dst_dir_fd))
        if os.path.lexists(_full(dst, dst_dir_fd)):
            raise FileExistsError(errno.EEXIST, "Cannot create a file that already exists", dst)
        return rename(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)

    monkeypatch.setattr(os, "unlink", checked_unlink)
    monkeypatch.setattr(os, "remove", checked_unlink)
    monkeypatch.setattr(os, "replace", checked_replace)
    monkeypatch.setattr(os, "rename", checked_rename)


def make_link(link: Path, target: Path) -> None:
    """A symbolic link, or the test skipped where making one needs rights (Windows without
    Developer Mode)."""
    try:
        link.symlink_to(target)
    except OSError as error:
        pytest.skip(f"no symbolic links here: {error}")
