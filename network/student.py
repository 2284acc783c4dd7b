"""The student: a small person-specific generator, landmark picture -> frame of one person.

After fine-tuning, a person model is a fixed function from landmark pictures to frames of one
person: psi no longer varies, so AdaIN is a fixed per-channel affine map and the meta-learned
generality of G is dead weight. The student learns that one function from G's own outputs
(person/distill.py) at a small fraction of its cost (docs/DESIGN.md, "The fast avatar"):

- a U-Net: stride-2 encoder, bottleneck, nearest-upsampling decoder whose levels add the
  encoder's map of the same resolution (the face's geometry comes from the landmark picture,
  pixel-aligned with the output);
- depthwise-separable convolutions (3x3 depthwise, 1x1 pointwise; MobileNet, Howard et al.
  2017) everywhere but the first and last convolution, narrow widths, no normalisation;
- a learnt canvas per decoder level: what does not move with the landmarks (background,
  clothes, the hair's texture) is memorised as a constant map instead of being recomputed from
  the landmark lines every frame.

Input (B, 3, S, S) landmark pictures in the output range; output (B, 3, S, S) frames in the
same range (``output_activation``). Plain convolutions only: it exports to ONNX and
TorchScript and runs in bf16 and under torch.compile like the teacher.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

OUTPUT_ACTIVATIONS = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


class SeparableConv(nn.Module):
    """3x3 depthwise (stride 1 or 2) then 1x1 pointwise convolution, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(
            in_channels, in_channels, 3, stride, padding=1, groups=in_channels
        )
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.pointwise(self.depthwise(x)))


class SeparableResidual(nn.Module):
    """Two separable convolutions with an identity skip (the bottleneck's blocks)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.first = SeparableConv(channels, channels)
        self.second = SeparableConv(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.second(self.first(x))


class Student(nn.Module):
    """U-Net student of one person model.

    widths[i] is the channel count at resolution S / 2^(i+1): widths=[16, 32, 64, 128] at
    256 px encodes to 16x16x128, runs ``blocks`` residual blocks there and decodes back.
    Raises ValueError when S is not divisible by 2^len(widths) or an activation is unknown.
    """

    def __init__(
        self, image_size: int, widths: list[int], blocks: int, output_activation: str
    ) -> None:
        super().__init__()
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(f"output_activation must be one of {list(OUTPUT_ACTIVATIONS)}")
        levels = len(widths)
        if levels < 1 or image_size % 2**levels:
            raise ValueError(f"image size {image_size} does not halve {levels} times")
        self.stem = nn.Conv2d(3, widths[0], 3, stride=2, padding=1)
        self.down = nn.ModuleList(
            SeparableConv(widths[i], widths[i + 1], stride=2) for i in range(levels - 1)
        )
        self.bottleneck = nn.Sequential(*(SeparableResidual(widths[-1]) for _ in range(blocks)))
        self.up = nn.ModuleList(
            SeparableConv(widths[i + 1], widths[i]) for i in reversed(range(levels - 1))
        )
        self.head = SeparableConv(widths[0], widths[0])
        # One canvas per decoder resolution, S / 2^(levels-1) ... S / 2 and S itself.
        self.canvases = nn.ParameterList(
            nn.Parameter(
                torch.zeros(1, widths[max(i, 0)], image_size >> (i + 1), image_size >> (i + 1))
            )
            for i in reversed(range(-1, levels - 1))
        )
        self.to_rgb = nn.Conv2d(widths[0], 3, 3, padding=1)
        self.output_activation = OUTPUT_ACTIVATIONS[output_activation]()

    @classmethod
    def for_size(
        cls, image_size: int, widths: list[int], blocks: int, output_activation: str
    ) -> Student:
        """The student with as many of ``widths`` as the size allows (smallest map 4x4)."""
        levels = max(1, min(len(widths), image_size.bit_length() - 3))
        return cls(image_size, list(widths[:levels]), blocks, output_activation)

    def forward(self, landmarks: torch.Tensor) -> torch.Tensor:
        """landmarks (B, 3, S, S) -> frames (B, 3, S, S), both in the output range."""
        skips = [F.relu(self.stem(landmarks))]
        for block in self.down:
            skips.append(block(skips[-1]))
        h = self.bottleneck(skips.pop())
        canvases = iter(self.canvases)
        for block in self.up:  # convolve at the lower resolution, then upsample and merge
            h = F.interpolate(block(h), scale_factor=2.0, mode="nearest")
            h = h + skips.pop() + next(canvases)
        h = F.interpolate(self.head(h), scale_factor=2.0, mode="nearest") + next(canvases)
        return self.output_activation(self.to_rgb(h))
