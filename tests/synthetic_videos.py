"""A VoxCeleb2-style test tree (dataset/synthetic.py videos) with good and bad videos, and the
store preprocessing makes of it, built once per test session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data
from skimage.exposure import match_histograms

from dataset import synthetic
from dataset.preprocess import Summary, preprocess
from dataset.synthetic import face_pictures, moving_clip, write_video
from params.config import PARAMS_DIR, Config, load_config

FRAME_SIZE = 192


def still_frame(picture: np.ndarray, size: int = FRAME_SIZE) -> tuple[np.ndarray, np.ndarray]:
    return synthetic.still_frame(picture, size)


def small_then_large_face_video(
    frames_before: int, frames_after: int, ratio: float = 2.0, large_face: str = "grace_hopper"
) -> tuple[list[np.ndarray], tuple, tuple]:
    """A small astronaut alone, then a face ratio times her size appears beside her.

    Returns the frames and the two faces' regions ((x0, y0), (x1, y1)) in the frame.
    """
    pictures = face_pictures()
    small_size, large_size = 170, round(170 * ratio)
    small, _ = still_frame(pictures["astronaut"], small_size)
    large, _ = still_frame(pictures[large_face], large_size)
    height, width = large_size + 20, small_size + large_size + 60
    background = np.full((height, width, 3), 40, np.uint8)
    background[10 : 10 + small_size, 10 : 10 + small_size] = small
    both = background.copy()
    left = small_size + 50
    both[10 : 10 + large_size, left : left + large_size] = large
    small_box = ((10, 10), (10 + small_size, 10 + small_size))
    large_box = ((left, 10), (left + large_size, 10 + large_size))
    return [background] * frames_before + [both] * frames_after, small_box, large_box


@dataclass
class SyntheticTree:
    """A VoxCeleb2-style tree and what a preprocessing run must make of it."""

    root: Path
    truth: dict[tuple[str, str], np.ndarray]  # (video key, clip name) -> (frames, 68, 2)
    good: list[str]  # keys of videos that must give records
    skipped: dict[str, str]  # key -> expected skip reason
    unreadable_clips: list[str]  # clip keys of good videos that must be listed as unreadable
    other_person: dict[str, list[int]]  # key -> frames of a second person the record must drop


def make_tree(root: Path, frames_per_clip: int = 10) -> SyntheticTree:
    """Four good videos of two real faces (one with a broken clip, one that cuts from one
    person to the other), and four that preprocessing must skip."""
    pictures = face_pictures()
    stills = {name: still_frame(picture) for name, picture in pictures.items()}
    truth = {}
    plan = [  # identity, video, face, clips
        ("id00001", "vidAstro01", "astronaut", 2),
        ("id00002", "vidHopper01", "grace_hopper", 1),
        ("id00002", "vidHopper02", "grace_hopper", 1),
    ]
    for identity, video, face, clips in plan:
        still, points = stills[face]
        for clip in range(clips):
            name = f"{clip + 1:05d}.mp4"
            frames, clip_truth = moving_clip(still, points, clip * frames_per_clip, frames_per_clip)
            write_video(root / identity / video / name, frames)
            truth[(f"{identity}/{video}", name)] = clip_truth
    # A third clip of the astronaut's video is damaged: the video still gives a record.
    random_bytes = np.random.default_rng(0).bytes(20_000)
    (root / "id00001" / "vidAstro01" / "00003.mp4").write_bytes(random_bytes)
    # A shot cut from the astronaut (16 frames) to Grace Hopper (24 frames) in one clip.
    astronaut, astronaut_truth = moving_clip(*stills["astronaut"], 0, 16)
    hopper, hopper_truth = moving_clip(*stills["grace_hopper"], 16, 24)
    write_video(root / "id00006" / "vidCut" / "00001.mp4", astronaut + hopper)
    truth[("id00006/vidCut", "00001.mp4")] = np.concatenate([astronaut_truth, hopper_truth])
    broken = root / "id00003" / "vidBroken" / "00001.mp4"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(random_bytes)
    no_face = cv2.resize(data.coffee(), (FRAME_SIZE, FRAME_SIZE))
    write_video(root / "id00004" / "vidNoFace" / "00001.mp4", [no_face] * frames_per_clip)
    short, _ = moving_clip(*stills["astronaut"], 0, 2)
    write_video(root / "id00005" / "vidShort" / "00001.mp4", short)
    photo = root / "id00007" / "vidPhoto" / "00001.mp4"  # a JPEG photo with a video's name
    photo.parent.mkdir(parents=True)
    photo.write_bytes(cv2.imencode(".jpg", stills["astronaut"][0])[1].tobytes())
    return SyntheticTree(
        root=root,
        truth=truth,
        good=[f"{identity}/{video}" for identity, video, _, _ in plan] + ["id00006/vidCut"],
        skipped={
            "id00003/vidBroken": "unreadable",
            "id00004/vidNoFace": "too_few_faces",
            "id00005/vidShort": "too_short",
            "id00007/vidPhoto": "unreadable",
        },
        unreadable_clips=["id00001/vidAstro01/00003.mp4"],
        other_person={"id00006/vidCut": list(range(16))},
    )


@dataclass
class BuiltStore:
    tree: SyntheticTree
    store: Path
    config: Config
    summary: Summary


_built: list[BuiltStore] = []


def synthetic_config() -> Config:
    """The tiny config with few frames per video: 64 px crops, K = 2."""
    return load_config(PARAMS_DIR / "tiny.yaml", ["data.frames_per_video=6"])


def built_store(tmp_path_factory: pytest.TempPathFactory) -> BuiltStore:
    """The synthetic tree preprocessed once per test session (two worker processes)."""
    if not _built:
        base = tmp_path_factory.mktemp("synthetic")
        tree = make_tree(base / "voxceleb")
        config = synthetic_config()
        config.data.store = str(base / "store")
        summary = preprocess(tree.root, base / "store", config, workers=2, progress=False)
        _built.append(BuiltStore(tree, base / "store", config, summary))
    return _built[0]


def face_swapped(still, points, other, other_points) -> np.ndarray:
    """other's face laid over still's (aligned on the landmarks) and colour-matched to it: a
    second person in the same framing, light and background."""
    matrix, _ = cv2.estimateAffinePartial2D(other_points, points)
    size = still.shape[1], still.shape[0]
    placed = cv2.warpAffine(other, matrix, size, borderMode=cv2.BORDER_REPLICATE)
    placed = match_histograms(placed, still, channel_axis=-1)
    mask = np.zeros(still.shape[:2], np.float32)
    cv2.fillConvexPoly(mask, cv2.convexHull(points.astype(np.int32)), 1.0)
    mask = cv2.GaussianBlur(mask, (9, 9), 0)[..., None]
    return (mask * placed + (1.0 - mask) * still).round().clip(0, 255).astype(np.uint8)


class TwoFacesDescriber:
    """Descriptors of two men whose means lie 0.70 apart (the reported clip: 0.76), spread as
    real ones are, mostly along a direction both share (head pose), so that frame by frame
    they overlap. Who is in a frame is told by the face's pixels (nearest reference patch),
    since colours and framing are alike."""

    def __init__(self, faces: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.references = [self.patch(image, points) for image, points in faces]
        rng = np.random.default_rng(17)
        self.axis = rng.normal(size=128)
        self.axis /= np.linalg.norm(self.axis)
        self.rng = rng

    @staticmethod
    def patch(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        low, high = landmarks.min(axis=0).astype(int), landmarks.max(axis=0).astype(int)
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[low[1] : high[1], low[0] : high[0]]
        small = cv2.resize(gray, (24, 24), interpolation=cv2.INTER_AREA).astype(np.float32)
        return (small - small.mean()) / (small.std() + 1e-6)

    def __call__(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        mine = self.patch(image, landmarks)
        person = int(np.argmax([(mine * theirs).mean() for theirs in self.references]))
        along = self.rng.normal() * 0.2 * self.axis
        noise = self.rng.normal(size=128) * 0.05 / np.sqrt(128)
        return (0.70 * person * self.axis + along + noise).astype(np.float32)


def unseen_cut_clip(first: int, second: int) -> tuple[list[np.ndarray], TwoFacesDescriber]:
    """first frames of the astronaut, then second frames of Grace Hopper's face laid over
    hers (same framing, light and colours: a cut no pixel shot detector finds), moving on
    without a jump; and a describer that gives them descriptors 0.70 apart."""
    pictures = face_pictures()
    astronaut, hopper = (still_frame(pictures[name]) for name in ("astronaut", "grace_hopper"))
    swapped = face_swapped(*astronaut, *hopper)
    frames = moving_clip(*astronaut, 0, first)[0]
    frames += moving_clip(swapped, astronaut[1], first, second)[0]
    return frames, TwoFacesDescriber([astronaut, (swapped, astronaut[1])])
