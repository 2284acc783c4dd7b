"""Metrics of the paper's evaluation (SPEC section 5): SSIM, PSNR, LPIPS, FID, CSIM, AKD.

A metric whose weights are missing is reported as unavailable with the reason, never as a
number (``Unavailable``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Unavailable:
    """A metric that could not be computed, and why (shown in the report instead of a number)."""

    reason: str


class WeightsError(RuntimeError):
    """A metric's weight file that is missing, damaged or not plain weights."""
