"""W at VoxCeleb2 scale: the row-wise table against a dense parameter with Adam.

    python -m bench.w_table [--rows 145569] [--batch 8] [--steps 20] [--write]

Each side runs in a fresh process with only W in it: a batch's rows get a hinge-like and a
match-like gradient, then one optimiser step, --steps times. Reported: milliseconds per step,
the process's peak memory while updating (W, its optimiser state, gradients, temporaries), and
the bytes a DDP rank would exchange per step for W (dense: an all-reduce of the whole
gradient; the table: the batch's (row, gradient) pairs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from bench.results import machine_line, report

SECTION = "bench.w_table"
DIM = 512


def rss_gib() -> float:
    return int(Path("/proc/self/statm").read_text(encoding="utf-8").split()[1]) * 4096 / 2**30


def reset_peak() -> None:
    """Start the kernel's peak-memory count (VmHWM) afresh (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5", encoding="utf-8")


def peak_gib() -> float:
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    raise RuntimeError("no VmHWM in /proc/self/status")


def run(kind: str, rows: int, batch: int, steps: int) -> dict[str, object]:
    from training.video_table import VideoTable

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    before = rss_gib()
    if kind == "dense":
        weight = torch.nn.Parameter(torch.randn(rows, DIM, generator=generator) * 0.02)
        optimizer = torch.optim.Adam([weight], lr=2e-4, betas=(0.0, 0.999))
    else:
        table = VideoTable(DIM, lr=2e-4, betas=(0.0, 0.999))
        table.rows_for([f"video{i}" for i in range(rows)])
    after_table = rss_gib()
    reset_peak()  # count what the updates add, not the table's construction
    times = []
    for step in range(steps + 1):
        index = torch.randint(0, rows, (batch,), generator=generator)
        target = torch.randn(batch, DIM, generator=generator)
        start = time.perf_counter()
        if kind == "dense":
            optimizer.zero_grad(set_to_none=True)
            picked = weight[index]
            ((picked * target).sum() + (picked - target).abs().mean()).backward()
            optimizer.step()
        else:
            picked = table.gather(index)
            ((picked * target).sum() + (picked - target).abs().mean()).backward()
            table.accumulate(index, picked)
            table.step()
        if step:  # the first step allocates the optimiser state
            times.append(time.perf_counter() - start)
    exchanged = rows * DIM * 4 if kind == "dense" else batch * (DIM * 4 + 8)
    return {
        "kind": kind,
        "ms_per_step": statistics.median(times) * 1e3,
        "table_gib": after_table - before,
        "peak_gib": peak_gib(),
        "ddp_bytes_per_step": exchanged,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=145_569, help="videos (VoxCeleb2 dev)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--one", choices=("dense", "table"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run(args.one, args.rows, args.batch, args.steps)))
        return 0
    results = {}
    for kind in ("dense", "table"):
        command = [sys.executable, "-m", "bench.w_table", "--one", kind, "--rows", str(args.rows)]
        command += ["--batch", str(args.batch), "--steps", str(args.steps)]
        output = subprocess.run(
            command, capture_output=True, text=True, encoding="utf-8", errors="replace", check=True
        ).stdout
        results[kind] = json.loads(output.strip().splitlines()[-1])
    dense, table = results["dense"], results["table"]
    rows = [
        ("time per W update", f"{dense['ms_per_step']:.1f} ms", f"{table['ms_per_step']:.2f} ms"),
        (
            "process peak while training (W and its optimiser state included)",
            f"{dense['peak_gib']:.2f} GiB",
            f"{table['peak_gib']:.2f} GiB",
        ),
        (
            "bytes per step exchanged by each DDP rank for W",
            f"{dense['ddp_bytes_per_step'] / 2**20:.0f} MiB (all-reduce of the gradient)",
            f"{table['ddp_bytes_per_step'] / 1024:.1f} KiB (batch rows and their gradients)",
        ),
    ]
    body = "\n".join(
        [
            "## W at VoxCeleb2 scale (`python -m bench.w_table`)",
            "",
            machine_line(),
            f"{args.rows:,} rows x {DIM}, batch {args.batch}, Adam betas (0, 0.999); median of "
            f"{args.steps} updates after one, each side in a fresh process.",
            "",
            "| measure | dense nn.Parameter + Adam | row-wise table |",
            "|---|---|---|",
            *(f"| {a} | {b} | {c} |" for a, b, c in rows),
        ]
    )
    report(SECTION, body, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
