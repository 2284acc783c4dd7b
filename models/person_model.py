"""The person model: one file format for feed-forward (embedded) and fine-tuned persons.

A person model drives the generator with no embedder and no discriminator: G's weights and a
fixed psi (P e_hat for a feed-forward person, the trained psi' after fine-tuning), the crop and
landmark-picture settings every frame of the person must be made with, and the person's own
frames and landmarks (fine-tuning trains on them; retargeting keeps the person's face shape
from them). The file is plain tensors and strings, loaded with weights_only=True; it names the
meta-model it came from (its identity hash) and has a version.

A distilled person ('distilled', person/distill.py) is the same file with a student network
(network/student.py) in place of G and no psi: its config's ``distill`` section says the
student's widths, ``teacher`` names the person model it learnt from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from dataset.face import CropSettings
from network import Generator
from network.student import Student
from params.config import Config, ConfigError, load_config_dict, to_dict
from utils.files import atomic_save, load_versioned
from utils.images import decode_jpeg
from utils.tensors import tensor_bytes

FORMAT = "talking-heads/person-model"
VERSION = 1
KINDS = ("feed-forward", "fine-tuned", "distilled")


class PersonModelError(RuntimeError):
    """A file that is not a usable person model; the message names the file and the problem."""


@dataclass
class PersonModel:
    """G with a fixed psi (or a student), and what the person's frames are made of."""

    kind: str  # 'feed-forward' | 'fine-tuned' | 'distilled'
    config: Config  # the meta-model's: sizes, output range, crop settings (+ the student's)
    generator: Generator | Student
    psi: torch.Tensor | None  # (1, adain_param_count); None for a student
    frames: list[bytes]  # the person's T crops, JPEG
    landmarks: np.ndarray  # (T, 68, 2) float32, crop coordinates
    meta_identity: str  # the meta-model's identity hash
    embedding: torch.Tensor | None = None  # e_hat (feed-forward persons and their fine-tunes)
    sources: list[str] = field(default_factory=list)  # what the frames were taken from
    teacher: str | None = None  # a distilled person: the identity of the model it learnt from

    @property
    def crop_settings(self) -> CropSettings:
        return CropSettings.from_config(self.config)

    def frame_images(self) -> np.ndarray:
        """The person's crops, RGB uint8 (T, S, S, 3)."""
        return np.stack([decode_jpeg(jpeg) for jpeg in self.frames])

    @property
    def distilled(self) -> bool:
        return self.kind == "distilled"

    @property
    def identity(self) -> str:
        """A hash of what the person's frames are generated from (weights, psi, frames)."""
        digest = hashlib.sha256(self.kind.encode())
        for tensor in [*self.network_state().values(), self.psi]:
            if tensor is not None:
                digest.update(tensor_bytes(tensor, torch.float32))
        for frame in self.frames:
            digest.update(frame)
        return digest.hexdigest()[:16]

    @torch.no_grad()
    def generate(self, landmark_images: torch.Tensor) -> torch.Tensor:
        """Landmark pictures (B, 3, S, S) in the output range -> frames of the person."""
        if self.psi is None:
            return self.generator(landmark_images)
        psi = self.psi.to(landmark_images.device, landmark_images.dtype)
        return self.generator.synthesize(landmark_images, psi)

    def to(self, device: torch.device | str) -> PersonModel:
        self.generator.to(device)
        if self.psi is not None:
            self.psi = self.psi.to(device)
        return self

    def network_state(self) -> dict[str, torch.Tensor]:
        """The generator's (or student's) tensors as the file keeps them: P is left out (psi is
        fixed), on the CPU."""
        return {
            name: tensor.detach().cpu()
            for name, tensor in self.generator.state_dict().items()
            if not name.startswith("projection.") and name != "psi"
        }

    def save(self, path: str | Path) -> Path:
        """Write the file atomically."""
        state = self.network_state()
        payload = {
            "format": FORMAT,
            "version": VERSION,
            "kind": self.kind,
            "config": to_dict(self.config),
            "generator": state,
            "psi": None if self.psi is None else self.psi.detach().float().cpu(),
            "frames": [torch.frombuffer(bytearray(j), dtype=torch.uint8) for j in self.frames],
            "landmarks": torch.from_numpy(np.asarray(self.landmarks, np.float32)),
            "meta_identity": self.meta_identity,
            "embedding": None if self.embedding is None else self.embedding.detach().cpu(),
            "sources": list(self.sources),
            "teacher": self.teacher,
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
    generator = make_network(payload["kind"], config)
    missing, unexpected = generator.load_state_dict(payload["generator"], strict=False)
    if unexpected or any(not name.startswith("projection.") for name in missing):
        raise PersonModelError(
            f"{path}: the generator does not fit its config (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]})"
        )
    psi = payload["psi"]
    if isinstance(generator, Student) != (psi is None):
        raise PersonModelError(f"{path}: a {payload['kind']} person model with psi {psi!r:.40}")
    if psi is not None and psi.shape != (1, generator.adain_param_count):
        raise PersonModelError(
            f"{path}: psi has shape {tuple(psi.shape)}, the generator needs "
            f"(1, {generator.adain_param_count})"
        )
    generator.to(device).eval()
    return PersonModel(
        kind=payload["kind"],
        config=config,
        generator=generator,
        psi=None if psi is None else psi.to(device),
        frames=[bytes(t.numpy().tobytes()) for t in payload["frames"]],
        landmarks=payload["landmarks"].numpy(),
        meta_identity=payload["meta_identity"],
        embedding=payload["embedding"],
        sources=list(payload["sources"]),
        teacher=payload.get("teacher"),
    )


def make_network(kind: str, config: Config) -> Generator | Student:
    """The untrained network of a person model of this kind: G, or the config's student."""
    if kind == "distilled":
        tune = config.distill
        return Student.for_size(
            config.model.image_size, tune.widths, tune.blocks, config.model.output_activation
        )
    return Generator(config.model)
