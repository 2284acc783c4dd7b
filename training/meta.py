"""One meta-learning step (SPEC section 3): the generator side, then the discriminator side.

``MetaLearner`` owns what a step changes: E, G (with P), D, the W table and their optimisers.
A step, for a batch of episodes (K frames + a held-out target per video):

1. generator side: e_hat = mean_k E(x_k, y_k); x_hat = G(y_t, e_hat); L_CNT + L_ADV (with
   feature matching) + L_MCH; one Adam step for E, G and P. D is frozen; the match loss may
   reach the batch's W rows (``loss.match_loss_updates_w``), whose gradient is kept;
2. discriminator side, ``optim.discriminator_steps`` times: the hinge loss on real and x_hat
   (detached), one Adam step for D's trunk, w_0 and b, and one row-wise step of W, which
   applies the kept match-loss gradient together with the first hinge gradient (nothing
   zeroes it in between: SPEC mistake 4).

The same x_hat serves every D step, as in the authors' and the reference's training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from loss.objectives import discriminator_side_loss, generator_side_loss
from loss.perceptual import ContentLoss
from network import Discriminator, Embedder, Generator
from params.config import Config
from training.distributed import Distributed
from training.precision import Precision
from training.video_table import VideoTable

BATCH_KEYS = ("frames", "landmark_images", "target_frame", "target_landmark_image")


@dataclass
class StepResult:
    """What one step reports: detached scalars, and the generated batch for samples."""

    scalars: dict[str, torch.Tensor]
    fake: torch.Tensor
    finite: bool


def _grad_norm(modules: list[nn.Module]) -> torch.Tensor:
    grads = [p.grad.detach().float() for m in modules for p in m.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


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
        self.content = ContentLoss(config.loss, model.output_activation).to(
            device, memory_format=self.memory_format
        )
        betas = tuple(optim.betas)
        self.optimizer_g = torch.optim.Adam(
            [*self.embedder.parameters(), *self.generator.parameters()],
            lr=optim.lr_generator,
            betas=betas,
        )
        self.optimizer_d = torch.optim.Adam(
            self.discriminator.parameters(), lr=optim.lr_discriminator, betas=betas
        )
        table_generator = torch.Generator().manual_seed(config.seed)
        self.table = VideoTable(
            model.embedding_dim,
            optim.lr_discriminator,
            betas,
            device=device,
            generator=table_generator,
        )
        self.scaler_g, self.scaler_d = precision.scaler(), precision.scaler()
        # What the steps call: DDP wrappers under torchrun (D's generator-side pass uses the
        # bare module: it is frozen there and must not trigger gradient synchronisation).
        self.embed, self.generate, self.judge = self.embedder, self.generator, self.discriminator
        if run.enabled:
            ids = [device.index] if device.type == "cuda" else None
            self.embed = DistributedDataParallel(self.embedder, device_ids=ids)
            self.generate = DistributedDataParallel(self.generator, device_ids=ids)
            self.judge = DistributedDataParallel(self.discriminator, device_ids=ids)
        if config.train.compile:
            self.embed, self.generate, self.judge = (
                torch.compile(module) for module in (self.embed, self.generate, self.judge)
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

    def _w_gradient_ok(self, leaf: torch.Tensor, scaler: torch.amp.GradScaler) -> bool:
        """Unscale the W rows' gradient like the optimiser's; False when it is not finite."""
        if leaf.grad is None:
            return True
        if scaler.is_enabled():
            leaf.grad.div_(scaler.get_scale())
        return bool(torch.isfinite(leaf.grad).all())

    def step(self, batch: dict[str, torch.Tensor], rows: torch.Tensor, measure: bool) -> StepResult:
        """One iteration on a batch; rows: the batch videos' rows of W. measure: also compute
        gradient norms (for logging steps)."""
        images = self.to_device(batch)
        loss_config = self.config.loss
        scalars: dict[str, torch.Tensor] = {}

        # 1. Generator side: E, G and P.
        with self.precision.autocast():
            e_hat = self.embed(images["frames"], images["landmark_images"])
            fake = self.generate(images["target_landmark_image"], e_hat)
            w_rows = self.table.gather(rows)
            terms = generator_side_loss(
                loss_config,
                self.content,
                self.discriminator,
                fake,
                images["target_frame"],
                images["target_landmark_image"],
                w_rows,
                e_hat,
            )
        self.optimizer_g.zero_grad(set_to_none=True)
        self.scaler_g.scale(terms["total"]).backward()
        self.scaler_g.unscale_(self.optimizer_g)
        if measure:
            scalars["grad_norm/embedder"] = _grad_norm([self.embedder])
            scalars["grad_norm/generator"] = _grad_norm([self.generator])
        self.scaler_g.step(self.optimizer_g)
        self.scaler_g.update()
        if self._w_gradient_ok(w_rows, self.scaler_g):
            self.table.accumulate(rows, w_rows)
        scalars.update({f"loss_g/{name}": value.detach().float() for name, value in terms.items()})

        # 2. Discriminator side: D and W, discriminator_steps times on the same x_hat.
        fake = fake.detach()
        for _ in range(self.config.optim.discriminator_steps):
            w_rows = self.table.gather(rows)
            with self.precision.autocast():
                d_terms = discriminator_side_loss(
                    self.judge,
                    fake,
                    images["target_frame"],
                    images["target_landmark_image"],
                    w_rows,
                )
            self.optimizer_d.zero_grad(set_to_none=True)
            self.scaler_d.scale(d_terms["total"]).backward()
            self.scaler_d.unscale_(self.optimizer_d)
            if measure:
                scalars["grad_norm/discriminator"] = _grad_norm([self.discriminator])
                if w_rows.grad is not None:
                    scalars["grad_norm/W_rows"] = w_rows.grad.detach().norm()
            self.scaler_d.step(self.optimizer_d)
            self.scaler_d.update()
            if self._w_gradient_ok(w_rows, self.scaler_d):
                self.table.accumulate(rows, w_rows)
            self.table.step()
        scalars["loss_d/hinge"] = d_terms["total"].detach().float()
        scalars["score/real"] = d_terms["real_score"].float()
        scalars["score/fake"] = d_terms["fake_score"].float()
        finite = bool(torch.isfinite(terms["total"] + d_terms["total"]).item())
        return StepResult(scalars, fake, finite)

    def state_dict(self) -> dict[str, object]:
        return {
            **{name: network.state_dict() for name, network in self.networks().items()},
            "optimizer_g": self.optimizer_g.state_dict(),
            "optimizer_d": self.optimizer_d.state_dict(),
            "scaler_g": self.scaler_g.state_dict(),
            "scaler_d": self.scaler_d.state_dict(),
            "table": self.table.state_dict(),
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        for name, network in self.networks().items():
            network.load_state_dict(state[name])
        self.optimizer_g.load_state_dict(state["optimizer_g"])
        self.optimizer_d.load_state_dict(state["optimizer_d"])
        self.scaler_g.load_state_dict(state["scaler_g"])
        self.scaler_d.load_state_dict(state["scaler_d"])
        self.table.load_state_dict(state["table"])
