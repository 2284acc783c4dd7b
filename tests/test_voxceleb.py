"""The K-shot dataset contract: distinct K and target, shapes, ranges, flips, workers, DDP."""

from __future__ import annotations

import dataclasses
import json
import shutil

import cv2
import numpy as np
import pytest
import torch
from synthetic_videos import BuiltStore, built_store
from torch.utils.data import DataLoader, DistributedSampler

from dataset.face import draw_landmarks, flip_landmarks
from dataset.store import StoreError, read_manifest, read_record
from dataset.value_range import image_to_tensor
from dataset.voxceleb import VoxCelebDataset


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> BuiltStore:
    return built_store(tmp_path_factory)


def make_dataset(built: BuiltStore, **changes) -> VoxCelebDataset:
    config = built.config
    data = dataclasses.replace(config.data, validation_fraction=0.0, **changes.pop("data", {}))
    model = dataclasses.replace(config.model, **changes)
    return VoxCelebDataset.from_config(dataclasses.replace(config, data=data, model=model))


def test_items_have_the_documented_shapes_and_types(built):
    dataset = make_dataset(built)
    k, size = built.config.data.k_shot, built.config.model.image_size
    assert len(dataset) == len(built.tree.good)
    assert dataset.keys == sorted(built.tree.good)
    for index in range(len(dataset)):
        item = dataset[index]
        assert item["frames"].shape == item["landmark_images"].shape == (k, 3, size, size)
        assert item["target_frame"].shape == item["target_landmark_image"].shape == (3, size, size)
        assert item["frames"].dtype == torch.float32
        assert item["video_index"].dtype == torch.int64 and item["video_index"].item() == index


def test_target_is_never_among_the_k_frames(built):
    dataset = make_dataset(built)
    torch.manual_seed(0)
    for _ in range(30):
        item = dataset[0]
        indices = item["frame_indices"].tolist()
        assert len(set(indices)) == len(indices) == built.config.data.k_shot + 1
        for frame in item["frames"]:  # different frames of a moving face differ in content
            assert (frame - item["target_frame"]).abs().mean() > 0.01


@pytest.mark.parametrize(("activation", "low"), [("tanh", -1.0), ("sigmoid", 0.0)])
def test_images_are_in_the_generator_output_range(built, activation, low):
    item = make_dataset(built, output_activation=activation)[1]
    for key in ("frames", "landmark_images", "target_frame", "target_landmark_image"):
        assert item[key].min() >= low and item[key].max() <= 1.0, key
    # Landmark pictures: black background at the bottom of the range, lines near the top
    # (anti-aliased 1 px lines at 64 px do not quite reach it).
    assert item["landmark_images"].min() == low and item["landmark_images"].max() > 0.9


def test_items_match_the_stored_frames_and_landmarks(built):
    dataset = make_dataset(built)
    item = dataset[2]
    record = read_record(built.store / read_manifest(built.store)[2].path)
    target = item["frame_indices"][-1].item()
    jpeg = np.frombuffer(record.jpeg_frames[target], np.uint8)
    frame = cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    torch.testing.assert_close(item["target_frame"], image_to_tensor(frame, "tanh"))
    picture = draw_landmarks(record.landmarks[target], frame.shape[0])
    torch.testing.assert_close(item["target_landmark_image"], image_to_tensor(picture, "tanh"))


def test_flip_mirrors_frames_and_landmarks_identically(built):
    plain = make_dataset(built, data={"flip_probability": 0.0})
    flipped = make_dataset(built, data={"flip_probability": 1.0})
    torch.manual_seed(3)
    a = plain[0]
    torch.manual_seed(3)
    b = flipped[0]
    assert torch.equal(a["frame_indices"], b["frame_indices"])
    torch.testing.assert_close(b["frames"], a["frames"].flip(-1))
    torch.testing.assert_close(b["target_frame"], a["target_frame"].flip(-1))
    record = read_record(built.store / read_manifest(built.store)[0].path)
    size = built.config.model.image_size
    for picture, index in zip(b["landmark_images"], b["frame_indices"], strict=False):
        expected = draw_landmarks(flip_landmarks(record.landmarks[index], size), size)
        torch.testing.assert_close(picture, image_to_tensor(expected, "tanh"))
    # Swapped left/right: the mirrored picture is not just the mirrored drawing.
    assert not torch.equal(b["landmark_images"], a["landmark_images"].flip(-1))


def test_works_with_dataloader_workers_and_a_distributed_sampler(built):
    dataset = make_dataset(built)
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=0)
        loader = DataLoader(dataset, batch_size=2, sampler=sampler, num_workers=2)
        for batch in loader:
            assert batch["frames"].shape[1:] == (built.config.data.k_shot, 3, 64, 64)
            seen += batch["video_index"].tolist()
    assert set(seen) == set(range(len(dataset)))


def test_split_and_crop_mismatches_are_clear_errors(built):
    with pytest.raises(StoreError, match="model.image_size: store has 64, run asks 128"):
        make_dataset(built, image_size=128)
    # Every framing setting counts, not only the size: later stages crop with the config.
    for key, value in (("face_width", 0.6), ("eye_line", 0.35), ("crop_padding", "black")):
        with pytest.raises(StoreError, match=f"data.{key}: store has"):
            make_dataset(built, data={key: value})
    with pytest.raises(StoreError, match="no validation video"):
        VoxCelebDataset(built.store, 2, "tanh", split="validation", validation_fraction=0.0)
    everyone = VoxCelebDataset(built.store, 2, "tanh", split="validation", validation_fraction=1.0)
    assert len(everyone) == len(built.tree.good)
    frames = max(entry.num_frames for entry in read_manifest(built.store))
    with pytest.raises(StoreError, match=f"at least {frames + 1}"):
        VoxCelebDataset(built.store, frames, "tanh", split="all")


def test_a_store_made_by_the_old_crop_is_refused_with_what_to_do(built, tmp_path):
    store = tmp_path / "old"
    shutil.copytree(built.store, store)
    settings = json.loads((store / "store.json").read_text(encoding="utf-8"))
    del settings["crop_version"], settings["face_width"], settings["eye_line"]
    settings.update(crop_margin=0.25, crop_shift_up=0.1)  # what issue 3's stores hold
    (store / "store.json").write_text(json.dumps(settings), encoding="utf-8")
    with pytest.raises(StoreError, match="older face crop .*Preprocess the videos again"):
        VoxCelebDataset(store, 2, "tanh", split="all")
