"""VGGFace (Parkhi et al. 2015): a VGG16 trained for face recognition, as a PyTorch module.

The original weights are a Caffe model; ``python -m loss.convert_vggface`` turns them into
a state dict with torchvision's VGG16 key names, which is what this module loads.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from utils.files import load_weights

# Positions of the 13 convolutions in VGG16's `features` and of the 3 linear layers
# (fc6, fc7, fc8) in its `classifier`.
VGGFACE_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
VGGFACE_LINEAR_INDICES = (0, 3, 6)
_CAFFE_CONV_NAME = re.compile(r"^conv(\d)_(\d)\.(weight|bias)$")
# Our converter writes this key next to the weights: its files take the Caffe convention.
INPUT_ORDER_KEY = "input_order"
INPUT_ORDERS = ("bgr", "rgb")


class PerceptualWeightsError(FileNotFoundError):
    """A perceptual network's weights are missing or do not fit; says which option to set."""


def vgg_features(depth: int) -> nn.Sequential:
    """torchvision's VGG16 or VGG19 `features` alone, randomly initialised.

    Building only the convolutional part skips the 120M-parameter classifier.
    """
    return make_layers(cfgs[{16: "D", 19: "E"}[depth]])


def features_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The `features.*` entries of a full VGG state dict, without the prefix."""
    prefix = "features."
    return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}


def _features_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys of `features` from a state dict in torchvision form or in Caffe layer names."""
    if any(key.startswith("features.") for key in state):
        return features_state(state)
    caffe_order = sorted(
        {m.group(1, 2) for key in state if (m := _CAFFE_CONV_NAME.match(key))},
        key=lambda pair: (int(pair[0]), int(pair[1])),
    )
    if len(caffe_order) != len(VGGFACE_CONV_INDICES):
        raise KeyError(f"expected 13 convolutions named convX_Y, found {len(caffe_order)}")
    result = {}
    for index, (block, conv) in zip(VGGFACE_CONV_INDICES, caffe_order, strict=True):
        for kind in ("weight", "bias"):
            result[f"{index}.{kind}"] = state[f"conv{block}_{conv}.{kind}"]
    return result


def load_vggface_features(path: str | Path | None, input_order: str | None = None) -> nn.Sequential:
    """VGGFace's convolutional part, taking the Caffe convention (BGR, 0..255, mean pixel off).

    The colour order a file's first convolution expects is not visible in its weights. Files
    written by ``python -m loss.convert_vggface`` say it (BGR, from the Caffe model). For any
    other file ``input_order`` (``loss.vggface_input_order``) must say it: 'bgr' for Caffe
    conversions (MMdnn and the like), 'rgb' for MatConvNet's vgg_face (a common PyTorch file
    with Caffe-style names, mean (129.19, 104.76, 93.59) in RGB order). An RGB file is
    converted on load by reversing conv1_1's input channels; both releases use the same mean
    pixel, in their own channel order, so nothing else changes.
    """
    if path is None:
        raise PerceptualWeightsError(
            "VGGFace weights are not set: convert VGG_FACE.caffemodel with "
            "`python -m loss.convert_vggface --caffemodel VGG_FACE.caffemodel --out vggface.pth` "
            "and pass --set loss.vggface_weights=vggface.pth"
        )
    path = Path(path)
    if not path.is_file():
        raise PerceptualWeightsError(
            f"loss.vggface_weights: no such file: {path} "
            "(make it with `python -m loss.convert_vggface`)"
        )
    state = load_weights(path, "loss.vggface_weights", PerceptualWeightsError)
    features = vgg_features(16)
    try:
        features.load_state_dict(_features_state(state))
    except (RuntimeError, KeyError) as error:
        raise PerceptualWeightsError(
            f"loss.vggface_weights: {path} is not a VGGFace (VGG16) state dict: {error}"
        ) from error
    if _input_order(state, input_order, path) == "rgb":
        with torch.no_grad():
            features[0].weight.copy_(features[0].weight.flip(1))
    return features


def _input_order(state: dict, configured: str | None, path: Path) -> str:
    """The colour order the file's weights expect: its own record, else the config's."""
    if configured is not None and configured not in INPUT_ORDERS:
        raise PerceptualWeightsError(
            f"loss.vggface_input_order: '{configured}' is neither of {', '.join(INPUT_ORDERS)}"
        )
    recorded = state.get(INPUT_ORDER_KEY)
    if recorded is not None:
        if configured is not None and configured != recorded:
            raise PerceptualWeightsError(
                f"loss.vggface_input_order is '{configured}' but {path} was written for "
                f"'{recorded}' input by loss.convert_vggface: unset the option"
            )
        return recorded
    if configured is None:
        raise PerceptualWeightsError(
            f"loss.vggface_weights: {path} was not written by `python -m loss.convert_vggface`, "
            "so its colour order is unknown. Set --set loss.vggface_input_order=bgr for a "
            "conversion of the Caffe model (MMdnn and the like) or =rgb for MatConvNet's "
            "vgg_face (e.g. vgg_face_dag.pth); feeding the wrong order silently weakens the "
            "content loss"
        )
    return configured
