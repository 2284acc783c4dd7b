"""Content loss L_CNT: L1 between VGG19 and VGGFace activations of real and generated frames.

Each network sees its input the way it was trained (SPEC section 3, mistake 1): torchvision
VGG19 takes RGB in [0, 1] normalised with ImageNet mean/std; Caffe VGGFace takes BGR in
0..255 with its mean pixel subtracted. Both are frozen and stay in eval mode.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torchvision.models import VGG19_Weights

from dataset.value_range import to_unit_range
from loss.adversarial import mean_abs_difference
from loss.vggface import (
    PerceptualWeightsError,
    features_state,
    load_vggface_features,
    vgg_features,
)
from params.config import LossConfig
from utils.files import load_weights

log = logging.getLogger(__name__)

# Indices into `features` of the ReLU after conv1_1, conv2_1, conv3_1, conv4_1, conv5_1.
VGG19_LAYERS = (1, 6, 11, 20, 29)
VGGFACE_LAYERS = (1, 6, 11, 18, 25)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGGFACE_MEAN_BGR = (93.5940, 104.7624, 129.1863)


class InputConvention(nn.Module):
    """RGB in [0, 1] (B, 3, H, W) -> a VGG's own input: channels reversed to BGR when asked, then
    x * scale + offset per channel.

    The constants are buffers: they move with the loss to its device once, instead of being
    made from Python numbers at every call (a host-to-device copy each time on a GPU). Stored
    in the compute precision with the rest of the frozen network (a bf16 constant is within
    0.4% of its value, as is the bf16 input that autocast gives the first convolution).
    """

    def __init__(self, bgr: bool, scale: Sequence[float], offset: Sequence[float]) -> None:
        super().__init__()
        self.bgr = bgr
        self.register_buffer("scale", torch.tensor(scale).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("offset", torch.tensor(offset).view(1, 3, 1, 1), persistent=False)

    def forward(self, rgb01: torch.Tensor) -> torch.Tensor:
        return (rgb01.flip(1) if self.bgr else rgb01) * self.scale + self.offset


def imagenet_preprocess() -> InputConvention:
    """torchvision's ImageNet networks: RGB, (x - mean) / std."""
    return InputConvention(
        False,
        [1 / s for s in IMAGENET_STD],
        [-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)],
    )


def caffe_vggface_preprocess() -> InputConvention:
    """Caffe's VGGFace: BGR, 0..255, minus its mean pixel."""
    return InputConvention(True, [255.0] * 3, [-m for m in VGGFACE_MEAN_BGR])


def load_vgg19_features(path: str | Path | None) -> nn.Sequential:
    """torchvision VGG19 ImageNet `features`, from a file or torchvision's cache."""
    features = vgg_features(19)
    if path is not None:
        state = load_weights(path, "loss.vgg19_weights", PerceptualWeightsError)
    else:
        try:  # torchvision's cache, downloaded there when online
            state = VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=False)
        except Exception as error:
            raise PerceptualWeightsError(
                "VGG19 ImageNet weights are not available offline and could not be downloaded "
                f"({type(error).__name__}). Download torchvision's vgg19-dcbb9e9d.pth and pass "
                "--set loss.vgg19_weights=/path/to/vgg19-dcbb9e9d.pth"
            ) from error
    try:
        features.load_state_dict(features_state(state))
    except RuntimeError as error:
        raise PerceptualWeightsError(
            f"loss.vgg19_weights: {path} is not a torchvision VGG19 state dict: {error}"
        ) from error
    return features


class FrozenFeatures(nn.Module):
    """A frozen VGG trunk that returns the activations at the given `features` indices."""

    def __init__(
        self,
        features: nn.Sequential,
        layers: Sequence[int],
        preprocess: InputConvention,
    ) -> None:
        super().__init__()
        # In-place ReLUs (torchvision's) are safe: a captured activation is a ReLU's output,
        # and the next layer (a convolution or a pooling) never writes into its input.
        self.features = features[: max(layers) + 1]
        self.layers = set(layers)
        self.preprocess = preprocess
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FrozenFeatures:
        return super().train(False)  # always eval, whatever the caller's mode

    def forward(self, rgb01: torch.Tensor) -> list[torch.Tensor]:
        h = self.preprocess(rgb01)
        activations = []
        for index, module in enumerate(self.features):
            h = module(h)
            if index in self.layers:
                activations.append(h)
        return activations


