"""Temporal stabilisation of the crop box: head motion shows inside the crop, detector noise not.

A box computed from one frame's landmarks wobbles with detector noise; a crop that follows it
"breathes". Two forms of one filter over the box's centre and log side (docs/DATA.md):

- offline (preprocessing, evaluation): ``mean_box`` of the boxes of the frames around a frame,
  within one face track; no lag, since frames after the one cropped are known.
- causal (live driving): ``BoxStabilizer``, a One Euro filter (Casiez et al., CHI 2012), frame
  by frame with no look-ahead: strong smoothing while the head is still, little lag when it
  moves fast.

Live driving also filters the driver's 68 landmarks themselves (``LandmarkFilter``, the same
One Euro filter per coordinate): dlib's points come in whole pixels and move with the camera's
noise, and the generator draws every such jump. Both work in units of the face's size, so the
same settings fit any frame size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dataset.face import FaceBox, face_radius
from params.config import Config


def mean_box(boxes: Sequence[FaceBox]) -> FaceBox:
    """The average box: mean centre, geometric mean side."""
    if not boxes:
        raise ValueError("mean_box needs at least one box")
    centers = np.array([(box.center_x, box.center_y) for box in boxes]).mean(axis=0)
    side = math.exp(float(np.mean([math.log(box.side) for box in boxes])))
    return FaceBox(float(centers[0]), float(centers[1]), side)


def window_boxes(boxes: dict[int, tuple[FaceBox, int]], frame: int, radius: int) -> list[FaceBox]:
    """The boxes of the frames within radius of frame that belong to frame's face track.

    boxes maps a frame number to (its box, the tracker's track_id for it); frame must be in it.
    """
    track = boxes[frame][1]
    window = (boxes.get(other) for other in range(frame - radius, frame + radius + 1))
    return [entry[0] for entry in window if entry is not None and entry[1] == track]


@dataclass(frozen=True)
class StabilizerSettings:
    """The live filters: cutoff frequency at rest (Hz) and how fast it opens with speed, for
    the crop box and for the landmarks (``landmarks`` False: points as detected)."""

    min_cutoff: float = 0.5
    beta: float = 2.0
    derivative_cutoff: float = 1.0  # Hz, for the speed estimate itself
    landmarks: bool = True
    landmark_min_cutoff: float = 0.5
    landmark_beta: float = 10.0

    @classmethod
    def from_config(cls, config: Config) -> StabilizerSettings:
        data = config.data
        return cls(
            data.stabilizer_min_cutoff,
            data.stabilizer_beta,
            landmarks=data.stabilizer_landmarks,
            landmark_min_cutoff=data.stabilizer_landmark_min_cutoff,
            landmark_beta=data.stabilizer_landmark_beta,
        )


def _smoothing_factor(cutoff: np.ndarray | float, period: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / period)


class OneEuroFilter:
    """Causal One Euro filter (Casiez et al., CHI 2012) over an array of values, frame by frame:
    each value's speed is itself low-passed (derivative_cutoff, Hz) and opens that value's
    cutoff (min_cutoff + beta * |speed|, Hz): still values are smoothed hard, moving ones
    follow with little lag. Speeds are in ``units`` per second (an array broadcast against the
    values, or one number), so settings hold for any scale."""

    def __init__(
        self, min_cutoff: float, beta: float, derivative_cutoff: float, fps: float
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.min_cutoff, self.beta, self.derivative_cutoff = min_cutoff, beta, derivative_cutoff
        self.period = 1.0 / fps
        self.reset()

    def reset(self) -> None:
        self.state: np.ndarray | None = None  # the filtered values
        self._speed: np.ndarray | None = None

    def __call__(self, value: np.ndarray, units: np.ndarray | float = 1.0) -> np.ndarray:
        """The filtered values (a new array, float64, value's shape); the first call returns
        value itself."""
        value = np.asarray(value, np.float64)
        if self.state is None:
            self.state, self._speed = value.copy(), np.zeros_like(value)
            return value.copy()
        speed = (value - self.state) / (self.period * np.asarray(units, np.float64))
        self._speed += _smoothing_factor(self.derivative_cutoff, self.period) * (
            speed - self._speed
        )
        cutoffs = self.min_cutoff + self.beta * np.abs(self._speed)
        self.state = self.state + _smoothing_factor(cutoffs, self.period) * (value - self.state)
        return self.state.copy()


class BoxStabilizer:
    """Causal One Euro filter over (centre x, centre y, log side), reset at every new track.

    Call it once per frame with the frame's own box and the tracker's ``track_id``; it returns
    the box to crop with. Speeds are measured in box sides (and log side) per second.
    """

    def __init__(self, settings: StabilizerSettings, fps: float) -> None:
        self.settings = settings
        self._filter = OneEuroFilter(
            settings.min_cutoff, settings.beta, settings.derivative_cutoff, fps
        )
        self.reset()

    def reset(self) -> None:
        self._filter.reset()
        self._track: int | None = None

    def __call__(self, box: FaceBox, track_id: int) -> FaceBox:
        value = np.array([box.center_x, box.center_y, math.log(box.side)])
        if track_id != self._track:
            self._filter.reset()
            self._track = track_id
        state = self._filter.state
        if state is None:
            self._filter(value)
            return box
        # Centre speeds in box sides per second, so one threshold fits every frame size.
        x, y, log_side = self._filter(value, np.array([math.exp(state[2])] * 2 + [1.0]))
        return FaceBox(float(x), float(y), math.exp(log_side))


class LandmarkFilter:
    """Causal One Euro filter over the driver's 68 landmarks (each coordinate its own speed, in
    face radii per second: dataset.face.face_radius), reset at every new track.

    Measured on real frames (bench/landmark_filter.py): a still face under camera noise moves
    0.2 px per frame instead of 1.2 (640 px frame), while fast head turns and mouth motion of
    five real clips lag at most half a frame.
    """

    def __init__(self, settings: StabilizerSettings, fps: float) -> None:
        self.enabled = settings.landmarks
        self._filter = OneEuroFilter(
            settings.landmark_min_cutoff, settings.landmark_beta, settings.derivative_cutoff, fps
        )
        self._track: int | None = None

    def __call__(self, points: np.ndarray, track_id: int) -> np.ndarray:
        """(68, 2) frame coordinates in, the filtered (68, 2) float32 out."""
        if not self.enabled:
            return points
        if track_id != self._track:
            self._filter.reset()
            self._track = track_id
        return self._filter(points, face_radius(points)).astype(np.float32)
