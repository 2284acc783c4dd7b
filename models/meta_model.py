"""The meta-model file: what the person scripts need of a training run, and nothing else.

E, G (with P), D's trunk with w_0 and b, and the config: no W, no optimiser state, so a few
hundred MB instead of the checkpoint's gigabytes at VoxCeleb2 scale. ``identity`` is a hash of
the weights: person files record which meta-model they came from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from network import Discriminator, Embedder, Generator
from params.config import Config, ConfigError, load_config_dict
from utils.files import atomic_save, load_versioned
from utils.tensors import tensor_bytes

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
            digest.update(tensor_bytes(tensor))
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

    def to(self, device: torch.device | str) -> MetaModel:
        for network in (self.embedder, self.generator, self.discriminator):
            network.to(device)
        return self


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
        network.eval()
    meta = MetaModel(config, **networks, identity=payload["identity"], step=payload["step"])
    return meta.to(device)
