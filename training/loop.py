"""The meta-training loop, top to bottom: set up, resume, step, watch, save, export.

    python train.py --config params/default.yaml --data STORE --out runs/NAME [--resume]

One process, or one per GPU under torchrun (training/distributed.py). Rank 0 writes the run
folder: config.yaml, checkpoints/, metrics.jsonl, tensorboard/, samples/, loss.png, train.log,
and at the end meta.pt (the meta-model export the person scripts read).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from dataset.store import StoreError
from dataset.voxceleb import VoxCelebDataset
from models.meta_model import META_MODEL_NAME, export_meta_model
from params.config import Config, save_config
from runtime.precision import Precision, configure_backends, resolve_precision
from runtime.rng import restore_rng
from runtime.runlog import RunLog, plot_losses, sample_grid, truncate_metrics
from runtime.stop import StopRequest
from training import distributed
from training.checkpoint import (
    check_resumable,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from training.data import make_loader
from training.meta import MetaLearner
from training.monitor import CollapseAlarm, NonFiniteAlarm, TrainingCollapsed
from training.validation import validate, validation_episodes
from utils.device import describe_device
from utils.files import LOCK_NAME, hold_folder
from utils.folders import is_os_file

log = logging.getLogger("training")


class RunFolderError(RuntimeError):
    """An --out that would be overwritten, or a resume with nothing to resume from."""


@dataclass
class Progress:
    step: int = 0
    episodes_seen: int = 0


# What a run that stopped before it began (a bad setting, a missing weight file, a stop during
# start-up) leaves: such a folder may be started again as if it were empty.
FAILED_START = {LOCK_NAME, "train.log", "tensorboard"}


def prepare_run_folder(run_dir: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from (None: from step 0); refuses to overwrite a run.

    A run stopped before its first checkpoint resumes from step 0 (its folder holds a config
    and logs, nothing to lose).
    """
    checkpoints = list_checkpoints(run_dir)
    if resume:
        if not checkpoints:
            if not (run_dir / "config.yaml").is_file():
                raise RunFolderError(f"--resume: {run_dir} is not a run folder (no config.yaml)")
            return None
        return checkpoints[-1]
    if run_dir.exists() and any(
        p.name not in FAILED_START and not is_os_file(p) for p in run_dir.iterdir()
    ):
        raise RunFolderError(
            f"{run_dir} exists and is not empty: pass --resume to continue that run, or choose "
            "another --out (nothing was overwritten)"
        )
    return None


def how_to_continue(run_dir: Path) -> str:
    """How a run that ended early (stopped, or a write failed) goes on: from its newest
    checkpoint with --resume (every checkpoint written is kept), or the same command again
    when it had not started (no config.yaml)."""
    if not (run_dir / "config.yaml").is_file():
        return "run the same command again (the run had not started)"
    return f"continue with: python train.py --out {run_dir} --resume (its checkpoints are kept)"


def _setup_logging(run_dir: Path, is_main: bool) -> None:
    logging.basicConfig(level=logging.INFO if is_main else logging.WARNING, format="%(message)s")
    if is_main:
        handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logging.getLogger().addHandler(handler)


def train(config: Config, run_dir: Path, resume: bool = False, progress_bar: bool = True) -> Path:
    """Meta-train as config says, in run_dir; returns the meta-model export's path."""
    run = distributed.setup(config.device)
    try:
        held = hold_folder(run_dir, RunFolderError, "training")
        with held if run.is_main else contextlib.nullcontext():
            return _train(config, run_dir, resume, run, progress_bar)
    finally:
        distributed.teardown(run)


