"""Pixel values as the networks see them: the range of the generator's output activation.

Dataset frames, landmark pictures and generated images all use the same range (SPEC section 6,
mistake 2): [-1, 1] for model.output_activation 'tanh', [0, 1] for 'sigmoid'. Every conversion
between uint8 pictures and network tensors goes through these two functions.
"""

from __future__ import annotations

import numpy as np
import torch

ACTIVATION_RANGES = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0)}


def value_range(activation: str) -> tuple[float, float]:
    """(low, high) of images for a generator output activation."""
    if activation not in ACTIVATION_RANGES:
        known = ", ".join(ACTIVATION_RANGES)
        raise ValueError(f"unknown output activation '{activation}' (known: {known})")
    return ACTIVATION_RANGES[activation]


def to_unit_range(image: torch.Tensor, activation: str) -> torch.Tensor:
    """Images in the activation's range ([-1, 1] for tanh, [0, 1] for sigmoid) -> [0, 1], in the
    tensor's own dtype (no clipping)."""
    low, high = value_range(activation)
    return (image - low) / (high - low)


def image_to_tensor(image: np.ndarray, activation: str) -> torch.Tensor:
    """uint8 (..., H, W, C) -> float32 (..., C, H, W) in the activation's range."""
    low, high = value_range(activation)
    tensor = torch.from_numpy(np.ascontiguousarray(image)).movedim(-1, -3).float()
    return tensor * ((high - low) / 255.0) + low


def tensor_to_image(tensor: torch.Tensor, activation: str) -> np.ndarray:
    """float (..., C, H, W) in the activation's range -> uint8 (..., H, W, C), clipped."""
    low, high = value_range(activation)
    scaled = (tensor.detach().float().cpu() - low) * (255.0 / (high - low))
    return scaled.round().clamp(0, 255).to(torch.uint8).movedim(-3, -1).numpy()
