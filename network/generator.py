"""Generator G(y, e_hat): landmark picture -> frame of the person described by e_hat.

Downsampling blocks use instance normalisation; bottleneck and upsampling blocks (and the
final norm) use AdaIN. All AdaIN scales and biases come from one vector psi = P e_hat:
the generator counts them (``adain_param_count`` = rows of P) and cuts psi into the layers'
slices in one place (``split_psi``), passing them through the forward call: the generator
keeps no state between calls. For fine-tuning, ``use_trainable_psi`` replaces P e_hat by a
psi parameter of its own (SPEC section 4); ``synthesize`` drives it with any fixed psi.
"""

from __future__ import annotations

import torch
from torch import nn

from network.blocks import (
    AdaptiveInstanceNorm,
    ResidualBlock,
    SelfAttention,
    channels_at,
    halvings,
    sn_conv,
    sn_linear,
)
from params.config import ModelConfig

OUTPUT_ACTIVATIONS = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


class Generator(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(f"model.output_activation must be one of {list(OUTPUT_ACTIVATIONS)}")
        size = config.image_size

        def width(resolution: int) -> int:
            return channels_at(resolution, size, config.base_channels, config.max_channels)

        bottleneck = config.generator_bottleneck_resolution
        steps = halvings(size, bottleneck)
        down: list[nn.Module] = []
        channels, resolution = 3, size
        for step in range(steps):
            resolution //= 2
            down.append(
                ResidualBlock(
                    channels, width(resolution), "down", norm="instance", preactivate=step > 0
                )
            )
            channels = width(resolution)
            if resolution == config.generator_down_attention_resolution:
                down.append(SelfAttention(channels))
        self.down = nn.Sequential(*down)

        up: list[nn.Module] = [
            ResidualBlock(channels, channels, None, norm="adain")
            for _ in range(config.generator_bottleneck_blocks)
        ]
        for _ in range(steps):
            resolution *= 2
            up.append(
                ResidualBlock(
                    channels, width(resolution), "up", "adain", upsample_mode=config.upsample_mode
                )
            )
            channels = width(resolution)
            if resolution == config.generator_up_attention_resolution:
                up.append(SelfAttention(channels))
        self.up = nn.ModuleList(up)
        self.head_norm = AdaptiveInstanceNorm(channels)
        self.to_rgb = sn_conv(channels, 3, 3)
        self.output_activation = OUTPUT_ACTIVATIONS[config.output_activation]()

        # Sizes of the psi slices in forward order: each AdaIN block's two norms, the head's.
        self.adain_sizes: list[int] = [
            size
            for block in self.up
            if isinstance(block, ResidualBlock)
            for size in block.adain_sizes
        ] + [self.head_norm.param_count]
        self.adain_param_count = sum(self.adain_sizes)
        self.projection = sn_linear(config.embedding_dim, self.adain_param_count, bias=False)
        self.psi: nn.Parameter | None = None

    def project(self, embedding: torch.Tensor) -> torch.Tensor:
        """psi = P e: (B, D) -> (B, adain_param_count)."""
        return self.projection(embedding)

    def use_trainable_psi(self, psi: torch.Tensor) -> None:
        """Fine-tuning mode: psi becomes a parameter initialised to the given (1, N) value."""
        if psi.shape != (1, self.adain_param_count):
            raise ValueError(f"psi must have shape (1, {self.adain_param_count}), got {psi.shape}")
        self.psi = nn.Parameter(psi.detach().clone())

    def split_psi(self, psi: torch.Tensor) -> list[torch.Tensor]:
        """The one place where psi is cut into the AdaIN layers' scales and biases."""
        if psi.shape[-1] != self.adain_param_count:
            raise ValueError(f"psi must have {self.adain_param_count} values, got {psi.shape}")
        return list(psi.split(self.adain_sizes, dim=1))

    def synthesize(self, landmarks: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
        """landmarks (B, 3, H, W) and psi (B or 1, adain_param_count) -> image (B, 3, H, W)."""
        slices = iter(self.split_psi(psi.expand(landmarks.shape[0], -1)))
        h = self.down(landmarks)
        for block in self.up:
            if isinstance(block, ResidualBlock):
                h = block(h, tuple(next(slices) for _ in block.adain_sizes))
            else:
                h = block(h)
        h = torch.relu(self.head_norm(h, next(slices)))
        return self.output_activation(self.to_rgb(h))

    def forward(
        self, landmarks: torch.Tensor, embedding: torch.Tensor | None = None
    ) -> torch.Tensor:
        """landmarks (B, 3, H, W), embedding (B, D) -> image (B, 3, H, W).

        In fine-tuning mode the embedding is ignored and the trainable psi is used.
        """
        if self.psi is not None:
            return self.synthesize(landmarks, self.psi)
        if embedding is None:
            raise ValueError("the generator needs an embedding unless psi is trainable")
        return self.synthesize(landmarks, self.project(embedding))
