"""Person models at the paper's size: embedding time, fine-tuning speed, file size, export parity.

    python -m bench.person [--config params/default.yaml] [--write]

Random meta-model weights (speed and size do not depend on them) at the config's size; the
person's frames come from a 30-frame clip of the bundled astronaut. Reported: seconds to embed
1 and 32 frames (cropping included), seconds per fine-tuning step (batch finetune.batch_size,
1 discriminator step, the config's precision), the person-model file size, and the largest
difference between PyTorch and the ONNX / TorchScript exports.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from bench.results import machine_line, report
from dataset.face import draw_landmarks
from dataset.synthetic import face_pictures, moving_clip, still_frame, write_video
from dataset.value_range import image_to_tensor
from live.export import export_person
from models.meta_model import MetaModel
from network import Discriminator, Embedder, Generator
from params.config import PARAMS_DIR, load_config
from person.embed import embed_person
from person.finetune import FineTuner, PersonFrames
from runtime.precision import Precision, resolve_precision

SECTION = "bench.person"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=PARAMS_DIR / "default.yaml")
    parser.add_argument("--steps", type=int, default=3, help="fine-tuning steps timed")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    config = load_config(args.config, ["device=cpu", "loss.random_perceptual_networks=true"])
    torch.manual_seed(0)
    model = config.model
    meta = MetaModel(
        config,
        Embedder(model).eval(),
        Generator(model).eval(),
        Discriminator(model).eval(),
        "random",
        0,
    )
    rows = []
    with tempfile.TemporaryDirectory() as work:
        still, points = still_frame(face_pictures()["astronaut"], 300)
        video = Path(work) / "person.mp4"
        write_video(video, moving_clip(still, points, 0, 30)[0])
        for frames in (1, 32):
            config.person.frames = frames
            start = time.perf_counter()
            person, _ = embed_person(meta, [video], config)
            rows.append(
                (
                    f"embed {frames} frame(s) (crop + E + psi)",
                    f"{time.perf_counter() - start:.2f} s",
                )
            )
        path = person.save(Path(work) / "person.pt")
        rows.append(
            (
                "person-model file (feed-forward, 32 frames)",
                f"{path.stat().st_size / 2**20:.1f} MiB",
            )
        )
        device = torch.device("cpu")
        precision = Precision(resolve_precision(config.train.precision, device), device)
        tuner = FineTuner(meta, person, config, precision)
        data = PersonFrames.of(person, device, tuner.memory_format)
        batch = config.finetune.batch_size
        tuner.step(data.frames[:batch], data.pictures[:batch])
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            tuner.step(data.frames[:batch], data.pictures[:batch])
            times.append(time.perf_counter() - start)
        rows.append(
            (
                f"fine-tuning step ({precision.name}, batch {batch}, {model.image_size} px)",
                f"{statistics.median(times):.2f} s",
            )
        )
        pictures = image_to_tensor(
            np.stack([draw_landmarks(p, model.image_size) for p in person.landmarks[:2]]),
            model.output_activation,
        )
        expected = person.generate(pictures)
        onnx_path = export_person(person, Path(work) / "p.onnx", "onnx")
        session = onnxruntime.InferenceSession(str(onnx_path))
        (onnx_out,) = session.run(None, {"landmarks": pictures.numpy()})
        script = torch.jit.load(str(export_person(person, Path(work) / "p.ts", "torchscript")))
        rows.append(
            (
                "ONNX vs PyTorch, largest difference (output range [-1, 1])",
                f"{np.abs(onnx_out - expected.numpy()).max():.1e}",
            )
        )
        rows.append(
            (
                "TorchScript vs PyTorch, largest difference",
                f"{(script(pictures) - expected).abs().max():.1e}",
            )
        )
    body = "\n".join(
        [
            "## Person models (`python -m bench.person`)",
            "",
            machine_line(),
            f"{model.image_size} px, random weights; fine-tuning: random perceptual networks.",
            "",
            "| measure | value |",
            "|---|---|",
            *(f"| {a} | {b} |" for a, b in rows),
        ]
    )
    report(SECTION, body, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
