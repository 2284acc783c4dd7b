"""Files jobs can trust: atomic writes (a crash mid-write never leaves a half file under the
final name), weights-only loading, stopped jobs' states checked against their inputs, one
process per job folder."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import filelock
import torch

LOCK_NAME = ".lock"  # held by the process working in a job folder


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Temporary files are created private (0600); the final file gets the mode that a plain open()
# would have given it, so a store or checkpoint shared between users stays readable.
FILE_MODE = 0o666 & ~_umask()


def atomic_write(path: str | Path, write) -> None:
    """Call write(temp_path), then rename the temp file onto path (same folder, same disk).

    A write that fails leaves no file under either name. Raises OSError naming path, never the
    hidden temp file, when the folder cannot take the file (read-only, no permission, a full
    disk: errno ENOSPC); write's other errors as they are.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # The temp name keeps the suffix: writers such as Pillow's save pick the format by it.
        fd, temp = tempfile.mkstemp(
            prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
        )
    except OSError as error:  # it names the random name it tried
        raise _naming(error, path) from error
    os.close(fd)
    try:
        with errors_naming(path, temp):
            write(temp)
            os.chmod(temp, FILE_MODE)
            replace_file(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(temp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def errors_naming(path: str | Path, temp: str | None = None) -> Iterator[None]:
    """An OSError from inside that names no file (a write or a flush on a full disk) or
    names temp (shutil's copy names it second) is raised as the same kind of OSError naming
    path, the file the user knows."""
    try:
        yield
    except OSError as error:
        said_of = {error.filename, error.filename2} - {None}
        if error.strerror and (not said_of or (temp is not None and temp in said_of)):
            raise _naming(error, path) from error
        raise


def _naming(error: OSError, path: str | Path) -> OSError:
    return OSError(error.errno, error.strerror, str(path))


# Windows refuses to replace or delete a file that a process holds open (the app's page reading
# loss.png while the job rewrites it, an antivirus scan, a player showing the mp4). Such holds
# are brief, so there the rename is tried again for about WAIT_SECONDS before it fails; on
# other systems a PermissionError is a real one, said at once.
WAIT_SECONDS = 3.0
WAIT_FOR_HOLDS = sys.platform == "win32"
_RETRY_PAUSE = 0.1


def _patiently(action, what: str, path: str | Path | None = None) -> None:
    deadline = time.monotonic() + (WAIT_SECONDS if WAIT_FOR_HOLDS else 0.0)
    while True:
        try:
            action()
            return
        except PermissionError as error:
            if time.monotonic() >= deadline:
                raise PermissionError(
                    error.errno,
                    f"cannot {what} it ({error.strerror}); if another program has it open, "
                    "close it and try again",
                    str(path or error.filename),
                ) from error
            time.sleep(_RETRY_PAUSE)


def replace_file(source: str | Path, target: str | Path) -> None:
    """os.replace(source, target), on Windows waiting up to WAIT_SECONDS while either is held
    open elsewhere. PermissionError naming target when the hold lasts."""
    _patiently(lambda: os.replace(source, target), "replace", target)


def remove_folder(folder: Path) -> None:
    """Delete a finished job's work folder, on Windows waiting up to WAIT_SECONDS while a file
    in it is held open elsewhere; one warning, and the folder left, when it stays held."""
    try:
        _patiently(lambda: shutil.rmtree(folder), "delete")
    except FileNotFoundError:
        pass
    except OSError as error:
        warnings.warn(f"could not delete {describe_os_error(error)}", stacklevel=2)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda temp: Path(temp).write_bytes(data))


def atomic_torch_write(path: str | Path, save: Callable[[BinaryIO], None]) -> None:
    """save(file), a torch writer (torch.save, torch.jit.save) given an open binary file,
    through atomic_write: no half file is left, and a failed write raises OSError naming path.

    torch's zip writer reports a write that failed (a full disk) as a RuntimeError ('[enforce
    fail at inline_container.cc:...] unexpected pos ...'); it is raised as the OSError that
    made it (errno ENOSPC when torch kept none). Writing through a Python file, not a path,
    gives that OSError, and keeps torch.jit from aborting the process when the disk is full.
    """

    def write(temp: str) -> None:
        try:
            with open(temp, "wb") as handle:
                save(handle)
        except RuntimeError as error:
            raise _write_failure(error) from error

    atomic_write(path, write)


def _write_failure(error: RuntimeError) -> BaseException:
    """The OSError behind a RuntimeError of torch's zip writer; error itself when it is not
    a failed write."""
    cause = error.__cause__ or error.__context__
    while cause is not None:
        if isinstance(cause, OSError):
            return cause
        cause = cause.__cause__ or cause.__context__
    if "inline_container" in str(error) and "unexpected pos" in str(error):  # a short write
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return error


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save(obj) to path through a temp file (atomic_torch_write). OSError naming path
    when it cannot be written (a full disk, a read-only folder); nothing is left behind."""
    atomic_torch_write(path, lambda handle: torch.save(obj, handle))


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


def load_work_state(
    path: Path, made_from: dict[str, str], error: type[Exception], job: str, inputs: str
) -> dict[str, Any]:
    """A stopped job's saved state (weights-only), made from the same inputs as this run.

    ``made_from`` names what the job depends on (identity hashes of its inputs and settings);
    a state recorded with other values raises ``error`` naming what differs, so that a resumed
    job never mixes inputs; so does a state that does not load. ``job`` ('fine-tuning') and
    ``inputs`` ('the same --model and --person') make the message.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as cause:  # truncated, not a torch file: resuming from it is impossible
        raise error(
            f"{path} does not load ({type(cause).__name__}); delete {path.parent} to start again"
        ) from cause
    recorded = state.get("made_from", {}) if isinstance(state, dict) else {}
    changed = [key for key in made_from if recorded.get(key) != made_from[key]]
    if changed:
        names = ", ".join(f"{key} {recorded.get(key)} -> {made_from[key]}" for key in changed)
        raise error(
            f"the stopped {job} in {path.parent} was made from another {names}: resume with "
            f"{inputs}, or delete {path.parent} to start again"
        )
    return state


@contextlib.contextmanager
def hold_folder(folder: Path, error: type[Exception], job: str) -> Iterator[None]:
    """One process per job folder (filelock): a second one, e.g. a resume started twice, gets
    ``error`` instead of writing into the same checkpoint. The lock file goes with the job."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(folder / LOCK_NAME)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout as cause:
        raise error(
            f"{folder} is in use by another {job} process (lock {folder / LOCK_NAME}); wait for "
            "it to end or stop it"
        ) from cause
    try:
        yield
    finally:
        lock.release()
        with contextlib.suppress(OSError):  # leave the folder as the job made it
            (folder / LOCK_NAME).unlink()


# A write that found no room: said with the way on ("free space, then ...").
NO_SPACE = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))  # EDQUOT: not everywhere


def describe_os_error(error: Exception, then: str = "try again") -> str:
    """'PATH: REASON' for an operating-system error (errno's text, no Python decoration);
    other errors as they are. A full disk (or quota) says the way on as well:
    'PATH: No space left on device: free space, then THEN'."""
    if isinstance(error, OSError) and error.strerror:
        said = f"{error.filename}: {error.strerror}" if error.filename else error.strerror
        return f"{said}: free space, then {then}" if error.errno in NO_SPACE else said
    return str(error)


def open_for_append(path: str | Path):
    """A UTF-8 text file opened for appending that is never reached through a symbolic link: a
    link planted in a store's place would make us write wherever it points. OSError if it is
    one. Where the OS has no O_NOFOLLOW (Windows), the path is looked at before and after the
    open instead (making a link there needs privileges Windows rarely grants)."""
    nofollow = getattr(os, "O_NOFOLLOW", None)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | (nofollow or 0)
    refused = OSError(errno.ELOOP, "a symbolic link; refused, not followed", str(path))
    if nofollow is None and Path(path).is_symlink():
        raise refused
    try:
        fd = os.open(path, flags, FILE_MODE)
    except OSError as error:
        if Path(path).is_symlink():
            raise refused from error
        raise
    if nofollow is None and Path(path).is_symlink():
        os.close(fd)  # the path became a link between the look and the open
        raise refused
    return os.fdopen(fd, "a", encoding="utf-8")
