"""A feed-forward person model from face crops that were cropped as in training (SPEC section 4).

e_NEW is the mean of E over the T crops and their landmark pictures, psi = P e_NEW, and the
person model keeps a copy of G with that psi, the crops (JPEG) and their landmarks. Embedding
photos and clips (person/embed.py) and the evaluation protocol (evaluation/protocol.py) both
make their persons here.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from dataset.face import draw_landmarks
from dataset.value_range import image_to_tensor
from models.meta_model import MetaModel
from models.person_model import PersonModel
from network import Embedder, Generator
from utils.images import encode_jpeg


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian of the grey crop (RGB uint8): higher is sharper."""
    return float(cv2.Laplacian(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


@dataclass
class Candidate:
    """One face crop a person can be made of."""

    crop: np.ndarray  # RGB uint8 (S, S, 3)
    landmarks: np.ndarray  # (68, 2) crop coordinates
    source: str  # 'path' or 'path#frame'
    sharpness: float = field(default=-1.0)  # computed from the crop when not given

    def __post_init__(self) -> None:
        if self.sharpness < 0:
            self.sharpness = sharpness(self.crop)


@torch.no_grad()
def embed_frames(
    embedder: Embedder, frames: list[Candidate], output_activation: str, size: int, batch: int = 8
) -> torch.Tensor:
    """e_hat (1, D): the mean of E over the frames and their landmark pictures."""
    device = next(embedder.parameters()).device
    embeddings = []
    for start in range(0, len(frames), batch):
        chunk = frames[start : start + batch]
        images = image_to_tensor(np.stack([c.crop for c in chunk]), output_activation)
        pictures = image_to_tensor(
            np.stack([draw_landmarks(c.landmarks, size) for c in chunk]), output_activation
        )
        per_frame = embedder.embed_frames(images[None].to(device), pictures[None].to(device))
        embeddings.append(per_frame[0])
    return torch.cat(embeddings).mean(dim=0, keepdim=True)


@torch.no_grad()
def person_psi(generator: Generator, embedding: torch.Tensor) -> torch.Tensor:
    """psi = P e_hat, computed once for the person."""
    return generator.project(embedding.to(next(generator.parameters()).device))


def assemble_person(meta: MetaModel, chosen: list[Candidate]) -> PersonModel:
    """The feed-forward person model of these crops (at least one) under this meta-model."""
    model = meta.config.model
    embedding = embed_frames(meta.embedder, chosen, model.output_activation, model.image_size)
    generator = copy.deepcopy(meta.generator).eval()
    quality = meta.config.data.jpeg_quality
    return PersonModel(
        kind="feed-forward",
        config=meta.config,
        generator=generator,
        psi=person_psi(generator, embedding),
        frames=[encode_jpeg(c.crop, quality) for c in chosen],
        landmarks=np.stack([c.landmarks for c in chosen]).astype(np.float32),
        meta_identity=meta.identity,
        embedding=embedding.cpu(),
        sources=[c.source for c in chosen],
    )
