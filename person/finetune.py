"""Fine-tuning a person model on its T frames (SPEC section 4).

G' starts as the meta-trained G with psi' = P e_NEW as a parameter of its own; D' starts as D
with its projection w' = w_0 + e_NEW (no W: the person is not one of the training videos).
Both train on the T frames: G' on L_CNT + L_ADV with feature matching, D' on the hinge loss,
with the same loss code, precision and channels-last switches as meta-training. The run is
resumable: a work folder beside the output keeps a checkpoint, the metrics, a sample grid and
the loss plot; the finished person model is self-contained (G', psi', crop settings, config).
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dataset.face import draw_landmarks
from dataset.value_range import image_to_tensor
from loss.perceptual import ContentLoss
from models.meta_model import MetaModel
from models.person_model import PersonModel
from params.config import Config
from runtime.adversarial_update import AdversarialUpdate
from runtime.episode_order import EpisodeBatchSampler
from runtime.optimizer import make_adam
from runtime.precision import Precision
from runtime.rng import restore_rng, rng_state
from runtime.runlog import RunLog, plot_losses, sample_grid
from runtime.stop import StopRequest
from utils.files import (
    atomic_save,
    atomic_write_bytes,
    hold_folder,
    load_work_state,
    remove_folder,
)
from utils.images import save_image
from utils.tensors import tensor_bytes

WORK_SUFFIX = ".work"
CHECKPOINT_NAME = "finetune.pt"


class FineTuneError(RuntimeError):
    """A fine-tuning that cannot start or continue; the message says why."""


def batch_size(config: Config, frames: int) -> int:
    """finetune.batch_size, at most the T frames (a larger batch would only repeat them)."""
    return max(1, min(config.finetune.batch_size, frames))


def total_steps(config: Config, frames: int) -> int:
    tune = config.finetune
    if tune.steps > 0:
        return tune.steps
    return max(1, math.ceil(tune.epochs * frames / batch_size(config, frames)))


def check_finite(model: PersonModel, step: int) -> None:
    """FineTuneError when the tuned generator or psi holds NaN or infinity (diverged)."""
    tensors = [model.psi, *model.generator.state_dict().values()]
    if not all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point()):
        raise FineTuneError(
            f"fine-tuning diverged by step {step} (NaN or infinite weights): nothing written; "
            "lower finetune.lr_generator / finetune.lr_discriminator"
        )


def work_folder(out: Path) -> Path:
    return out.with_name(out.name + WORK_SUFFIX)


@dataclass
class PersonFrames:
    """The person's frames and landmark pictures as network tensors on the device."""

    frames: torch.Tensor  # (T, 3, S, S)
    pictures: torch.Tensor  # (T, 3, S, S)

    @classmethod
    def of(cls, person: PersonModel, device: torch.device, memory_format) -> PersonFrames:
        activation = person.config.model.output_activation
        size = person.config.model.image_size
        frames = image_to_tensor(person.frame_images(), activation)
        pictures = image_to_tensor(
            np.stack([draw_landmarks(points, size) for points in person.landmarks]), activation
        )
        return cls(
            frames.to(device).contiguous(memory_format=memory_format),
            pictures.to(device).contiguous(memory_format=memory_format),
        )


