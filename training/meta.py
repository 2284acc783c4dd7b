"""One meta-learning step (SPEC section 3): the generator side, then the discriminator side.

``MetaLearner`` owns what a step changes: E, G (with P), D, the W table and their optimisers.
A step, for a batch of episodes (K frames + a held-out target per video):

1. generator side: e_hat = mean_k E(x_k, y_k); x_hat = G(y_t, e_hat); L_CNT + L_ADV (with
   feature matching) + L_MCH; one Adam step for E, G and P. No gradient of it reaches D; the
   match loss may reach the batch's W rows (``loss.match_loss_updates_w``), whose gradient is
   kept;
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

from loss.objectives import (
    adversarial_terms,
    discriminator_side_loss,
    discriminator_view,
    match_term,
)
from loss.perceptual import ContentLoss
from network import Discriminator, Embedder, Generator
from params.config import Config
from training.distributed import Distributed
from training.optimizer import make_adam
from training.precision import Precision
from training.video_table import VideoTable
from utils.memory import release_free_memory

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
        if optim.discriminator_steps < 1:
            raise ValueError("optim.discriminator_steps must be at least 1")
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
        self.content = ContentLoss(config.loss, model.output_activation).to(
            device, dtype=precision.dtype or torch.float32, memory_format=self.memory_format
        )
        betas = tuple(optim.betas)
        self.optimizer_g = make_adam(
            [*self.embedder.parameters(), *self.generator.parameters()], optim.lr_generator, betas
        )
        self.optimizer_d = make_adam(self.discriminator.parameters(), optim.lr_discriminator, betas)
        table_generator = torch.Generator().manual_seed(config.seed)
        self.table = VideoTable(
            model.embedding_dim,
            optim.lr_discriminator,
            betas,
            device=device,
            generator=table_generator,
        )
        self.scaler_g, self.scaler_d = precision.scaler(), precision.scaler()
        # What the step calls: DDP wrappers under torchrun. D's frozen pass for the generator
        # side (``view``) uses the bare module: it must not trigger gradient synchronisation.
        self.embed, self.generate, self.judge = self.embedder, self.generator, self.discriminator
        if run.enabled:
            ids = [device.index] if device.type == "cuda" else None
            self.embed = DistributedDataParallel(self.embedder, device_ids=ids)
            self.generate = DistributedDataParallel(self.generator, device_ids=ids)
            self.judge = DistributedDataParallel(self.discriminator, device_ids=ids)
        # D as the generator side sees it (frozen), and the content loss.
        self.view, self.perceive = self.discriminator, self.content
        if config.train.compile:
            self.embed, self.generate, self.judge, self.view, self.perceive = (
                torch.compile(module)
                for module in (self.embed, self.generate, self.judge, self.view, self.perceive)
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
        gradient norms (for logging steps).

        The order of work saves memory and time without changing the maths: the content loss's
        backward runs first, into x_hat, so that VGG's activations are freed before D runs; D's
        first step runs next, and its activations on the real frame serve as the generator
        side's feature-matching targets (the same weights, so D sees the real frame once for
        both); then D's generator-side terms go into x_hat, and from x_hat the gradient goes
        into G and E together with the match loss.
        """
        images = self.to_device(batch)
        real, landmarks = images["target_frame"], images["target_landmark_image"]
        config = self.config.loss
        scalars: dict[str, torch.Tensor] = {}

        # 1. Generator side: E, G and P.
        with self.precision.autocast():
            e_hat = self.embed(images["frames"], images["landmark_images"])
            fake = self.generate(landmarks, e_hat)
        fake_in = fake.detach().requires_grad_(True)  # the generator's losses meet here
        with self.precision.autocast():
            terms = self.perceive(fake_in, real)
        self.scaler_g.scale(sum(terms.values())).backward(inputs=[fake_in])
        # D's first step on real and x_hat; its activations on the real frame are also the
        # generator side's feature-matching targets (D's weights are the same for both).
        w_d = self.table.gather(rows)
        with self.precision.autocast():
            first_step = discriminator_side_loss(self.judge, fake, real, landmarks, w_d)
        self.scaler_d.scale(first_step["total"]).backward()
        real_targets = first_step.pop("real_activations")
        with self.precision.autocast():
            fake_scores, fake_activations = discriminator_view(self.view, fake_in, landmarks, w_d)
            terms.update(adversarial_terms(config, fake_scores, fake_activations, real_targets))
        adversarial = terms["adversarial"] + terms["feature_matching"]
        self.scaler_g.scale(adversarial).backward(inputs=[fake_in])
        del fake_scores, fake_activations, real_targets
        w_match = self.table.gather(rows)
        with self.precision.autocast():
            terms["match"] = match_term(config, w_match, e_hat)
        terms["total"] = sum(terms.values())
        # From x_hat into G and E, together with the match loss (into E and W's rows).
        torch.autograd.backward([fake, self.scaler_g.scale(terms["match"])], [fake_in.grad, None])
        self.scaler_g.unscale_(self.optimizer_g)
        if measure:
            scalars["grad_norm/embedder"] = _grad_norm([self.embedder])
            scalars["grad_norm/generator"] = _grad_norm([self.generator])
        self.scaler_g.step(self.optimizer_g)
        self.scaler_g.update()
        self.optimizer_g.zero_grad(set_to_none=True)  # free the gradients before D's turn
        if self._w_gradient_ok(w_match, self.scaler_g):
            self.table.accumulate(rows, w_match)
        scalars.update({f"loss_g/{name}": value.detach().float() for name, value in terms.items()})

        # 2. Discriminator side: D and W, discriminator_steps times on the same x_hat; the
        # first step's gradient is already there.
        fake = fake.detach()
        d_terms = first_step
        for d_step in range(self.config.optim.discriminator_steps):
            if d_step > 0:
                w_d = self.table.gather(rows)
                with self.precision.autocast():
                    d_terms = discriminator_side_loss(self.judge, fake, real, landmarks, w_d)
                self.scaler_d.scale(d_terms["total"]).backward()
            self.scaler_d.unscale_(self.optimizer_d)
            if measure:
                scalars["grad_norm/discriminator"] = _grad_norm([self.discriminator])
                if w_d.grad is not None:
                    scalars["grad_norm/W_rows"] = w_d.grad.detach().norm()
            self.scaler_d.step(self.optimizer_d)
            self.scaler_d.update()
            self.optimizer_d.zero_grad(set_to_none=True)
            if self._w_gradient_ok(w_d, self.scaler_d):
                self.table.accumulate(rows, w_d)
            self.table.step()
        scalars["loss_d/hinge"] = d_terms["total"].detach().float()
        scalars["score/real"] = d_terms["real_score"].float()
        scalars["score/fake"] = d_terms["fake_score"].float()
        finite = bool(torch.isfinite(terms["total"] + d_terms["total"]).item())
        release_free_memory()
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
