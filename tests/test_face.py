"""The one face crop, the landmark picture, the flip and the value range."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dataset.face import (
    FACE_PARTS,
    FLIP_PERMUTATION,
    CropSettings,
    FaceBox,
    crop_box,
    crop_face,
    crop_matrix,
    draw_landmarks,
    face_box,
    fit_box,
    flip_landmarks,
    line_thickness,
    transform_points,
)
from dataset.landmarks import make_detector
from dataset.synthetic import face_pictures
from dataset.value_range import image_to_tensor, tensor_to_image, value_range


def face_like_landmarks(center=(120.0, 100.0), extent=80.0, seed=0) -> np.ndarray:
    """68 points spread over a face-sized box, roughly in the 68-point layout."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(-0.5, 0.5, size=(68, 2)) * extent + np.array(center)
    points[0], points[16] = (center[0] - extent / 2, center[1]), (center[0] + extent / 2, center[1])
    return points.astype(np.float32)


SETTINGS = CropSettings(size=64, face_width=0.52, eye_line=0.28)


@pytest.fixture(scope="module")
def astronaut() -> tuple[np.ndarray, np.ndarray]:
    """A real photo and its dlib landmarks (the framing constants are calibrated on real faces)."""
    picture = face_pictures()["astronaut"]
    return picture, make_detector("dlib").detect(picture)


@pytest.mark.parametrize("size", [64, 400])  # shrinking (area + warp) and enlarging (one warp)
def test_crop_maps_landmarks_onto_the_same_image_content(size):
    image = np.zeros((240, 320, 3), np.uint8)
    landmarks = face_like_landmarks()
    marked = np.round(landmarks.mean(axis=0) + np.array([[-30, -20], [0, 25], [35, 0]]))
    for x, y in marked.astype(int):
        image[y - 3 : y + 4, x - 3 : x + 4] = 255
    settings = CropSettings(size, 0.52, 0.28)
    crop, crop_points, matrix = crop_face(image, landmarks, settings)
    assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
    ys, xs = np.mgrid[:size, :size]
    for x, y in transform_points(marked, matrix):
        # The bright square's centre of mass sits where the matrix maps it (sub-pixel).
        near = (np.hypot(xs - x, ys - y) < 8 * matrix[0, 0] + 2) * crop[..., 0].astype(float)
        centre = np.array([(xs * near).sum(), (ys * near).sum()]) / near.sum()
        assert np.hypot(centre[0] - x, centre[1] - y) < 0.3
    expected = landmarks @ matrix[:, :2].T + matrix[:, 2]
    np.testing.assert_allclose(crop_points, expected, atol=1e-3)


@pytest.mark.parametrize("size", [24, 96])
def test_crop_transform_is_exact_to_the_subpixel(size):
    image = np.zeros((40, 40, 3), np.uint8)
    image[20, 17] = 255  # one bright pixel, centre at x=17, y=20
    box = FaceBox(18.3, 19.6, 14.2)  # not on whole pixels: no rounding of the box
    crop = crop_box(image, box, size, "black")
    matrix = crop_matrix(box, size)
    (x, y) = np.array([17.0, 20.0]) @ matrix[:, :2].T + matrix[:, 2]
    ys, xs = np.mgrid[:size, :size]
    weights = crop[..., 0].astype(np.float64)
    centre = np.array([(xs * weights).sum(), (ys * weights).sum()]) / weights.sum()
    assert np.hypot(centre[0] - x, centre[1] - y) < 0.25, (centre, (x, y))


def test_frontal_face_is_framed_like_voxceleb2(astronaut):
    picture, landmarks = astronaut
    settings = CropSettings(256, face_width=0.52, eye_line=0.28)
    crop, points, matrix = crop_face(picture, landmarks, settings)
    assert matrix[0, 0] == pytest.approx(matrix[1, 1])  # square, no distortion
    span = np.ptp(points[:, 0]) / 256
    assert span == pytest.approx(0.52, abs=0.03)
    eye_line = points[[36, 39, 42, 45], 1].mean() / 256
    assert eye_line == pytest.approx(0.28, abs=0.01)
    assert (crop.max(axis=(1, 2)) < 12).sum() == 0  # no black band anywhere


def test_an_open_mouth_or_a_blink_does_not_move_the_box(astronaut):
    _, landmarks = astronaut
    moved = landmarks.copy()
    moved[5:12, 1] += 15  # the chin drops
    moved[48:68, 1] += 10  # the lips open
    moved[[37, 38, 40, 41, 43, 44, 46, 47], 1] += 3  # the lids close
    moved[17:27, 1] -= 8  # the brows rise
    assert face_box(moved, SETTINGS) == face_box(landmarks, SETTINGS)
    shifted = landmarks + np.array([5.0, -3.0])  # a head that really moves moves the box
    box, box_shifted = face_box(landmarks, SETTINGS), face_box(shifted, SETTINGS)
    assert box_shifted.center_x == pytest.approx(box.center_x + 5)
    assert box_shifted.center_y == pytest.approx(box.center_y - 3)
    assert box_shifted.side == pytest.approx(box.side)


