"""A store is input, not trusted code or memory: paths confined, links not followed, sizes
capped before inflating, records validated, bad records replaced and logged."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import zipfile

import numpy as np
import pytest
from synthetic_videos import BuiltStore, built_store
from windows_files import make_link

from dataset.preprocess import main as preprocess_main
from dataset.store import (
    MANIFESTS_DIR,
    StoreError,
    read_manifest,
    read_record,
    write_manifest,
    write_record,
)
from dataset.voxceleb import VoxCelebDataset


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> BuiltStore:
    return built_store(tmp_path_factory)


@pytest.fixture
def store(built, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(built.store, copy)
    return copy


def manifest_with(store, path_value: str) -> None:
    for old in (store / MANIFESTS_DIR).glob("*.json"):
        old.unlink()
    entry = dataclasses.asdict(read_manifest_entries(store)[0])
    entry["path"] = path_value
    (store / MANIFESTS_DIR / "all.json").write_text(
        json.dumps({"records": [entry]}), encoding="utf-8"
    )


def read_manifest_entries(store):
    return write_manifest(store)


@pytest.mark.parametrize("where", ["/etc/passwd", "../../outside.npz", "records/../../x.npz"])
def test_manifest_paths_outside_the_store_are_refused(store, where):
    manifest_with(store, where)
    with pytest.raises(StoreError, match="points outside"):
        read_manifest(store)


def test_a_deeply_nested_manifest_is_a_damaged_manifest(store):
    for old in (store / MANIFESTS_DIR).glob("*.json"):
        old.unlink()
    (store / MANIFESTS_DIR / "all.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    with pytest.raises(StoreError, match="damaged manifest"):
        read_manifest(store)


def npz_declaring(shapes: dict[str, tuple[tuple[int, ...], str]]) -> bytes:
    """An npz whose arrays' headers declare these shapes, holding (almost) no data."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, (shape, dtype) in shapes.items():
            member = io.BytesIO()
            header = {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape}
            np.lib.format.write_array_header_1_0(member, header)
            archive.writestr(f"{name}.npy", member.getvalue() + b"\0" * 16)
    return buffer.getvalue()


def test_a_record_declaring_a_terabyte_is_refused_before_inflating(tmp_path):
    """Before: an allocation error ended the run instead of the logged-and-replaced path."""
    path = tmp_path / "bomb.npz"
    path.write_bytes(npz_declaring({"jpeg": ((10**12,), "u1"), "landmarks": ((1, 68, 2), "f4")}))
    with pytest.raises(StoreError, match="would decode to more than"):
        read_record(path)


def test_nan_landmarks_and_inconsistent_counts_are_damaged_records(store):
    entry = read_manifest(store)[0]
    record = read_record(store / entry.path)
    record.landmarks = record.landmarks.copy()
    record.landmarks[0, 5, 0] = np.nan
    write_record(store, record)
    with pytest.raises(StoreError, match="landmarks"):
        read_record(store / entry.path)


def test_bad_records_are_replaced_in_training_not_trained_on(built, store, caplog):
    """NaN landmarks were trained on; now the record goes down the replaced-and-logged path."""
    entries = read_manifest(store)
    for entry in entries[:1]:
        record = read_record(store / entry.path)
        record.landmarks = np.full_like(record.landmarks, np.nan)  # before: trained on
        write_record(store, record)
    config = dataclasses.replace(
        built.config, data=dataclasses.replace(built.config.data, store=str(store))
    )
    dataset = VoxCelebDataset.from_config(config)
    assert entries[0].key in dataset.keys
    items = [dataset[(i, 0)] for i in range(len(dataset))]
    assert all(dataset.keys[int(item["video_index"])] != entries[0].key for item in items)
    assert sum(int(item["replaced"]) for item in items) == 1
    assert "damaged record" in caplog.text


def test_the_skip_log_is_never_written_through_a_link(built, tmp_path, capsys):
    """A symlinked skip log was followed and appended to."""
    store, victim = tmp_path / "store", tmp_path / "victim.txt"
    shutil.copytree(built.store, store)
    victim.write_text("precious\n", encoding="utf-8")
    log = next((store / "skipped").glob("*.tsv"))
    log.unlink()
    make_link(log, victim)
    command = ["--src", str(built.tree.root), "--dst", str(store), "--workers", "0"]
    command += ["--config", "params/tiny.yaml", "--set", "data.frames_per_video=6"]
    assert preprocess_main(command) == 2
    assert "symbolic link" in capsys.readouterr().err
    assert victim.read_text(encoding="utf-8") == "precious\n"


def test_a_video_whose_name_starts_with_a_dot_is_in_the_manifest(built, tmp_path):
    """ ".take1.mp4" was counted as done but left out of the manifest (taken for a temp file)."""
    store = tmp_path / "store"
    shutil.copytree(built.store, store)
    record = read_record(store / read_manifest(store)[0].path)
    record.video = ".take1"
    write_record(store, record)
    assert f"{record.identity}/.take1" in {entry.key for entry in write_manifest(store)}
