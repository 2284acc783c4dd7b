"""Driving speed: per-stage latency and end-to-end frames per second on a video file.

    python -m bench.drive [--video FILE] [--config params/default.yaml] [--frames 60]
        [--kind teacher|distilled] [--write]

A person model of the config's size (random weights: speed does not depend on them; the
person's frames are the bundled astronaut; ``--kind distilled``: the config's student instead
of G) is driven by a video, by default a 640x480 clip of the bundled Grace Hopper moving (a
webcam's size). For each renderer (fp32; fp32 + torch.compile; bf16 weights; bf16 +
torch.compile; onnxruntime fp32) the generator alone is timed on the config's landmark
pictures, with its difference from fp32 as PSNR, and the whole path (read, landmarks,
stabilise and crop, landmark picture, generate, write an mp4) is run on the video. bf16 is
worth timing only where the CPU computes it natively (AVX-512 BF16, AMX).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch

from bench.results import machine_line, report
from dataset.face import CropSettings, crop_face, draw_landmarks
from dataset.landmarks import detector_from_config, make_detector
from dataset.stabilizer import StabilizerSettings
from dataset.synthetic import face_pictures, moving_clip, still_frame, write_video
from live.drive import Driver, compose
from live.render import OnnxRenderer, TorchRenderer
from live.sinks import VideoFileSink
from live.sources import FrameSource
from models.person_model import PersonModel, make_network
from params.config import PARAMS_DIR, add_override_argument, load_config
from utils.images import encode_jpeg

SECTION = "bench.drive"
RENDERERS = ("fp32", "fp32+compile", "bf16", "bf16+compile", "onnx-fp32")


def random_person(config, kind: str = "feed-forward") -> PersonModel:
    """A person model with random weights and the astronaut's frames and landmarks (kind
    'distilled': the config's student in place of G)."""
    torch.manual_seed(0)
    generator = make_network(kind, config).eval()
    settings = CropSettings.from_config(config)
    photo = face_pictures()["astronaut"]
    crop, points, _ = crop_face(photo, make_detector("dlib").detect(photo), settings)
    jpeg = encode_jpeg(crop)
    psi = None
    if kind != "distilled":
        with torch.no_grad():
            psi = generator.project(torch.randn(1, config.model.embedding_dim))
    return PersonModel(kind, config, generator, psi, [jpeg], points[None], "random")


def webcam_like_video(path: Path, frames: int) -> Path:
    """A 640x480 clip of the bundled Grace Hopper moving, like a webcam frame."""
    still, points = still_frame(face_pictures()["grace_hopper"], 300)
    clip, _ = moving_clip(still, points, 0, frames)
    padded = [cv2.copyMakeBorder(f, 90, 90, 170, 170, cv2.BORDER_REPLICATE) for f in clip]
    write_video(path, padded, fps=30.0)
    return path


def make(kind: str, person: PersonModel):
    device = torch.device("cpu")
    if kind == "onnx-fp32":
        return OnnxRenderer(person, device, torch.get_num_threads())
    precision = "bf16" if kind.startswith("bf16") else "fp32"
    return TorchRenderer(person, device, precision, compile_model=kind.endswith("compile"))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def time_generator(renderer, pictures: list[np.ndarray], reps: int) -> tuple[float, list]:
    outputs = [renderer(p) for p in pictures[:2]]  # warm-up (and compilation)
    times = []
    for i in range(reps):
        start = time.perf_counter()
        out = renderer(pictures[i % len(pictures)])
        times.append((time.perf_counter() - start) * 1e3)
        if i < len(pictures):
            outputs.append(out)
    return statistics.median(times), [renderer(p) for p in pictures[:4]]


def run_video(renderer, person: PersonModel, config, video: Path, out: Path) -> dict[str, float]:
    source = FrameSource(str(video))
    driver = Driver(
        person,
        detector_from_config(config),
        renderer,
        "relative",
        source.fps,
        StabilizerSettings.from_config(config),
    )
    sink = VideoFileSink(out, source.fps)
    frames, start = 0, time.perf_counter()
    for frame in source:
        driven = driver(frame)
        written = time.perf_counter()
        sink.write(compose(driven, False, False), frame.time)
        driver.times.add("write", (time.perf_counter() - written) * 1e3)
        frames += 1
    seconds = time.perf_counter() - start
    sink.close()
    source.close()
    return {**driver.times.medians(), "fps": frames / seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, help="driving video (default: a synthetic 640x480)")
    parser.add_argument("--config", type=Path, default=PARAMS_DIR / "default.yaml")
    add_override_argument(parser)
    parser.add_argument("--frames", type=int, default=60, help="frames of the synthetic video")
    parser.add_argument("--reps", type=int, default=20, help="generator calls timed")
    parser.add_argument("--renderers", nargs="+", choices=RENDERERS, default=list(RENDERERS))
    parser.add_argument(
        "--kind", choices=("teacher", "distilled"), default="teacher", help="G or the student"
    )
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    config = load_config(args.config, ["device=cpu", *args.overrides])
    person = random_person(config, "distilled" if args.kind == "distilled" else "feed-forward")
    size = config.model.image_size
    rows, reference = [], None
    with tempfile.TemporaryDirectory() as work:
        video = args.video or webcam_like_video(Path(work) / "driver.mp4", args.frames)
        detector = make_detector("dlib")
        pictures = []
        for frame in FrameSource(str(video)):
            points = detector.track(frame.image)
            if points is not None:
                _, crop_points, _ = crop_face(frame.image, points, person.crop_settings)
                pictures.append(draw_landmarks(crop_points, size))
            if len(pictures) == 8:
                break
        for kind in args.renderers:
            renderer = make(kind, person)
            generator_ms, outputs = time_generator(renderer, pictures, args.reps)
            if reference is None:
                reference = outputs
            quality = min(psnr(a, b) for a, b in zip(outputs, reference, strict=True))
            stages = run_video(renderer, person, config, video, Path(work) / f"{kind}.mp4")
            rows.append((kind, generator_ms, quality, stages))
            print(kind, round(generator_ms, 1), "ms", stages, flush=True)
    stage_names = ("read", "landmarks", "stabilise_crop", "picture", "generate", "write")
    lines = [
        "| renderer | generator alone | PSNR vs fp32 | "
        + " | ".join(stage_names)
        + " | end to end |",
        "|---" * (len(stage_names) + 4) + "|",
    ]
    for kind, generator_ms, quality, stages in rows:
        cells = " | ".join(f"{stages.get(s, 0):.1f}" for s in stage_names)
        shown = "same" if quality == float("inf") else f"{quality:.1f} dB"
        lines.append(
            f"| {kind} | {generator_ms:.0f} ms | {shown} | {cells} | {stages['fps']:.1f} fps |"
        )
    suffix = ".student" if person.distilled else ""
    body = "\n".join(
        [
            f"## Driving (`python -m bench.drive{suffix and ' --kind distilled'}`)",
            "",
            machine_line(),
            f"Person model at {size} px ({'student' if person.distilled else 'G'}, random "
            "weights), driven by "
            f"{args.video or 'a synthetic 640x480 clip of the bundled Grace Hopper'}; "
            f"{torch.get_num_threads()} threads. Generator alone: median of {args.reps} calls; "
            "stages: median ms per frame over the whole clip (read in a capture thread, so "
            "overlapped); end to end: frames / wall time, writing an mp4.",
            "",
            *lines,
        ]
    )
    report(f"{SECTION}.{size}{suffix}", body, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
