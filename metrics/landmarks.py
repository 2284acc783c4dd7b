"""AKD: average distance between the landmarks found on the real and on the generated frame,
in units of the real frame's inter-ocular distance (distance between the eye centres)."""

from __future__ import annotations

import numpy as np


def interocular(landmarks: np.ndarray) -> float:
    return float(np.linalg.norm(landmarks[36:42].mean(0) - landmarks[42:48].mean(0)))


def akd(real: np.ndarray, fake: np.ndarray) -> float:
    """Mean over the 68 points of |real - fake|, divided by the inter-ocular distance."""
    return float(
        np.linalg.norm(np.asarray(real) - np.asarray(fake), axis=1).mean() / interocular(real)
    )