def _train(
    config: Config, run_dir: Path, resume: bool, run: distributed.Distributed, progress_bar: bool
) -> Path:
    resume_from = distributed.broadcast_object(
        prepare_run_folder(run_dir, resume) if run.is_main else None, run
    )
    if run.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    _setup_logging(run_dir, run.is_main)
    log.info("device: %s", describe_device(run.device))
    if resume and resume_from is None:  # said only now: before, logging was not set up
        log.info("no checkpoint in %s yet: starting from step 0", run_dir)
    torch.manual_seed(config.seed)  # the same initial networks on every rank

    dataset = VoxCelebDataset.from_config(config, split="train")
    try:
        held_out = validation_episodes(
            VoxCelebDataset.from_config(config, split="validation"),
            config.train.validation_episodes,
        )
    except StoreError as error:
        held_out = []
        log.info("validation off: %s", error)
    configure_backends(run.device, config.train.deterministic)
    precision = Precision(resolve_precision(config.train.precision, run.device), run.device)
    learner = MetaLearner(config, run, precision)
    state = Progress()
    if resume_from is not None:
        checkpoint = load_checkpoint(resume_from)
        check_resumable(checkpoint, config, resume_from)
        learner.load_state_dict(checkpoint)
        restore_rng(checkpoint["rng"])
        state = Progress(checkpoint["step"], checkpoint["episodes_seen"])
        if run.is_main:
            truncate_metrics(run_dir, state.step)
        log.info("resumed from %s at step %d", resume_from, state.step)
    known = len(learner.table)
    rows_of_video = learner.table.rows_for(dataset.keys).to(run.device)  # W's row per video
    if resume_from is not None and len(learner.table) > known:
        log.info("%d videos new since the checkpoint: fresh rows of W", len(learner.table) - known)
    if run.is_main:
        save_config(config, run_dir / "config.yaml")
        log.info(
            "%d training videos, %d validation episodes; %s on %s, %d process(es); "
            "batch %d per process, K = %d, %d px",
            len(dataset),
            len(held_out),
            precision.name,
            run.device,
            run.world_size,
            config.data.batch_size,
            config.data.k_shot,
            config.model.image_size,
        )

    loader, sampler = make_loader(
        dataset,
        config,
        state.episodes_seen,
        run.rank,
        run.world_size,
        pin_memory=config.train.pin_memory and run.device.type == "cuda",
    )
    monitor = RunLog(run_dir) if run.is_main else None
    alarm = CollapseAlarm(
        config.train.collapse_std, config.train.collapse_checks, config.model.output_activation
    )
    nonfinite = NonFiniteAlarm(run.device)
    train_config = config.train
    learner.train(True)
    batches = iter(loader)
    bar = tqdm(
        total=train_config.steps,
        initial=state.step,
        unit="step",
        disable=not (progress_bar and run.is_main),
        dynamic_ncols=True,
    )
    window_start, data_wait, replaced = time.perf_counter(), 0.0, 0
    stop = StopRequest(enabled=not run.enabled)  # one process: Ctrl-C saves the step, stops
    try:
        stop.install()
        while state.step < train_config.steps:
            wait_start = time.perf_counter()
            batch = next(batches)
            data_wait += time.perf_counter() - wait_start
            replaced += int(batch["replaced"].sum())
            rows = rows_of_video[batch["video_index"].to(run.device, non_blocking=True)]
            measure = (state.step + 1) % train_config.log_every == 0
            result = learner.step(batch, rows, measure)
            state.step += 1
            nonfinite.record(state.step, result.finite)
            state.episodes_seen += sampler.global_batch_size()
            bar.update(1)

            if measure:
                nonfinite.check(run)
                elapsed = time.perf_counter() - window_start
                scalars = {k: float(v) for k, v in result.scalars.items()}
                scalars["collapse/lowest_image_std"] = float(alarm.image_std(result.fake).min())
                scalars = distributed.all_mean(scalars, run)
                scalars.update(
                    {
                        "speed/steps_per_s": train_config.log_every / elapsed,
                        "speed/images_per_s": train_config.log_every
                        * sampler.global_batch_size()
                        / elapsed,
                        "speed/data_wait_fraction": data_wait / elapsed,
                        "data/replaced_records": float(replaced),
                        "lr/generator": config.optim.lr_generator,
                        "lr/discriminator": config.optim.lr_discriminator,
                    }
                )
                if run.device.type == "cuda":
                    scalars["memory/gpu_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
                alarm.check_value(scalars["collapse/lowest_image_std"], state.step)
                if monitor is not None:
                    monitor.scalars(state.step, scalars)
                bar.set_postfix(
                    G=f"{scalars['loss_g/total']:.3f}",
                    D=f"{scalars['loss_d/hinge']:.3f}",
                    real=f"{scalars['score/real']:.2f}",
                    fake=f"{scalars['score/fake']:.2f}",
                )
                window_start, data_wait, replaced = time.perf_counter(), 0.0, 0

            if monitor is not None and state.step % train_config.sample_every == 0:
                grid = sample_grid(
                    learner.to_device(batch), result.fake, config.model.output_activation
                )
                monitor.picture(state.step, "samples", grid)
            if monitor is not None and held_out and state.step % train_config.validate_every == 0:
                monitor.scalars(state.step, validate(learner, held_out, config.data.batch_size))
            if state.step % train_config.checkpoint_every == 0 or state.step == train_config.steps:
                _save(learner, state, config, run_dir, run, monitor, nonfinite)
            elif stop.requested:
                log.info("interrupted: saving step %d before leaving", state.step)
                _save(learner, state, config, run_dir, run, monitor, nonfinite)
            if stop.requested:
                raise KeyboardInterrupt
    finally:
        stop.restore()
        bar.close()
        if monitor is not None:
            monitor.close()
    meta_path = run_dir / META_MODEL_NAME
    if run.is_main:
        export_meta_model(load_checkpoint(list_checkpoints(run_dir)[-1]), meta_path)
        log.info("meta-model for the person scripts: %s", meta_path)
    return meta_path


def _save(
    learner: MetaLearner,
    state: Progress,
    config: Config,
    run_dir: Path,
    run: distributed.Distributed,
    monitor: RunLog | None,
    nonfinite: NonFiniteAlarm,
) -> None:
    """Check that no loss was NaN or infinite and that all ranks agree, then rank 0 writes the
    checkpoint and redraws loss.png."""
    nonfinite.check(run)
    named = {
        f"{name}.{key}": value
        for name, network in learner.networks().items()
        for key, value in network.state_dict().items()
    }
    named["W"] = learner.table.weight
    distributed.check_in_sync(named, run)
    diverged = [k for k, v in named.items() if v.is_floating_point() and not v.isfinite().all()]
    if diverged:  # the loss alarm sees losses; weights can diverge in the step after them
        raise TrainingCollapsed(
            f"weights became NaN or infinite by step {state.step} ({', '.join(diverged[:3])}"
            f"{', ...' if len(diverged) > 3 else ''}); no checkpoint written: lower the "
            "learning rates and resume from the last checkpoint"
        )
    if monitor is None:
        return
    path = save_checkpoint(
        run_dir,
        state.step,
        state.episodes_seen,
        learner.state_dict(),
        config,
        config.train.keep_checkpoints,
    )
    monitor.flush()
    plot_losses(run_dir)
    log.info("step %d: checkpoint %s", state.step, path)
