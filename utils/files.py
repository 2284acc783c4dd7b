"""Atomic file writes: a crash mid-write never leaves a half file under the final name."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Temporary files are created private (0600); the final file gets the mode that a plain open()
# would have given it, so a store or checkpoint shared between users stays readable.
FILE_MODE = 0o666 & ~_umask()


def atomic_write(path: str | Path, write) -> None:
    """Call write(temp_path), then rename the temp file onto path (same folder, same disk)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temp name keeps the suffix: writers such as cv2.imwrite pick the format by it.
    fd, temp = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    try:
        write(temp)
        os.chmod(temp, FILE_MODE)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda temp: Path(temp).write_bytes(data))


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save through a temp file."""
    atomic_write(path, lambda temp: torch.save(obj, temp))


def load_weights(path: str | Path, setting: str, error: type[Exception]) -> Any:
    """A weight file that we did not write (VGG19, VGGFace, AlexNet, Inception), as tensors.

    Loaded with torch.load(weights_only=True): a pickle that would build objects or run code
    is refused before anything in it runs. Every failure raises `error` naming the setting,
    the file and the reason: missing, damaged, or not plain weights.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{setting}: no such file: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as cause:  # UnpicklingError (code or objects), zip errors, truncation
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        raise error(
            f"{setting}: {path} is not a plain weight file, refused unloaded "
            f"({type(cause).__name__}: {reason})"
        ) from cause


def load_versioned(
    path: str | Path,
    file_format: str,
    version: int,
    what: str,
    error: type[Exception],
    hint: str = "",
    older: tuple[int, ...] = (),
) -> dict[str, Any]:
    """A file of ours saved as {'format': ..., 'version': ..., ...}, loaded weights-only.

    Every failure raises `error` with a message naming the file and what is wrong: missing,
    damaged (truncated, not a torch file), another kind of file (then `hint` says how to make
    the right one), or a version this code does not read. Versions in `older` are returned
    as they are, for the caller to upgrade.
    """
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as cause:
        raise error(f"no {what} at {path}") from cause
    except Exception as cause:  # zip errors, unpickling errors, truncation: all say the same
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        raise error(
            f"{path} is not a readable {what} (truncated or not a checkpoint file at all: "
            f"{type(cause).__name__}: {reason})"
        ) from cause
    if not isinstance(payload, dict) or payload.get("format") != file_format:
        raise error(f"{path} is not a {what}{hint}")
    if payload.get("version") != version and payload.get("version") not in older:
        raise error(f"{path}: {what} version {payload.get('version')}; this code reads {version}")
    return payload


def describe_os_error(error: Exception) -> str:
    """'PATH: REASON' for an operating-system error (errno's text, no Python decoration);
    other errors as they are."""
    if isinstance(error, OSError) and error.strerror:
        return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    return str(error)


def open_for_append(path: str | Path):
    """A text file opened for appending that is never reached through a symbolic link: a link
    planted in a store's place would make us write wherever it points. OSError if it is one."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, FILE_MODE)
    except OSError as error:
        if Path(path).is_symlink():
            raise OSError(
                error.errno, "a symbolic link; refused, not followed", str(path)
            ) from error
        raise
    return os.fdopen(fd, "a")
