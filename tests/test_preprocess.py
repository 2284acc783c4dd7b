"""Preprocessing end to end on synthetic VoxCeleb2-style videos with the dlib backend."""

from __future__ import annotations

import collections
import json
import logging
import multiprocessing
import os
import shutil
import stat
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from synthetic_videos import (
    FRAME_SIZE,
    BuiltStore,
    built_store,
    still_frame,
    synthetic_config,
    unseen_cut_clip,
)

from dataset.clips import (
    PreprocessError,
    PreprocessOptions,
    crop_clip,
    discover_videos,
    sample_positions,
)
from dataset.face import transform_points
from dataset.landmarks import detector_from_config
from dataset.preprocess import main, parse_shard, preprocess, read_skipped
from dataset.shots import ShotBoundaries
from dataset.store import (
    MANIFESTS_DIR,
    StoreError,
    in_shard,
    read_manifest,
    read_record,
    record_path,
    split_of,
)
from dataset.synthetic import face_pictures, moving_clip, write_video
from params.config import PARAMS_DIR


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> BuiltStore:
    return built_store(tmp_path_factory)


def test_good_videos_give_records_and_bad_ones_are_skipped_with_reasons(built):
    assert built.summary.done == len(built.tree.good)
    assert built.summary.skipped == collections.Counter(built.tree.skipped.values())
    assert [entry.key for entry in read_manifest(built.store)] == sorted(built.tree.good)
    clips = dict.fromkeys(built.tree.unreadable_clips, "clip_unreadable")
    others = {f"{key}/00001.mp4": "other_person_dropped" for key in built.tree.other_person}
    assert read_skipped(built.store) == {**built.tree.skipped, **clips, **others}
    assert built.summary.unreadable_clips == len(clips)
    # The photo renamed to .mp4 is called what it is, not a too-short video.
    assert "is a JPEG image, not a video" in (
        built.store / "skipped" / "shard-0-of-1.tsv"
    ).read_text(encoding="utf-8")


def test_a_cut_to_another_person_keeps_only_the_person_seen_most(built):
    for key, others in built.tree.other_person.items():
        record = read_record(record_path(built.store, *key.split("/")))
        kept = record.frame_indices.tolist()
        assert kept and not set(kept) & set(others), kept
    # 6 frames sampled from the 40 of the cut video: 0 and 8 show the astronaut; 16, the first
    # of Grace Hopper's after the cut at 16, lies within CHANGE_MARGIN of it.
    assert built.summary.other_person_frames == 3
    listed = (built.store / "skipped" / "shard-0-of-1.tsv").read_text(encoding="utf-8")
    assert "00001.mp4: frames 0-8 (shot 1, 2 sampled) show another person: " in listed


