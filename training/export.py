"""The meta-model: what the person scripts need of a training run, and nothing else.

    python -m training.export RUN_DIR_OR_CHECKPOINT --out meta.pt

E, G (with P), D's trunk with w_0 and b, and the config: no W, no optimiser state, so a few
hundred MB instead of the checkpoint's gigabytes at VoxCeleb2 scale. ``identity`` is a hash of
the weights: person files record which meta-model they came from.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from network import Discriminator, Embedder, Generator
from params.config import Config, ConfigError, load_config_dict
from utils.files import atomic_save, load_versioned

FORMAT = "talking-heads/meta-model"
VERSION = 1
META_MODEL_NAME = "meta.pt"
NETWORKS = ("embedder", "generator", "discriminator")


class MetaModelError(RuntimeError):
    """A file that is not a usable meta-model; the message names the file and the problem."""


def weights_identity(states: dict[str, dict[str, torch.Tensor]]) -> str:
    """sha256 over every tensor's name and bytes: the same weights give the same identity."""
    digest = hashlib.sha256()
    for network in NETWORKS:
        for name, tensor in sorted(states[network].items()):
            digest.update(f"{network}.{name}".encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def export_meta_model(checkpoint: dict[str, object], path: Path) -> Path:
    """Write the meta-model of a loaded training checkpoint (training/checkpoint.py)."""
    states = {network: checkpoint[network] for network in NETWORKS}
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "step": checkpoint["step"],
        "config": checkpoint["config"],
        "identity": weights_identity(states),
        **states,
    }
    atomic_save(payload, path)
    return path


@dataclass
class MetaModel:
    config: Config
    embedder: Embedder
    generator: Generator
    discriminator: Discriminator
    identity: str
    step: int


def load_meta_model(path: str | Path, device: torch.device | str = "cpu") -> MetaModel:
    """The networks of a meta-model file, in eval mode; MetaModelError says what is wrong."""
    path = Path(path)
    hint = " (make one with python -m training.export RUN_DIR)"
    payload = load_versioned(path, FORMAT, VERSION, "meta-model", MetaModelError, hint)
    try:
        config = load_config_dict(payload["config"])
    except ConfigError as error:
        raise MetaModelError(f"{path}: its config does not fit this code: {error}") from error
    networks = {
        "embedder": Embedder(config.model),
        "generator": Generator(config.model),
        "discriminator": Discriminator(config.model),
    }
    for name, network in networks.items():
        try:
            network.load_state_dict(payload[name])
        except (KeyError, RuntimeError) as error:
            raise MetaModelError(f"{path}: the {name} does not fit its config: {error}") from error
        network.to(device).eval()
    return MetaModel(config, **networks, identity=payload["identity"], step=payload["step"])


def main(argv: list[str] | None = None) -> int:
    from training.checkpoint import CheckpointError, list_checkpoints, load_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "source", type=Path, help="a run folder (newest checkpoint) or a checkpoint"
    )
    parser.add_argument("--out", type=Path, required=True, help="meta-model file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.overwrite:
        parser.error(f"{args.out} exists; pass --overwrite to replace it")
    source = args.source
    if source.is_dir():
        checkpoints = list_checkpoints(source)
        if not checkpoints:
            parser.error(f"no checkpoint in {source / 'checkpoints'}")
        source = checkpoints[-1]
    try:
        export_meta_model(load_checkpoint(source), args.out)
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} (from {source})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
