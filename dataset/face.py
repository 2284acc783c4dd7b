"""The one face crop and the landmark picture: every stage must see faces exactly as in training.

Preprocessing, embedding, fine-tuning, driving and evaluation all call ``crop_face`` and
``draw_landmarks``; nothing else crops faces or draws landmarks (SPEC section 6, mistakes 5, 6).
Images are RGB ``uint8`` arrays (H, W, 3); landmarks are float arrays (68, 2) of (x, y) pixel
coordinates, pixel centres at integers (the convention of dlib and face-alignment).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from params.config import Config

NUM_LANDMARKS = 68


@dataclass(frozen=True)
class FacePart:
    """A run of landmark indices drawn as one polyline of one colour."""

    name: str
    indices: tuple[int, ...]
    closed: bool
    color: tuple[int, int, int]  # RGB


# The iBUG 300-W 68-point order, shared by dlib and face-alignment. Colours are distinct per part
# so that the generator can tell left from right and the eyes from the lips.
FACE_PARTS: tuple[FacePart, ...] = (
    FacePart("jaw", tuple(range(0, 17)), False, (255, 255, 255)),
    FacePart("right_brow", tuple(range(17, 22)), False, (255, 128, 0)),
    FacePart("left_brow", tuple(range(22, 27)), False, (255, 0, 128)),
    FacePart("nose_ridge", tuple(range(27, 31)), False, (0, 255, 0)),
    FacePart("nostrils", tuple(range(31, 36)), False, (0, 255, 255)),
    FacePart("right_eye", tuple(range(36, 42)), True, (0, 0, 255)),
    FacePart("left_eye", tuple(range(42, 48)), True, (255, 255, 0)),
    FacePart("outer_lip", tuple(range(48, 60)), True, (255, 0, 0)),
    FacePart("inner_lip", tuple(range(60, 68)), True, (128, 0, 255)),
)

# Index permutation that maps the landmarks of a horizontally flipped face back to the 68-point
# order: the subject's right eye of the mirror image is the left eye of the original, and so on.
FLIP_PERMUTATION: np.ndarray = np.array(
    list(range(16, -1, -1))  # jaw
    + list(range(26, 21, -1))  # brows swap
    + list(range(21, 16, -1))
    + [27, 28, 29, 30]  # nose ridge
    + [35, 34, 33, 32, 31]  # nostrils
    + [45, 44, 43, 42, 47, 46]  # eyes swap
    + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]  # outer lip
    + [64, 63, 62, 61, 60, 67, 66, 65]  # inner lip
)

_SUBPIXEL_BITS = 4  # cv2.polylines fixed-point precision: 1/16 px


@dataclass(frozen=True)
class CropSettings:
    """How faces are cropped; one value for the whole project, read from the config."""

    size: int  # output side in pixels (model.image_size)
    margin: float  # data.crop_margin
    shift_up: float  # data.crop_shift_up

    @classmethod
    def from_config(cls, config: Config) -> CropSettings:
        return cls(config.model.image_size, config.data.crop_margin, config.data.crop_shift_up)


def face_square(landmarks: np.ndarray, margin: float, shift_up: float) -> tuple[int, int, int]:
    """The crop square (left, top, side) in whole image pixels.

    Side: the longer side of the landmarks' bounding box times (1 + 2 * margin). Centre: the
    box centre moved up by shift_up times the side, so that the forehead fits.
    """
    low, high = landmarks.min(axis=0), landmarks.max(axis=0)
    side = max(1.0, float((high - low).max()) * (1.0 + 2.0 * margin))
    center_x, center_y = (low + high) / 2.0 - np.array([0.0, shift_up * side])
    return round(center_x - side / 2.0), round(center_y - side / 2.0), round(side)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to (N, 2) points."""
    return (np.asarray(points, np.float64) @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def _square_window(image: np.ndarray, left: int, top: int, side: int) -> np.ndarray:
    """The image inside the square, black where the square leaves the image."""
    height, width = image.shape[:2]
    if left >= 0 and top >= 0 and left + side <= width and top + side <= height:
        return image[top : top + side, left : left + side]
    window = np.zeros((side, side, *image.shape[2:]), image.dtype)
    y0, y1 = max(0, top), min(height, top + side)
    x0, x1 = max(0, left), min(width, left + side)
    if y1 > y0 and x1 > x0:
        window[y0 - top : y1 - top, x0 - left : x1 - left] = image[y0:y1, x0:x1]
    return window


def crop_face(
    image: np.ndarray, landmarks: np.ndarray, settings: CropSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """THE face crop: (crop, landmarks in crop coordinates, 2x3 image-to-crop matrix).

    The crop is RGB uint8 (size, size, 3). Where the square leaves the image it is padded with
    black. Downscaling averages areas (no aliasing on HD input), upscaling is bicubic.
    """
    left, top, side = face_square(landmarks, settings.margin, settings.shift_up)
    window = _square_window(image, left, top, side)
    size = settings.size
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    crop = cv2.resize(window, (size, size), interpolation=interpolation)
    scale = size / side
    # cv2.resize aligns pixel centres: x_crop = (x - left + 0.5) * scale - 0.5.
    offset_x, offset_y = ((0.5 - corner) * scale - 0.5 for corner in (left, top))
    matrix = np.array([[scale, 0.0, offset_x], [0.0, scale, offset_y]])
    return crop, transform_points(landmarks, matrix), matrix


def line_thickness(size: int) -> int:
    """Stroke width that keeps the picture's look at every size: 2 px at 256 px."""
    return max(1, round(size / 128))


def draw_landmarks(landmarks: np.ndarray, size: int) -> np.ndarray:
    """The landmark picture: coloured polylines per face part on black, RGB (size, size, 3)."""
    picture = np.zeros((size, size, 3), dtype=np.uint8)
    fixed = np.round(np.asarray(landmarks, dtype=np.float64) * (1 << _SUBPIXEL_BITS)).astype(
        np.int32
    )
    thickness = line_thickness(size)
    for part in FACE_PARTS:
        cv2.polylines(
            picture,
            [fixed[list(part.indices)]],
            part.closed,
            part.color,
            thickness,
            cv2.LINE_AA,
            _SUBPIXEL_BITS,
        )
    return picture


def flip_landmarks(landmarks: np.ndarray, width: int) -> np.ndarray:
    """Landmarks of the horizontally mirrored image (np.fliplr), in the 68-point order."""
    mirrored = landmarks.copy()
    mirrored[:, 0] = (width - 1) - mirrored[:, 0]
    return mirrored[FLIP_PERMUTATION]
