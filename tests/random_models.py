"""Model files with random weights for tests that need a file, not a trained model."""

from __future__ import annotations

from pathlib import Path

import torch

from models.meta_model import export_meta_model
from network.discriminator import Discriminator
from network.embedder import Embedder
from network.generator import Generator
from params.config import PARAMS_DIR, load_config, to_dict


def tiny_meta_model(path: Path, overrides: list[str] = ()) -> Path:
    """A meta-model file of params/tiny.yaml (with overrides), random networks, seed 0."""
    torch.manual_seed(0)
    config = load_config(PARAMS_DIR / "tiny.yaml", list(overrides))
    networks = {
        "embedder": Embedder(config.model).state_dict(),
        "generator": Generator(config.model).state_dict(),
        "discriminator": Discriminator(config.model).state_dict(),
    }
    return export_meta_model({"step": 0, "config": to_dict(config), **networks}, path)