class AlikeDescriber:
    """dlib's descriptors as two similar men give them (issue 26): the astronaut and Grace
    Hopper get means 0.40 apart, each frame spread 0.30 around its person's mean (a man turning
    his head, mp4v). Who is in a frame is told by its colour, nearest of the two stills'."""

    def __init__(self, stills: list[np.ndarray]) -> None:
        self.colours = np.stack([still.reshape(-1, 3).mean(axis=0) for still in stills])
        rng = np.random.default_rng(7)
        direction = rng.normal(size=128)
        self.means = np.stack([np.zeros(128), 0.40 * direction / np.linalg.norm(direction)])
        self.rng = rng

    def __call__(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        colour = image.reshape(-1, 3).mean(axis=0)
        person = int(np.argmin(np.linalg.norm(self.colours - colour, axis=1)))
        noise = self.rng.normal(size=128) * 0.30 / np.sqrt(128)
        return (self.means[person] + noise).astype(np.float32)


def test_a_cut_between_two_alike_people_gives_a_record_of_one_person(tmp_path, monkeypatch):
    """24 frames of one person, a cut, 16 of another whose descriptors are as close as two real
    men's: the record holds the first person only, and the log says why the rest is missing."""
    pictures = face_pictures()
    astronaut, hopper = (still_frame(pictures[name]) for name in ("astronaut", "grace_hopper"))
    frames = moving_clip(*astronaut, 0, 24)[0] + moving_clip(*hopper, 24, 16)[0]
    write_video(tmp_path / "tree" / "id00001" / "cut" / "00001.mp4", frames)
    describer = AlikeDescriber([astronaut[0], hopper[0]])
    monkeypatch.setattr("dataset.preprocess.load_describer", lambda: describer)
    config = synthetic_config()
    config.data.frames_per_video = 40
    summary = preprocess(tmp_path / "tree", tmp_path / "store", config, 0, progress=False)
    assert summary.done == 1 and summary.other_person_frames == 18  # 2 next to the cut
    record = read_record(record_path(tmp_path / "store", "id00001", "cut"))
    assert record.frame_indices.tolist() == list(range(22))
    listed = (tmp_path / "store" / "skipped" / "shard-0-of-1.tsv").read_text(encoding="utf-8")
    assert "frames 24-39 (shot 2, 16 sampled) cannot be told apart from the main person" in listed
    # Each frame knows its face track, which the identity check averages within: one per shot.
    path = tmp_path / "tree" / "id00001" / "cut" / "00001.mp4"
    options = PreprocessOptions.from_config(config, tmp_path / "store")
    cropped = crop_clip(path, 0, list(range(40)), 40, options, detector_from_config(config), None)
    tracks = [frame.track for frame in cropped]
    assert len(set(tracks[:24])) == 1 and len(set(tracks[24:])) == 1 and tracks[0] != tracks[-1]


def test_a_cut_the_shot_detector_misses_gives_a_record_of_one_person(tmp_path, monkeypatch):
    """The reported kind (issue 30): 24 frames of one person, a hard cut to another whose face
    is colour- and framing-matched (the shot detector finds no cut), 16 frames, descriptors
    0.7 apart. The face change splits the shot: the record holds the first person only (less
    the frames next to the change), and the log says why the rest is missing."""
    frames, describer = unseen_cut_clip(24, 16)
    shots = ShotBoundaries()
    for index, frame in enumerate(frames):
        shots(index, frame)
    assert shots.cuts == []  # the pixels hide the cut
    write_video(tmp_path / "tree" / "id00001" / "cut" / "00001.mp4", frames)
    monkeypatch.setattr("dataset.preprocess.load_describer", lambda: describer)
    config = synthetic_config()
    config.data.frames_per_video = 40
    summary = preprocess(tmp_path / "tree", tmp_path / "store", config, 0, progress=False)
    assert summary.done == 1
    record = read_record(record_path(tmp_path / "store", "id00001", "cut"))
    assert record.frame_indices.tolist() == list(range(22))
    listed = (tmp_path / "store" / "skipped" / "shard-0-of-1.tsv").read_text(encoding="utf-8")
    assert "frames 24-39 (shot 1 part 2 of 2, 16 sampled) show another person" in listed
    assert "frame 22 lies next to a change to another face" in listed


def test_the_person_seen_most_needs_enough_frames(tmp_path):
    pictures = face_pictures()
    astronaut, hopper = (still_frame(pictures[name]) for name in ("astronaut", "grace_hopper"))
    frames = moving_clip(*astronaut, 0, 6)[0] + moving_clip(*hopper, 0, 6)[0]
    write_video(tmp_path / "videos" / "two_people.mp4", frames)
    config = synthetic_config()
    config.data.frames_per_video, config.data.min_face_frames = 12, 7
    summary = preprocess(tmp_path / "videos", tmp_path / "store", config, 0, progress=False)
    assert summary.skipped == {"too_few_same_person": 1}
    config.data.identity_check = False  # switched off: both people stay
    summary = preprocess(tmp_path / "videos", tmp_path / "unchecked", config, 0, progress=False)
    assert summary.done == 1
    assert read_manifest(tmp_path / "unchecked")[0].num_frames == 12


def test_voxceleb_like_frames_are_cropped_to_nearly_the_whole_frame(built):
    size = built.config.model.image_size
    for entry in read_manifest(built.store):
        record = read_record(built.store / entry.path)
        span = np.ptp(record.landmarks[:, :, 0], axis=1) / size
        assert np.median(span) == pytest.approx(0.52, abs=0.04), entry.key
        sides = size / record.crop_matrices[:, 0, 0]  # source pixels per crop side
        assert np.all(np.abs(sides / FRAME_SIZE - 1) < 0.12), (entry.key, sides)
        for jpeg in record.jpeg_frames:
            frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            assert (frame.max(axis=(1, 2)) < 12).sum() == 0  # no black band


def test_stored_boxes_average_detector_noise_over_neighbouring_frames(tmp_path):
    still, _ = still_frame(face_pictures()["astronaut"])
    rng = np.random.default_rng(0)
    noisy = [  # a still head; only sensor noise changes from frame to frame
        np.clip(still + rng.normal(0, 12, still.shape), 0, 255).astype(np.uint8) for _ in range(24)
    ]
    write_video(tmp_path / "videos" / "still.mp4", noisy)
    spreads = {}
    for radius in (0, 3):
        config = synthetic_config()
        config.data.frames_per_video, config.data.stabilizer_radius = 24, radius
        store = tmp_path / f"store{radius}"
        assert preprocess(tmp_path / "videos", store, config, 0, progress=False).done == 1
        matrices = read_record(record_path(store, "still", "still")).crop_matrices
        spreads[radius] = float(np.std(np.log(matrices[:, 0, 0])) + np.std(matrices[:, :, 2]))
    assert spreads[3] < 0.5 * spreads[0], spreads


def test_a_missing_or_empty_source_stops_before_anything_is_written(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no videos here", encoding="utf-8")
    for src, message in (("missing", "source folder not found"), ("empty", "no videos in")):
        store = tmp_path / f"store-{src}"
        assert main(["--src", str(tmp_path / src), "--dst", str(store), "--workers", "0"]) == 2
        assert message in capsys.readouterr().err
        assert not store.exists()


def test_store_files_get_the_users_umask_permissions(built):
    mask = os.umask(0)
    os.umask(mask)
    files = [p for p in built.store.rglob("*") if p.is_file()]
    assert files and {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o666 & ~mask}


def test_records_hold_cropped_frames_and_landmarks_near_the_known_motion(built):
    size = built.config.model.image_size
    for entry in read_manifest(built.store):
        record = read_record(built.store / entry.path)
        assert len(record.jpeg_frames) == entry.num_frames
        assert built.config.data.min_face_frames <= entry.num_frames
        assert entry.num_frames <= built.config.data.frames_per_video
        for i, jpeg in enumerate(record.jpeg_frames):
            frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            assert frame.shape == (size, size, 3)
            clip = record.clips[record.clip_indices[i]]
            truth = built.tree.truth[(entry.key, clip)][record.frame_indices[i]]
            truth_in_crop = transform_points(truth, record.crop_matrices[i])
            error = np.linalg.norm(record.landmarks[i] - truth_in_crop, axis=1).mean()
            assert error < 0.045 * size, (entry.key, i, error)  # ~8% of the face width
    # Frames are sampled across both clips of the two-clip video.
    two_clips = read_record(record_path(built.store, "id00001", "vidAstro01"))
    assert set(two_clips.clip_indices.tolist()) == {0, 1}


def test_store_layout_is_bucketed_and_has_no_temporary_files(built):
    for entry in read_manifest(built.store):
        bucket, identity, name = Path(entry.path).parts[1:]
        assert len(bucket) == 2 and identity == entry.identity and name == f"{entry.video}.npz"
    leftovers = [p for p in built.store.rglob("*") if p.name.startswith(".")]
    assert leftovers == []
    settings = json.loads((built.store / "store.json").read_text(encoding="utf-8"))
    assert settings["image_size"] == built.config.model.image_size


def test_resume_rebuilds_exactly_the_removed_records(built, tmp_path, capsys):
    store = tmp_path / "store"
    shutil.copytree(built.store, store)
    removed = built.tree.good[:2]
    kept = record_path(store, *built.tree.good[2].split("/"))
    kept_mtime = kept.stat().st_mtime_ns
    for key in removed:
        path = record_path(store, *key.split("/"))
        path.unlink()
        # What a run killed while writing leaves: a temporary file, never a half record.
        path.with_name(f".{path.name}.1234.tmp").write_bytes(b"half a record")
    command = ["--src", str(built.tree.root), "--dst", str(store), "--workers", "0"]
    command += ["--config", str(PARAMS_DIR / "tiny.yaml"), "--set", "data.frames_per_video=6"]
    assert main(command) == 0
    # Skipped videos are not retried.
    assert "done 2, already in store 2, skipped 0 (none), skipped by earlier runs 4" in (
        capsys.readouterr().out
    )
    assert all(record_path(store, *key.split("/")).exists() for key in removed)
    assert kept.stat().st_mtime_ns == kept_mtime
    assert [entry.key for entry in read_manifest(store)] == sorted(built.tree.good)


def test_shards_share_the_work_and_merge_into_one_manifest(built, tmp_path):
    store = tmp_path / "store"
    config = built.config
    first = preprocess(built.tree.root, store, config, workers=0, shard=(0, 2), progress=False)
    second = preprocess(built.tree.root, store, config, workers=0, shard=(1, 2), progress=False)
    assert first.done + second.done == len(built.tree.good)
    assert sum(first.skipped.values()) + sum(second.skipped.values()) == len(built.tree.skipped)
    # Each shard wrote its own manifest: none can overwrite another's, the reader unions them.
    shard_files = sorted(p.name for p in (store / MANIFESTS_DIR).iterdir())
    assert shard_files == ["shard-0-of-2.json", "shard-1-of-2.json"]
    assert [entry.key for entry in read_manifest(store)] == sorted(built.tree.good)
    # Trees copied together without their manifests: --merge rescans every record.
    shutil.rmtree(store / MANIFESTS_DIR)
    with pytest.raises(StoreError, match="no manifest"):
        read_manifest(store)
    assert main(["--dst", str(store), "--merge"]) == 0
    assert [entry.key for entry in read_manifest(store)] == sorted(built.tree.good)
    assert read_skipped(store).items() >= built.tree.skipped.items()


def test_other_settings_on_an_existing_store_are_refused(built, tmp_path, capsys):
    store = tmp_path / "store"
    shutil.copytree(built.store, store)
    before = sorted(p.name for p in store.rglob("*"))
    command = ["--src", str(built.tree.root), "--dst", str(store), "--workers", "0"]
    assert main([*command, "--size", "128"]) == 2
    assert "image_size: store has 64, run asks 128" in capsys.readouterr().err
    assert sorted(p.name for p in store.rglob("*")) == before


def test_discovery_reads_voxceleb_trees_and_flat_folders(tmp_path):
    (tmp_path / "id1" / "vidA").mkdir(parents=True)
    for name in ("id1/vidA/00002.mp4", "id1/vidA/00001.mp4", "alice.mp4", "bob.avi", "notes.txt"):
        (tmp_path / name).touch()
    sources = discover_videos(tmp_path)
    assert [(s.identity, s.video, [c.name for c in s.clips]) for s in sources] == [
        ("alice", "alice", ["alice.mp4"]),
        ("bob", "bob", ["bob.avi"]),
        ("id1", "vidA", ["00001.mp4", "00002.mp4"]),
    ]
    with pytest.raises(PreprocessError, match="source folder not found"):
        discover_videos(tmp_path / "missing")


def test_sampling_spreads_distinct_frames_across_clips():
    positions = sample_positions([10, 5, 20], 7)
    assert len(set(positions)) == 7
    assert {clip for clip, _ in positions} == {0, 1, 2}
    assert all(0 <= frame < [10, 5, 20][clip] for clip, frame in positions)
    assert positions[0] == (0, 0) and positions[-1] == (2, 19)
    assert len(sample_positions([4], 32)) == 4


def test_shards_partition_the_videos():
    keys = [f"id{i:05d}/video{j}" for i in range(50) for j in range(4)]
    owners = [[s for s in range(3) if in_shard(key, (s, 3))] for key in keys]
    assert all(len(owner) == 1 for owner in owners)
    assert {owner[0] for owner in owners} == {0, 1, 2}
    assert parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "x", "1/2/3"):
        with pytest.raises(Exception, match="shard"):
            parse_shard(bad)


def test_split_is_by_identity_and_stable():
    identities = [f"id{i:05d}" for i in range(2000)]
    validation = {i for i in identities if split_of(i, 0.1) == "validation"}
    assert 120 < len(validation) < 280
    assert validation <= {i for i in identities if split_of(i, 0.2) == "validation"}
    assert all(split_of(i, 0.0) == "train" for i in identities)


def test_unexpected_errors_are_logged_and_retried_by_the_next_run(built, tmp_path, monkeypatch):
    import dataset.preprocess as preprocessing

    def disk_full(store, record):
        raise OSError(28, "No space left on device")

    store = tmp_path / "store"
    with monkeypatch.context() as patch:
        patch.setattr(preprocessing, "write_record", disk_full)
        failed = preprocess(built.tree.root, store, built.config, workers=0, progress=False)
    assert failed.done == 0 and failed.skipped["error"] == len(built.tree.good)
    assert "No space left" in (store / "skipped" / "shard-0-of-1.tsv").read_text(encoding="utf-8")
    retried = preprocess(built.tree.root, store, built.config, workers=0, progress=False)
    assert retried.done == len(built.tree.good)
    assert retried.previously_skipped == len(built.tree.skipped)


class _InlinePool:
    """multiprocessing's Pool as run_videos uses it, its workers started in this process."""

    def __init__(self, processes, initializer, initargs):
        for _ in range(processes):
            initializer(*initargs)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return None

    def imap_unordered(self, task, items, chunksize):
        return map(task, items)


def test_fan_workers_are_spread_over_the_gpus(tmp_path, monkeypatch, caplog):
    import dataset.landmarks as landmarks
    import dataset.preprocess as preprocessing

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    spawn = multiprocessing.get_context("spawn")
    context = types.SimpleNamespace(Pool=_InlinePool, Value=spawn.Value)
    monkeypatch.setattr(preprocessing.multiprocessing, "get_context", lambda method: context)
    monkeypatch.setattr(preprocessing.cv2, "setNumThreads", lambda threads: None)
    built_on = []
    monkeypatch.setattr(
        landmarks, "load_backend", lambda name, device: built_on.append(device) or object()
    )
    config = synthetic_config()
    config.data.detector, config.data.identity_check, config.device = "fan", False, "auto"
    caplog.set_level(logging.INFO, logger="dataset.preprocess")
    options = PreprocessOptions.from_config(config, tmp_path / "store")
    assert list(preprocessing.run_videos([], options, config, workers=16)) == []
    # Not 16 copies of FAN on GPU 0: worker i on GPU i mod 4, and the log says so.
    assert built_on == [f"cuda:{i % 4}" for i in range(16)]
    assert "fan detector: 16 workers on 4 GPU(s) (cuda:0 4, cuda:1 4, cuda:2 4, cuda:3 4)" in (
        caplog.text
    )


def test_gpus_are_shared_unevenly_and_a_chosen_gpu_or_dlib_is_kept(monkeypatch):
    from dataset.preprocess import worker_devices

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    config = synthetic_config()
    config.data.detector, config.device = "fan", "cuda"
    assert collections.Counter(worker_devices(config, 16)) == {
        "cuda:0": 6,
        "cuda:1": 5,
        "cuda:2": 5,
    }
    config.device = "cuda:1"  # the user's choice: every worker there
    assert worker_devices(config, 4) == ["cuda:1"] * 4
    config.data.detector = "dlib"  # runs on the CPU: nothing to spread, nothing on a GPU
    assert worker_devices(config, 4) == ["cpu"] * 4
