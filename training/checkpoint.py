"""Checkpoints of a training run: atomic, the last few kept, refused when they do not fit.

A checkpoint holds everything that decides the rest of the run: E, G, D, W (with its video keys
and row-wise Adam state), both optimisers and gradient scalers, the step, the number of episodes
consumed (the data order is a function of it, training/data.py), every random generator's state
and the config. W is saved here once, never per video or per step (SPEC mistake 4). Files are
loaded with weights_only=True: a checkpoint is data, never code.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import torch

from params.config import Config, to_dict
from runtime.rng import rng_state
from utils.files import atomic_save, load_versioned

FORMAT = "talking-heads/training-checkpoint"
VERSION = 2  # 2: W's Adam state is a global step and each row's last step (was: per-row steps)
CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^step-(\d{9})\.pt$")
# Settings that may change when a run is resumed: where things are, how fast and how often
# they are written, how the store was built. Everything else (model, losses, optimiser,
# episode shape, framing, seed) must match the checkpoint.
MAY_CHANGE = (
    "train.",
    "person.",
    "finetune.",
    "eval.",
    "device",
    "data.store",
    "data.num_workers",
    "data.batch_size",
    "data.frames_per_video",
    "data.detector",
    "data.jpeg_quality",
    "data.min_face_frames",
    "data.stabilizer_",
    "data.redetect_every",
    "data.switch_face_ratio",
    "data.fan_min_confidence",
    "data.cut_threshold",
    "data.identity_",
    "loss.vgg19_weights",
    "loss.vggface_weights",
    "loss.vggface_input_order",
)


class CheckpointError(RuntimeError):
    """A file that is not a usable checkpoint of this run; the message says why."""


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return run_dir / CHECKPOINT_DIR / f"step-{step:09d}.pt"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """The run's checkpoints, oldest first."""
    folder = run_dir / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _NAME.match(p.name))


def save_checkpoint(
    run_dir: Path,
    step: int,
    episodes_seen: int,
    learner_state: dict[str, object],
    config: Config,
    keep: int,
) -> Path:
    """Write step's checkpoint atomically, then delete all but the newest keep."""
    path = checkpoint_path(run_dir, step)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "step": step,
        "episodes_seen": episodes_seen,
        "config": to_dict(config),
        "rng": rng_state(),
        **learner_state,
    }
    atomic_save(payload, path)
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path) -> dict[str, object]:
    """A checkpoint's contents; CheckpointError for a truncated file or anything else.

    A version-1 checkpoint is upgraded (``_upgrade_w_state``) and loads like a current one.
    """
    payload = load_versioned(
        path, FORMAT, VERSION, "training checkpoint", CheckpointError, " of this project", (1,)
    )
    if payload["version"] == 1:
        _upgrade_w_state(payload)
    return payload


def _upgrade_w_state(payload: dict[str, object]) -> None:
    """Version 1 -> 2: W's row-wise Adam kept a step count per row and never decayed an idle
    row's second moment. Dense Adam's global step is the number of D steps taken (step x
    optim.discriminator_steps); every row's moments count as brought up to date at it, so the
    run goes on with dense Adam's update from here (training/video_table.py)."""
    table = dict(payload["table"])
    global_step = payload["step"] * payload["config"]["optim"]["discriminator_steps"]
    del table["steps"]
    table["step"] = global_step
    table["last_step"] = torch.full((len(table["keys"]),), global_step, dtype=torch.int64)
    payload["table"] = table
    payload["version"] = VERSION


def _flatten(values: dict[str, object], prefix: str = "") -> dict[str, object]:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_differences(saved: dict[str, object], config: Config) -> list[str]:
    """'key: checkpoint X, now Y' for each setting that must match but does not."""
    old, new = _flatten(saved), _flatten(dataclasses.asdict(config))
    return [
        f"{key}: checkpoint {old.get(key)!r}, now {new.get(key)!r}"
        for key in sorted(set(old) | set(new))
        if not key.startswith(MAY_CHANGE) and old.get(key) != new.get(key)
    ]


def check_resumable(state: dict[str, object], config: Config, path: Path) -> None:
    differences = config_differences(state["config"], config)
    if differences:
        raise CheckpointError(
            f"{path} was trained with other settings: {'; '.join(differences)}. Resume with the "
            "run's own config (its config.yaml), or start a new run in another --out"
        )
