"""The fast avatar's cost: student against teacher at 256 px, and what a distillation takes.

    python -m bench.distill [--config params/default.yaml] [--reps 15] [--write]

Random weights (speed does not depend on them), batch 1, this process's threads:

1. the generator alone at the config's size: the paper's G with psi fixed (a person model)
   and the default student (``distill.*``), through each renderer of live driving (fp32;
   bf16 weights where the CPU computes bf16 natively; fp32 + torch.compile; onnxruntime fp32),
   timed alternately call by call; medians with min-max, the ratio, and FLOPs;
2. distillation: seconds per teacher frame (G, batches of 8, the config's precision) and per
   student step (``distill.batch_size``, L1 + VGG19 on the perceptual crop, random VGG19 of
   the same cost), and so how many steps fit in 15 minutes beside ``distill.poses`` frames.

For the whole driving path per stage: ``python -m bench.drive --kind distilled``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.drive import make, random_person
from bench.results import machine_line, report
from dataset.face import draw_landmarks
from params.config import PARAMS_DIR, add_override_argument, load_config
from person.distill import Distiller, Rendered
from runtime.precision import Precision, cpu_has_native_bf16, resolve_precision

SECTION = "bench.distill"
BUDGET_S = 15 * 60


def forward_gflops(person) -> float:
    size = person.config.model.image_size
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        person.generate(torch.zeros(1, 3, size, size))
    return counter.get_total_flops() / 1e9


def spread(times: list[float]) -> str:
    return f"{statistics.median(times):.1f} ms ({min(times):.1f}-{max(times):.1f})"


def generator_rows(config, reps: int) -> list[str]:
    teacher, student = random_person(config), random_person(config, "distilled")
    picture = draw_landmarks(teacher.landmarks[0], config.model.image_size)
    native = ["bf16", "bf16+compile"] if cpu_has_native_bf16() else []
    renderers = ["fp32", "fp32+compile", *native, "onnx-fp32"]
    rows = []
    for kind in renderers:
        made = {"teacher": make(kind, teacher), "student": make(kind, student)}
        times: dict[str, list[float]] = {"teacher": [], "student": []}
        for renderer in made.values():
            renderer(picture), renderer(picture)  # warm-up (and compilation)
        for _ in range(reps):  # alternately: drift hits both sides alike
            for name, renderer in made.items():
                start = time.perf_counter()
                renderer(picture)
                times[name].append((time.perf_counter() - start) * 1e3)
        ratio = statistics.median(times["student"]) / statistics.median(times["teacher"])
        rows.append(
            f"| {kind} | {spread(times['teacher'])} | {spread(times['student'])} | {ratio:.3f} |"
        )
        print(rows[-1], flush=True)
    flops = forward_gflops(teacher), forward_gflops(student)
    rows.append(
        f"| GFLOPs per frame | {flops[0]:.2f} | {flops[1]:.3f} | {flops[1] / flops[0]:.4f} |"
    )
    return rows


def distillation_rows(config, reps: int) -> list[str]:
    teacher = random_person(config)
    size, batch = config.model.image_size, 8
    precision = Precision(
        resolve_precision(config.train.precision, torch.device("cpu")), torch.device("cpu")
    )
    pictures = torch.from_numpy(
        np.stack([draw_landmarks(teacher.landmarks[0], size)] * batch)
    ).permute(0, 3, 1, 2)
    tensor = pictures.float() / 127.5 - 1
    render_times = []
    for _ in range(max(2, reps // 5)):
        start = time.perf_counter()
        with torch.no_grad(), precision.autocast():
            teacher.generate(tensor)
        render_times.append((time.perf_counter() - start) / batch)
    distiller = Distiller(config, precision)
    data = Rendered(pictures, pictures.clone())
    distiller.step(0, data)  # warm-up
    step_times = []
    for step in range(1, reps + 1):
        start = time.perf_counter()
        distiller.step(step, data)
        step_times.append(time.perf_counter() - start)
    frame_s, step_s = statistics.median(render_times), statistics.median(step_times)
    poses = config.distill.poses
    steps = int((BUDGET_S - poses * frame_s) / step_s)
    tune = config.distill
    return [
        f"| teacher frame (batch {batch}, {precision.name}) | {frame_s:.3f} s |",
        f"| student step (batch {tune.batch_size}, L1 + VGG19 to relu{tune.perceptual_layers}_1 "
        f"on {tune.perceptual_crop} px crops, {precision.name}) | {step_s:.3f} s |",
        f"| {poses} teacher frames (distill.poses) | {poses * frame_s / 60:.1f} min |",
        f"| student steps in the rest of 15 minutes | {max(steps, 0)} |",
        f"| distill.steps = {tune.steps} | {(poses * frame_s + tune.steps * step_s) / 60:.1f} min "
        "in all |",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(PARAMS_DIR / "default.yaml"))
    add_override_argument(parser)
    parser.add_argument("--reps", type=int, default=15, help="timed calls per side")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    config = load_config(
        args.config, ["device=cpu", "loss.random_perceptual_networks=true", *args.overrides]
    )
    size = config.model.image_size
    body = "\n".join(
        [
            f"## Fast avatar: student vs teacher (`python -m bench.distill`, {size} px)",
            "",
            machine_line(),
            f"Random weights, batch 1, {torch.get_num_threads()} threads; teacher = the paper's "
            f"G with psi fixed, student = widths {config.distill.widths}, "
            f"{config.distill.blocks} blocks. Median (min-max) of {args.reps} calls per side, "
            "the two sides called alternately.",
            "",
            "| renderer | teacher | student | student / teacher |",
            "|---|---|---|---|",
            *generator_rows(config, args.reps),
            "",
            "Distillation on this machine:",
            "",
            "| measure | value |",
            "|---|---|",
            *distillation_rows(config, max(5, args.reps // 2)),
        ]
    )
    report(f"{SECTION}.{size}", body, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
