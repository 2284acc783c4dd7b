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

    W, one embedding_dim row per training video, is not a parameter of this module: at
    VoxCeleb2 scale (145k rows) it is a table of its own, updated row by row and never
    all-reduced whole (training/video_table.py). The caller passes the batch's rows W_i. For a
    person model, ``use_person_projection`` replaces W_i + w_0 by a trainable w' (SPEC
    section 4).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        dim = config.embedding_dim
        self.trunk = DownsamplingTrunk(config)
        self.final = ResidualBlock(dim, dim)
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
        """Fine-tuning mode: w' = w_0 + e_NEW becomes a parameter; W rows are no longer used."""
        with torch.no_grad():
            self.person_projection = nn.Parameter(self.w_0 + embedding.reshape(-1))

    def forward(
        self,
        image: torch.Tensor,
        landmarks: torch.Tensor,
        w_rows: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list]:
        """Scores (B,) and activations. w_rows (B, D), the videos' W_i, unless in person mode."""
        v, activations = self.features(image, landmarks)
        if self.person_projection is not None:
            projection = self.person_projection.expand_as(v)
        elif w_rows is not None:
            projection = w_rows.to(v.dtype) + self.w_0
        else:
            raise ValueError("the discriminator needs the videos' W rows unless in person mode")
        return (v * projection).sum(dim=1) + self.b, activations
