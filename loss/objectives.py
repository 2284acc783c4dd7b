"""The loss terms of each side of the adversarial update, with their gradient routing
(SPEC section 3); runtime/adversarial_update.py assembles them in one order of work.

The generator side's terms reach E, G and P (and the batch's W rows only through the match
loss, when configured): D is frozen and W detached in its view of x_hat. The discriminator
side reaches D's trunk, w_0, b and the batch's W rows, with x_hat detached. W rows come in as a
tensor (training/video_table.py gathers them), so their gradient is whatever reaches it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from loss.adversarial import (
    discriminator_hinge_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    match_loss,
)
from params.config import LossConfig


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Let gradients flow through module to its inputs but not into its parameters."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for parameter, _ in flags:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


def discriminator_view(
    discriminator: nn.Module,
    fake: torch.Tensor,
    landmarks: torch.Tensor,
    w_rows: torch.Tensor | None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """D's scores and activations on the fake frame, as the generator side sees them.

    D is frozen: gradient reaches the fake frame, not D's parameters nor W (which belongs to
    D; only the match loss may reach W).
    """
    with frozen(discriminator):
        return discriminator(fake, landmarks, None if w_rows is None else w_rows.detach())


def adversarial_terms(
    config: LossConfig,
    fake_scores: torch.Tensor,
    fake_activations: list[torch.Tensor],
    real_activations: list[torch.Tensor],
) -> dict[str, torch.Tensor]:
    """L_ADV's two parts from D's outputs: -r(x_hat) and lambda_FM * feature matching."""
    return {
        "adversarial": generator_adversarial_loss(fake_scores),
        "feature_matching": config.feature_matching_weight
        * feature_matching_loss(fake_activations, real_activations),
    }


def match_term(config: LossConfig, w_rows: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
    """lambda_MCH * L1(W_i, e_hat); W_i takes this gradient only if match_loss_updates_w."""
    target = w_rows if config.match_loss_updates_w else w_rows.detach()
    return config.match_weight * match_loss(target, embedding)


def discriminator_side_loss(
    discriminator: nn.Module,
    fake: torch.Tensor,
    real: torch.Tensor,
    landmarks: torch.Tensor,
    w_rows: torch.Tensor | None,
) -> dict[str, torch.Tensor]:
    """Hinge loss; the fake frame is detached so that nothing upstream of D gets gradient.

    Real and fake frames go through D as one batch: one forward and one backward instead of
    two (the layers are per-sample, so the scores are the same).
    """
    batch = real.shape[0]
    images = torch.cat([real, fake.detach()])
    rows = None if w_rows is None else torch.cat([w_rows, w_rows])
    scores, activations = discriminator(images, torch.cat([landmarks, landmarks]), rows)
    real_scores, fake_scores = scores[:batch], scores[batch:]
    return {
        "total": discriminator_hinge_loss(real_scores, fake_scores),
        "real_score": real_scores.detach().mean(),
        "fake_score": fake_scores.detach().mean(),
        # D's activations on the real frame: the generator side's feature-matching targets.
        "real_activations": [a[:batch].detach() for a in activations],
    }
