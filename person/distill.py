"""Distilling a person model into a fast student: the same avatar at a fraction of the cost.

    python -m person.distill PERSON_MODEL --out FAST_MODEL [--drivers STORE_OR_VIDEOS ...]
        [--config FILE] [--set distill.steps=N ...] [--resume] [--overwrite]

The teacher (a feed-forward or fine-tuned person model) renders every training pose once
(person/poses.py: its own frames, augmented ones, drivers' motion retargeted onto its face);
the student (network/student.py) then learns those frames: L1 plus a VGG19 term on a random
crop (``distill.*``), Adam with a cosine learning rate. The run is resumable: OUT.work/ keeps
the teacher's frames, a checkpoint, the metrics, sample grids (landmarks | teacher | student)
and the loss plot. At the end the student is measured on held-out poses it never saw (PSNR
and SSIM to the teacher; on the person's held-out frames, SSIM of both to the real frames)
and written as a 'distilled' person model that every driving and export path takes as it is.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dataset.clips import PreprocessError
from dataset.face import draw_landmarks
from dataset.store import StoreError
from dataset.value_range import image_to_tensor, tensor_to_image
from loss.perceptual import Vgg19Distance
from loss.vggface import PerceptualWeightsError
from models.person_model import PersonModel, PersonModelError, load_person_model, make_network
from params.config import Config, ConfigError, load_config_dict, to_dict
from person.distill_report import compare, describe, measure, sample_grid
from person.poses import PoseError, Poses, driver_motion, split_poses
from runtime.cli import add_run_arguments, refuse_to_overwrite, run_settings, user_error
from runtime.precision import Precision, load_scaler_state
from runtime.rng import restore_rng, rng_state
from runtime.runlog import RunLog, plot_losses, read_metrics, truncate_metrics
from runtime.stop import StopRequest
from utils.files import (
    atomic_save,
    atomic_write_bytes,
    hold_folder,
    load_work_state,
    remove_folder,
)
from utils.images import save_image
from utils.signals import report_stop, stop_requests_as_ctrl_c

WORK_SUFFIX = ".work"
TEACHER_NAME = "teacher.pt"
CHECKPOINT_NAME = "distill.pt"
DRIVER_FRAMES = 100  # frames taken from each driver video (15 of them held out)
RENDER_BATCH = 8


class DistillError(RuntimeError):
    """A distillation that cannot start or continue; the message says why."""


@dataclass
class Rendered:
    """Landmark pictures and the teacher's frames for a set of poses, uint8 (N, 3, S, S)."""

    pictures: torch.Tensor
    frames: torch.Tensor

    def batch(self, index: torch.Tensor, activation: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Pictures and frames at index, float in the output range."""
        return (
            image_to_tensor(self.pictures[index].permute(0, 2, 3, 1).numpy(), activation),
            image_to_tensor(self.frames[index].permute(0, 2, 3, 1).numpy(), activation),
        )


def landmark_pictures(landmarks: np.ndarray, size: int) -> torch.Tensor:
    """(N, 68, 2) crop pixels -> uint8 (N, 3, S, S) landmark pictures."""
    if len(landmarks) == 0:
        return torch.zeros(0, 3, size, size, dtype=torch.uint8)
    pictures = np.stack([draw_landmarks(points, size) for points in landmarks])
    return torch.from_numpy(pictures).permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def render(
    teacher: PersonModel, poses: Poses, precision: Precision, progress: bool, label: str
) -> Rendered:
    """The teacher's frames for every pose (one pass, batches of RENDER_BATCH)."""
    size, activation = teacher.config.model.image_size, teacher.config.model.output_activation
    pictures = landmark_pictures(poses.landmarks, size)
    frames = torch.zeros_like(pictures)
    device = precision.device
    for start in tqdm(
        range(0, len(pictures), RENDER_BATCH), desc=label, unit="batch", disable=not progress
    ):
        chunk = pictures[start : start + RENDER_BATCH].permute(0, 2, 3, 1).numpy()
        with precision.autocast():
            out = teacher.generate(image_to_tensor(chunk, activation).to(device))
        frames[start : start + RENDER_BATCH] = torch.from_numpy(
            tensor_to_image(out.float().cpu(), activation)
        ).permute(0, 3, 1, 2)
    return Rendered(pictures, frames)


def _load_state(path: Path, origin: dict[str, str]) -> dict:
    inputs = "the same person model, drivers and distill settings"
    return load_work_state(path, origin, DistillError, "distillation", inputs)


def made_from(teacher: PersonModel, config: Config, drivers: list[Path]) -> dict[str, str]:
    """What a distillation depends on: the teacher, the distill settings (not how often it
    logs) and the drivers."""
    logging = ("log_every", "sample_every", "checkpoint_every")
    tune = {k: v for k, v in to_dict(config)["distill"].items() if k not in logging}
    settings = json.dumps(
        {
            "distill": tune,
            "seed": config.seed,
            "drivers": sorted(map(str, drivers)),
        },
        sort_keys=True,
    )
    return {
        "teacher": teacher.identity,
        "settings": hashlib.sha256(settings.encode()).hexdigest()[:16],
    }


def learning_rate(config: Config, step: int) -> float:
    """Cosine decay from distill.lr to 5% of it over distill.steps (a function of the step)."""
    tune = config.distill
    return tune.lr * (0.05 + 0.475 * (1 + math.cos(math.pi * step / tune.steps)))


class Distiller:
    """The student, its optimiser and losses, and one training step."""

    def __init__(self, config: Config, precision: Precision) -> None:
        self.config, self.precision = config, precision
        self.activation = config.model.output_activation
        self.student = make_network("distilled", config).to(precision.device).train()
        self.optimizer = torch.optim.Adam(self.student.parameters(), lr=config.distill.lr)
        self.scaler = precision.scaler()
        tune = config.distill
        self.perceptual = (
            Vgg19Distance(config.loss, self.activation, tune.perceptual_layers).to(precision.device)
            if tune.perceptual_weight > 0
            else None
        )

    def step(self, step: int, data: Rendered) -> dict[str, float]:
        """One update on a batch chosen by the step alone (so a resumed run repeats it)."""
        tune, size = self.config.distill, self.config.model.image_size
        rng = np.random.default_rng([self.config.seed, step])
        index = torch.from_numpy(rng.integers(0, len(data.frames), size=tune.batch_size))
        pictures, target = (t.to(self.precision.device) for t in data.batch(index, self.activation))
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.config, step)
        with self.precision.autocast():
            fake = self.student(pictures)
            l1 = (fake.float() - target).abs().mean()
            terms = {"loss_g/l1": tune.l1_weight * l1}
            if self.perceptual is not None:
                crop = min(tune.perceptual_crop, size)
                y, x = (int(v) for v in rng.integers(0, size - crop + 1, size=2))
                window = (..., slice(y, y + crop), slice(x, x + crop))
                terms["loss_g/perceptual"] = tune.perceptual_weight * self.perceptual(
                    fake[window].float(), target[window]
                )
        total = sum(terms.values())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()  # fp16 on older GPUs: loss scaling
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {
            **{k: float(v.detach()) for k, v in terms.items()},
            "loss_g/total": float(total.detach()),
        }

    @torch.no_grad()
    def generate(self, pictures: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, S, S) landmark pictures -> float frames in the output range, on CPU."""
        self.student.eval()
        outputs = []
        for start in range(0, len(pictures), RENDER_BATCH):
            chunk = pictures[start : start + RENDER_BATCH].permute(0, 2, 3, 1).numpy()
            tensor = image_to_tensor(chunk, self.activation).to(self.precision.device)
            with self.precision.autocast():
                outputs.append(self.student(tensor).float().cpu())
        self.student.train()
        size = self.config.model.image_size
        return torch.cat(outputs) if outputs else torch.zeros(0, 3, size, size)

    def validation(self, data: Rendered, count: int = 32) -> dict[str, float]:
        """'val/psnr' and 'val/ssim' of the student against the teacher on the first poses."""
        index = torch.arange(min(count, len(data.pictures)))
        _, teacher = data.batch(index, self.activation)
        found = compare(self.generate(data.pictures[index]), teacher, self.activation)
        return {f"val/{key}": value for key, value in found.items()}

    def samples(self, data: Rendered, rows: int = 6) -> np.ndarray:
        """Rows of landmark picture | teacher | student for the first poses of data."""
        student = tensor_to_image(self.generate(data.pictures[:rows]), self.activation)
        return sample_grid(data.pictures[:rows], data.frames[:rows], student)


@dataclass
class Lesson:
    """What the student learns from and is measured on: the teacher's frames for the training
    and the held-out poses, where each held-out pose came from, and which of the person's own
    frames were held out (their indices)."""

    train: Rendered
    held: Rendered
    held_sources: list[str]
    held_own: list[int]

    @classmethod
    def prepare(
        cls,
        teacher: PersonModel,
        config: Config,
        precision: Precision,
        drivers: list[Path],
        progress: bool,
    ) -> Lesson:
        """Poses (person/poses.py) rendered by the teacher."""
        motion = driver_motion(drivers, config, DRIVER_FRAMES)
        train_poses, held_poses = split_poses(
            teacher.landmarks, motion, config.distill, np.random.default_rng(config.seed)
        )
        return cls(
            render(teacher, train_poses, precision, progress, "teacher frames"),
            render(teacher, held_poses, precision, progress, "held-out teacher frames"),
            held_poses.sources,
            held_poses.own,
        )

    def state_dict(self) -> dict[str, object]:
        return {
            "train": [self.train.pictures, self.train.frames],
            "held": [self.held.pictures, self.held.frames],
            "held_sources": self.held_sources,
            "held_own": self.held_own,
        }

    @classmethod
    def from_state(cls, state: dict) -> Lesson:
        return cls(
            Rendered(*state["train"]),
            Rendered(*state["held"]),
            list(state["held_sources"]),
            list(state["held_own"]),
        )

    def real_frames(self, teacher: PersonModel) -> torch.Tensor | None:
        """The person's held-out real frames in the output range, or None."""
        if not self.held_own:
            return None
        images = teacher.frame_images()[self.held_own]
        return image_to_tensor(images, teacher.config.model.output_activation)

    @property
    def shown(self) -> Rendered:
        """The poses the sample grids and validation show: held-out ones when there are any."""
        return self.held if len(self.held.pictures) else self.train