def test_a_box_that_fits_is_moved_inside_the_image():
    image = np.full((100, 160, 3), 200, np.uint8)
    box = fit_box(FaceBox(center_x=20.0, center_y=60.0, side=80.0), 160, 100)
    assert (box.left, box.top, box.side) == (-0.5, 19.5, 80.0)  # flush with the left edge
    crop = crop_box(image, box, 64, "black")
    assert crop.min() == 200  # no padding at all


@pytest.mark.parametrize("padding, edge_value", [("replicate", 90), ("black", 0)])
def test_a_box_larger_than_the_image_covers_it_and_pads_by_the_rule(padding, edge_value):
    image = np.full((100, 100, 3), 200, np.uint8)
    image[:, -10:] = 90  # a dark right edge that replicate padding repeats
    box = fit_box(FaceBox(center_x=80.0, center_y=50.0, side=140.0), 100, 100)
    # Moved left just enough to cover the image: its left edges meet, the rest is padding.
    assert box.left == pytest.approx(-0.5) and box.left + box.side == pytest.approx(139.5)
    crop = crop_box(image, box, 70, padding)
    assert abs(int(crop[35, -3, 0]) - edge_value) <= 2  # padded right of the image
    assert crop[35, 2, 0] == 200  # the image reaches the box's left edge: no padding there


def test_unknown_padding_and_framing_outside_zero_one_are_refused():
    with pytest.raises(ValueError, match="crop_padding"):
        CropSettings(64, 0.52, 0.28, "mirror")
    with pytest.raises(ValueError, match="face_width"):
        CropSettings(64, 1.2, 0.28)


def test_picture_draws_every_part_in_its_colour_on_black():
    points = face_like_landmarks(center=(128.0, 128.0), extent=150.0)
    picture = draw_landmarks(points, 256)
    assert picture.shape == (256, 256, 3) and picture.dtype == np.uint8
    assert (picture.reshape(-1, 3).max(axis=1) == 0).mean() > 0.8  # mostly black
    colours = {tuple(c) for c in picture.reshape(-1, 3)}
    for part in FACE_PARTS:
        assert part.color in colours, part.name
    assert len({part.color for part in FACE_PARTS}) == len(FACE_PARTS)


def test_line_thickness_scales_with_size():
    assert line_thickness(64) == 1 and line_thickness(256) == 2 and line_thickness(512) == 4
    small = draw_landmarks(face_like_landmarks(center=(64.0, 64.0), extent=60.0), 128)
    large = draw_landmarks(face_like_landmarks(center=(64.0, 64.0), extent=60.0) * 4, 512)
    ratio = (large.max(axis=2) > 0).sum() / (small.max(axis=2) > 0).sum()
    assert 10 < ratio < 24  # 4x the length, 4x the width: about 16x the ink


def test_flip_permutation_swaps_sides_and_is_its_own_inverse():
    assert sorted(FLIP_PERMUTATION.tolist()) == list(range(68))
    np.testing.assert_array_equal(FLIP_PERMUTATION[FLIP_PERMUTATION], np.arange(68))
    points = face_like_landmarks()
    np.testing.assert_allclose(flip_landmarks(flip_landmarks(points, 320), 320), points)
    assert FLIP_PERMUTATION[36] == 45 and FLIP_PERMUTATION[17] == 26 and FLIP_PERMUTATION[48] == 54


def test_flipped_picture_keeps_each_colour_on_its_anatomical_side():
    points = face_like_landmarks(center=(128.0, 128.0), extent=100.0)
    points[36:42, 0] -= 60  # the subject's right eye is on the image's left
    points[42:48, 0] += 60
    right_eye = next(p for p in FACE_PARTS if p.name == "right_eye").color
    for picture in (draw_landmarks(points, 256), draw_landmarks(flip_landmarks(points, 256), 256)):
        _, xs = np.nonzero(np.all(picture == right_eye, axis=2))
        assert xs.size > 0 and xs.mean() < 100  # mirrored person: still on the image's left


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_value_range_round_trip(activation):
    image = np.random.default_rng(0).integers(0, 256, (2, 8, 10, 3), dtype=np.uint8)
    tensor = image_to_tensor(image, activation)
    low, high = value_range(activation)
    assert tensor.shape == (2, 3, 8, 10) and tensor.dtype == torch.float32
    assert tensor.min() >= low and tensor.max() <= high
    assert image_to_tensor(np.zeros((1, 1, 3), np.uint8), activation).min() == low
    assert image_to_tensor(np.full((1, 1, 3), 255, np.uint8), activation).max() == high
    np.testing.assert_array_equal(tensor_to_image(tensor, activation), image)


def test_unknown_activation_is_refused():
    with pytest.raises(ValueError, match="relu"):
        value_range("relu")
