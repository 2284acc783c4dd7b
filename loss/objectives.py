"""The two sides of meta-learning, assembled from the loss terms (SPEC section 3).

Each function routes gradients to exactly the parameters its side updates: the generator
side reaches E, G and P (and W only through the match loss, when configured); the
discriminator side reaches D's trunk, w_0, b and W.
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
from loss.perceptual import ContentLoss
from network.discriminator import Discriminator
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


def generator_side_loss(
    config: LossConfig,
    content_loss: ContentLoss,
    discriminator: Discriminator,
    fake: torch.Tensor,
    real: torch.Tensor,
    landmarks: torch.Tensor,
    video_index: torch.Tensor | None,
    embedding: torch.Tensor | None,
) -> dict[str, torch.Tensor]:
    """L_CNT + L_ADV (+ L_MCH when video_index and embedding are given); every term logged.

    Returns the weighted terms and their sum under 'total'.
    """
    terms = content_loss(fake, real)
    with frozen(discriminator):
        fake_scores, fake_activations = discriminator(fake, landmarks, video_index)
        with torch.no_grad():
            _, real_activations = discriminator(real, landmarks, video_index)
    terms["adversarial"] = generator_adversarial_loss(fake_scores)
    terms["feature_matching"] = config.feature_matching_weight * feature_matching_loss(
        fake_activations, real_activations
    )
    if video_index is not None and embedding is not None:
        w_columns = discriminator.W[video_index]
        if not config.match_loss_updates_w:
            w_columns = w_columns.detach()
        terms["match"] = config.match_weight * match_loss(w_columns, embedding)
    terms["total"] = sum(terms.values())
    return terms


def discriminator_side_loss(
    discriminator: Discriminator,
    fake: torch.Tensor,
    real: torch.Tensor,
    landmarks: torch.Tensor,
    video_index: torch.Tensor | None,
) -> dict[str, torch.Tensor]:
    """Hinge loss; the fake frame is detached so that nothing upstream of D gets gradient."""
    real_scores, _ = discriminator(real, landmarks, video_index)
    fake_scores, _ = discriminator(fake.detach(), landmarks, video_index)
    return {
        "total": discriminator_hinge_loss(real_scores, fake_scores),
        "real_score": real_scores.detach().mean(),
        "fake_score": fake_scores.detach().mean(),
    }
