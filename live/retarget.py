"""Retargeting: another person's face drives the avatar without lending it their face shape.

In absolute mode the driver's landmarks (in crop coordinates) go to the generator as they are:
right for self-reenactment, but a driver with a wider jaw or closer eyes would reshape the
avatar. In relative mode the driver's motion is measured against a neutral reference of the
driver (the mean of their first frames, retaken on request) and added to the person's own
landmark geometry (the mean of the person file's landmarks), scaled by the ratio of the two
faces' sizes: mouth opening, blinks, brows and head motion transfer, the shape stays the
person's. 'auto' picks absolute when the driver is the person (dlib face descriptor within
0.6), relative otherwise.
"""

from __future__ import annotations

import numpy as np

from dataset.face import transfer_motion

MODES = ("auto", "relative", "absolute")


class Retargeter:
    """Maps the driver's crop-coordinate landmarks to the landmarks the avatar is drawn with."""

    def __init__(self, person_landmarks: np.ndarray, mode: str, reference_frames: int = 5) -> None:
        if mode not in ("relative", "absolute"):
            raise ValueError(f"retarget mode must be relative or absolute here, got '{mode}'")
        self.mode = mode
        self.person = np.asarray(person_landmarks, np.float64).reshape(-1, 68, 2).mean(axis=0)
        self.reference_frames = reference_frames
        self._seen: list[np.ndarray] = []
        self.reference: np.ndarray | None = None

    def recalibrate(self) -> None:
        """Take the driver's neutral reference again from the next frames."""
        self._seen, self.reference = [], None

    def __call__(self, driver: np.ndarray) -> np.ndarray:
        driver = np.asarray(driver, np.float64)
        if self.mode == "absolute":
            return driver.astype(np.float32)
        if self.reference is None:
            self._seen.append(driver)
            if len(self._seen) >= self.reference_frames:
                self.reference = np.mean(self._seen, axis=0)
            reference = np.mean(self._seen, axis=0)
        else:
            reference = self.reference
        return transfer_motion(self.person, driver, reference)
