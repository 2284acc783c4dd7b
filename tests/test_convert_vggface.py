"""The converter reads .caffemodel files that this test writes byte by byte in Caffe's
protobuf format (field numbers from caffe.proto), in both the old `layers` (V1) and the new
`layer` form, and must return the weights exactly."""

import itertools
import struct

import numpy as np
import pytest
import torch

from loss.convert_vggface import CaffeFormatError, caffe_to_state_dict, main, read_caffemodel
from loss.vggface import (
    INPUT_ORDER_KEY,
    VGGFACE_CONV_INDICES,
    PerceptualWeightsError,
    load_vggface_features,
    vgg_features,
)

CONV_NAMES = [f"conv{b}_{i}" for b, n in zip(range(1, 6), (2, 2, 3, 3, 3)) for i in range(1, n + 1)]


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def tag(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def length_delimited(number: int, payload: bytes) -> bytes:
    return tag(number, 2) + varint(len(payload)) + payload


def blob(array: np.ndarray, legacy: bool) -> bytes:
    data = length_delimited(5, struct.pack(f"<{array.size}f", *array.flatten()))
    if legacy:  # num, channels, height, width as int32 fields 1-4 (4-D, padded with 1s)
        dims = [1] * (4 - array.ndim) + list(array.shape)
        return b"".join(tag(n, 0) + varint(d) for n, d in zip((1, 2, 3, 4), dims)) + data
    shape = length_delimited(1, b"".join(varint(d) for d in array.shape))
    return length_delimited(7, shape) + data


def layer(name: str, kind: str, blobs: list[np.ndarray], v1: bool) -> bytes:
    if v1:  # V1LayerParameter: name 4, type 5 (enum CONVOLUTION 4, INNER_PRODUCT 14), blobs 6
        enum = {"conv": 4, "linear": 14, "relu": 18}[kind]
        body = length_delimited(4, name.encode()) + tag(5, 0) + varint(enum)
        body += b"".join(length_delimited(6, blob(b, legacy=True)) for b in blobs)
        return length_delimited(2, body)
    # LayerParameter: name 1, type 2 (string), blobs 7; NetParameter.layer is field 100
    names = {"conv": "Convolution", "linear": "InnerProduct", "relu": "ReLU"}
    body = length_delimited(1, name.encode()) + length_delimited(2, names[kind].encode())
    body += b"".join(length_delimited(7, blob(b, legacy=False)) for b in blobs)
    return length_delimited(100, body)


def make_weights(rng, channels=(3, 2, 2, 3, 3, 2, 2, 2, 3, 3, 3, 2, 2, 2)):
    convs = [
        (rng.standard_normal((out, cin, 3, 3)).astype(np.float32), rng.standard_normal(out))
        for cin, out in itertools.pairwise(channels)
    ]
    linears = [
        (rng.standard_normal((5, 8)).astype(np.float32), rng.standard_normal(5)) for _ in range(3)
    ]
    return [(w, b.astype(np.float32)) for w, b in convs], [
        (w, b.astype(np.float32)) for w, b in linears
    ]


def write_caffemodel(path, convs, linears, v1: bool) -> None:
    net = length_delimited(1, b"VGG_FACE_16_layers")
    for name, (w, b) in zip(CONV_NAMES, convs):
        net += layer(name, "conv", [w, b], v1)
        net += layer(f"relu{name[4:]}", "relu", [], v1)
    for i, (w, b) in enumerate(linears):
        net += layer(f"fc{6 + i}", "linear", [w, b], v1)
    path.write_bytes(net)


@pytest.mark.parametrize("v1", [True, False], ids=["old-layers-form", "new-layer-form"])
def test_converter_round_trips_exactly(tmp_path, v1):
    convs, linears = make_weights(np.random.default_rng(0))
    model = tmp_path / "VGG_FACE.caffemodel"
    write_caffemodel(model, convs, linears, v1)
    out = tmp_path / "vggface.pth"
    assert main(["--caffemodel", str(model), "--out", str(out)]) == 0
    state = torch.load(out, weights_only=True)
    for index, (w, b) in zip(VGGFACE_CONV_INDICES, convs):
        assert np.array_equal(state[f"features.{index}.weight"].numpy(), w)
        assert np.array_equal(state[f"features.{index}.bias"].numpy(), b)
    for index, (w, b) in zip((0, 3, 6), linears):
        assert np.array_equal(state[f"classifier.{index}.weight"].numpy(), w)
        assert np.array_equal(state[f"classifier.{index}.bias"].numpy(), b)
    assert state.pop(INPUT_ORDER_KEY) == "bgr"  # the Caffe model's convention, recorded
    assert len(state) == 2 * (13 + 3)
    names = [entry.name for entry in read_caffemodel(model) if entry.kind == "conv"]
    assert names == CONV_NAMES


def test_converter_refuses_to_overwrite_and_rejects_garbage(tmp_path):
    convs, linears = make_weights(np.random.default_rng(1))
    model = tmp_path / "VGG_FACE.caffemodel"
    write_caffemodel(model, convs, linears, v1=True)
    out = tmp_path / "vggface.pth"
    out.write_bytes(b"keep me")
    with pytest.raises(SystemExit):
        main(["--caffemodel", str(model), "--out", str(out)])
    assert out.read_bytes() == b"keep me"
    garbage = tmp_path / "garbage.caffemodel"
    garbage.write_bytes(np.random.default_rng(2).bytes(4096))
    assert main(["--caffemodel", str(garbage), "--out", str(tmp_path / "g.pth")]) == 1
    assert not (tmp_path / "g.pth").exists()
    with pytest.raises(CaffeFormatError):
        caffe_to_state_dict(read_caffemodel(garbage))


def test_vggface_loads_converted_and_caffe_named_state_dicts(tmp_path):
    trunk = vgg_features(16)
    state = {f"features.{k}": v for k, v in trunk.state_dict().items()}
    path = tmp_path / "vggface.pth"
    torch.save(state, path)
    loaded = load_vggface_features(path, "bgr")
    assert torch.equal(loaded[28].weight, trunk[28].weight)
    caffe_named = {}
    for name, index in zip(CONV_NAMES, VGGFACE_CONV_INDICES):
        caffe_named[f"{name}.weight"] = trunk[index].weight
        caffe_named[f"{name}.bias"] = trunk[index].bias
    torch.save(caffe_named, path)
    assert torch.equal(load_vggface_features(path, "bgr")[0].bias, trunk[0].bias)


def test_a_foreign_vggface_file_needs_its_colour_order_and_rgb_is_converted(tmp_path):
    trunk = vgg_features(16)
    caffe_named = {}
    for name, index in zip(CONV_NAMES, VGGFACE_CONV_INDICES):
        caffe_named[f"{name}.weight"] = trunk[index].weight
        caffe_named[f"{name}.bias"] = trunk[index].bias
    path = tmp_path / "vgg_face_dag.pth"  # MatConvNet's vgg_face: RGB input, Caffe-style names
    torch.save(caffe_named, path)
    with pytest.raises(PerceptualWeightsError, match="loss.vggface_input_order"):
        load_vggface_features(path)  # silently feeding BGR would be SPEC mistake 1 again
    rgb = load_vggface_features(path, "rgb")
    # Converted to the one convention: BGR input through the flipped first layer gives what
    # the RGB file gives on RGB input.
    image_rgb = torch.rand(1, 3, 8, 8) * 255 - 110
    expected = torch.nn.functional.conv2d(image_rgb, trunk[0].weight, trunk[0].bias, padding=1)
    assert torch.allclose(rgb[0](image_rgb.flip(1)), expected, atol=1e-4)
    with pytest.raises(PerceptualWeightsError, match="neither"):
        load_vggface_features(path, "brg")


def test_files_of_our_converter_say_bgr_and_a_contradicting_option_is_refused(tmp_path):
    state = {f"features.{k}": v for k, v in vgg_features(16).state_dict().items()}
    out = tmp_path / "vggface.pth"
    torch.save({**state, INPUT_ORDER_KEY: "bgr"}, out)  # as main() writes it (round trip above)
    load_vggface_features(out)  # no option needed
    with pytest.raises(PerceptualWeightsError, match="unset the option"):
        load_vggface_features(out, "rgb")


def test_vggface_missing_or_wrong_weights_name_the_option(tmp_path):
    with pytest.raises(PerceptualWeightsError, match="loss.vggface_weights"):
        load_vggface_features(None)
    with pytest.raises(PerceptualWeightsError, match="loss.vggface_weights"):
        load_vggface_features(tmp_path / "missing.pth")
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, wrong)
    with pytest.raises(PerceptualWeightsError, match="not a VGGFace"):
        load_vggface_features(wrong)
