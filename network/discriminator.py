"""Projection discriminator D(x, y, i) with one column of W per training video."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from network.blocks import ResidualBlock
from network.trunk import DownsamplingTrunk
from params.config import ModelConfig


class Discriminator(nn.Module):
    """Realism r = V(x, y)^T (W_i + w_0) + b (SPEC section 2).

    W holds one embedding_dim vector per training video (stored as rows). For a person
    model, ``use_person_projection`` replaces W_i + w_0 by a trainable w' (SPEC section 4).
    """

    def __init__(self, config: ModelConfig, num_videos: int) -> None:
        super().__init__()
        dim = config.embedding_dim
        self.trunk = DownsamplingTrunk(config)
        self.final = ResidualBlock(dim, dim)
        self.W = nn.Parameter(torch.randn(num_videos, dim) * 0.02)
        self.w_0 = nn.Parameter(torch.zeros(dim))
        self.b = nn.Parameter(torch.zeros(()))
        self.person_projection: nn.Parameter | None = None

    def features(self, image: torch.Tensor, landmarks: torch.Tensor) -> tuple[torch.Tensor, list]:
        """V(x, y) (B, D) and the block activations used for feature matching."""
        h, activations = self.trunk(image, landmarks)
        h = self.final(h)
        activations.append(h)
        return F.relu(h.sum(dim=(2, 3))), activations

    def use_person_projection(self, embedding: torch.Tensor) -> None:
        """Fine-tuning mode: w' = w_0 + e_NEW becomes a parameter; W is no longer used."""
        with torch.no_grad():
            self.person_projection = nn.Parameter(self.w_0 + embedding.reshape(-1))

    def forward(
        self,
        image: torch.Tensor,
        landmarks: torch.Tensor,
        video_index: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list]:
        """Scores (B,) and activations. video_index (B,) is needed unless in person mode."""
        v, activations = self.features(image, landmarks)
        if self.person_projection is not None:
            projection = self.person_projection.expand_as(v)
        elif video_index is not None:
            projection = self.W[video_index] + self.w_0
        else:
            raise ValueError("the discriminator needs video_index unless in person mode")
        return (v * projection).sum(dim=1) + self.b, activations
