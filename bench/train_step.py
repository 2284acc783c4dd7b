"""Seconds, memory and FLOPs of one meta-learning iteration (training/meta.py), per speed switch.

    python -m bench.train_step [--variants NAME ...] [--reps 3] [--write]

Each variant runs in a fresh process (so that its peak memory is its own): the paper's
settings (256 px, K = 8, batch 2, random perceptual weights) or the tiny config, one
iteration = 1 generator step + optim.discriminator_steps discriminator steps on a synthetic
batch (data loading is timed separately: ms per episode from a store of the bundled faces).
Reported: median seconds per iteration over --reps after one warm-up (compiling, for the
compiled variant), generated images per second, the process's peak resident memory
(ru_maxrss), and FLOPs per iteration (torch.utils.flop_counter, multiply-add = 2).
To compare with the public reference implementation, run this right before and after
shared/bench/reference_bench.py in one shell command, on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from bench.results import machine_line, report
from utils.memory import peak_rss_gib

SECTION = "bench.train_step"
VARIANTS = {  # name: (config file, overrides)
    "paper-fp32": ("default", ["train.precision=fp32", "train.channels_last=false"]),
    "paper-fp32-cl": ("default", ["train.precision=fp32", "train.channels_last=true"]),
    "paper-bf16": ("default", ["train.precision=bf16", "train.channels_last=false"]),
    "paper-bf16-cl": ("default", ["train.precision=bf16", "train.channels_last=true"]),
    "paper-bf16-cl-compile": (
        "default",
        ["train.precision=bf16", "train.channels_last=true", "train.compile=true"],
    ),
    "tiny-fp32": ("tiny", ["train.precision=fp32"]),
    "tiny-bf16": ("tiny", ["train.precision=bf16"]),
}
DEFAULT_VARIANTS = (
    "paper-fp32",
    "paper-bf16",
    "paper-bf16-cl",
    "paper-bf16-cl-compile",
    "tiny-fp32",
)


def synthetic_batch(config) -> dict[str, torch.Tensor]:
    batch, shots, size = config.data.batch_size, config.data.k_shot, config.model.image_size
    generator = torch.Generator().manual_seed(0)

    def images(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator) * 2 - 1

    return {
        "frames": images(batch, shots, 3, size, size),
        "landmark_images": images(batch, shots, 3, size, size),
        "target_frame": images(batch, 3, size, size),
        "target_landmark_image": images(batch, 3, size, size),
    }


def run_variant(name: str, reps: int, count_flops: bool) -> dict[str, object]:
    """Measure one variant in this process."""
    from params.config import PARAMS_DIR, load_config
    from runtime.precision import Precision
    from training.distributed import Distributed
    from training.meta import MetaLearner

    warnings.filterwarnings("ignore")
    file, overrides = VARIANTS[name]
    config = load_config(
        PARAMS_DIR / f"{file}.yaml",
        ["loss.random_perceptual_networks=true", "data.batch_size=2", "device=cpu", *overrides],
    )
    torch.manual_seed(0)
    run = Distributed(0, 1, 0, torch.device("cpu"))
    learner = MetaLearner(config, run, Precision(config.train.precision, run.device))
    batch = synthetic_batch(config)
    rows = learner.table.rows_for([f"video{i}" for i in range(config.data.batch_size)])
    start = time.perf_counter()
    learner.step(batch, rows, measure=False)  # warm-up (and compilation)
    first = time.perf_counter() - start
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        learner.step(batch, rows, measure=False)
        times.append(time.perf_counter() - start)
    result = {
        "variant": name,
        "seconds": statistics.median(times),
        "min": min(times),
        "max": max(times),
        "first": first,
        "images_per_s": config.data.batch_size / statistics.median(times),
        "peak_gib": peak_rss_gib(),
        "threads": torch.get_num_threads(),
    }
    if count_flops:
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            learner.step(batch, rows, measure=False)
        result["tflop"] = counter.get_total_flops() / 1e12
    return result


def episode_ms(reps: int) -> float:
    """ms to load one K = 8 episode at 256 px from a store of the bundled faces (one process)."""
    from dataset.preprocess import preprocess
    from dataset.synthetic import synthetic_voxceleb
    from dataset.voxceleb import VoxCelebDataset
    from params.config import load_config

    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        synthetic_voxceleb(root / "videos", videos=2, clips=2, frames=20)
        config = load_config(
            overrides=[f"data.store={root / 'store'}", "data.identity_check=false"]
        )
        preprocess(root / "videos", root / "store", config, workers=0, progress=False)
        dataset = VoxCelebDataset.from_config(config, "all")
        start = time.perf_counter()
        for i in range(reps):
            dataset[(i % len(dataset), i)]
        return (time.perf_counter() - start) / reps * 1e3


def _gib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} GiB"


def table(results: list[dict[str, object]], baseline: str = "paper-fp32") -> str:
    base = next((r for r in results if r["variant"] == baseline), None)
    lines = [
        "| variant | s / iteration (min-max) | images/s | vs fp32 | peak memory | TFLOP / it. |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        ratio = (
            f"{base['seconds'] / r['seconds']:.2f}x"
            if base and r["variant"].startswith("paper")
            else "-"
        )
        flops = f"{r['tflop']:.2f}" if "tflop" in r else "-"
        lines.append(
            f"| {r['variant']} | {r['seconds']:.2f} ({r['min']:.2f}-{r['max']:.2f}) | "
            f"{r['images_per_s']:.2f} | {ratio} | {_gib(r['peak_gib'])} | {flops} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=VARIANTS)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one variant
    parser.add_argument("--flops", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_variant(args.one, args.reps, args.flops)))
        return 0
    results = []
    for name in args.variants:
        command = [
            sys.executable,
            "-m",
            "bench.train_step",
            "--one",
            name,
            "--reps",
            str(args.reps),
        ]
        if name in ("paper-bf16-cl", "tiny-fp32"):
            command.append("--flops")
        output = subprocess.run(
            command, capture_output=True, text=True, encoding="utf-8", errors="replace", check=True
        ).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    loading = episode_ms(20)
    body = "\n".join(
        [
            "## Meta-learning iteration (`python -m bench.train_step`)",
            "",
            machine_line(),
            f"One iteration = 1 generator step + 2 discriminator steps, batch 2, K = 8 at 256 px "
            f"(paper) or the tiny config; random perceptual weights; {results[0]['threads']} "
            f"threads; median of {args.reps} after a warm-up. Peak memory: the whole process "
            "(ru_maxrss). Loading one K = 8 episode at 256 px (JPEG decoding, landmark pictures): "
            f"{loading:.0f} ms in one process; DataLoader workers take it off the step.",
            "",
            table(results),
        ]
    )
    report(SECTION, body, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
