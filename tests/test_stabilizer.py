"""The crop stabiliser: offline window means within a track, the causal One Euro filter."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest

from dataset.face import FaceBox, face_radius
from dataset.stabilizer import (
    BoxStabilizer,
    LandmarkFilter,
    StabilizerSettings,
    mean_box,
    window_boxes,
)


def noisy_boxes(count: int, noise: float, seed: int = 0) -> list[FaceBox]:
    """A still head (centre 100, 80, side 200) seen through detector noise of noise * side."""
    rng = np.random.default_rng(seed)
    return [
        FaceBox(
            100 + rng.normal(0, noise * 200),
            80 + rng.normal(0, noise * 200),
            200 * math.exp(rng.normal(0, noise)),
        )
        for _ in range(count)
    ]


def spread(boxes: list[FaceBox]) -> float:
    return float(np.std([box.center_x for box in boxes]) / 200)


def test_mean_box_averages_centres_and_sides_geometrically():
    box = mean_box([FaceBox(0, 10, 100), FaceBox(10, 20, 400)])
    assert (box.center_x, box.center_y, box.side) == pytest.approx((5, 15, 200))


def test_window_stays_inside_one_face_track():
    boxes = {i: (FaceBox(i, 0, 10), 1 if i < 5 else 2) for i in range(10)}
    del boxes[3]  # a frame without a face
    assert [b.center_x for b in window_boxes(boxes, 4, 2)] == [2, 4]  # 3 missing, 5-6 other track
    assert [b.center_x for b in window_boxes(boxes, 6, 2)] == [5, 6, 7, 8]


def test_live_filter_removes_most_noise_from_a_still_head():
    raw = noisy_boxes(200, 0.01)
    stabilizer = BoxStabilizer(StabilizerSettings(min_cutoff=0.5, beta=2.0), fps=25)
    smooth = [stabilizer(box, track_id=1) for box in raw]
    assert spread(smooth[25:]) < 0.3 * spread(raw[25:])


def test_live_filter_is_causal_and_follows_real_motion_with_small_lag():
    stabilizer = BoxStabilizer(StabilizerSettings(), fps=25)
    # The head moves one side to the right over 12 frames (a quick turn), then stays.
    path = [FaceBox(100 + 200 * min(1.0, max(0.0, (i - 10) / 12)), 80, 200) for i in range(60)]
    out = [stabilizer(box, 1) for box in path]
    again = BoxStabilizer(StabilizerSettings(), fps=25)
    changed_future = [again(box, 1) for box in path[:30]] + [
        again(FaceBox(0, 0, 50), 1) for _ in range(30)
    ]
    assert changed_future[:30] == out[:30]  # no look-ahead: the past is untouched by the future
    assert abs(out[22].center_x - 300) < 0.15 * 200  # at most 15% of the side behind, moving
    assert abs(out[40].center_x - 300) < 0.01 * 200  # settled soon after the head stops


def test_live_filter_restarts_at_a_new_track():
    stabilizer = BoxStabilizer(StabilizerSettings(), fps=25)
    for _ in range(10):
        stabilizer(FaceBox(100, 80, 200), track_id=1)
    assert stabilizer(FaceBox(400, 300, 50), track_id=2) == FaceBox(400, 300, 50)  # no blending
    with pytest.raises(ValueError, match="fps"):
        BoxStabilizer(StabilizerSettings(), fps=0)


def face(radius: float = 50.0) -> np.ndarray:
    """68 points of a face of that RMS radius (dataset.face.face_radius) around (320, 240)."""
    angles = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    ring = np.stack([np.cos(angles), np.sin(angles) * 1.3], axis=1)
    return ring * radius / face_radius(ring) + np.array([320.0, 240.0])


def motion(frames: list[np.ndarray]) -> float:
    """Mean distance a point moves from frame to frame."""
    return float(np.mean([np.linalg.norm(b - a, axis=1).mean() for a, b in pairwise(frames)]))


def test_landmarks_of_a_still_face_stay_still_under_noise():
    """Detector noise of 1 px per point and frame (a still real face: 1.2 px per frame): the
    filtered points move under 0.3 times as much, and stay within 2.5 px (0.4 on average)
    of where they are."""
    still = face()
    rng = np.random.default_rng(0)
    seen = [still + rng.normal(0, 1.0, still.shape) for _ in range(100)]
    points = LandmarkFilter(StabilizerSettings(), fps=25)
    smooth = [points(p, track_id=1) for p in seen]
    assert motion(smooth[20:]) < 0.3 * motion(seen[20:])  # 0.24 here, 0.19 on real frames
    off = np.abs(np.stack(smooth[20:]) - still)
    assert off.mean() < 0.5 and off.max() < 2.5


@pytest.mark.parametrize("fps", [25, 30])
def test_landmarks_follow_a_jump_within_a_frame_and_a_turn_within_one(fps):
    """A head that jumps by half its radius is followed within a frame (85 % of the way at
    once, 98 % the next); one that turns at a steady 0.1 radius per frame (a fast real
    turn) lags less than half a frame's motion."""
    still = face()
    points = LandmarkFilter(StabilizerSettings(), fps=fps)
    for _ in range(20):
        points(still, track_id=1)
    jumped = still + np.array([25.0, 0.0])
    first, second = points(jumped, 1), points(jumped, 1)
    assert np.abs(first - jumped).max() < 0.2 * 25 and np.abs(second - jumped).max() < 0.05 * 25
    turning = LandmarkFilter(StabilizerSettings(), fps=fps)
    for frame in range(40):
        out = turning(still + np.array([5.0 * frame, 0.0]), track_id=1)
    lag = (still[:, 0] + 5.0 * 39 - out[:, 0]).max() / 5.0
    assert lag < 0.5  # 0.14


def test_landmark_filter_restarts_at_a_new_track_and_can_be_off():
    points = LandmarkFilter(StabilizerSettings(), fps=25)
    for _ in range(5):
        points(face(), track_id=1)
    other = face(20) + 100
    assert np.allclose(points(other, track_id=2), other)  # no blending of two faces
    off = LandmarkFilter(StabilizerSettings(landmarks=False), fps=25)
    assert off(other, 1) is other