class FineTuner:
    """G' and D' of one person, their optimisers, and one fine-tuning step."""

    def __init__(
        self, meta: MetaModel, person: PersonModel, config: Config, precision: Precision
    ) -> None:
        if person.distilled:
            raise FineTuneError(
                "a distilled person model has no G to fine-tune: fine-tune its teacher, then "
                "distil that again"
            )
        if person.embedding is None:
            raise FineTuneError("the person file holds no embedding e_NEW to start from")
        device = precision.device
        self.config, self.precision = config, precision
        self.memory_format = (
            torch.channels_last if config.train.channels_last else torch.contiguous_format
        )
        self.generator = copy.deepcopy(meta.generator).to(device, memory_format=self.memory_format)
        self.generator.use_trainable_psi(person.psi.to(device))
        self.discriminator = copy.deepcopy(meta.discriminator).to(
            device, memory_format=self.memory_format
        )
        self.discriminator.use_person_projection(person.embedding.to(device))
        content_loss = ContentLoss(config.loss, config.model.output_activation).to(
            device, dtype=precision.dtype or torch.float32, memory_format=self.memory_format
        )
        tune, betas = config.finetune, config.optim.betas
        # P is not used once psi' is a parameter: it gets no gradient and is not updated.
        self.update = AdversarialUpdate(
            config.loss,
            content_loss,
            {"generator": self.generator},
            self.discriminator,
            make_adam(self.generator.parameters(), tune.lr_generator, betas, device),
            make_adam(self.discriminator.parameters(), tune.lr_discriminator, betas, device),
            precision,
            tune.discriminator_steps,
        )
        self.generator.train()
        self.discriminator.train()

    def step(self, frames: torch.Tensor, pictures: torch.Tensor) -> dict[str, float]:
        """One generator update and finetune.discriminator_steps discriminator updates on the
        person's frames and landmark pictures (B, 3, S, S); returns the logged scalars."""
        with self.precision.autocast():
            fake = self.generator(pictures)
        result = self.update.step(fake, frames, pictures)
        values = torch.stack([v.float().reshape(()) for v in result.scalars.values()]).tolist()
        return dict(zip(result.scalars, values, strict=True))  # one wait for the device

    def person_model(self, person: PersonModel) -> PersonModel:
        """The fine-tuned person: G' with psi' beside it, the person's frames kept."""
        generator = self.generator
        psi = generator.psi.detach().clone()
        generator.psi = None  # psi is kept beside G, not inside it
        return PersonModel(
            kind="fine-tuned",
            config=person.config,
            generator=generator.eval(),
            psi=psi,
            frames=person.frames,
            landmarks=person.landmarks,
            meta_identity=person.meta_identity,
            embedding=person.embedding,
            sources=person.sources,
        )

    def state_dict(self) -> dict[str, object]:
        return {
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            **self.update.state_dict(),
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.update.load_state_dict(state)


def origin(meta: MetaModel, person: PersonModel) -> dict[str, str]:
    """What a fine-tuning is made from: the meta-model's identity and the person's content."""
    digest = hashlib.sha256(tensor_bytes(person.psi))
    for frame in person.frames:
        digest.update(frame)
    return {"meta-model": meta.identity, "person": digest.hexdigest()[:16]}


def fine_tune(
    meta: MetaModel,
    person: PersonModel,
    config: Config,
    out: Path,
    precision: Precision,
    resume: bool = False,
    progress_bar: bool = True,
) -> PersonModel:
    """Fine-tune, checkpointing into OUT.work/; returns (and writes to out) the person model.

    One process per work folder: a second one gets FineTuneError. The last step is saved in
    OUT.work/ before out is written, and OUT.work/ is deleted only once it is: when a write
    fails (OSError naming the file: a full disk) no step is lost, and resume=True writes the
    outputs without a step more."""
    with hold_folder(work_folder(out), FineTuneError, "fine-tuning"):
        tuned = _fine_tune(meta, person, config, out, precision, resume, progress_bar)
    remove_folder(work_folder(out))  # once its lock is let go: Windows deletes no open file
    return tuned


def _fine_tune(
    meta: MetaModel,
    person: PersonModel,
    config: Config,
    out: Path,
    precision: Precision,
    resume: bool,
    progress_bar: bool,
) -> PersonModel:
    work = work_folder(out)
    checkpoint_path = work / CHECKPOINT_NAME
    if checkpoint_path.exists() and not resume:
        raise FineTuneError(
            f"a fine-tuning into {out} was stopped before ({checkpoint_path}): pass --resume to "
            "continue it, or delete that folder to start again"
        )
    torch.manual_seed(config.seed)
    tuner = FineTuner(meta, person, config, precision)
    data = PersonFrames.of(person, precision.device, tuner.memory_format)
    count = data.frames.shape[0]
    steps = total_steps(config, count)
    step = 0
    made_from = origin(meta, person)
    if resume and checkpoint_path.exists():
        state = load_work_state(
            checkpoint_path,
            made_from,
            FineTuneError,
            "fine-tuning",
            "the same --model and --person",
        )
        tuner.load_state_dict(state)
        restore_rng(state["rng"])
        step = state["step"]
    work.mkdir(parents=True, exist_ok=True)
    log = RunLog(work)
    tune = config.finetune
    bar = tqdm(total=steps, initial=step, unit="step", disable=not progress_bar, desc="fine-tuning")

    def work_state(done: int) -> dict[str, object]:
        return {**tuner.state_dict(), "step": done, "rng": rng_state(), "made_from": made_from}

    def after_step(done: int, scalars: dict[str, float]) -> None:
        bar.update(1)
        if done % tune.log_every == 0 or done == steps:
            log.scalars(done, scalars)
            bar.set_postfix(G=f"{scalars['loss_g/total']:.3f}", D=f"{scalars['loss_d/hinge']:.3f}")
        if done % tune.sample_every == 0 and done < steps:
            tuner.generator.eval()  # no power iteration: sampling leaves the run unchanged
            grid = person_grid(tuner.generator, data, config.model.output_activation)
            tuner.generator.train()
            log.picture(done, "samples", grid)
            plot_losses(work)
        if (done % tune.checkpoint_every == 0 or stop.requested) and done < steps:
            atomic_save(work_state(done), checkpoint_path)
        if stop.requested and done < steps:
            raise KeyboardInterrupt  # the finished step is saved: --resume continues from it

    stop = StopRequest(enabled=True)  # Ctrl-C, or a stop request, finishes the step and saves it
    stop.install()
    try:
        run_steps(tuner, data, config, step, steps, after_step)
    finally:
        stop.restore()
        bar.close()
        log.close()
    last = work_state(steps)  # before person_model takes psi out of G
    tuned = tuner.person_model(person)
    check_finite(tuned, steps)
    if step < steps:  # kept until the outputs are written: a failed write (a full disk) loses
        atomic_save(last, checkpoint_path)  # no step, and --resume writes them at once
    _write_pictures(tuned, data, out, work)
    tuned.save(out)
    return tuned


def run_steps(
    tuner: FineTuner,
    data: PersonFrames,
    config: Config,
    start: int,
    steps: int,
    after_step: Callable[[int, dict[str, float]], None] = lambda done, scalars: None,
) -> None:
    """Steps start..steps; each batch is a function of the step (resumes exactly)."""
    size = batch_size(config, data.frames.shape[0])
    sampler = EpisodeBatchSampler(data.frames.shape[0], size, config.seed)
    for step in range(start, steps):
        chosen = [sampler.episode(step * size + i)[0] for i in range(size)]
        index = torch.tensor(chosen, device=data.frames.device)
        after_step(step + 1, tuner.step(data.frames[index], data.pictures[index]))


def tuned_in_memory(
    meta: MetaModel, person: PersonModel, config: Config, precision: Precision
) -> PersonModel:
    """Fine-tune without files (evaluation): total_steps(config, T) steps from the start."""
    torch.manual_seed(config.seed)
    tuner = FineTuner(meta, person, config, precision)
    data = PersonFrames.of(person, precision.device, tuner.memory_format)
    run_steps(tuner, data, config, 0, total_steps(config, data.frames.shape[0]))
    return tuner.person_model(person)


def person_grid(
    render: Callable[[torch.Tensor], torch.Tensor], data: PersonFrames, activation: str
) -> np.ndarray:
    """Up to 8 of the person's frames, one per row: landmark picture, render(picture), real
    (RGB uint8). render runs without gradients; the caller puts its networks in eval mode."""
    shown = min(8, data.frames.shape[0])
    with torch.no_grad():
        generated = render(data.pictures[:shown].float().contiguous())
    batch = {  # no source columns: landmarks, generated, real
        "frames": data.frames[:shown, None][:, :0],
        "target_landmark_image": data.pictures[:shown],
        "target_frame": data.frames[:shown],
    }
    return sample_grid(batch, generated.float(), activation, rows=shown)


def _write_pictures(tuned: PersonModel, data: PersonFrames, out: Path, work: Path) -> None:
    """Beside the output: the person's frames (landmarks, generated, real) and the loss plot."""
    grid = person_grid(tuned.generate, data, tuned.config.model.output_activation)
    save_image(grid, out.with_name(out.stem + "_samples.png"))
    plot = plot_losses(work)
    if plot is not None:
        atomic_write_bytes(out.with_name(out.stem + "_loss.png"), plot.read_bytes())
