"""A one-GPU proof: every stage of the project on the machine its users run it on.

    python -m bench.gpu --make-store STORE [--quick]     # beforehand, on a CPU with dlib, PyAV
    python -m bench.gpu --store STORE --out report.json  # on the GPU box: under 8 minutes
    python -m bench.gpu --quick --store STORE            # the same, tiny, on a CPU in a minute

Each check prints one line, ``CHECK name PASS|FAIL|SKIP value`` (SKIP: "n/a: why", something
only CUDA has), and the JSON report (--out) is rewritten after every check: a run that is killed
still leaves what it measured. The exit status is 1 when any check failed. The checks:

- store, device: the store's videos and frames; the GPU, its compute capability and the
  precision 'auto' resolves to (runtime/precision.py);
- step.fp32, step.bf16, step.fp16, step.bf16-compile: one meta-learning step (training/meta.py,
  built as bench/train_step.py builds it) at the paper's settings (256 px, K = 8, random
  perceptual networks) on a synthetic batch: seconds per step (median of a few after a
  warm-up), images/s and peak GPU memory at batch 8 and at the largest batch that fits (doubled
  until CUDA runs out of memory, while the search stays within SEARCH_SECONDS). Compiling is
  timed last: it takes minutes, and a run killed then has every other result;
- step.gpu-use: the share of wall time the GPU runs kernels (torch.profiler, a few steps) and
  the host synchronisations of one step (CUDA's sync debug mode), at batch 8 in 'auto';
- train, train.resume, train.resume-fp16, train.resume-8-gpu-rng: train.py's function on the
  store for 20 steps, resumed to 30, resumed in fp16, and resumed from a checkpoint holding the
  CUDA random states of 8 GPUs (as an 8-GPU torchrun run saves them);
- person, drive.G, drive.student: a person assembled from the store's frames with the trained
  meta-model, fine-tuned and distilled 10 steps each; frames/s of G and of the student at batch
  1 (live/render.py: precision 'auto', compiled) on the store's landmark pictures;
- onnx.G, onnx.student: the ONNX exports (live/export.py) in ONNX Runtime against PyTorch on the
  same landmark pictures.

--quick: the tiny config (params/tiny.yaml), batch 2, one timed step, no batch search, nothing
compiled, a few steps of everything. Only --make-store (dataset/preprocess.py) needs dlib and
PyAV; the checks import neither, nor face_alignment.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from bench.results import cpu_name
from bench.train_step import synthetic_batch
from dataset.face import draw_landmarks
from dataset.store import check_crop_matches, read_manifest, read_record, read_settings
from dataset.value_range import image_to_tensor
from live.export import export_person
from live.render import make_renderer
from models.meta_model import META_MODEL_NAME, load_meta_model
from models.person_model import PersonModel
from params.config import PARAMS_DIR, Config, apply_override, load_config
from person.assemble import Candidate, assemble_person
from person.distill import distilled_in_memory
from person.finetune import tuned_in_memory
from runtime.precision import Precision, configure_backends, resolve_precision
from training.checkpoint import list_checkpoints, load_checkpoint
from training.distributed import Distributed
from training.loop import train
from training.meta import MetaLearner
from utils.device import process_device
from utils.files import atomic_save, atomic_write_bytes
from utils.images import decode_jpeg

EXAMPLE_VIDEOS = Path(__file__).resolve().parents[1] / "examples" / "videos"
SEARCH_SECONDS = 45.0  # per variant: a larger batch is tried only while the search stays within
SEARCH_REPS = 2  # timed steps of each batch tried by the search
WARM_UP_FRAMES = 3  # renderer calls before timing: compiling, capturing the CUDA graph
ONNX_PICTURES = 4
ONNX_TOLERANCE = 1e-3  # largest |ONNX Runtime - PyTorch| in the [-1, 1] output range


@dataclass(frozen=True)
class Plan:
    """How much each check does: the paper's sizes on a GPU, or --quick's tiny ones."""

    config: str  # params/<config>.yaml
    batch: int  # the meta step's batch, doubled from here by the search
    reps: int  # timed meta steps after a warm-up
    search: bool  # look for the largest batch that fits (CUDA only)
    compile: bool  # time torch.compile: the step's last variant, the renderers
    train_steps: int  # train.py's first run; each resume adds resume_steps
    resume_steps: int
    person_steps: int  # fine-tuning steps, and distillation steps
    poses: int  # landmark poses the student learns from
    frames: int  # frames driven per renderer


PAPER = Plan("default", 8, 3, True, True, 20, 10, 10, 300, 50)
QUICK = Plan("tiny", 2, 1, False, False, 2, 1, 2, 8, 8)


class NotApplicable(Exception):
    """A check that cannot run here (CUDA only) or in this plan (compiling, under --quick):
    reported as SKIP with the reason, not as a failure."""


@dataclass
class Work:
    """What the checks share: the plan, the device, the store, and what earlier checks made."""

    plan: Plan
    device: torch.device
    store: Path
    folder: Path  # temporary: the training run, the exports
    videos: list[list[Candidate]] = field(default_factory=list)  # the store's frames per video
    persons: dict[str, PersonModel] = field(default_factory=dict)  # 'G' and 'student'

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def run_dir(self) -> Path:
        return self.folder / "run"

    def config(self, *overrides: str) -> Config:
        return load_config(
            PARAMS_DIR / f"{self.plan.config}.yaml",
            ["loss.random_perceptual_networks=true", f"device={self.device}", *overrides],
        )

    def pictures(self) -> list[np.ndarray]:
        """The landmark pictures of every frame of the store."""
        size = self.config().model.image_size
        return [draw_landmarks(c.landmarks, size) for video in self.videos for c in video]

    def person(self, kind: str) -> PersonModel:
        if kind not in self.persons:
            raise RuntimeError("no person model: the person check did not make one")
        return self.persons[kind]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free_memory(device: torch.device) -> None:
    """Drop what the last check left (its networks, an out-of-memory try) and the peak."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def check_store(work: Work) -> tuple[str, dict]:
    config = work.config()
    check_crop_matches(work.store, read_settings(work.store), config)
    for entry in read_manifest(work.store):
        record = read_record(work.store / entry.path)
        order = np.lexsort((record.frame_indices, record.clip_indices))
        work.videos.append(
            [
                Candidate(
                    decode_jpeg(record.jpeg_frames[i]), record.landmarks[i], f"{entry.key}#{i}"
                )
                for i in order
            ]
        )
    frames = sum(len(video) for video in work.videos)
    size = config.model.image_size
    return f"{len(work.videos)} videos, {frames} frames at {size} px", {
        "videos": len(work.videos),
        "frames": frames,
        "image_size": size,
    }


