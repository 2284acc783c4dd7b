"""Cropping clips as training sees them: the library that preprocessing, embedding a person
and evaluation share (SPEC mistake 5: one crop for every stage).

``discover_videos`` finds the videos of a tree or folder, ``sample_positions`` spreads frames
over a video's clips, and ``crop_clip`` tracks the face through a window around each wanted
frame and crops it with the window's mean box (dataset/face.py, dataset/stabilizer.py), with
the settings of ``PreprocessOptions``. Crops are kept as JPEG bytes (utils/images.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dataset.face import CropSettings, FaceBox, crop_face, face_box
from dataset.identity import SAME_PERSON, PersonSplit, main_person
from dataset.landmarks import LandmarkDetector
from dataset.shots import ShotBoundaries
from dataset.stabilizer import mean_box, window_boxes
from dataset.store import record_key
from dataset.video import VIDEO_SUFFIXES, decode
from params.config import Config
from utils.folders import is_os_file
from utils.images import encode_jpeg


class PreprocessError(RuntimeError):
    """A run that cannot start (no source, no videos, bad settings); nothing was written."""


@dataclass(frozen=True)
class VideoSource:
    """One video: an identity, a video id and its clips, in order."""

    identity: str
    video: str
    clips: tuple[Path, ...]

    @property
    def key(self) -> str:
        return record_key(self.identity, self.video)


@dataclass(frozen=True)
class PreprocessOptions:
    """Everything a worker needs to turn one video into a record."""

    store: Path
    crop: CropSettings
    frames_per_video: int
    min_face_frames: int
    jpeg_quality: int
    stabilizer_radius: int
    identity_check: bool
    identity_threshold: float
    max_image_pixels: int

    @classmethod
    def from_config(cls, config: Config, store: Path) -> PreprocessOptions:
        data = config.data
        return cls(
            store=store,
            crop=CropSettings.from_config(config),
            frames_per_video=data.frames_per_video,
            min_face_frames=data.min_face_frames,
            jpeg_quality=data.jpeg_quality,
            stabilizer_radius=data.stabilizer_radius,
            identity_check=data.identity_check,
            identity_threshold=data.identity_threshold,
            max_image_pixels=data.max_image_pixels,
        )


def _entries(folder: Path) -> list[Path]:
    """The folder's files and folders, sorted, without the ones macOS and Windows add."""
    return sorted(p for p in folder.iterdir() if not is_os_file(p))


def _video_files(folder: Path) -> list[Path]:
    return [p for p in _entries(folder) if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES]


def discover_videos(root: Path) -> list[VideoSource]:
    """Videos under root: ROOT/<identity>/<video>/<clips> folders and ROOT/<video file>.

    A `._clip.mp4` that macOS leaves on an exFAT or network drive is no clip (utils/folders.py).
    """
    if not root.is_dir():
        raise PreprocessError(f"source folder not found: {root}")
    sources = [VideoSource(path.stem, path.stem, (path,)) for path in _video_files(root)]
    for identity in (p for p in _entries(root) if p.is_dir()):
        for video in (p for p in _entries(identity) if p.is_dir()):
            clips = _video_files(video)
            if clips:
                sources.append(VideoSource(identity.name, video.name, tuple(clips)))
    if not sources:
        suffixes = ", ".join(VIDEO_SUFFIXES)
        raise PreprocessError(
            f"no videos in {root}: expected ROOT/<identity>/<video>/<clip> files or video "
            f"files directly in ROOT ({suffixes})"
        )
    return sources


def sample_positions(clip_lengths: list[int], count: int) -> list[tuple[int, int]]:
    """count (clip, frame) positions evenly spaced over the clips played one after another."""
    total = sum(clip_lengths)
    chosen = np.unique(np.round(np.linspace(0, total - 1, min(count, total))).astype(int))
    starts = np.cumsum([0, *clip_lengths])
    clips = np.searchsorted(starts, chosen, side="right") - 1
    return [(int(c), int(i - starts[c])) for c, i in zip(clips, chosen, strict=True)]


@dataclass
class CroppedFrame:
    """One stored frame and what the identity check needs of it."""

    jpeg: bytes
    landmarks: np.ndarray  # crop coordinates
    matrix: np.ndarray
    clip: int
    frame: int
    descriptor: np.ndarray | None
    track: int = 0  # the face track: equal in frames of one continuous face (detector.track_id)
    shot: int = 0  # the camera shot within the clip (dataset/shots.py)


