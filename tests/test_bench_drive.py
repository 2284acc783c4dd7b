"""bench.drive: each stage's wall and CPU time, CPU per frame, and latency as a camera feeds it."""

from __future__ import annotations

import re

from bench.drive import main


def test_the_benchmark_reports_cpu_per_stage_and_latency(capsys):
    assert main(["--config", "params/tiny.yaml", "--renderers", "fp32", "--frames", "24"]) == 0
    said = capsys.readouterr().out
    for loop in ("default loop", "one stage after another"):
        check_rows(said, f"| fp32, {loop} | ")


def check_rows(said: str, label: str) -> None:
    row = next(
        line
        for line in said.splitlines()
        if line.startswith(label) and "dB" not in line and "same" in line
    )
    assert re.search(r"\| \d+\.\d \(\d+\.\d\) \|", row)  # wall (CPU) ms of a stage
    assert re.search(r"\| \d+ ms \| \d+\.\d fps \|$", row)  # CPU per frame, end to end
    latency = next(
        line
        for line in said.splitlines()
        if line.startswith(label) and "fps | " in line and line.count("ms") == 3
    )
    numbers = r" \| \d+ ms \| \d+ ms \| \d+ ms \| \d+\.\d fps \| \d+ \|"
    assert re.fullmatch(re.escape(label[:-3]) + numbers, latency)
