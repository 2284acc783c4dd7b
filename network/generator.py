"""Generator G(y, e_hat): landmark picture -> frame of the person described by e_hat.

Downsampling blocks use instance normalisation; bottleneck and upsampling blocks (and the
final norm) use AdaIN. All AdaIN scales and biases come from one vector psi = P e_hat:
the generator counts them (``adain_param_count`` = rows of P) and assigns them in one
place (``_assign_psi``). For fine-tuning, ``use_trainable_psi`` replaces P e_hat by a
psi parameter of its own (SPEC section 4).
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
        self.up = nn.Sequential(*up)
        self.head = nn.Sequential(
            AdaptiveInstanceNorm(channels),
            nn.ReLU(),
            sn_conv(channels, 3, 3),
            OUTPUT_ACTIVATIONS[config.output_activation](),
        )

        self.adain_layers = [m for m in self.modules() if isinstance(m, AdaptiveInstanceNorm)]
        self.adain_param_count = sum(layer.param_count for layer in self.adain_layers)
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

    def _assign_psi(self, psi: torch.Tensor) -> None:
        """The one place where psi is cut into the AdaIN layers' scales and biases."""
        chunks = psi.split([layer.param_count for layer in self.adain_layers], dim=1)
        for layer, chunk in zip(self.adain_layers, chunks, strict=True):
            layer.set_params(chunk)

    def forward(
        self, landmarks: torch.Tensor, embedding: torch.Tensor | None = None
    ) -> torch.Tensor:
        """landmarks (B, 3, H, W), embedding (B, D) -> image (B, 3, H, W).

        In fine-tuning mode the embedding is ignored and the trainable psi is used.
        """
        if self.psi is not None:
            psi = self.psi.expand(landmarks.shape[0], -1)
        elif embedding is not None:
            psi = self.project(embedding)
        else:
            raise ValueError("the generator needs an embedding unless psi is trainable")
        self._assign_psi(psi)
        try:
            return self.head(self.up(self.down(landmarks)))
        finally:  # drop the references so no graph outlives the call
            for layer in self.adain_layers:
                layer.set_params(None)