def distill(
    teacher: PersonModel,
    config: Config,
    out: Path,
    precision: Precision,
    drivers: list[Path] = (),
    resume: bool = False,
    progress: bool = True,
) -> tuple[PersonModel, dict[str, object]]:
    """Distil teacher into a student person model written to out; returns it and its report.

    DistillError for a distilled teacher, a stopped run without resume, or a work folder made
    from other inputs; PoseError for unusable drivers.
    """
    if teacher.distilled:
        raise DistillError("this person model is already distilled: distil its teacher instead")
    work = out.with_name(out.name + WORK_SUFFIX)
    if work.exists() and any(work.iterdir()) and not resume:
        raise DistillError(
            f"a distillation into {out} was stopped before ({work}): pass --resume to continue "
            "it, or delete that folder to start again"
        )
    with hold_folder(work, DistillError, "distillation"):
        made = _distill(teacher, config, out, precision, list(drivers), resume, progress)
    remove_folder(work)  # once its lock is let go: Windows deletes no open file
    return made


def _distill(
    teacher: PersonModel,
    config: Config,
    out: Path,
    precision: Precision,
    drivers: list[Path],
    resume: bool,
    progress: bool,
) -> tuple[PersonModel, dict[str, object]]:
    work = out.with_name(out.name + WORK_SUFFIX)
    checkpoint_path, lesson_path = work / CHECKPOINT_NAME, work / TEACHER_NAME
    teacher.to(precision.device).generator.eval()
    origin = made_from(teacher, config, drivers)
    torch.manual_seed(config.seed)
    if resume and lesson_path.exists():
        lesson = Lesson.from_state(_load_state(lesson_path, origin))
    else:
        lesson = Lesson.prepare(teacher, config, precision, drivers, progress)
        atomic_save({"made_from": origin, **lesson.state_dict()}, lesson_path)
    distiller = Distiller(config, precision)
    step = 0
    if resume and checkpoint_path.exists():
        state = _load_state(checkpoint_path, origin)
        distiller.student.load_state_dict(state["student"])
        distiller.optimizer.load_state_dict(state["optimizer"])
        load_scaler_state(distiller.scaler, state["scaler"])
        restore_rng(state["rng"])
        step = state["step"]
        truncate_metrics(work, step)
    tune = config.distill
    log = RunLog(work)
    bar = tqdm(total=tune.steps, initial=step, unit="step", disable=not progress, desc="distilling")
    stop = StopRequest(enabled=True)  # Ctrl-C, or a stop request, finishes the step and saves it
    stop.install()
    try:
        while step < tune.steps:
            scalars = distiller.step(step, lesson.train)
            step += 1
            bar.update(1)
            if step % tune.log_every == 0 or step == tune.steps:
                bar.set_postfix(L1=f"{scalars['loss_g/l1']:.4f}")
                log.scalars(step, scalars)
            if step % tune.sample_every == 0 or step == tune.steps:
                log.scalars(step, distiller.validation(lesson.shown))
                log.picture(step, "distill", distiller.samples(lesson.shown))
            if (step % tune.checkpoint_every == 0 or stop.requested) and step < tune.steps:
                state = {
                    "student": distiller.student.state_dict(),
                    "optimizer": distiller.optimizer.state_dict(),
                    "scaler": distiller.scaler.state_dict(),
                    "step": step,
                    "rng": rng_state(),
                    "made_from": origin,
                }
                atomic_save(state, checkpoint_path)
                plot_losses(work)
            if stop.requested and step < tune.steps:
                raise KeyboardInterrupt  # the finished step is saved: --resume continues
    finally:
        stop.restore()
        bar.close()
        log.close()
    student = _person(teacher, distiller, config)
    report = {
        "steps": tune.steps,
        "training_poses": len(lesson.train.pictures),
        "curve": [  # what more steps bought: validation against the teacher over the run
            {"step": r["step"], "psnr": r["val/psnr"], "ssim": r["val/ssim"]}
            for r in read_metrics(work)
            if "val/psnr" in r
        ],
        **measure(
            distiller.generate(lesson.held.pictures),
            lesson.held,
            lesson.held_sources,
            lesson.real_frames(teacher),
            distiller.activation,
        ),
    }
    save_image(distiller.samples(lesson.shown, rows=8), out.with_name(out.stem + "_samples.png"))
    plot = plot_losses(work)
    if plot is not None:
        shutil.copyfile(plot, out.with_name(out.stem + "_loss.png"))
    atomic_write_bytes(
        out.with_name(out.stem + "_report.json"), json.dumps(report, indent=1).encode()
    )
    student.save(out)
    return student, report


