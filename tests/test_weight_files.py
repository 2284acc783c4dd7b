"""Weight files we did not write are data, never code (VGG19, VGGFace, AlexNet, Inception).

Each loader is given a pickle whose unpickling would create a marker file (what a malicious
file named like the expected one does): it must refuse the file by name, and the marker must
not exist. Before, FID's Inception went to torch-fidelity, which unpickles with
weights_only=False: the payload ran.
"""

from __future__ import annotations

import pathlib

import pytest
import torch

from loss.perceptual import load_vgg19_features
from loss.vggface import PerceptualWeightsError, load_vggface_features
from metrics import Unavailable
from metrics.fid import Fid
from metrics.image import Lpips


class Payload:
    """Unpickled with weights_only=False, this creates the marker file."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.fixture
def payload(tmp_path):
    marker = tmp_path / "payload_ran"
    path = tmp_path / "weights.pth"
    torch.save({"features.0.weight": Payload(marker)}, path)
    torch.load(path, weights_only=False)  # the payload is real: a full unpickle runs it
    assert marker.exists()
    marker.unlink()
    return path, marker


def test_vgg19_refuses_a_pickle_with_code(payload):
    path, marker = payload
    with pytest.raises(PerceptualWeightsError, match="loss.vgg19_weights: .* not a plain weight"):
        load_vgg19_features(path)
    assert not marker.exists()


def test_vggface_refuses_a_pickle_with_code(payload):
    path, marker = payload
    with pytest.raises(PerceptualWeightsError, match="loss.vggface_weights: .* not a plain"):
        load_vggface_features(path, "bgr")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("metric", "setting"), [(Fid, "eval.fid_inception_weights"), (Lpips, "eval.lpips_alexnet")]
)
def test_evaluation_weights_refuse_a_pickle_with_code(payload, metric, setting):
    path, marker = payload
    loaded = metric.load(str(path))
    assert isinstance(loaded, Unavailable) and setting in loaded.reason
    assert "not a plain weight file" in loaded.reason
    assert not marker.exists()


def test_damaged_weight_files_are_named_not_tracebacks(tmp_path):
    damaged = tmp_path / "vgg19.pth"
    damaged.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(PerceptualWeightsError, match="loss.vgg19_weights: .*vgg19.pth"):
        load_vgg19_features(damaged)
    assert "vgg19.pth" in Fid.load(str(damaged)).reason
