"""Pixel and perceptual image metrics: PSNR, SSIM (torchmetrics) and LPIPS (given weights).

Images are float tensors (B, 3, H, W) in [0, 1]. LPIPS needs ImageNet AlexNet weights (the
file torchvision would download, alexnet-owt-7be5be79.pth); its linear layers ship with
torchmetrics. Without the AlexNet file LPIPS is unavailable, with the reason.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

from metrics import Unavailable, WeightsError
from utils.files import load_weights


def psnr(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB (B,)."""
    return peak_signal_noise_ratio(fake, real, data_range=1.0, reduction="none", dim=(1, 2, 3))


SSIM_BORDER = 5  # half the 11-pixel window: where the window leaves the image


def ssim(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM (B,): Gaussian window 11, sigma 1.5, averaged where the window lies
    inside the image, as Wang et al.'s reference code and scikit-image do (torchmetrics'
    mean also counts the padded border, about 0.01 lower on a 160 px face)."""
    _, full = structural_similarity_index_measure(
        fake, real, data_range=1.0, reduction="none", return_full_image=True
    )
    inner = full[..., SSIM_BORDER:-SSIM_BORDER, SSIM_BORDER:-SSIM_BORDER]
    return inner.mean(dim=(1, 2, 3))


class Lpips:
    """LPIPS (Zhang et al. 2018, AlexNet variant) with the AlexNet weights read from a file."""

    def __init__(self, alexnet_weights: str | Path | None, random_backbone: bool = False) -> None:
        from torchmetrics.functional.image.lpips import _NoTrainLpips

        self.model = _NoTrainLpips(net="alex", pnet_rand=True).eval()
        if random_backbone:  # tests: the plumbing with a random network
            return
        state = load_weights(alexnet_weights, "eval.lpips_alexnet_weights", WeightsError)
        slices = [getattr(self.model.net, f"slice{i}") for i in range(1, 6)]
        for block in slices:
            for name, module in block.named_children():
                if isinstance(module, torch.nn.Conv2d):
                    module.weight.data.copy_(state[f"features.{name}.weight"])
                    module.bias.data.copy_(state[f"features.{name}.bias"])

    @classmethod
    def load(cls, path: str | None) -> Lpips | Unavailable:
        if path is None:
            return Unavailable(
                "no AlexNet weights: pass --set eval.lpips_alexnet_weights=alexnet-owt-7be5be79.pth"
                " (torchvision's ImageNet AlexNet file)"
            )
        try:
            return cls(path)
        except WeightsError as error:
            return Unavailable(str(error))
        except (KeyError, RuntimeError, TypeError) as error:
            return Unavailable(f"{path} is not torchvision's AlexNet state dict ({error})")

    @torch.no_grad()
    def __call__(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """Per-image LPIPS (B,); lower is closer."""
        return self.model(fake * 2 - 1, real * 2 - 1).flatten()
