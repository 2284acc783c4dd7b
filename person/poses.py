"""Landmark poses for distillation: what live driving will show the student (person/distill.py).

A student learns only the poses it is shown, so they must cover what driving will ask of it:

- the person's own frames (their landmarks as they were embedded);
- those frames augmented: head rotation, scale and shift, mouth opening, eyes opened or closed,
  brows raised (``augment``);
- other people's motion retargeted onto the person's face shape exactly as live driving does
  it (``dataset.face.transfer_motion``), from a store's records or from videos.

Each source keeps a share held out (``distill.holdout``): the last frames of every driver and
some of the person's own frames, never shown to the student, on which it is measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dataset.clips import PreprocessOptions, crop_clip, discover_videos, sample_positions
from dataset.face import RIGID_INDICES, face_radius, transfer_motion
from dataset.landmarks import detector_from_config
from dataset.store import SETTINGS_NAME, read_manifest, read_record, read_settings
from dataset.video import VIDEO_SUFFIXES, VideoReadError, frame_count
from params.config import Config, DistillConfig

LEFT_EYE, RIGHT_EYE = range(36, 42), range(42, 48)
LOWER_LIP = [55, 56, 57, 58, 59, 65, 66, 67]
MOUTH_CORNERS = [48, 54, 60, 64]
CHIN = {5: 0.3, 6: 0.6, 7: 0.85, 8: 1.0, 9: 0.85, 10: 0.6, 11: 0.3}
BROWS = range(17, 27)


class PoseError(RuntimeError):
    """Drivers that cannot be read or hold no face; the message names the path."""


@dataclass
class Poses:
    """Landmark sets in the person's crop pixels and where each came from."""

    landmarks: np.ndarray  # (N, 68, 2) float32
    sources: list[str]  # 'own', 'augmented', 'driver' per pose
    own: list[int] = field(default_factory=list)  # the 'own' poses' indices into the T frames

    def __len__(self) -> int:
        return len(self.sources)


def _down(points: np.ndarray) -> np.ndarray:
    """Unit vector from the eyes down the face (perpendicular to the eye line)."""
    across = points[list(RIGHT_EYE)].mean(axis=0) - points[list(LEFT_EYE)].mean(axis=0)
    across /= max(float(np.linalg.norm(across)), 1e-6)
    return np.array([-across[1], across[0]])


def _open_eye(points: np.ndarray, eye: range, factor: float) -> None:
    """Scale the eyelids' distance from the line between the eye's corners, in place."""
    first, last = points[eye[0]], points[eye[3]]
    along = (last - first) / max(float(np.linalg.norm(last - first)), 1e-6)
    for index in (eye[1], eye[2], eye[4], eye[5]):
        offset = points[index] - first
        on_line = first + along * float(offset @ along)
        points[index] = on_line + (points[index] - on_line) * factor


