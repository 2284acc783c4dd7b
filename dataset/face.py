"""The one face crop and the landmark picture: every stage must see faces exactly as in training.

Preprocessing, embedding, fine-tuning, driving and evaluation all call ``crop_face`` and
``draw_landmarks``; nothing else crops faces or draws landmarks (SPEC section 6, mistakes 5, 6).
Images are RGB ``uint8`` arrays (H, W, 3); landmarks are float arrays (68, 2) of (x, y) pixel
coordinates, pixel centres at integers (the convention of dlib and face-alignment).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

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


# The framing follows the points that move with the head but not with the expression: the
# upper jaw line (0-4, 12-16; the chin drops when the mouth opens), the nose (27-35) and the eye
# corners (36, 39, 42, 45; lids blink). Brows and lips are left out.
RIGID_INDICES = (*range(0, 5), *range(12, 17), *range(27, 36), 36, 39, 42, 45)
EYE_CORNER_INDICES = (36, 39, 42, 45)
# RMS distance of the rigid points from their centroid, as a fraction of the horizontal span of
# all 68 landmarks, on frontal faces: 0.346-0.380 (median 0.367) on eleven real faces measured
# with dlib (bench/RESULTS.md). The scale comes from this radius, not from the landmarks'
# bounding box, which follows the two noisiest points (chin and brows, or the jaw ends).
RADIUS_PER_FACE_WIDTH = 0.367
# Bumped whenever crop_face frames faces differently: stores record it (dataset/store.py) and a
# store made by another version is refused. 1: per-frame landmark box with margin (until issue
# 6); 2: VoxCeleb2 framing from rigid points, stabilised boxes, fitted into the frame.
CROP_VERSION = 2
PADDINGS = {"replicate": cv2.BORDER_REPLICATE, "black": cv2.BORDER_CONSTANT}


@dataclass(frozen=True)
class CropSettings:
    """How faces are framed and cropped; one value for the whole project, read from the config."""

    size: int  # output side in pixels (model.image_size)
    face_width: float  # data.face_width: landmark span of a frontal face / crop side
    eye_line: float  # data.eye_line: height of the eyes' centre / crop side, from the top
    padding: str = "replicate"  # data.crop_padding

    # Where each field comes from, for error messages that name what the user can set.
    CONFIG_KEYS: ClassVar[dict[str, str]] = {
        "size": "model.image_size",
        "face_width": "data.face_width",
        "eye_line": "data.eye_line",
        "padding": "data.crop_padding",
    }

    def __post_init__(self) -> None:
        if self.padding not in PADDINGS:
            known = ", ".join(PADDINGS)
            raise ValueError(f"data.crop_padding: unknown '{self.padding}' (known: {known})")
        if not 0.0 < self.face_width < 1.0 or not 0.0 < self.eye_line < 1.0:
            raise ValueError("data.face_width and data.eye_line must lie strictly between 0 and 1")

    @classmethod
    def from_config(cls, config: Config) -> CropSettings:
        data = config.data
        return cls(config.model.image_size, data.face_width, data.eye_line, data.crop_padding)


@dataclass(frozen=True)
class FaceBox:
    """A square crop box in image pixels: centre (pixel centres at integers) and side."""

    center_x: float
    center_y: float
    side: float

    @property
    def left(self) -> float:
        """Left edge in continuous coordinates (the image's own left edge is at -0.5)."""
        return self.center_x - self.side / 2.0

    @property
    def top(self) -> float:
        return self.center_y - self.side / 2.0


def face_box(landmarks: np.ndarray, settings: CropSettings) -> FaceBox:
    """The framing of one frame's face, before stabilising and fitting into the image.

    Scale from the RMS radius of the rigid points, horizontal centre from their centroid,
    vertical placement from the eye corners: each averages several points that do not move
    with the expression, so neither detector noise on one point nor an open mouth moves the box.
    """
    points = np.asarray(landmarks, np.float64)
    centroid = points[list(RIGID_INDICES)].mean(axis=0)
    side = max(1.0, face_radius(points) / (RADIUS_PER_FACE_WIDTH * settings.face_width))
    eye_y = float(points[list(EYE_CORNER_INDICES), 1].mean())
    return FaceBox(float(centroid[0]), eye_y + (0.5 - settings.eye_line) * side, side)


def face_radius(landmarks: np.ndarray) -> float:
    """The face's size: RMS distance of the rigid points from their centroid, in pixels."""
    rigid = np.asarray(landmarks, np.float64)[list(RIGID_INDICES)]
    return float(np.sqrt(((rigid - rigid.mean(axis=0)) ** 2).sum(axis=1).mean()))


def transfer_motion(person: np.ndarray, driver: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The person's landmarks moved as the driver moved away from their reference (neutral).

    person (68, 2) the person's geometry; driver (..., 68, 2) and reference (68, 2) the driver's
    landmarks now and at rest, all in crop pixels. The driver's motion is scaled by the ratio
    of the two faces' sizes (``face_radius``): expressions and head motion carry over, the face
    shape stays the person's. Returns float32 (..., 68, 2).
    """
    person, reference = np.asarray(person, np.float64), np.asarray(reference, np.float64)
    scale = face_radius(person) / max(face_radius(reference), 1e-6)
    return (person + (np.asarray(driver, np.float64) - reference) * scale).astype(np.float32)


def fit_box(box: FaceBox, width: int, height: int) -> FaceBox:
    """Move the box inside the image along each axis where it fits.

    Where the box is larger than the image, it is moved only as far as needed to cover the
    image's whole extent on that axis; the rest is padding (CropSettings.padding).
    """

    def place(start: float, extent: int) -> float:
        room = extent - box.side  # the image spans [-0.5, extent - 0.5]
        return float(np.clip(start + 0.5, min(0.0, room), max(0.0, room))) - 0.5

    left, top = place(box.left, width), place(box.top, height)
    return FaceBox(left + box.side / 2.0, top + box.side / 2.0, box.side)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to (N, 2) points."""
    return (np.asarray(points, np.float64) @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def crop_matrix(box: FaceBox, size: int) -> np.ndarray:
    """The 2x3 image-to-crop matrix of a box: its edges map onto the crop's edges."""
    scale = size / box.side
    return np.array(
        [[scale, 0.0, -box.left * scale - 0.5], [0.0, scale, -box.top * scale - 0.5]], np.float64
    )


def crop_box(image: np.ndarray, box: FaceBox, size: int, padding: str) -> np.ndarray:
    """The square box resampled to size x size, sub-pixel exact (no rounding of the box).

    Enlarging: one bicubic warp. Shrinking: the box's window is first area-averaged to about
    the output scale (no aliasing from HD input), then warped the rest of the way.
    """
    matrix = crop_matrix(box, size)
    border = PADDINGS[padding]
    height, width = image.shape[:2]
    if size >= box.side:
        return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_CUBIC, borderMode=border)
    x0, y0 = max(0, int(np.floor(box.left))), max(0, int(np.floor(box.top)))
    x1 = min(width, int(np.ceil(box.left + box.side)) + 1)
    y1 = min(height, int(np.ceil(box.top + box.side)) + 1)
    if x1 <= x0 or y1 <= y0:  # the box lies wholly outside the image
        return cv2.warpAffine(image, matrix, (size, size), borderMode=border)
    window = image[y0:y1, x0:x1]
    scale = size / box.side
    small_w, small_h = (
        max(1, round(window.shape[1] * scale)),
        max(1, round(window.shape[0] * scale)),
    )
    small = cv2.resize(window, (small_w, small_h), interpolation=cv2.INTER_AREA)
    # resize maps x_small = (x - x0 + 0.5) * f - 0.5; invert it and compose with the crop matrix.
    fx, fy = small_w / window.shape[1], small_h / window.shape[0]
    to_image = np.array(
        [[1.0 / fx, 0.0, 0.5 / fx - 0.5 + x0], [0.0, 1.0 / fy, 0.5 / fy - 0.5 + y0]]
    )
    composed = np.concatenate(
        [matrix[:, :2] @ to_image[:, :2], matrix[:, :2] @ to_image[:, 2:] + matrix[:, 2:]], axis=1
    )
    return cv2.warpAffine(small, composed, (size, size), flags=cv2.INTER_LINEAR, borderMode=border)


def crop_face(
    image: np.ndarray, landmarks: np.ndarray, settings: CropSettings, box: FaceBox | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """THE face crop: (crop, landmarks in crop coordinates, 2x3 image-to-crop matrix).

    box: the framing to use (a stabilised one from dataset/stabilizer.py); by default this
    frame's own ``face_box``. Either way it is fitted into the image first (``fit_box``). The
    crop is RGB uint8 (size, size, 3).
    """
    height, width = image.shape[:2]
    fitted = fit_box(box if box is not None else face_box(landmarks, settings), width, height)
    crop = crop_box(image, fitted, settings.size, settings.padding)
    matrix = crop_matrix(fitted, settings.size)
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
