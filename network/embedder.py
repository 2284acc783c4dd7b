"""Embedder E(x, y): a person's frames and landmark pictures -> one embedding e_hat."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from network.trunk import DownsamplingTrunk
from params.config import ModelConfig


class Embedder(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.trunk = DownsamplingTrunk(config)

    def embed_frames(self, frames: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        """(B, K, 3, H, W) twice -> per-frame embeddings (B, K, D): sum pooling, then ReLU."""
        batch, shots = frames.shape[:2]
        h, _ = self.trunk(frames.flatten(0, 1), landmarks.flatten(0, 1))
        return F.relu(h.sum(dim=(2, 3))).view(batch, shots, -1)

    def forward(self, frames: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        """e_hat (B, D): the mean of the K frame embeddings of each video."""
        return self.embed_frames(frames, landmarks).mean(dim=1)
