"""End-to-end forward pass on bundled photos: the largest pipeline that exists so far.

Each photo is one person: dlib finds the 68 landmarks, the one face crop and landmark
picture are made exactly as for training, the embedder turns (crop, picture) into e_hat,
the generator draws the person from its own landmarks, and the discriminator scores the
result. The networks are freshly initialised until meta-training exists, so the generated
column is noise; what this shows is that every stage fits together at the configured size.

Usage: ``python -m examples.forward_pass [--config FILE] [--out out/forward_pass.png]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench.model_stats import parameter_count
from dataset.face import CropSettings, crop_face, draw_landmarks
from dataset.landmarks import make_detector
from dataset.value_range import image_to_tensor, tensor_to_image
from network import Discriminator, Embedder, Generator
from params.config import add_config_arguments, config_from_args
from utils.images import image_grid, read_image, save_image

EXAMPLE_FACES = Path(__file__).resolve().parent / "faces"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_config_arguments(parser)
    parser.add_argument("--images", nargs="+", type=Path, help="photos (default: examples/faces)")
    parser.add_argument("--out", type=Path, default=Path("out/forward_pass.png"))
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    config = config_from_args(args)
    if args.out.exists() and not args.overwrite:
        parser.error(f"{args.out} exists; pass --overwrite to replace it")
    images = args.images or sorted(EXAMPLE_FACES.glob("*.jpg"))
    torch.manual_seed(config.seed)

    detector = make_detector(config.data.detector)
    settings = CropSettings.from_config(config)
    activation = config.model.output_activation
    crops, pictures = [], []
    for path in images:
        landmarks = detector.detect(read_image(path))
        if landmarks is None:
            print(f"skipped {path}: no face found")
            continue
        crop, crop_landmarks, _ = crop_face(read_image(path), landmarks, settings)
        crops.append(crop)
        pictures.append(draw_landmarks(crop_landmarks, settings.size))
    if not crops:
        print("error: no face found in any photo", file=sys.stderr)
        return 1

    model = config.model
    embedder, generator = Embedder(model).eval(), Generator(model).eval()
    discriminator = Discriminator(model, num_videos=1).eval()
    frames = image_to_tensor(np.stack(crops), activation)
    landmark_pictures = image_to_tensor(np.stack(pictures), activation)
    start = time.perf_counter()
    with torch.no_grad():
        e_hat = embedder(frames.unsqueeze(1), landmark_pictures.unsqueeze(1))
        generated = generator(landmark_pictures, e_hat)
        scores, _ = discriminator(generated, landmark_pictures, torch.zeros(len(crops), dtype=int))
    seconds = time.perf_counter() - start

    fakes = tensor_to_image(generated, activation)
    rows = [
        [crop, picture, fake] for crop, picture, fake in zip(crops, pictures, fakes, strict=True)
    ]
    save_image(image_grid(rows), args.out)
    for name, net in (
        ("embedder", embedder),
        ("generator", generator),
        ("discriminator", discriminator),
    ):
        print(f"{name:<14}{parameter_count(net):>14,} parameters")
    print(
        f"{len(crops)} faces at {model.image_size} px: E + G + D forward in {seconds:.2f} s (CPU)"
    )
    print(f"realism scores: {[round(s, 3) for s in scores.tolist()]}")
    print(f"wrote {args.out} (columns: face crop, landmark picture, generated)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