def augment(
    landmarks: np.ndarray, rng: np.random.Generator, tune: DistillConfig, expressions: bool = True
) -> np.ndarray:
    """One random variation of a face's landmarks (68, 2): expression, then head motion.

    With ``expressions`` (off for drivers' frames, which bring their own): mouth opening moves
    the lower lip and chin down by up to ``max_mouth`` face radii (in 60% of draws); eyelids
    are scaled from 0 (closed) to ``max_eye`` (in half); brows rise or fall by up to a tenth of
    the radius (in 40%). Always: a rotation of up to ``max_rotation`` degrees, a scale of
    1 +- ``max_scale`` and a shift of up to ``max_shift`` radii about the face's
    centre. Returns float32 (68, 2).
    """
    points = np.asarray(landmarks, np.float64).copy()
    radius, down = face_radius(points), _down(points)
    if expressions and rng.random() < 0.6:
        opening = rng.uniform(0, tune.max_mouth) * radius * down
        points[LOWER_LIP] += opening
        points[MOUTH_CORNERS] += 0.3 * opening
        for index, weight in CHIN.items():
            points[index] += weight * opening
    if expressions and rng.random() < 0.5:
        factor = rng.uniform(0, tune.max_eye)
        _open_eye(points, LEFT_EYE, factor)
        _open_eye(points, RIGHT_EYE, factor)
    if expressions and rng.random() < 0.4:
        points[list(BROWS)] -= rng.uniform(-0.05, 0.1) * radius * down
    angle = math.radians(rng.uniform(-tune.max_rotation, tune.max_rotation))
    scale = 1 + rng.uniform(-tune.max_scale, tune.max_scale)
    rotation = scale * np.array(
        [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
    )
    centre = points[list(RIGID_INDICES)].mean(axis=0)
    shift = rng.uniform(-tune.max_shift, tune.max_shift, size=2) * radius
    return ((points - centre) @ rotation.T + centre + shift).astype(np.float32)


def _store_motion(store: Path, size: int) -> list[np.ndarray]:
    settings = read_settings(store)
    sequences = []
    for entry in read_manifest(store):
        record = read_record(store / entry.path)
        order = np.lexsort((record.frame_indices, record.clip_indices))
        sequences.append(record.landmarks[order] * (size / settings.image_size))
    return sequences


def _video_motion(paths: list[Path], config: Config, count: int) -> list[np.ndarray]:
    options = PreprocessOptions.from_config(config, Path("."))
    detector = detector_from_config(config)
    sequences = []
    for path in paths:
        try:
            length = frame_count(path)
        except VideoReadError as error:
            raise PoseError(f"driver {path}: {error}") from error
        wanted = [frame for _, frame in sample_positions([length], count)]
        cropped = crop_clip(path, 0, wanted, length, options, detector, None)
        if len(cropped) < 2:
            raise PoseError(f"driver {path}: no face found in enough frames (found {len(cropped)})")
        sequences.append(np.stack([frame.landmarks for frame in cropped]))
    return sequences


def driver_motion(paths: list[Path], config: Config, per_video: int) -> list[np.ndarray]:
    """Landmark sequences (N, 68, 2), in time order and crop pixels of config's size, of every
    driver: a store (its records), a video file, or a folder of videos (``per_video`` frames
    each, found and cropped as preprocessing does). PoseError for a path that is none."""
    sequences = []
    for path in paths:
        if (path / SETTINGS_NAME).is_file():
            sequences += _store_motion(path, config.model.image_size)
        elif path.is_dir():
            videos = [source.clips[0] for source in discover_videos(path)]
            if not videos:
                raise PoseError(f"driver {path}: no video in this folder")
            sequences += _video_motion(videos, config, per_video)
        elif path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
            sequences += _video_motion([path], config, per_video)
        else:
            raise PoseError(
                f"driver {path}: not a store, a video ({', '.join(VIDEO_SUFFIXES)}) or a folder "
                "of videos"
            )
    return sequences


def split_poses(
    person_landmarks: np.ndarray,
    drivers: list[np.ndarray],
    tune: DistillConfig,
    rng: np.random.Generator,
) -> tuple[Poses, Poses]:
    """(training poses: ``tune.poses`` of them, held-out poses) for a person.

    Held out: every k-th of the person's own frames (k = 1 / holdout, when there are at least
    two) and the last ``holdout`` share of each driver's frames, retargeted. Training: the
    other own frames, then driver frames (``driver_share`` of the rest, each with a random head
    motion) and augmented own frames.
    """
    own = np.asarray(person_landmarks, np.float32)
    step = round(1 / tune.holdout) if tune.holdout > 0 else 0
    held_own = [i for i in range(len(own)) if step and len(own) >= 2 and i % step == step - 1]
    train_own = [i for i in range(len(own)) if i not in held_own]
    neutral = own.mean(axis=0)
    train_driven, held_driven = [], []
    for sequence in drivers:
        moved = transfer_motion(neutral, sequence, sequence.mean(axis=0))
        cut = len(moved) - math.ceil(len(moved) * tune.holdout) if tune.holdout > 0 else len(moved)
        train_driven.append(moved[:cut])
        held_driven.append(moved[cut:])
    driven = np.concatenate(train_driven) if train_driven else np.zeros((0, 68, 2), np.float32)
    poses = [own[i] for i in train_own][: tune.poses]
    sources = ["own"] * len(poses)
    rest = tune.poses - len(poses)
    from_drivers = round(rest * tune.driver_share) if len(driven) else 0
    for index in rng.integers(0, max(1, len(driven)), size=from_drivers):
        moved = rng.random() < 0.5  # half as recorded, half with another head position
        poses.append(
            augment(driven[index], rng, tune, expressions=False) if moved else driven[index]
        )
        sources.append("driver")
    for index in rng.integers(0, len(train_own), size=tune.poses - len(poses)):
        poses.append(augment(own[train_own[index]], rng, tune))
        sources.append("augmented")
    held = [own[i] for i in held_own] + [p for s in held_driven for p in s]
    held_sources = ["own"] * len(held_own) + ["driver"] * (len(held) - len(held_own))
    empty = np.zeros((0, 68, 2), np.float32)
    return (
        Poses(np.stack(poses).astype(np.float32), sources, train_own[: tune.poses]),
        Poses(np.stack(held).astype(np.float32) if held else empty, held_sources, held_own),
    )
