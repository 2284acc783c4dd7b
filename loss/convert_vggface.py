"""Convert the original VGGFace Caffe model to a PyTorch state dict, with no Caffe installed.

A ``.caffemodel`` is a protobuf ``NetParameter``. Its layers are ``layer`` entries (field
100, ``LayerParameter``, type as a string) in newer files and ``layers`` entries (field 2,
``V1LayerParameter``, type as an enum) in older ones, such as VGG_FACE.caffemodel. Each
layer's ``blobs`` hold the weights (``BlobProto``: shape or num/channels/height/width,
float data). Only the protobuf wire format is needed to read them, so it is decoded here.

Usage: ``python -m loss.convert_vggface --caffemodel VGG_FACE.caffemodel --out vggface.pth``
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from loss.vggface import INPUT_ORDER_KEY, VGGFACE_CONV_INDICES, VGGFACE_LINEAR_INDICES
from utils.files import atomic_save, describe_os_error

# Field numbers from Caffe's caffe.proto.
NET_LAYERS_V1, NET_LAYER = 2, 100
LAYER_NAME, LAYER_TYPE, LAYER_BLOBS = 1, 2, 7
V1_NAME, V1_TYPE, V1_BLOBS = 4, 5, 6
V1_CONVOLUTION, V1_INNER_PRODUCT = 4, 14
BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH, BLOB_DATA, BLOB_SHAPE = 1, 2, 3, 4, 5, 7
BLOB_DOUBLE_DATA, SHAPE_DIM = 8, 1

WIRE_VARINT, WIRE_FIXED64, WIRE_BYTES, WIRE_FIXED32 = 0, 1, 2, 5


class CaffeFormatError(ValueError):
    """The file is not a Caffe model this converter understands."""


def _varint(buffer: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buffer):
            raise CaffeFormatError("truncated varint")
        byte = buffer[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(buffer: memoryview) -> Iterator[tuple[int, int, object]]:
    """Yield (field number, wire type, value) of one message; bytes values stay views."""
    pos = 0
    while pos < len(buffer):
        key, pos = _varint(buffer, pos)
        number, wire = key >> 3, key & 7
        if wire == WIRE_VARINT:
            value, pos = _varint(buffer, pos)
        elif wire == WIRE_FIXED64:
            value, pos = buffer[pos : pos + 8], pos + 8
        elif wire == WIRE_FIXED32:
            value, pos = buffer[pos : pos + 4], pos + 4
        elif wire == WIRE_BYTES:
            length, pos = _varint(buffer, pos)
            value, pos = buffer[pos : pos + length], pos + length
        else:
            raise CaffeFormatError(f"unsupported protobuf wire type {wire}")
        if pos > len(buffer):
            raise CaffeFormatError("truncated message")
        yield number, wire, value


def _packed_varints(buffer: memoryview) -> list[int]:
    values, pos = [], 0
    while pos < len(buffer):
        value, pos = _varint(buffer, pos)
        values.append(value)
    return values


@dataclass
class CaffeLayer:
    name: str
    kind: str  # 'conv', 'linear' or 'other'
    blobs: list[np.ndarray] = field(default_factory=list)


def _parse_blob(buffer: memoryview) -> np.ndarray:
    legacy = {BLOB_NUM: 1, BLOB_CHANNELS: 1, BLOB_HEIGHT: 1, BLOB_WIDTH: 1}
    shape: list[int] | None = None
    chunks: list[np.ndarray] = []
    for number, wire, value in _fields(buffer):
        if number in legacy and wire == WIRE_VARINT:
            legacy[number] = value
        elif number == BLOB_SHAPE:
            shape = []
            for dim_number, dim_wire, dim in _fields(value):
                if dim_number == SHAPE_DIM:
                    shape += _packed_varints(dim) if dim_wire == WIRE_BYTES else [dim]
        elif number == BLOB_DATA:  # packed (bytes) or, in odd writers, one fixed32 each
            chunks.append(np.frombuffer(value, dtype="<f4"))
        elif number == BLOB_DOUBLE_DATA:
            chunks.append(np.frombuffer(value, dtype="<f8").astype(np.float32))
    data = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if shape is None:
        shape = [legacy[BLOB_NUM], legacy[BLOB_CHANNELS], legacy[BLOB_HEIGHT], legacy[BLOB_WIDTH]]
    if int(np.prod(shape)) != data.size:
        raise CaffeFormatError(f"blob of shape {shape} holds {data.size} values")
    return data.reshape(shape)


def _parse_layer(buffer: memoryview, v1: bool) -> CaffeLayer:
    name_field, type_field, blobs_field = (
        (V1_NAME, V1_TYPE, V1_BLOBS) if v1 else (LAYER_NAME, LAYER_TYPE, LAYER_BLOBS)
    )
    layer = CaffeLayer(name="", kind="other")
    for number, _, value in _fields(buffer):
        if number == name_field:
            layer.name = bytes(value).decode()
        elif number == type_field:
            kind = value if v1 else bytes(value).decode()
            if kind in (V1_CONVOLUTION, "Convolution"):
                layer.kind = "conv"
            elif kind in (V1_INNER_PRODUCT, "InnerProduct"):
                layer.kind = "linear"
        elif number == blobs_field:
            layer.blobs.append(_parse_blob(value))
    return layer


def read_caffemodel(path: str | Path) -> list[CaffeLayer]:
    """All layers of a .caffemodel, in file order, in either protobuf form."""
    buffer = memoryview(Path(path).read_bytes())
    layers = []
    try:
        for number, wire, value in _fields(buffer):
            if wire == WIRE_BYTES and number in (NET_LAYER, NET_LAYERS_V1):
                layers.append(_parse_layer(value, v1=number == NET_LAYERS_V1))
    except CaffeFormatError as error:
        raise CaffeFormatError(f"{path}: not a readable Caffe model ({error})") from error
    return layers


def caffe_to_state_dict(layers: list[CaffeLayer]) -> dict[str, torch.Tensor]:
    """Map the 13 convolutions and 3 inner products, in order, onto torchvision's VGG16 keys."""
    convs = [layer for layer in layers if layer.kind == "conv" and layer.blobs]
    linears = [layer for layer in layers if layer.kind == "linear" and layer.blobs]
    if len(convs) != len(VGGFACE_CONV_INDICES):
        raise CaffeFormatError(
            f"expected {len(VGGFACE_CONV_INDICES)} convolution layers with weights "
            f"(VGG16), found {len(convs)}: {[layer.name for layer in convs]}"
        )
    state: dict[str, torch.Tensor] = {}
    targets = [
        (f"features.{i}", layer, 4) for i, layer in zip(VGGFACE_CONV_INDICES, convs, strict=True)
    ]
    # fc6-fc8 are optional: the content loss needs only the convolutions.
    linears = linears[: len(VGGFACE_LINEAR_INDICES)]
    linear_pairs = zip(VGGFACE_LINEAR_INDICES, linears, strict=False)
    targets += [(f"classifier.{i}", layer, 2) for i, layer in linear_pairs]
    for key, layer, ndim in targets:
        weight = layer.blobs[0]
        if ndim == 2:  # inner products are stored as (1, 1, out, in) in the legacy form
            weight = weight.reshape(weight.shape[-2], weight.shape[-1])
        state[f"{key}.weight"] = torch.from_numpy(weight.copy())
        if len(layer.blobs) > 1:
            state[f"{key}.bias"] = torch.from_numpy(layer.blobs[1].reshape(-1).copy())
    return state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--caffemodel", required=True, help="VGG_FACE.caffemodel")
    parser.add_argument("--out", required=True, help="state dict to write (.pth)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    source, target = Path(args.caffemodel), Path(args.out)
    if not source.is_file():
        parser.error(f"--caffemodel: no such file: {source}")
    if target.exists() and target.samefile(source):
        parser.error(f"--out: {target} is the --caffemodel itself: choose another output")
    if target.exists() and not args.overwrite:
        parser.error(f"--out: {target} exists; pass --overwrite to replace it")
    try:
        state = caffe_to_state_dict(read_caffemodel(source))
        atomic_save({**state, INPUT_ORDER_KEY: "bgr"}, target)
    except CaffeFormatError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"error: {describe_os_error(error)}", file=sys.stderr)
        return 2
    count = sum(t.numel() for t in state.values())
    print(f"wrote {target}: {len(state)} tensors, {count:,} values")
    return 0


if __name__ == "__main__":
    sys.exit(main())
