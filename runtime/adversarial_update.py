"""The adversarial update that meta-learning and fine-tuning share (SPEC sections 3 and 4).

One ``AdversarialUpdate.step`` on a generated batch x_hat:

1. generator side: L_CNT + L_ADV (-r(x_hat) + lambda_FM * L_FM) and, when meta-learning,
   L_MCH; one Adam step for whatever made x_hat (E, G and P; or G' with psi'). No gradient of
   it reaches D; the match loss may reach the batch's W rows (``loss.match_loss_updates_w``),
   whose gradient is kept for W's next step;
2. discriminator side, ``discriminator_steps`` times on the same x_hat: the hinge loss on the
   real frame and x_hat (detached), one Adam step for D (trunk, w_0 and b; or D' with
   w' = w_0 + e_NEW) and, when meta-learning, one step of the batch's W rows, which applies
   the kept match gradient together with the first hinge gradient (nothing zeroes it in
   between: SPEC mistake 4).

The order of work saves memory and time without changing the maths: the content loss's
backward runs first, into x_hat, so that VGG's activations are freed before D runs; D's first
step runs next, and its activations on the real frame serve as the generator side's
feature-matching targets (the same weights, so D sees the real frame once for both); then D's
generator-side terms go into x_hat (D frozen), and from x_hat the gradient goes into the
generator, together with the match loss into E.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from loss.objectives import (
    adversarial_terms,
    discriminator_side_loss,
    discriminator_view,
    match_term,
)
from params.config import LossConfig
from runtime.precision import Precision, load_scaler_state


class RowTable(Protocol):
    """What the update needs of W (training/video_table.py): the batch's rows as a leaf
    tensor, their gradient handed back, and one optimiser step over what was handed back."""

    def gather(self, rows: torch.Tensor) -> torch.Tensor: ...

    def accumulate(self, rows: torch.Tensor, gathered: torch.Tensor) -> None: ...

    def step(self) -> int: ...


def gradient_norm(modules: list[nn.Module]) -> torch.Tensor:
    """The L2 norm of all gradients of these modules' parameters (0 when there are none)."""
    grads = [p.grad.detach().float() for m in modules for p in m.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


@dataclass
class UpdateResult:
    """Detached scalars of one update (losses, scores, gradient norms when measured)."""

    scalars: dict[str, torch.Tensor]
    finite: torch.Tensor  # bool scalar on the device: every loss of the step is finite


class AdversarialUpdate:
    """Optimisers, gradient scalers and the losses of one G-then-D update.

    generator_side: the modules that make x_hat, by name, for gradient norms (E and G; or G').
    discriminator: D itself (compiled in place when compiling), which the generator side calls
    with D frozen (never a DDP wrapper: it must not synchronise); ``discriminator_for_training``
    is what its hinge step calls (a DDP wrapper of D, or D itself).
    table: W when meta-learning (the batch's rows are then passed to ``step``), None in person
    mode, where D uses its own projection w'.
    """

    def __init__(
        self,
        loss_config: LossConfig,
        content_loss: nn.Module,
        generator_side: dict[str, nn.Module],
        discriminator: nn.Module,
        optimizer_g: torch.optim.Optimizer,
        optimizer_d: torch.optim.Optimizer,
        precision: Precision,
        discriminator_steps: int,
        table: RowTable | None = None,
        discriminator_for_training: nn.Module | None = None,
    ) -> None:
        if discriminator_steps < 1:
            raise ValueError("discriminator_steps must be at least 1")
        self.loss_config, self.content_loss = loss_config, content_loss
        self.generator_side, self.discriminator = generator_side, discriminator
        self.optimizer_g, self.optimizer_d = optimizer_g, optimizer_d
        self.precision, self.discriminator_steps, self.table = precision, discriminator_steps, table
        # `is None`, not `or`: a compiled or wrapped module may define __len__.
        self.discriminator_for_training = (
            discriminator if discriminator_for_training is None else discriminator_for_training
        )
        self.scaler_g, self.scaler_d = precision.scaler(), precision.scaler()

    def _w_rows(self, rows: torch.Tensor | None) -> torch.Tensor | None:
        return None if self.table is None else self.table.gather(rows)

    def _keep_w_gradient(
        self, rows: torch.Tensor | None, leaf: torch.Tensor | None, scaler: torch.amp.GradScaler
    ) -> None:
        """Hand W's rows their gradient, unscaled like the optimiser's; the table drops it when
        it is not finite (as a scaler skips the optimiser's step)."""
        if self.table is None or leaf is None or leaf.grad is None:
            return
        if scaler.is_enabled():  # fp16: its scaler waits for the device at each step anyway
            leaf.grad.div_(scaler.get_scale())
        self.table.accumulate(rows, leaf)

    def step(
        self,
        fake: torch.Tensor,
        real: torch.Tensor,
        landmarks: torch.Tensor,
        rows: torch.Tensor | None = None,
        embedding: torch.Tensor | None = None,
        measure: bool = False,
    ) -> UpdateResult:
        """One update. fake: x_hat (B, 3, H, W) with its graph to the generator side; real,
        landmarks: the target frames and their landmark pictures (B, 3, H, W), in the
        generator's output range. rows: the batch videos' rows of W (B,) int64, when there is
        a table; embedding: e_hat (B, D) for the match loss, when meta-learning. measure: also
        compute gradient norms (logging steps)."""
        if self.table is not None and rows is None:
            raise ValueError("meta-learning needs the batch's rows of W")
        config, autocast = self.loss_config, self.precision.autocast
        scalars: dict[str, torch.Tensor] = {}

        # 1. Generator side. Its losses meet at fake_in; the backward into the generator runs
        # once at the end.
        fake_in = fake.detach().requires_grad_(True)
        with autocast():
            terms = self.content_loss(fake_in, real)
        self.scaler_g.scale(sum(terms.values())).backward(inputs=[fake_in])
        w_d = self._w_rows(rows)
        with autocast():
            d_terms = discriminator_side_loss(
                self.discriminator_for_training, fake, real, landmarks, w_d
            )
        self.scaler_d.scale(d_terms["total"]).backward()  # D's first step, applied below
        real_targets = d_terms.pop("real_activations")
        with autocast():
            scores, activations = discriminator_view(self.discriminator, fake_in, landmarks, w_d)
            terms.update(adversarial_terms(config, scores, activations, real_targets))
        self.scaler_g.scale(terms["adversarial"] + terms["feature_matching"]).backward(
            inputs=[fake_in]
        )
        del scores, activations, real_targets
        roots, root_grads, w_match = [fake], [fake_in.grad], None
        if self.table is not None and embedding is not None:
            w_match = self._w_rows(rows)
            with autocast():
                terms["match"] = match_term(config, w_match, embedding)
            roots.append(self.scaler_g.scale(terms["match"]))
            root_grads.append(None)
        terms["total"] = sum(terms.values())
        torch.autograd.backward(roots, root_grads)
        self.scaler_g.unscale_(self.optimizer_g)
        self._keep_w_gradient(rows, w_match, self.scaler_g)  # at the scale it was made with
        if measure:
            for name, module in self.generator_side.items():
                scalars[f"grad_norm/{name}"] = gradient_norm([module])
        self.scaler_g.step(self.optimizer_g)
        self.scaler_g.update()
        self.optimizer_g.zero_grad(set_to_none=True)  # free the gradients before D's turn
        scalars.update({f"loss_g/{name}": value.detach().float() for name, value in terms.items()})

        # 2. Discriminator side on the same x_hat; the first step's gradient is already there.
        fake = fake.detach()
        for d_step in range(self.discriminator_steps):
            if d_step > 0:
                w_d = self._w_rows(rows)
                with autocast():
                    d_terms = discriminator_side_loss(
                        self.discriminator_for_training, fake, real, landmarks, w_d
                    )
                self.scaler_d.scale(d_terms["total"]).backward()
            self.scaler_d.unscale_(self.optimizer_d)
            self._keep_w_gradient(rows, w_d, self.scaler_d)
            if measure:
                scalars["grad_norm/discriminator"] = gradient_norm([self.discriminator])
                if w_d is not None and w_d.grad is not None:
                    scalars["grad_norm/W_rows"] = w_d.grad.detach().norm()
            self.scaler_d.step(self.optimizer_d)
            self.scaler_d.update()
            self.optimizer_d.zero_grad(set_to_none=True)
            if self.table is not None:
                self.table.step()
        scalars["loss_d/hinge"] = d_terms["total"].detach().float()
        scalars["score/real"] = d_terms["real_score"].float()
        scalars["score/fake"] = d_terms["fake_score"].float()
        finite = torch.isfinite(terms["total"].detach() + d_terms["total"].detach())
        return UpdateResult(scalars, finite)

    def state_dict(self) -> dict[str, object]:
        return {
            "optimizer_g": self.optimizer_g.state_dict(),
            "optimizer_d": self.optimizer_d.state_dict(),
            "scaler_g": self.scaler_g.state_dict(),
            "scaler_d": self.scaler_d.state_dict(),
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        self.optimizer_g.load_state_dict(state["optimizer_g"])
        self.optimizer_d.load_state_dict(state["optimizer_d"])
        load_scaler_state(self.scaler_g, state["scaler_g"])
        load_scaler_state(self.scaler_d, state["scaler_d"])