def keep_main_person(
    frames: list[CroppedFrame], options: PreprocessOptions
) -> tuple[list[CroppedFrame], PersonSplit]:
    """The frames of the clip's main person (dataset/identity.py: main_person), and the split
    that says what was left out (indices into frames). Frames need their descriptors, in the
    order crop_clip gives them (clip by clip, in time order); each shot is cut again where the
    face changes, and each frame is judged with its face track's frames within
    options.stabilizer_radius."""
    descriptors = np.stack([f.descriptor for f in frames]) if frames else np.zeros((0, 128))
    shots = np.array([(f.clip, f.shot) for f in frames], int).reshape(-1, 2)
    tracks = np.array([f.track for f in frames], int)
    numbers = np.array([f.frame for f in frames], int)
    split = main_person(
        descriptors, shots, options.identity_threshold, numbers, tracks, options.stabilizer_radius
    )
    return [frames[i] for i in split.keep], split


def describe_dropped(
    split: PersonSplit, frames: list[CroppedFrame], clip_names: list[str]
) -> list[str]:
    """One line per dropped stretch or stray frame, "CLIP: frames A-B (...) show ...: why";
    a shot cut where its face changed names its part ("shot 1 part 2 of 2")."""
    lines = []
    for stretch in split.others:
        numbers = [frames[i].frame for i in stretch.frames]
        clip, shot = stretch.segment
        part = f" part {stretch.part + 1} of {stretch.parts}" if stretch.parts > 1 else ""
        where = (
            f"{clip_names[clip]}: frames {min(numbers)}-{max(numbers)} (shot {shot + 1}{part}, "
            f"{len(numbers)} sampled)"
        )
        if stretch.unsure:
            lines.append(
                f"{where} cannot be told apart from the main person with confidence: "
                f"{stretch.distance:.2f} from the main person's mean descriptor (the same person "
                f"below {SAME_PERSON:.2f}, another from {stretch.threshold:.2f})"
            )
        else:
            lines.append(
                f"{where} show another person: {stretch.distance:.2f} from the main person's "
                f"mean descriptor, {stretch.threshold:.2f} or more"
            )
    for i in split.stray_frames:
        clip = clip_names[frames[i].clip]
        lines.append(f"{clip}: frame {frames[i].frame} shows another face than the main person")
    for i in split.at_changes:
        clip = clip_names[frames[i].clip]
        lines.append(
            f"{clip}: frame {frames[i].frame} lies next to a change to another face "
            "(a dissolve or a pan shows both)"
        )
    return lines


def window_frames(wanted: list[int], radius: int, length: int) -> list[int]:
    """The frames within radius of any wanted frame, inside [0, length)."""
    return sorted(
        {
            f
            for index in wanted
            for f in range(index - radius, index + radius + 1)
            if 0 <= f < length
        }
    )


def crop_clip(
    path: Path,
    clip: int,
    wanted: list[int],
    length: int,
    options: PreprocessOptions,
    detector: LandmarkDetector,
    describe: Callable[[np.ndarray, np.ndarray], np.ndarray] | None,
) -> list[CroppedFrame]:
    """Track the face through the windows around the wanted frames and crop those frames.

    Shot boundaries are found on the way (every frame up to the last wanted one is seen), and
    each cropped frame says which shot it belongs to, for ``dataset.identity.main_person``.

    Each wanted frame is cropped with the mean box of its window (stabilizer_radius frames on
    each side, same face track): detector noise averages out, head motion stays. The tracker
    starts afresh at each run of consecutive frames. Frames are
    decoded in order and a wanted frame is cropped as soon as its window is complete, so only a
    few frames are held in memory whatever the video's resolution.
    """
    radius = options.stabilizer_radius
    wanted_set = set(wanted)
    boxes: dict[int, tuple[FaceBox, int]] = {}
    pending: list[tuple[int, np.ndarray, np.ndarray]] = []  # wanted frames awaiting their window
    cropped = []

    def finish(index: int, frame: np.ndarray, points: np.ndarray) -> None:
        box = mean_box(window_boxes(boxes, index, radius))
        crop, crop_points, matrix = crop_face(frame, points, options.crop, box)
        jpeg = encode_jpeg(crop, options.jpeg_quality)
        descriptor = describe(frame, points) if describe is not None else None
        track = boxes[index][1]
        cropped.append(CroppedFrame(jpeg, crop_points, matrix, clip, index, descriptor, track))

    previous = None
    shots = ShotBoundaries()
    for decoded in decode(path, window_frames(wanted, radius, length), preview=shots):
        index, frame = decoded.index, decoded.image
        if previous is None or index != previous + 1:
            detector.reset()  # no tracking across skipped frames: a new window starts afresh
        previous = index
        points = detector.track(frame)
        if points is not None:
            boxes[index] = (face_box(points, options.crop), detector.track_id)
            if index in wanted_set:
                pending.append((index, frame, points))
        while pending and pending[0][0] + radius <= index:
            finish(*pending.pop(0))
    for item in pending:
        finish(*item)
    for item in cropped:
        item.shot = shots.shot_of(item.frame)
    return cropped
