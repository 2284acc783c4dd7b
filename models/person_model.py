"""The person model: one file format for feed-forward (embedded) and fine-tuned persons.

A person model drives the generator with no embedder and no discriminator: G's weights and a
fixed psi (P e_hat for a feed-forward person, the trained psi' after fine-tuning), the crop and
landmark-picture settings every frame of the person must be made with, and the person's own
frames and landmarks (fine-tuning trains on them; retargeting keeps the person's face shape
from them). The file is plain tensors and strings, loaded with weights_only=True; it names the
meta-model it came from (its identity hash) and has a version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dataset.face import CropSettings
from network import Generator
from params.config import Config, ConfigError, load_config_dict, to_dict
from utils.files import atomic_save, load_versioned
from utils.images import decode_jpeg

FORMAT = "talking-heads/person-model"
VERSION = 1
KINDS = ("feed-forward", "fine-tuned")


class PersonModelError(RuntimeError):
    """A file that is not a usable person model; the message names the file and the problem."""


@dataclass
class PersonModel:
    """G with a fixed psi, and what the person's frames are made of."""

    kind: str  # 'feed-forward' | 'fine-tuned'
    config: Config  # the meta-model's: sizes, output range, crop settings
    generator: Generator
    psi: torch.Tensor  # (1, adain_param_count)
    frames: list[bytes]  # the person's T crops, JPEG
    landmarks: np.ndarray  # (T, 68, 2) float32, crop coordinates
    meta_identity: str  # the meta-model's identity hash
    embedding: torch.Tensor | None = None  # e_hat (feed-forward persons and their fine-tunes)
    sources: list[str] = field(default_factory=list)  # what the frames were taken from

    @property
    def crop_settings(self) -> CropSettings:
        return CropSettings.from_config(self.config)

    def frame_images(self) -> np.ndarray:
        """The person's crops, RGB uint8 (T, S, S, 3)."""
        return np.stack([decode_jpeg(jpeg) for jpeg in self.frames])

    @torch.no_grad()
    def generate(self, landmark_images: torch.Tensor) -> torch.Tensor:
        """Landmark pictures (B, 3, S, S) in the output range -> frames of the person."""
        psi = self.psi.to(landmark_images.device, landmark_images.dtype)
        return self.generator.synthesize(landmark_images, psi)

    def to(self, device: torch.device | str) -> PersonModel:
        self.generator.to(device)
        self.psi = self.psi.to(device)
        return self

    def save(self, path: str | Path) -> Path:
        """Write the file atomically; P is left out (psi is fixed)."""
        state = {
            name: tensor.detach().cpu()
            for name, tensor in self.generator.state_dict().items()
            if not name.startswith("projection.") and name != "psi"
        }
        payload = {
            "format": FORMAT,
            "version": VERSION,
            "kind": self.kind,
            "config": to_dict(self.config),
            "generator": state,
            "psi": self.psi.detach().float().cpu(),
            "frames": [torch.frombuffer(bytearray(j), dtype=torch.uint8) for j in self.frames],
            "landmarks": torch.from_numpy(np.asarray(self.landmarks, np.float32)),
            "meta_identity": self.meta_identity,
            "embedding": None if self.embedding is None else self.embedding.detach().cpu(),
            "sources": list(self.sources),
        }
        atomic_save(payload, path)
        return Path(path)


def load_person_model(path: str | Path, device: torch.device | str = "cpu") -> PersonModel:
    """Read a person model; PersonModelError names the file and what is wrong with it."""
    path = Path(path)
    hint = " (make one with embedder_inference.py; a training checkpoint or meta-model is not one)"
    payload = load_versioned(path, FORMAT, VERSION, "person model", PersonModelError, hint)
    if payload.get("kind") not in KINDS:
        raise PersonModelError(f"{path}: unknown kind {payload.get('kind')!r}")
    try:
        config = load_config_dict(payload["config"])
    except ConfigError as error:
        raise PersonModelError(f"{path}: its config does not fit this code: {error}") from error
    generator = Generator(config.model)
    missing, unexpected = generator.load_state_dict(payload["generator"], strict=False)
    if unexpected or any(not name.startswith("projection.") for name in missing):
        raise PersonModelError(
            f"{path}: the generator does not fit its config (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]})"
        )
    psi = payload["psi"]
    if psi.shape != (1, generator.adain_param_count):
        raise PersonModelError(
            f"{path}: psi has shape {tuple(psi.shape)}, the generator needs "
            f"(1, {generator.adain_param_count})"
        )
    generator.to(device).eval()
    return PersonModel(
        kind=payload["kind"],
        config=config,
        generator=generator,
        psi=psi.to(device),
        frames=[bytes(t.numpy().tobytes()) for t in payload["frames"]],
        landmarks=payload["landmarks"].numpy(),
        meta_identity=payload["meta_identity"],
        embedding=payload["embedding"],
        sources=list(payload["sources"]),
    )