def distilled_in_memory(teacher: PersonModel, config: Config, precision: Precision) -> PersonModel:
    """Distil without files or drivers (evaluation): distill.steps steps from the start."""
    torch.manual_seed(config.seed)
    teacher.generator.eval()
    lesson = Lesson.prepare(teacher, config, precision, [], progress=False)
    distiller = Distiller(config, precision)
    for step in range(config.distill.steps):
        distiller.step(step, lesson.train)
    return _person(teacher, distiller, config)


def _person(teacher: PersonModel, distiller: Distiller, config: Config) -> PersonModel:
    """The student as a 'distilled' person model: the teacher's frames and settings, the
    student's widths in its config's distill section."""
    student = distiller.student.eval().cpu()
    if not all(bool(torch.isfinite(t).all()) for t in student.state_dict().values()):
        raise DistillError(
            "distillation diverged (NaN or infinite weights): nothing written; lower distill.lr"
        )
    own = to_dict(teacher.config)
    own["distill"] = to_dict(config)["distill"]
    return PersonModel(
        kind="distilled",
        config=load_config_dict(own),
        generator=student,
        psi=None,
        frames=teacher.frames,
        landmarks=teacher.landmarks,
        meta_identity=teacher.meta_identity,
        embedding=teacher.embedding,
        sources=teacher.sources,
        teacher=teacher.identity,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("person", type=Path, help="person model to distil (either kind)")
    parser.add_argument("--out", type=Path, required=True, help="the distilled person model")
    parser.add_argument(
        "--drivers",
        type=Path,
        nargs="*",
        default=[],
        help="stores, videos or folders of videos whose motion the student should see",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--resume", action="store_true", help="continue a stopped distillation")
    parser.add_argument("--no-progress", action="store_true")
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    refuse_to_overwrite(parser, args.out, args.overwrite, [args.person])
    try:
        teacher = load_person_model(args.person)
        run = run_settings(teacher.config, args)
        with stop_requests_as_ctrl_c():
            _, report = distill(
                teacher,
                run.config,
                args.out,
                run.precision,
                args.drivers,
                args.resume,
                not args.no_progress,
            )
    except (
        PersonModelError,
        ConfigError,
        DistillError,
        PoseError,
        PreprocessError,
        StoreError,
        PerceptualWeightsError,
        OSError,
    ) as error:
        return user_error(error)
    except KeyboardInterrupt:
        return report_stop("continue from the last saved step: the same command with --resume")
    print(describe(report))
    print(f"wrote {args.out} (distilled; {args.out.stem}_samples.png, _loss.png, _report.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