def check_device(work: Work) -> tuple[str, dict]:
    precision = resolve_precision("auto", work.device)
    found = {
        "device": str(work.device),
        "auto_precision": precision,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
    }
    if not work.cuda:
        return f"no CUDA GPU: {found['cpu']}; auto -> {precision}; torch {torch.__version__}", found
    gpu = torch.cuda.get_device_properties(work.device)
    found.update(
        gpu=gpu.name,
        compute_capability=f"{gpu.major}.{gpu.minor}",
        memory_gib=gpu.total_memory / 2**30,
    )
    return (
        f"{gpu.name}, compute capability {gpu.major}.{gpu.minor}, "
        f"{found['memory_gib']:.0f} GiB; auto -> {precision}; torch {torch.__version__}, "
        f"CUDA {torch.version.cuda}",
        found,
    )


def meta_learner(work: Work, precision: str, compile_step: bool) -> tuple[MetaLearner, Config]:
    config = work.config(
        f"data.batch_size={work.plan.batch}",
        f"train.precision={precision}",
        f"train.compile={str(compile_step).lower()}",
    )
    torch.manual_seed(0)
    resolved = Precision(resolve_precision(precision, work.device), work.device)
    return MetaLearner(config, Distributed(0, 1, 0, work.device), resolved), config


