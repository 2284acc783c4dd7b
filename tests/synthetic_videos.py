"""Small test videos of real faces moved by known warps, laid out like VoxCeleb2.

The faces are pictures shipped in packages (skimage's astronaut, matplotlib's Grace Hopper).
Landmarks are detected once on the still picture; each frame is the still warped by a known
small rotation, shift and scaling, so the warped still landmarks are the ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from matplotlib import cbook
from skimage import data

from dataset.face import CropSettings, crop_face, transform_points
from dataset.landmarks import make_detector
from dataset.preprocess import Summary, preprocess
from params.config import PARAMS_DIR, Config, load_config

FRAME_SIZE = 192


def face_pictures() -> dict[str, np.ndarray]:
    """RGB pictures of real faces that ship with installed packages."""
    hopper = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    return {"astronaut": data.astronaut(), "grace_hopper": cv2.cvtColor(hopper, cv2.COLOR_BGR2RGB)}


def still_frame(picture: np.ndarray, size: int = FRAME_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """A face-centred frame cut from a picture (like VoxCeleb2's), and its landmarks."""
    detector = make_detector("dlib")
    points = detector.detect(picture)
    assert points is not None, "no face in the test picture"
    frame, _, _ = crop_face(picture, points, CropSettings(size, margin=0.35, shift_up=0.1))
    frame_points = detector.detect(frame)
    assert frame_points is not None, "no face in the test still"
    return frame, frame_points


def warp(index: int, size: int = FRAME_SIZE) -> np.ndarray:
    """The known 2x3 motion of frame index: rotation up to 6 degrees, scaling up to 6 %, shift
    up to 8 px."""
    phase = 2.0 * np.pi * index / 12.0
    matrix = cv2.getRotationMatrix2D(
        (size / 2.0, size / 2.0), 6.0 * np.sin(phase), 1.0 + 0.06 * np.cos(phase)
    )
    matrix[:, 2] += (8.0 * np.sin(phase), 5.0 * np.cos(phase))
    return matrix


def write_video(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> None:
    """Write RGB frames as an mp4 file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def moving_clip(
    still: np.ndarray, points: np.ndarray, first: int, count: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """count warped frames of a still, starting at warp index first, and their true landmarks."""
    size = still.shape[0]
    matrices = [warp(first + i, size) for i in range(count)]
    frames = [
        cv2.warpAffine(still, m, (size, size), borderMode=cv2.BORDER_REPLICATE) for m in matrices
    ]
    truth = np.stack([transform_points(points, m) for m in matrices])
    return frames, truth


@dataclass
class SyntheticTree:
    """A VoxCeleb2-style tree and what a preprocessing run must make of it."""

    root: Path
    truth: dict[tuple[str, str], np.ndarray]  # (video key, clip name) -> (frames, 68, 2)
    good: list[str]  # keys of videos that must give records
    skipped: dict[str, str]  # key -> expected skip reason


def make_tree(root: Path, frames_per_clip: int = 10) -> SyntheticTree:
    """Three good videos of two real faces, and three that preprocessing must skip."""
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
    broken = root / "id00003" / "vidBroken" / "00001.mp4"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(np.random.default_rng(0).bytes(20_000))
    no_face = cv2.resize(data.coffee(), (FRAME_SIZE, FRAME_SIZE))
    write_video(root / "id00004" / "vidNoFace" / "00001.mp4", [no_face] * frames_per_clip)
    short, _ = moving_clip(*stills["astronaut"], 0, 2)
    write_video(root / "id00005" / "vidShort" / "00001.mp4", short)
    return SyntheticTree(
        root=root,
        truth=truth,
        good=[f"{identity}/{video}" for identity, video, _, _ in plan],
        skipped={
            "id00003/vidBroken": "unreadable",
            "id00004/vidNoFace": "too_few_faces",
            "id00005/vidShort": "too_short",
        },
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
