"""Adversarial, feature-matching and match losses (SPEC section 3).

The hinge loss works on raw realism scores: no sigmoid anywhere (mistake 7).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def discriminator_hinge_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """max(0, 1 - r(x)) + max(0, 1 + r(x_hat)), averaged over the batch."""
    return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()


def generator_adversarial_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """-r(x_hat), averaged over the batch."""
    return -fake_scores.mean()


def mean_abs_difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """L1 (mean absolute difference) computed in the tensors' own precision, summed in fp32.

    F.l1_loss is on autocast's fp32 list: under bf16 it would copy every activation to fp32,
    and keep those copies for the backward pass. The elementwise work stays in bf16 here and
    only the sum is accumulated and returned in fp32.
    """
    return (a - b).abs().mean(dtype=torch.float32)


def feature_matching_loss(
    fake_activations: list[torch.Tensor], real_activations: list[torch.Tensor]
) -> torch.Tensor:
    """Sum over D's blocks of the L1 distance between activations on fake and real frames."""
    return sum(
        mean_abs_difference(fake, real.detach())
        for fake, real in zip(fake_activations, real_activations, strict=True)
    )


def match_loss(w_columns: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
    """L1 between each video's W column and its embedding e_hat."""
    return mean_abs_difference(embeddings.float(), w_columns.float())
