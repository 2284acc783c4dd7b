"""Building blocks shared by the three networks: BigGAN residual blocks, AdaIN, self-attention.

Every convolution and linear layer is spectrally normalised (SPEC section 2), so the
constructors here are the only place that creates one.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

Resample = Literal["down", "up"] | None
Norm = Literal["none", "instance", "adain"]


def sn_conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Module:
    """A same-padding convolution with spectral normalisation."""
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
    return spectral_norm(conv)


def sn_linear(in_features: int, out_features: int, bias: bool = True) -> nn.Module:
    return spectral_norm(nn.Linear(in_features, out_features, bias=bias))


class AdaptiveInstanceNorm(nn.Module):
    """Instance norm whose per-channel scale and bias come with the input (a slice of psi).

    Stateless: the generator passes each layer its slice of psi in the forward call, so a
    copied generator, activation checkpointing (which re-runs forward during backward) and
    torch.compile all see the same computation. The scale is applied as ``1 + gamma`` so that
    psi = 0 is plain instance normalisation.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    @property
    def param_count(self) -> int:
        return 2 * self.num_features

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """params: (B, 2 * num_features), scales first, then biases."""
        gamma, beta = params[:, :, None, None].chunk(2, dim=1)
        return instance_norm(x) * (1 + gamma) + beta


def instance_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-sample, per-channel normalisation over space; statistics in fp32 in every precision.

    Written with var_mean rather than F.instance_norm: the library kernel converts
    channels-last tensors on CPU, this one works in either layout. Only the per-channel
    statistics are fp32; the map itself stays in its own precision.
    """
    var, mean = torch.var_mean(x.float(), dim=(2, 3), keepdim=True, correction=0)
    scale = torch.rsqrt(var + eps)
    return x * scale.to(x.dtype) - (mean * scale).to(x.dtype)


class InstanceNorm(nn.Module):
    """Instance norm with its own learnt per-channel affine parameters."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return instance_norm(x) * self.weight[:, None, None] + self.bias[:, None, None]


class _AveragePool2x(torch.autograd.Function):
    """2x2 average pooling whose backward needs no saved input (autograd's keeps the input,
    a full-resolution map per block, for its shape alone)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return F.interpolate(grad * 0.25, scale_factor=2, mode="nearest")


def average_pool_2x(x: torch.Tensor) -> torch.Tensor:
    """F.avg_pool2d(x, 2) for even sizes, lighter on memory in training."""
    if x.shape[-1] % 2 or x.shape[-2] % 2:
        raise ValueError(f"2x pooling needs even sizes, got {tuple(x.shape[-2:])}")
    return _AveragePool2x.apply(x) if torch.is_grad_enabled() else F.avg_pool2d(x, 2)


def make_norm(kind: Norm, channels: int) -> nn.Module:
    if kind == "none":
        return nn.Identity()
    if kind == "instance":
        return InstanceNorm(channels)
    if kind == "adain":
        return AdaptiveInstanceNorm(channels)
    raise ValueError(f"unknown norm {kind!r}")


class ResidualBlock(nn.Module):
    """BigGAN residual block: norm-ReLU-conv3x3-norm-ReLU-conv3x3 plus a 1x1 skip.

    Upsampling (nearest or bilinear x2) happens before the first convolution, downsampling
    (average pooling) after the second, on both paths. The skip path has a 1x1 convolution
    when the channel count changes. With ``preactivate=False`` the block starts with the
    convolution: used for the first block, which sees the raw image.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        resample: Resample = None,
        norm: Norm = "none",
        preactivate: bool = True,
        upsample_mode: str = "nearest",
    ) -> None:
        super().__init__()
        self.resample = resample
        self.upsample_mode = upsample_mode
        self.preactivate = preactivate
        self.norm1 = make_norm(norm, in_channels) if preactivate else nn.Identity()
        self.conv1 = sn_conv(in_channels, out_channels, 3)
        self.norm2 = make_norm(norm, out_channels)
        self.conv2 = sn_conv(out_channels, out_channels, 3)
        self.skip = sn_conv(in_channels, out_channels, 1) if in_channels != out_channels else None

    def _upsample(self, x: torch.Tensor) -> torch.Tensor:
        if self.resample != "up":
            return x
        if self.upsample_mode == "nearest":
            return F.interpolate(x, scale_factor=2, mode="nearest")
        return F.interpolate(x, scale_factor=2, mode=self.upsample_mode, align_corners=False)

    def _downsample(self, x: torch.Tensor) -> torch.Tensor:
        return average_pool_2x(x) if self.resample == "down" else x

    @property
    def adain_sizes(self) -> list[int]:
        """Sizes of the psi slices the block takes, in order (norm1, norm2)."""
        norms = (self.norm1, self.norm2)
        return [norm.param_count for norm in norms if isinstance(norm, AdaptiveInstanceNorm)]

    def _norm(self, norm: nn.Module, x: torch.Tensor, params: torch.Tensor | None):
        return norm(x, params) if isinstance(norm, AdaptiveInstanceNorm) else norm(x)

    def forward(self, x: torch.Tensor, psi_slices: tuple[torch.Tensor, ...] = ()) -> torch.Tensor:
        """psi_slices: for an AdaIN block, its slices of psi (see ``adain_sizes``)."""
        slices = iter(psi_slices)
        h = x
        if self.preactivate:
            h = F.relu(self._norm(self.norm1, x, next(slices, None)))
        h = self.conv1(self._upsample(h))
        h = self._norm(self.norm2, h, next(slices, None))
        # In place: the map is needed by nothing but this ReLU (a conv or a norm made it).
        h = self.conv2(F.relu(h, inplace=True))
        h = self._downsample(h)
        skip = self._upsample(x)
        if self.skip is not None:
            skip = self.skip(skip)
        return h + self._downsample(skip)


class SelfAttention(nn.Module):
    """SAGAN self-attention; gamma starts at 0, so the block starts as the identity.

    Keys and values are max-pooled by 2 as in BigGAN, which quarters the attention
    matrix (64x64 maps in the generator would otherwise need 4096x4096 per image).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        inner = max(1, channels // 8)
        self.query = sn_conv(channels, inner, 1)
        self.key = sn_conv(channels, inner, 1)
        self.value = sn_conv(channels, max(1, channels // 2), 1)
        self.out = sn_conv(max(1, channels // 2), channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        query = self.query(x).flatten(2).transpose(1, 2)  # (B, HW, C/8)
        key = F.max_pool2d(self.key(x), 2).flatten(2).transpose(1, 2)  # (B, HW/4, C/8)
        value = F.max_pool2d(self.value(x), 2).flatten(2).transpose(1, 2)  # (B, HW/4, C/2)
        attended = F.scaled_dot_product_attention(
            query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1), scale=1.0
        ).squeeze(1)
        attended = attended.transpose(1, 2).reshape(batch, -1, height, width)
        return x + self.gamma * self.out(attended)


def channels_at(resolution: int, image_size: int, base_channels: int, max_channels: int) -> int:
    """Channel width of feature maps at a resolution: base at image_size/2, x2 per halving."""
    return max(1, min(max_channels, base_channels * (image_size // 2) // resolution))


def halvings(start: int, stop: int) -> int:
    """How many x2 resamplings lead from resolution start to stop (both powers of two apart)."""
    ratio = max(start, stop) // min(start, stop)
    if ratio < 1 or ratio & (ratio - 1) or min(start, stop) * ratio != max(start, stop):
        raise ValueError(f"resolutions {start} and {stop} are not a power of two apart")
    return ratio.bit_length() - 1
