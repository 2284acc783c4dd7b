"""End-to-end forward pass: the largest pipeline that exists so far, on bundled inputs.

Two ways in, the two flows of the project:
- photos (default ``examples/faces``): the creator's flow. Each photo is one person: dlib finds
  the 68 landmarks, the one face crop and landmark picture are made, the embedder turns them
  into e_hat, the generator draws the person from its own landmarks, D scores the result.
- ``--store STORE`` (made by ``python -m dataset.preprocess``): the researcher's flow. One
  meta-learning episode per video, K frames and a held-out target, through E, G and D exactly
  as training will run them.

The networks are freshly initialised until meta-training exists, so the generated column is
noise; what this shows is that every stage fits together at the configured size.

Usage: ``python -m examples.forward_pass [--config FILE] [--store STORE] [--out FILE.png]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import utils  # noqa: F401  (before torch: its MPS fallback, utils/__init__.py)

# isort: split
import torch

from bench.model_stats import parameter_count
from dataset.face import CropSettings, crop_face, draw_landmarks
from dataset.landmarks import make_detector
from dataset.value_range import image_to_tensor, tensor_to_image
from dataset.voxceleb import VoxCelebDataset
from network import Discriminator, Embedder, Generator
from params.config import Config, add_config_arguments, config_from_args
from utils.device import resolve_device
from utils.folders import is_os_file
from utils.images import image_grid, read_image, save_image

EXAMPLE_FACES = Path(__file__).resolve().parent / "faces"


def photo_episodes(config: Config, paths: list[Path]) -> dict[str, torch.Tensor]:
    """One-shot episodes from photos: each photo is its own source and target."""
    detector = make_detector(config.data.detector)
    settings = CropSettings.from_config(config)
    crops, pictures = [], []
    for path in paths:
        image = read_image(path)
        landmarks = detector.detect(image)
        if landmarks is None:
            print(f"skipped {path}: no face found")
            continue
        crop, crop_landmarks, _ = crop_face(image, landmarks, settings)
        crops.append(crop)
        pictures.append(draw_landmarks(crop_landmarks, settings.size))
    if not crops:
        raise SystemExit("error: no face found in any photo")
    activation = config.model.output_activation
    frames = image_to_tensor(np.stack(crops), activation)
    landmark_images = image_to_tensor(np.stack(pictures), activation)
    return {
        "frames": frames.unsqueeze(1),
        "landmark_images": landmark_images.unsqueeze(1),
        "target_frame": frames,
        "target_landmark_image": landmark_images,
        "video_index": torch.zeros(len(crops), dtype=torch.long),
    }


def store_episodes(config: Config, store: Path) -> dict[str, torch.Tensor]:
    """One meta-learning episode per video of a store (K frames + a held-out target)."""
    config.data.store = str(store)
    dataset = VoxCelebDataset.from_config(config, split="all")
    items = [dataset[index] for index in range(len(dataset))]
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_config_arguments(parser)
    parser.add_argument("--images", nargs="+", type=Path, help="photos (default: examples/faces)")
    parser.add_argument("--store", type=Path, help="take episodes from a preprocessed store")
    parser.add_argument("--out", type=Path, default=Path("out/forward_pass.png"))
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    config = config_from_args(args)
    if args.out.exists() and not args.overwrite:
        parser.error(f"{args.out} exists; pass --overwrite to replace it")
    torch.manual_seed(config.seed)
    if args.store is not None:
        batch = store_episodes(config, args.store)
    else:
        batch = photo_episodes(
            config,
            args.images or sorted(p for p in EXAMPLE_FACES.glob("*.jpg") if not is_os_file(p)),
        )

    model = config.model
    device = resolve_device(config.device)
    batch = {key: value.to(device) for key, value in batch.items()}
    embedder, generator = Embedder(model).to(device).eval(), Generator(model).to(device).eval()
    discriminator = Discriminator(model)
    discriminator.to(device).eval()
    start = time.perf_counter()
    with torch.no_grad():
        e_hat = embedder(batch["frames"], batch["landmark_images"])
        generated = generator(batch["target_landmark_image"], e_hat)
        w_rows = 0.02 * torch.randn(len(generated), model.embedding_dim, device=device)
        scores, _ = discriminator(generated, batch["target_landmark_image"], w_rows)
    seconds = time.perf_counter() - start

    def pictures(tensor: torch.Tensor) -> np.ndarray:
        return tensor_to_image(tensor, model.output_activation)

    rows = [
        [*pictures(sources), *pictures(torch.stack(others))]
        for sources, *others in zip(
            batch["frames"],
            batch["target_landmark_image"],
            generated,
            batch["target_frame"],
            strict=True,
        )
    ]
    save_image(image_grid(rows), args.out)
    for name, net in (("embedder", embedder), ("generator", generator), ("D", discriminator)):
        print(f"{name:<10}{parameter_count(net):>14,} parameters")
    shots = batch["frames"].shape[1]
    print(
        f"{len(rows)} episodes of {shots} frame(s) at {model.image_size} px: "
        f"E + G + D forward in {seconds:.2f} s on {device}"
    )
    print(f"realism scores: {[round(s, 3) for s in scores.tolist()]}")
    print(f"wrote {args.out} (columns: {shots} source frame(s), target landmarks, generated, real)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