def step_inputs(
    learner: MetaLearner, config: Config, batch_size: int
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """A synthetic batch of batch_size episodes, already on the device, and its rows of W."""
    config.data.batch_size = batch_size
    batch = learner.to_device(synthetic_batch(config))
    return batch, learner.table.rows_for([f"video{i}" for i in range(batch_size)])


def timed_step(
    learner: MetaLearner, batch: dict, rows: torch.Tensor, device: torch.device
) -> float:
    synchronize(device)
    start = time.perf_counter()
    result = learner.step(batch, rows, measure=False)
    synchronize(device)
    if not result.finite:
        raise FloatingPointError("a loss of the step is NaN or infinite")
    return time.perf_counter() - start


def measure_steps(
    learner: MetaLearner, config: Config, batch_size: int, reps: int, device: torch.device
) -> dict[str, float]:
    """Median seconds per step over reps after a warm-up, images/s and peak GPU memory."""
    batch, rows = step_inputs(learner, config, batch_size)
    first = timed_step(learner, batch, rows, device)  # compiling, cuDNN's autotuning
    seconds = statistics.median(timed_step(learner, batch, rows, device) for _ in range(reps))
    found = {
        "batch": batch_size,
        "seconds": seconds,
        "first_seconds": first,
        "images_per_s": batch_size / seconds,
    }
    if device.type == "cuda":
        found["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return found


def largest_batch(
    learner: MetaLearner, config: Config, fitted: dict[str, float], device: torch.device
) -> tuple[dict[str, float], str]:
    """The largest doubled batch that fits, measured, and why the next one was not."""
    spent = last = 0.0
    while True:
        batch_size = fitted["batch"] * 2
        if spent + 2 * last > SEARCH_SECONDS:  # a doubled batch takes about twice as long
            return fitted, f"{batch_size}: not tried, past the {SEARCH_SECONDS:.0f} s search"
        start = time.perf_counter()
        try:
            tried = measure_steps(learner, config, batch_size, SEARCH_REPS, device)
        except torch.cuda.OutOfMemoryError:
            tried = None
        free_memory(device)
        if tried is None:
            return fitted, f"{batch_size}: out of memory"
        last = time.perf_counter() - start
        spent += last
        fitted = tried


def describe_steps(found: dict[str, float]) -> str:
    memory = f", {found['peak_gib']:.1f} GiB" if "peak_gib" in found else ""
    return (
        f"{found['seconds']:.3f} s/step, {found['images_per_s']:.1f} images/s{memory} "
        f"at batch {found['batch']}"
    )


def check_step(work: Work, precision: str, compile_step: bool) -> tuple[str, dict]:
    if precision == "fp16" and not work.cuda:
        raise NotApplicable("fp16 needs CUDA")
    if compile_step and not work.plan.compile:
        raise NotApplicable("--quick compiles nothing")
    learner, config = meta_learner(work, precision, compile_step)
    found = measure_steps(learner, config, work.plan.batch, work.plan.reps, work.device)
    value, details = describe_steps(found), {"at_batch": found}
    if work.plan.search and work.cuda:
        largest, stopped = largest_batch(learner, config, found, work.device)
        value += f"; largest: {describe_steps(largest)} ({stopped})"
        details.update(largest=largest, search_stopped=stopped)
    return value, details


def check_gpu_use(work: Work) -> tuple[str, dict]:
    if not work.cuda:
        raise NotApplicable("the GPU's busy share and host syncs are measured on CUDA only")
    learner, config = meta_learner(work, "auto", False)
    batch, rows = step_inputs(learner, config, work.plan.batch)
    timed_step(learner, batch, rows, work.device)  # warm-up
    activities = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=activities) as profile:
        wall = sum(timed_step(learner, batch, rows, work.device) for _ in range(work.plan.reps))
    kernel_us = sum(kernel.duration for event in profile.events() for kernel in event.kernels)
    busy = kernel_us / 1e6 / wall
    synchronize(work.device)
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            learner.step(batch, rows, measure=False)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = sum("synchroniz" in str(warning.message) for warning in caught)
    precision = learner.precision.name
    return (
        f"GPU busy {busy:.0%} of wall time over {work.plan.reps} steps; {syncs} host syncs "
        f"per step ({precision}, batch {work.plan.batch})",
        {"gpu_busy_share": busy, "host_syncs_per_step": syncs, "precision": precision},
    )


def run_training(work: Work, steps: int, *overrides: str, resume: bool = True) -> float:
    """train.py's function up to steps; its seconds. RuntimeError if it stopped short."""
    config = work.config(
        f"data.store={work.store}",
        f"train.steps={steps}",
        f"train.log_every={work.plan.resume_steps}",
        f"train.sample_every={work.plan.train_steps}",
        *overrides,
    )
    start = time.perf_counter()
    train(config, work.run_dir, resume=resume, progress_bar=False)
    reached = newest_step(work)
    if reached != steps:
        raise RuntimeError(f"the run stopped at step {reached}, not {steps}")
    return time.perf_counter() - start


def newest_checkpoint(work: Work) -> Path:
    checkpoints = list_checkpoints(work.run_dir)
    if not checkpoints:
        raise RuntimeError("no checkpoint: the train check did not make one")
    return checkpoints[-1]


def newest_step(work: Work) -> int:
    return load_checkpoint(newest_checkpoint(work))["step"]


def check_train(work: Work) -> tuple[str, dict]:
    steps = work.plan.train_steps
    seconds = run_training(work, steps, resume=False)
    if not (work.run_dir / META_MODEL_NAME).is_file():
        raise RuntimeError(f"no {META_MODEL_NAME} written")
    return f"{steps} steps in {seconds:.0f} s, {META_MODEL_NAME} written", {"seconds": seconds}


def check_resume(work: Work, *overrides: str) -> tuple[str, dict]:
    start = newest_step(work)
    seconds = run_training(work, start + work.plan.resume_steps, *overrides)
    return (
        f"resumed at step {start}, finished step {start + work.plan.resume_steps} in "
        f"{seconds:.0f} s",
        {"from_step": start, "seconds": seconds},
    )


def check_resume_fp16(work: Work) -> tuple[str, dict]:
    if not work.cuda:
        raise NotApplicable("fp16 needs CUDA")
    return check_resume(work, "train.precision=fp16")


def check_resume_eight_gpu_rng(work: Work) -> tuple[str, dict]:
    """The newest checkpoint given 8 GPUs' CUDA random states, as an 8-GPU run saves them (on a
    CPU, 8 copies of the CPU's state under the same key), then resumed on this one device."""
    path = newest_checkpoint(work)
    checkpoint = load_checkpoint(path)
    state = torch.cuda.get_rng_state() if work.cuda else torch.get_rng_state()
    checkpoint["rng"]["cuda"] = [state.clone() for _ in range(8)]
    atomic_save(checkpoint, path)
    return check_resume(work)


def check_person(work: Work) -> tuple[str, dict]:
    meta = load_meta_model(work.run_dir / META_MODEL_NAME, work.device)
    config = copy.deepcopy(meta.config)
    steps, poses = work.plan.person_steps, work.plan.poses
    for override in (f"finetune.steps={steps}", f"distill.steps={steps}", f"distill.poses={poses}"):
        apply_override(config, override)
    precision = Precision(resolve_precision("auto", work.device), work.device)
    chosen = work.videos[0][: config.person.frames]
    start = time.perf_counter()
    person = assemble_person(meta, chosen)
    assembled = time.perf_counter()
    tuned = tuned_in_memory(meta, person, config, precision)
    fine_tuned = time.perf_counter()
    student = distilled_in_memory(tuned, config, precision)
    distilled = time.perf_counter()
    work.persons = {"G": tuned, "student": student}
    times = {
        "assemble_s": assembled - start,
        "finetune_s": fine_tuned - assembled,
        "distill_s": distilled - fine_tuned,
    }
    return (
        f"assembled from {len(chosen)} frames in {times['assemble_s']:.1f} s, fine-tuned "
        f"{steps} steps in {times['finetune_s']:.1f} s, distilled {steps} steps "
        f"({poses} poses) in {times['distill_s']:.1f} s ({precision.name})",
        {"frames": len(chosen), "steps": steps, **times},
    )


def check_drive(work: Work, kind: str) -> tuple[str, dict]:
    renderer = make_renderer(work.person(kind), "torch", work.device, "auto", work.plan.compile)
    pictures = work.pictures()
    start = time.perf_counter()
    for picture in pictures[:WARM_UP_FRAMES]:
        renderer(picture)
    warm_up = time.perf_counter() - start
    frames = work.plan.frames
    start = time.perf_counter()
    for i in range(frames):
        renderer(pictures[i % len(pictures)])
    fps = frames / (time.perf_counter() - start)
    size = pictures[0].shape[0]
    how = f"{renderer.precision}{', compiled' if work.plan.compile else ''}"
    return (
        f"{fps:.1f} frames/s at {size} px, batch 1 ({how}; {frames} frames after a "
        f"{warm_up:.1f} s warm-up)",
        {"fps": fps, "precision": renderer.precision, "warm_up_s": warm_up, "frames": frames},
    )


def check_onnx(work: Work, kind: str) -> tuple[str, dict]:
    import onnxruntime  # here: a machine without it fails these checks only

    person = work.person(kind).to(torch.device("cpu"))
    path = export_person(person, work.folder / f"{kind}.onnx", "onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    activation = person.config.model.output_activation
    pictures = image_to_tensor(np.stack(work.pictures()[:ONNX_PICTURES]), activation)
    (exported,) = session.run(None, {"landmarks": pictures.numpy()})
    difference = float(np.abs(exported - person.generate(pictures).numpy()).max())
    if difference > ONNX_TOLERANCE:
        raise AssertionError(f"largest difference {difference:.1e} > {ONNX_TOLERANCE:.0e}")
    return (
        f"largest |ONNX Runtime - PyTorch| {difference:.1e} over {len(pictures)} landmark "
        f"pictures ({path.stat().st_size / 2**20:.1f} MiB file)",
        {"max_abs_difference": difference, "mib": path.stat().st_size / 2**20},
    )


CHECKS = (  # name, function, its arguments after work
    ("store", check_store),
    ("device", check_device),
    ("step.fp32", check_step, "fp32", False),
    ("step.bf16", check_step, "bf16", False),
    ("step.fp16", check_step, "fp16", False),
    ("step.gpu-use", check_gpu_use),
    ("train", check_train),
    ("train.resume", check_resume),
    ("train.resume-fp16", check_resume_fp16),
    ("train.resume-8-gpu-rng", check_resume_eight_gpu_rng),
    ("person", check_person),
    ("drive.G", check_drive, "G"),
    ("drive.student", check_drive, "student"),
    ("onnx.G", check_onnx, "G"),
    ("onnx.student", check_onnx, "student"),
    ("step.bf16-compile", check_step, "bf16", True),  # last: compiling takes minutes
)


class Report:
    """The checks' results: one printed line each, and the JSON file rewritten after each."""

    def __init__(self, path: Path, header: dict) -> None:
        self.path, self.start = path, time.perf_counter()
        self.data = {**header, "checks": {}, "failed": [], "seconds": 0.0}
        self.write()

    def write(self) -> None:
        self.data["seconds"] = time.perf_counter() - self.start
        atomic_write_bytes(self.path, (json.dumps(self.data, indent=1) + "\n").encode())

    def run(self, work: Work, name: str, check, *arguments) -> None:
        start = time.perf_counter()
        details = {}
        try:
            value, details = check(work, *arguments)
            status = "PASS"
        except NotApplicable as reason:
            status, value = "SKIP", f"n/a: {reason}"
        except Exception as error:  # one check's failure is its line; the others still run
            status, value = "FAIL", f"{type(error).__name__}: {error}"
            details = {"traceback": traceback.format_exc()}
            self.data["failed"].append(name)
        free_memory(work.device)
        value = " ".join(value.split())
        print(f"CHECK {name} {status} {value}", flush=True)
        self.data["checks"][name] = {
            "status": status,
            "value": value,
            "seconds": time.perf_counter() - start,
            **details,
        }
        self.write()


def make_store(store: Path, plan: Plan) -> int:
    """The bundled example videos preprocessed at the plan's size (dlib, PyAV: a CPU machine)."""
    from dataset.preprocess import preprocess

    config = load_config(PARAMS_DIR / f"{plan.config}.yaml")
    summary = preprocess(EXAMPLE_VIDEOS, store, config, workers=0)
    print(f"store {store}: {summary.report()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, help="a store made by --make-store")
    parser.add_argument("--out", type=Path, default=Path("out/bench_gpu/report.json"))
    parser.add_argument("--quick", action="store_true", help="tiny config, few steps (a CPU)")
    parser.add_argument(
        "--make-store",
        type=Path,
        metavar="DIR",
        help="preprocess the bundled example videos into DIR (needs dlib and PyAV), then exit",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else PAPER
    if args.make_store:
        return make_store(args.make_store, plan)
    if args.store is None:
        parser.error("--store is required (make one with --make-store DIR)")
    warnings.filterwarnings("ignore")
    device = process_device("auto", None)
    configure_backends(device)
    report = Report(
        args.out,
        {"plan": "quick" if args.quick else "paper", "store": str(args.store)},
    )
    with tempfile.TemporaryDirectory(prefix="bench_gpu.") as folder:
        work = Work(plan, device, args.store, Path(folder))
        for name, check, *arguments in CHECKS:
            report.run(work, name, check, *arguments)
    failed = report.data["failed"]
    print(f"{len(failed)} of {len(CHECKS)} checks failed; report: {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
