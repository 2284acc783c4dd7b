"""One person per clip: shots compared by their mean face descriptors (dataset/identity.py).

Descriptors are drawn with the statistics of real footage (dlib, seven real clips): frames of
one person spread 0.2 (RMS distance from their mean; pairwise 0.16-0.30), two halves of one
clip lie 0.10-0.16 apart, and two different men facing the camera only 0.41.
"""

from __future__ import annotations

import numpy as np

from dataset.identity import dominant_person, main_person

THRESHOLD = 0.6  # data.identity_threshold


def unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=128)
    return v / np.linalg.norm(v)


def frames_of(rng, mean: np.ndarray, count: int, spread: float = 0.2) -> np.ndarray:
    return mean + rng.normal(size=(count, 128)) * spread / np.sqrt(128)


def test_a_cut_between_two_close_people_keeps_the_main_one():
    """90 frames of one man, a cut, 57 of another 0.41 away: frame by frame they are one person
    (dominant_person keeps all 147: the bug); shot by shot, two."""
    rng = np.random.default_rng(0)
    first = np.zeros(128)
    second = first + 0.41 * unit(rng)
    descriptors = np.concatenate([frames_of(rng, first, 90), frames_of(rng, second, 57)])
    assert len(dominant_person(descriptors, THRESHOLD)) == 147  # the per-frame rule: one person
    segments = np.array([(0, 0)] * 90 + [(0, 1)] * 57)
    split = main_person(descriptors, segments, THRESHOLD)
    np.testing.assert_array_equal(split.keep, np.arange(90))
    [other] = split.other_shots
    assert other.segment == (0, 1) and len(other.frames) == 57
    assert other.distance > other.limit


def test_one_person_over_several_shots_and_clips_loses_no_frame():
    """Shots of one person whose means differ as two halves of a clip do (0.16), with frames
    spread up to 0.3 (laughing, head turns): every frame stays."""
    rng = np.random.default_rng(1)
    person = np.zeros(128)
    parts, segments = [], []
    for index, (count, spread) in enumerate([(40, 0.3), (25, 0.2), (12, 0.25), (2, 0.2)]):
        shot_mean = person + 0.16 * unit(rng)
        parts.append(frames_of(rng, shot_mean, count, spread))
        segments += [(index // 2, index)] * count
    split = main_person(np.concatenate(parts), np.array(segments), THRESHOLD)
    assert len(split.keep) == 79 and not split.other_shots and len(split.stray_frames) == 0


def test_a_different_face_inside_a_shot_is_dropped_frame_by_frame():
    """A cut too short to be found (one shot holding two clearly different people, 0.9 apart):
    the person seen most stays."""
    rng = np.random.default_rng(2)
    first, second = np.zeros(128), 0.9 * unit(rng)
    descriptors = np.concatenate([frames_of(rng, first, 4), frames_of(rng, second, 8)])
    split = main_person(descriptors, np.zeros((12, 2), int), THRESHOLD)
    np.testing.assert_array_equal(split.keep, np.arange(4, 12))
    np.testing.assert_array_equal(split.stray_frames, np.arange(4))
