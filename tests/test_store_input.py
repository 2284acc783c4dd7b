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
from full_disk import fill
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


# Landmarks that are no face in the frame: NaN, and finite but absurd (3e38 drew blank landmark
# pictures that were trained on, with only a numpy RuntimeWarning), or one frame side and more
# outside a 64 px crop.
ABSURD = [np.nan, 3e38, -3e38, 64 * 2 + 1, -65]


@pytest.mark.parametrize("value", ABSURD)
def test_absurd_landmarks_and_inconsistent_counts_are_damaged_records(store, value):
    entry = read_manifest(store)[0]
    record = read_record(store / entry.path)
    record.landmarks = record.landmarks.copy()
    record.landmarks[0, 5, 0] = value
    write_record(store, record)
    with pytest.raises(StoreError, match="damaged record .*: landmarks"):
        read_record(store / entry.path)


def test_landmarks_a_little_outside_the_frame_are_a_face_at_its_edge(store):
    entry = read_manifest(store)[0]
    record = read_record(store / entry.path)
    record.landmarks = record.landmarks.copy()
    record.landmarks[0, :17] = [-20.0, 80.0]  # a jaw below and left of a 64 px crop
    write_record(store, record)
    assert read_record(store / entry.path).landmarks[0, 0, 0] == -20.0


@pytest.mark.parametrize("value", [np.nan, 3e38])
def test_bad_records_are_replaced_in_training_not_trained_on(built, store, caplog, value):
    """NaN or 3e38 landmarks were trained on; now the record goes down the replaced-and-logged
    path."""
    entries = read_manifest(store)
    for entry in entries[:1]:
        record = read_record(store / entry.path)
        record.landmarks = np.full_like(record.landmarks, value)  # before: trained on
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


@pytest.mark.parametrize("target", ["a record", "no record"])
def test_merge_refuses_a_record_that_links_outside_the_store(store, tmp_path, capsys, target):
    """Before: a StoreError traceback (a link to a file that is no record), or a manifest that
    training then refused (a link to a record elsewhere); now the refusal training gives."""
    record = store / read_manifest(store)[0].path
    outside = tmp_path / "outside.npz"
    outside.write_bytes(record.read_bytes() if target == "a record" else b"secret\n")
    record.unlink()
    make_link(record, outside)
    assert preprocess_main(["--dst", str(store), "--merge"]) == 2
    said = capsys.readouterr().err
    assert said.startswith(f"error: store {store}: record path ") and said.count("\n") == 1
    assert f"points outside {(store / 'records').resolve()}" in said


def test_a_full_disk_while_preprocessing_names_the_file_and_the_way_on(
    built, store, monkeypatch, capsys
):
    """Before: 'error: No space left on device', naming neither the file nor what to do."""
    fill(monkeypatch, store / MANIFESTS_DIR)
    command = ["--src", str(built.tree.root), "--dst", str(store), "--workers", "0"]
    command += ["--config", "params/tiny.yaml", "--set", "data.frames_per_video=6"]
    assert preprocess_main(command) == 2  # nothing left to do but the manifest
    assert capsys.readouterr().err.endswith(  # after the progress bar
        f"\nerror: {store / MANIFESTS_DIR / 'shard-0-of-1.json'}: No space left on device: free "
        "space, then run the same command again: finished records are kept\n"
    )
