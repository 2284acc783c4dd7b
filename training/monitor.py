"""The alarms of a training run: losses that became NaN or infinite, and flat frames.

The run's scalars, sample grids and loss plot are written by runtime/runlog.py.
"""

from __future__ import annotations

import sys

import torch

from dataset.value_range import to_unit_range
from training import distributed


class TrainingCollapsed(RuntimeError):
    """Training produced NaN/Inf or constant frames; the message says what and when."""


class CollapseAlarm:
    """Stops a run whose generated frames have gone flat (black, one colour) for a while."""

    def __init__(self, min_std: float, checks: int, output_activation: str) -> None:
        self.min_std, self.checks = min_std, checks
        self.output_activation = output_activation
        self.flat_in_a_row = 0

    def image_std(self, images: torch.Tensor) -> torch.Tensor:
        """Per-image standard deviation, in [0, 1] units."""
        unit = to_unit_range(images.detach().float(), self.output_activation)
        return unit.flatten(1).std(dim=1)

    def check_value(self, lowest: float, step: int) -> None:
        """lowest: a batch's lowest per-image std; raises after `checks` flat checks in a row."""
        self.flat_in_a_row = self.flat_in_a_row + 1 if lowest < self.min_std else 0
        if self.flat_in_a_row >= self.checks:
            raise TrainingCollapsed(
                f"generated frames have been flat (per-image std {lowest:.4f} < "
                f"train.collapse_std {self.min_std}) for {self.checks} checks up to step {step}: "
                "training collapsed. The newest checkpoint before this is kept; look at "
                "samples/ and the loss terms, lower the learning rates or change the loss weights"
            )


class NonFiniteAlarm:
    """Remembers on the device the first step whose losses were NaN or infinite; ``check``
    raises TrainingCollapsed naming it, on every rank if any rank had one.

    The loop checks at logging steps and before every checkpoint, so no checkpoint ever holds
    a step after a non-finite loss; checking every step would make the host wait for the
    device at every step (on a GPU, idle while the host prepares the next one).
    """

    def __init__(self, device: torch.device) -> None:
        self.first = torch.full((), -1, dtype=torch.int64, device=device)

    def record(self, step: int, finite: torch.Tensor) -> None:
        """step: the step just taken (1-based); finite: its device bool scalar."""
        self.first = torch.where((self.first < 0) & ~finite, step, self.first)

    def check(self, run: distributed.Distributed) -> None:
        mine = int(self.first)
        first = distributed.all_min(mine if mine >= 0 else sys.maxsize, run)  # int64's largest
        if first < sys.maxsize:
            raise TrainingCollapsed(
                f"a loss became NaN or infinite at step {first}: training stopped; the "
                "newest checkpoint before this is kept"
            )