def _layer_l1(
    fake: list[torch.Tensor], real: list[torch.Tensor], weights: Sequence[float]
) -> torch.Tensor:
    return sum(w * mean_abs_difference(f, r) for w, f, r in zip(weights, fake, real, strict=True))


def warn_random(what: str) -> None:
    """Say loudly that a perceptual network is random (tests and smoke runs only)."""
    message = (
        f"loss.random_perceptual_networks is on: {what} RANDOM; the perceptual loss is "
        "meaningless (tests and smoke runs only)"
    )
    warnings.warn(message, stacklevel=3)
    log.warning(message)


class ContentLoss(nn.Module):
    """Weighted L1 over VGG19 and VGGFace activations; returns each term separately."""

    def __init__(self, config: LossConfig, output_activation: str) -> None:
        super().__init__()
        if config.random_perceptual_networks:
            warn_random("VGG19 and VGGFace are")
            vgg19_trunk, vggface_trunk = vgg_features(19), vgg_features(16)
        else:
            vgg19_trunk = load_vgg19_features(config.vgg19_weights)
            vggface_trunk = load_vggface_features(
                config.vggface_weights, config.vggface_input_order
            )
        for name, weights in (
            ("vgg19_layer_weights", config.vgg19_layer_weights),
            ("vggface_layer_weights", config.vggface_layer_weights),
        ):
            if len(weights) != 5:
                raise ValueError(f"loss.{name} needs 5 values, got {len(weights)}")
        self.vgg19 = FrozenFeatures(vgg19_trunk, VGG19_LAYERS, imagenet_preprocess())
        self.vggface = FrozenFeatures(vggface_trunk, VGGFACE_LAYERS, caffe_vggface_preprocess())
        self.config = config
        self.output_activation = output_activation

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> dict[str, torch.Tensor]:
        """Weighted 'vgg19' and 'vggface' terms for generator-range images."""
        fake01 = to_unit_range(fake, self.output_activation)
        real01 = to_unit_range(real, self.output_activation)
        terms = {}
        for name, network, weight, layer_weights in (
            ("vgg19", self.vgg19, self.config.vgg19_weight, self.config.vgg19_layer_weights),
            (
                "vggface",
                self.vggface,
                self.config.vggface_weight,
                self.config.vggface_layer_weights,
            ),
        ):
            with torch.no_grad():
                real_features = network(real01)
            terms[name] = weight * _layer_l1(network(fake01), real_features, layer_weights)
        return terms


class Vgg19Distance(nn.Module):
    """Mean L1 between VGG19 activations at the first ``layers`` of relu1_1 ... relu5_1.

    For distillation (person/distill.py): the student's frames against the teacher's, both in
    the generator's output range. VGG19 is torchvision's ImageNet network from
    ``loss.vgg19_weights`` (PerceptualWeightsError when missing), random only with
    ``loss.random_perceptual_networks``. Layers beyond the last used are not kept.
    """

    def __init__(self, config: LossConfig, output_activation: str, layers: int) -> None:
        super().__init__()
        if not 1 <= layers <= len(VGG19_LAYERS):
            raise ValueError(f"layers must be 1..{len(VGG19_LAYERS)}, got {layers}")
        if config.random_perceptual_networks:
            warn_random("VGG19 is")
            trunk = vgg_features(19)
        else:
            trunk = load_vgg19_features(config.vgg19_weights)
        self.network = FrozenFeatures(trunk, VGG19_LAYERS[:layers], imagenet_preprocess())
        self.output_activation = output_activation

    def forward(self, fake: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            wanted = self.network(to_unit_range(target, self.output_activation))
        found = self.network(to_unit_range(fake, self.output_activation))
        return sum(mean_abs_difference(f, w) for f, w in zip(found, wanted, strict=True)) / len(
            found
        )
