"""One meta-learning step (SPEC section 3).

``MetaLearner`` owns what a step changes: E, G (with P), D, the W table and their optimisers.
A step, for a batch of episodes (K frames + a held-out target per video): e_hat =
mean_k E(x_k, y_k) and x_hat = G(y_t, e_hat), then the adversarial update that fine-tuning
uses too (runtime/adversarial_update.py): the generator side (L_CNT, L_ADV, L_MCH) steps E, G
and P, and ``optim.discriminator_steps`` hinge-loss steps update D, w_0, b and the batch's rows
of W on the same x_hat, as in the authors' and the reference's training.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from loss.perceptual import ContentLoss
from network import Discriminator, Embedder, Generator
from params.config import Config
from runtime.adversarial_update import AdversarialUpdate
from runtime.compiler import compile_problem
from runtime.optimizer import make_adam
from runtime.precision import Precision
from training.distributed import Distributed
from training.video_table import VideoTable
from utils.memory import release_free_memory

BATCH_KEYS = ("frames", "landmark_images", "target_frame", "target_landmark_image")


@dataclass
class StepResult:
    """What one step reports: detached scalars, and the generated batch for samples."""

    scalars: dict[str, torch.Tensor]
    fake: torch.Tensor
    finite: torch.Tensor  # bool scalar on the device: every loss of the step is finite


class MetaLearner:
    """E, G, D, W and their optimisers; ``step`` runs one meta-learning iteration."""

    def __init__(self, config: Config, run: Distributed, precision: Precision) -> None:
        model, optim = config.model, config.optim
        self.config, self.run, self.precision = config, run, precision
        device = run.device
        self.memory_format = (
            torch.channels_last if config.train.channels_last else torch.contiguous_format
        )
        self.embedder = Embedder(model).to(device, memory_format=self.memory_format)
        self.generator = Generator(model).to(device, memory_format=self.memory_format)
        self.discriminator = Discriminator(model).to(device, memory_format=self.memory_format)
        # The frozen perceptual networks are stored in the compute precision: autocast would
        # otherwise cast their weights at every call, and they never need fp32 master weights.
        content_loss = ContentLoss(config.loss, model.output_activation).to(
            device, dtype=precision.dtype or torch.float32, memory_format=self.memory_format
        )
        self.table = VideoTable(
            model.embedding_dim,
            optim.lr_discriminator,
            optim.betas,
            device=device,
            seed=config.seed,
        )
        # torch.compile first, in place, then DDP around the compiled modules. The other order,
        # torch.compile(DDP(m)), hands the graph to dynamo's DDP optimiser, which splits it at
        # DDP's gradient buckets and fails on parametrized (spectral-norm) modules when there is
        # more than one bucket (pytorch/pytorch#113415). In place, D is one compiled module for
        # both of its callers (its hinge step at batch 2B, the generator side's frozen view at
        # B: two static graphs, no recompiling), and state dicts keep their keys.
        if config.train.compile and not _compile_problem_said(device):
            for module in (self.embedder, self.generator, self.discriminator, content_loss):
                module.compile(dynamic=False)
        # What a step calls: DDP wrappers under torchrun. The generator side's frozen pass of D
        # uses the bare module, never the DDP wrapper: it must not synchronise gradients.
        self.embedder_for_training = self.embedder
        self.generator_for_training = self.generator
        discriminator_for_training = self.discriminator
        if run.enabled:
            ids = [device.index] if device.type == "cuda" else None
            self.embedder_for_training = DistributedDataParallel(self.embedder, device_ids=ids)
            self.generator_for_training = DistributedDataParallel(self.generator, device_ids=ids)
            discriminator_for_training = DistributedDataParallel(self.discriminator, device_ids=ids)
        self.update = AdversarialUpdate(
            config.loss,
            content_loss,
            {"embedder": self.embedder, "generator": self.generator},
            self.discriminator,
            make_adam(
                [*self.embedder.parameters(), *self.generator.parameters()],
                optim.lr_generator,
                optim.betas,
                device,
            ),
            make_adam(self.discriminator.parameters(), optim.lr_discriminator, optim.betas, device),
            precision,
            optim.discriminator_steps,
            table=self.table,
            discriminator_for_training=discriminator_for_training,
        )

    def networks(self) -> dict[str, nn.Module]:
        return {
            "embedder": self.embedder,
            "generator": self.generator,
            "discriminator": self.discriminator,
        }

    def train(self, mode: bool = True) -> None:
        for network in self.networks().values():
            network.train(mode)

    def to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Images of a batch on the device, in the networks' memory format."""
        moved = {}
        for key in BATCH_KEYS:
            value = batch[key].to(self.run.device, non_blocking=True)
            if value.dim() == 4:
                value = value.contiguous(memory_format=self.memory_format)
            moved[key] = value
        return moved

    def step(self, batch: dict[str, torch.Tensor], rows: torch.Tensor, measure: bool) -> StepResult:
        """One iteration on a batch; rows: the batch videos' rows of W (B,). measure: also
        compute gradient norms (for logging steps)."""
        images = self.to_device(batch)
        with self.precision.autocast():
            e_hat = self.embedder_for_training(images["frames"], images["landmark_images"])
            fake = self.generator_for_training(images["target_landmark_image"], e_hat)
        result = self.update.step(
            fake,
            images["target_frame"],
            images["target_landmark_image"],
            rows=rows,
            embedding=e_hat,
            measure=measure,
        )
        if self.run.device.type == "cpu":  # the host heap is what a CPU step fills
            release_free_memory()
        return StepResult(result.scalars, fake.detach(), result.finite)

    def state_dict(self) -> dict[str, object]:
        return {
            **{name: network.state_dict() for name, network in self.networks().items()},
            **self.update.state_dict(),
            "table": self.table.state_dict(),
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        for name, network in self.networks().items():
            network.load_state_dict(state[name])
        self.update.load_state_dict(state)
        self.table.load_state_dict(state["table"])


def _compile_problem_said(device: torch.device) -> bool:
    """True, after one warning line, when torch.compile cannot work on device: training then
    runs without it instead of failing at its first step (runtime/compiler.py)."""
    problem = compile_problem(device)
    if problem:
        warnings.warn(f"train.compile: {problem}; training without it", stacklevel=3)
    return problem is not None
