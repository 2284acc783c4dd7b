"""bench/gpu.py, the one-GPU proof, run with --quick on the CPU: every check passes or says it
needs CUDA, the JSON report holds every check, a failing check is one line and the run goes on,
and neither importing it nor running it loads dlib, PyAV or face_alignment (the GPU box has none).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from synthetic_videos import built_store

import bench.gpu
from dataset.store import read_manifest, read_settings

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("dlib", "av", "face_alignment")
NOT_ON_A_CPU = {"step.fp16", "step.gpu-use", "train.resume-fp16"}
NOT_IN_QUICK = {"step.bf16-compile"}
# main() in a fresh process (on the CPU: no CUDA device visible), with what it loaded.
RUN = f"""
import sys
import bench.gpu
print("LOADED after import:", sorted({set(HEAVY)!r} & sys.modules.keys()))
status = bench.gpu.main(sys.argv[1:])
print("LOADED after the run:", sorted({set(HEAVY)!r} & sys.modules.keys()))
sys.exit(status)
"""


@dataclass
class QuickRun:
    returncode: int
    stdout: str
    stderr: str
    report: dict

    def checks(self) -> dict[str, tuple[str, str]]:
        """name -> (status, value) from the CHECK lines."""
        lines = [line.split(" ", 3) for line in self.stdout.splitlines()]
        return {words[1]: (words[2], words[3]) for words in lines if words[0] == "CHECK"}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return built_store(tmp_path_factory).store


@pytest.fixture(scope="module")
def quick(store, tmp_path_factory) -> QuickRun:
    out = tmp_path_factory.mktemp("bench_gpu") / "report.json"
    result = subprocess.run(
        [sys.executable, "-c", RUN, "--quick", "--store", str(store), "--out", str(out)],
        cwd=ROOT,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=300,
    )
    return QuickRun(
        result.returncode, result.stdout, result.stderr, json.loads(out.read_text(encoding="utf-8"))
    )


def test_every_check_passes_or_says_it_needs_cuda(quick):
    checks = quick.checks()
    assert list(checks) == [name for name, *_ in bench.gpu.CHECKS], quick.stderr[-3000:]
    failed = {name: value for name, (status, value) in checks.items() if status == "FAIL"}
    assert failed == {}, quick.report
    skipped = {name for name, (status, _) in checks.items() if status == "SKIP"}
    assert skipped == NOT_ON_A_CPU | NOT_IN_QUICK
    assert all(checks[name][1].startswith("n/a: ") for name in skipped)
    assert {status for name, (status, _) in checks.items() if name not in skipped} == {"PASS"}
    assert "fp16 needs CUDA" in checks["train.resume-fp16"][1]
    assert quick.returncode == 0


def test_the_report_holds_every_check_and_its_numbers(quick):
    report = quick.report
    assert report["plan"] == "quick" and report["failed"] == []
    checks = report["checks"]
    assert set(checks) == {name for name, *_ in bench.gpu.CHECKS}
    assert all({"status", "value", "seconds"} <= set(check) for check in checks.values())
    assert checks["device"]["device"] == "cpu"
    assert checks["device"]["auto_precision"] in ("fp32", "bf16")
    for variant in ("step.fp32", "step.bf16"):
        assert set(checks[variant]["at_batch"]) == {
            "batch",
            "seconds",
            "first_seconds",
            "images_per_s",
        }
        assert checks[variant]["at_batch"]["batch"] == 2
    assert checks["train.resume"]["from_step"] == 2
    assert checks["train.resume-8-gpu-rng"]["from_step"] == 3
    assert {"assemble_s", "finetune_s", "distill_s"} <= set(checks["person"])
    assert checks["drive.G"]["fps"] > 0 and checks["drive.student"]["fps"] > 0
    assert checks["onnx.G"]["max_abs_difference"] < bench.gpu.ONNX_TOLERANCE
    assert checks["onnx.student"]["max_abs_difference"] < bench.gpu.ONNX_TOLERANCE


def test_the_checks_load_no_dlib_pyav_or_face_alignment(quick):
    loaded = [line for line in quick.stdout.splitlines() if line.startswith("LOADED")]
    assert loaded == ["LOADED after import: []", "LOADED after the run: []"]


def test_a_failing_check_is_one_line_and_the_run_goes_on(store, tmp_path, monkeypatch, capsys):
    def broken(work):
        raise ZeroDivisionError("on purpose")

    checks = (("broken", broken), ("store", bench.gpu.check_store))
    monkeypatch.setattr(bench.gpu, "CHECKS", checks)
    out = tmp_path / "report.json"
    assert bench.gpu.main(["--quick", "--store", str(store), "--out", str(out)]) == 1
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("CHECK")]
    assert lines[0] == "CHECK broken FAIL ZeroDivisionError: on purpose"
    assert lines[1].startswith("CHECK store PASS ")
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["failed"] == ["broken"]
    assert "on purpose" in report["checks"]["broken"]["traceback"]


def test_make_store_preprocesses_the_bundled_videos_at_the_plans_size(tmp_path):
    store = tmp_path / "store"
    assert bench.gpu.main(["--make-store", str(store), "--quick"]) == 0
    assert len(read_manifest(store)) == 2
    assert read_settings(store).image_size == 64
