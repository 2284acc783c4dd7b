"""The one face crop, the landmark picture, the flip and the value range."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dataset.face import (
    FACE_PARTS,
    FLIP_PERMUTATION,
    CropSettings,
    crop_face,
    draw_landmarks,
    flip_landmarks,
    line_thickness,
)
from dataset.value_range import image_to_tensor, tensor_to_image, value_range


def face_like_landmarks(center=(120.0, 100.0), extent=80.0, seed=0) -> np.ndarray:
    """68 points spread over a face-sized box, roughly in the 68-point layout."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(-0.5, 0.5, size=(68, 2)) * extent + np.array(center)
    points[0], points[16] = (center[0] - extent / 2, center[1]), (center[0] + extent / 2, center[1])
    return points.astype(np.float32)


def test_crop_maps_landmarks_onto_the_same_image_content():
    image = np.zeros((240, 320, 3), np.uint8)
    landmarks = face_like_landmarks()
    marked = landmarks[[5, 30, 50]]
    for x, y in np.round(marked).astype(int):
        image[y - 2 : y + 3, x - 2 : x + 3] = 255
    settings = CropSettings(size=64, margin=0.25, shift_up=0.1)
    crop, crop_points, matrix = crop_face(image, landmarks, settings)
    assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8
    for x, y in crop_points[[5, 30, 50]]:
        # The bright square sits where the transformed landmark says (within a pixel).
        ys, xs = np.nonzero(crop[..., 0] > 60)
        near = np.hypot(xs - x, ys - y) < 3
        assert near.any()
        assert np.hypot(xs[near].mean() - x, ys[near].mean() - y) < 1.0
    expected = landmarks @ matrix[:, :2].T + matrix[:, 2]
    np.testing.assert_allclose(crop_points, expected, atol=1e-4)


def test_crop_transform_is_exact_to_the_subpixel_when_upscaling():
    image = np.zeros((40, 40, 3), np.uint8)
    image[20, 17] = 255  # one bright pixel, centre at x=17, y=20
    landmarks = face_like_landmarks(center=(18.0, 19.0), extent=8.0)
    crop, _, matrix = crop_face(image, landmarks, CropSettings(96, 0.25, 0.0))
    assert matrix[0, 0] > 6  # strong upscaling magnifies any half-pixel slip
    (x, y) = np.array([17.0, 20.0]) @ matrix[:, :2].T + matrix[:, 2]
    peak_y, peak_x = np.unravel_index(crop[..., 0].argmax(), crop.shape[:2])
    assert abs(peak_x - x) <= 0.75 and abs(peak_y - y) <= 0.75


def test_crop_is_square_with_margin_and_upward_shift():
    landmarks = face_like_landmarks(extent=100.0)
    settings = CropSettings(size=128, margin=0.25, shift_up=0.1)
    _, points, matrix = crop_face(np.zeros((400, 400, 3), np.uint8), landmarks, settings)
    assert matrix[0, 0] == pytest.approx(matrix[1, 1])
    extent = points.max(axis=0) - points.min(axis=0)
    assert extent.max() == pytest.approx(128 / 1.5, abs=1.5)
    center = (points.max(axis=0) + points.min(axis=0)) / 2
    assert center[0] == pytest.approx(64, abs=1.5)
    assert center[1] == pytest.approx(64 + 0.1 * 128, abs=1.5)  # face below centre: forehead


def test_crop_is_padded_black_where_it_leaves_the_image():
    image = np.full((100, 100, 3), 200, np.uint8)
    landmarks = face_like_landmarks(center=(10.0, 50.0), extent=60.0)
    crop, points, _ = crop_face(image, landmarks, CropSettings(64, 0.25, 0.0))
    assert crop.shape == (64, 64, 3)
    assert crop[32, :5].max() == 0  # left of the image: black
    assert crop[32, -5:].min() == 200  # inside the image
    assert points[:, 0].min() > 0


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
