"""Exporting a person's generator for deployment: landmark picture in, frame out.

    python -m live.export PERSON_MODEL --format onnx|torchscript --out FILE

The exported network is G with the person's psi folded in as a constant and spectral
normalisation folded into plain weights (at inference the normalised weights no longer
change), or a distilled person's student as it is. Input: (B, 3, S, S) float32 landmark
pictures in the model's output range ([-1, 1] for tanh); output: (B, 3, S, S) frames in the
same range. ONNX models run in onnxruntime; TorchScript ones in libtorch, without this
project's code.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import parametrize

from models.person_model import PersonModel, PersonModelError, load_person_model
from network import Generator
from runtime.cli import refuse_to_overwrite, user_error
from utils.files import atomic_torch_write, atomic_write

FORMATS = ("onnx", "torchscript")


class PersonGenerator(nn.Module):
    """A person model's generator as one plain network: psi constant, no parametrisations."""

    def __init__(self, person: PersonModel) -> None:
        super().__init__()
        self.generator = Generator(person.config.model)
        self.generator.load_state_dict(person.generator.state_dict())
        self.generator.float().eval()
        for module in list(self.generator.modules()):
            if parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
        self.register_buffer("psi", person.psi.detach().float().cpu().clone())

    def forward(self, landmarks: torch.Tensor) -> torch.Tensor:
        return self.generator.synthesize(landmarks, self.psi)


def person_network(person: PersonModel) -> nn.Module:
    """The person's generator as one fp32 CPU network, landmark pictures -> frames (a copy)."""
    if person.distilled:
        return copy.deepcopy(person.generator).float().cpu().eval()
    return PersonGenerator(person).eval()


def export_person(person: PersonModel, path: Path, kind: str) -> Path:
    """Write the person's generator as ONNX or TorchScript, atomically."""
    if kind not in FORMATS:
        raise ValueError(f"unknown export format '{kind}' (known: {', '.join(FORMATS)})")
    network = person_network(person)
    size = person.config.model.image_size
    example = torch.zeros(1, 3, size, size)
    with torch.no_grad():
        if kind == "torchscript":
            traced = torch.jit.trace(network, example)
            atomic_torch_write(path, lambda handle: torch.jit.save(traced, handle))
        else:
            atomic_write(
                path,
                lambda temp: torch.onnx.export(
                    network,
                    (example,),
                    temp,
                    input_names=["landmarks"],
                    output_names=["frame"],
                    dynamic_axes={"landmarks": {0: "batch"}, "frame": {0: "batch"}},
                    opset_version=17,
                    dynamo=False,
                ),
            )
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("person", type=Path, help="person model (either kind)")
    parser.add_argument("--format", choices=FORMATS, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    refuse_to_overwrite(parser, args.out, args.overwrite, [args.person])
    try:
        person = load_person_model(args.person)
        export_person(person, args.out, args.format)
    except (PersonModelError, OSError) as error:
        return user_error(error)
    print(
        f"wrote {args.out} ({args.format}; input (B, 3, {person.config.model.image_size}, "
        f"{person.config.model.image_size}) landmark pictures)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
