"""Temporal stabilisation of the crop box: head motion shows inside the crop, detector noise not.

A box computed from one frame's landmarks wobbles with detector noise; a crop that follows it
"breathes". Two forms of one filter over the box's centre and log side (docs/DATA.md):

- offline (preprocessing, evaluation): ``mean_box`` of the boxes of the frames around a frame,
  within one face track; no lag, since frames after the one cropped are known.
- causal (live driving): ``BoxStabilizer``, a One Euro filter (Casiez et al., CHI 2012), frame
  by frame with no look-ahead: strong smoothing while the head is still, little lag when it
  moves fast.

Both work in units of the box side, so the same settings fit any frame size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dataset.face import FaceBox
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
    """The live filter: cutoff frequency at rest (Hz) and how fast it opens with speed."""

    min_cutoff: float = 0.5
    beta: float = 2.0
    derivative_cutoff: float = 1.0  # Hz, for the speed estimate itself

    @classmethod
    def from_config(cls, config: Config) -> StabilizerSettings:
        return cls(config.data.stabilizer_min_cutoff, config.data.stabilizer_beta)


def _smoothing_factor(cutoff: float, period: float) -> float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / period)


class BoxStabilizer:
    """Causal One Euro filter over (centre x, centre y, log side), reset at every new track.

    Call it once per frame with the frame's own box and the tracker's ``track_id``; it returns
    the box to crop with. Speeds are measured in box sides (and log side) per second.
    """

    def __init__(self, settings: StabilizerSettings, fps: float) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.settings = settings
        self.period = 1.0 / fps
        self.reset()

    def reset(self) -> None:
        self._state: np.ndarray | None = None  # filtered (centre x, centre y, log side)
        self._speed = np.zeros(3)
        self._track: int | None = None

    def __call__(self, box: FaceBox, track_id: int) -> FaceBox:
        value = np.array([box.center_x, box.center_y, math.log(box.side)])
        if self._state is None or track_id != self._track:
            self._state, self._speed, self._track = value, np.zeros(3), track_id
            return box
        # Centre speeds in box sides per second, so one threshold fits every frame size.
        units = np.array([math.exp(self._state[2]), math.exp(self._state[2]), 1.0])
        speed = (value - self._state) / (self.period * units)
        self._speed += _smoothing_factor(self.settings.derivative_cutoff, self.period) * (
            speed - self._speed
        )
        cutoffs = self.settings.min_cutoff + self.settings.beta * np.abs(self._speed)
        alpha = np.array([_smoothing_factor(cutoff, self.period) for cutoff in cutoffs])
        self._state = self._state + alpha * (value - self._state)
        x, y, log_side = self._state
        return FaceBox(float(x), float(y), math.exp(log_side))
