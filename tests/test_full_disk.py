"""Full disks and read-only folders: every write ends in one error naming the file the user
asked for (never a hidden temp file, never a traceback from inside torch) and leaves no half
file (tests/full_disk.py simulates both where the bytes are written)."""

from __future__ import annotations

import errno

import numpy as np
import pytest
import torch
from full_disk import fill, read_only

from evaluation.protocol import save_video
from utils.files import atomic_save, atomic_torch_write, atomic_write_bytes, describe_os_error


def test_the_simulated_full_disk_fails_torch_as_a_real_one_does(tmp_path, monkeypatch):
    """torch.save to a path on a full disk raises this RuntimeError, not OSError(ENOSPC)."""
    fill(monkeypatch, tmp_path, room=100)
    with pytest.raises(RuntimeError, match=r"inline_container.*unexpected pos"):
        torch.save({"weights": torch.zeros(1000)}, tmp_path / "raw.pt")


@pytest.mark.parametrize("room", [0, 100, 3000])
def test_a_torch_file_on_a_full_disk_is_an_error_naming_it_and_leaves_nothing(
    tmp_path, monkeypatch, room
):
    """Before: RuntimeError '[enforce fail at inline_container.cc:...] unexpected pos' from
    inside torch, which every command's OSError handler missed."""
    fill(monkeypatch, tmp_path, room)
    out = tmp_path / "model.pt"
    with pytest.raises(OSError) as raised:
        atomic_save({"weights": torch.zeros(1000)}, out)
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(out)
    assert describe_os_error(raised.value, "run it again") == (
        f"{out}: No space left on device: free space, then run it again"
    )
    assert list(tmp_path.iterdir()) == []  # no half file, no temp file


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit's deprecation
def test_a_torchscript_file_on_a_full_disk_is_an_error_naming_it(tmp_path, monkeypatch):
    """Before: torch.jit's writer aborted the whole process on a full disk ('terminate called
    after throwing an instance of c10::Error'), leaving its temp file."""
    traced = torch.jit.trace(torch.nn.Linear(30, 30), torch.zeros(1, 30))
    fill(monkeypatch, tmp_path, room=500)
    out = tmp_path / "p.ts"
    with pytest.raises(OSError, match="No space left on device") as raised:
        atomic_torch_write(out, lambda handle: torch.jit.save(traced, handle))
    assert raised.value.filename == str(out) and list(tmp_path.iterdir()) == []


def test_a_read_only_folder_is_said_of_the_file_asked_for_not_its_temp_file(tmp_path, monkeypatch):
    """Before: 'error: DIR/.model.x8k2j1qz.tmp.pt: Read-only file system'."""
    read_only(monkeypatch, tmp_path)
    out = tmp_path / "model.pt"
    for write in (lambda: atomic_save({}, out), lambda: atomic_write_bytes(out, b"x")):
        with pytest.raises(OSError) as raised:
            write()
        assert describe_os_error(raised.value) == f"{out}: Read-only file system"


def test_a_full_disk_while_evaluating_names_the_video_file(tmp_path, monkeypatch):
    """Before: 'error: No space left on device', and a half NAME.tmp.npz left behind."""
    fill(monkeypatch, tmp_path, room=200)
    frames = {"feed-forward/1": np.random.default_rng(0).integers(0, 255, (4, 64, 64, 3))}
    with pytest.raises(OSError) as raised:
        save_video(tmp_path, "id1/video", {}, frames)
    assert raised.value.errno == errno.ENOSPC
    assert str(tmp_path / "videos") in raised.value.filename
    assert list((tmp_path / "videos").iterdir()) == []
