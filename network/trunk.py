"""The downsampling trunk shared by the embedder and the discriminator (SPEC section 2)."""

from __future__ import annotations

import torch
from torch import nn

from network.blocks import ResidualBlock, SelfAttention, channels_at, halvings
from params.config import ModelConfig


class DownsamplingTrunk(nn.Module):
    """Frame and landmark picture (6 channels) -> residual downsampling blocks.

    Goes from image_size down to encoder_final_resolution; the last block has
    embedding_dim channels. Self-attention follows the block that reaches
    encoder_attention_resolution. Returns the final map and every block's output
    (the discriminator's feature-matching activations).
    """

    def __init__(self, config: ModelConfig, in_channels: int = 6) -> None:
        super().__init__()
        size = config.image_size
        steps = halvings(size, config.encoder_final_resolution)
        layers: list[nn.Module] = []
        channels = in_channels
        resolution = size
        for step in range(steps):
            resolution //= 2
            out = (
                config.embedding_dim
                if step == steps - 1
                else channels_at(resolution, size, config.base_channels, config.max_channels)
            )
            layers.append(ResidualBlock(channels, out, resample="down", preactivate=step > 0))
            if resolution == config.encoder_attention_resolution:
                layers.append(SelfAttention(out))
            channels = out
        self.layers = nn.ModuleList(layers)

    def forward(self, image: torch.Tensor, landmarks: torch.Tensor) -> tuple[torch.Tensor, list]:
        h = torch.cat([image, landmarks], dim=1)
        activations = []
        for layer in self.layers:
            h = layer(h)
            activations.append(h)
        return h, activations
