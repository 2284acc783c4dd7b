"""Gradient routing of the meta-learning step, checked on the step that training runs.

Each test runs one real ``MetaLearner.step`` (tiny config, fp32) from the same start, with
one loss weight changed, and records every gradient at the moment an optimiser applies it:
E's and G's (P included) at the generator's Adam step, D's at each discriminator step, and
the (row, gradient) pairs W's table applies. A term reaches a parameter exactly when changing
its weight changes that parameter's applied gradient.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch
from synthetic_videos import built_store

from dataset.voxceleb import VoxCelebDataset
from params.config import PARAMS_DIR, load_config
from runtime.precision import Precision
from training.distributed import Distributed
from training.meta import MetaLearner

KEYS = [f"id{i:05d}/video" for i in range(6)]
BATCH_ROWS = [1, 3]


@dataclass
class Applied:
    """The gradients each optimiser applied during one step."""

    generator_side: dict[str, torch.Tensor] = field(default_factory=dict)  # E.* and G.*
    discriminator: list[dict[str, torch.Tensor | None]] = field(default_factory=list)
    generator_side_at_d_steps: list[list[str]] = field(default_factory=list)  # names with grad
    w: list[dict[int, torch.Tensor]] = field(default_factory=list)  # per W step: row -> grad
    scalars: dict[str, torch.Tensor] = field(default_factory=dict)  # what the step logs


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    built = built_store(tmp_path_factory)
    config = load_config(PARAMS_DIR / "tiny.yaml", [f"data.store={built.store}"])
    dataset = VoxCelebDataset.from_config(config, "all")
    return {k: torch.stack([dataset[(i, i)][k] for i in range(2)]) for k in dataset[0]}


def applied_gradients(batch, *overrides: str) -> Applied:
    config = load_config(PARAMS_DIR / "tiny.yaml", list(overrides))
    torch.manual_seed(0)  # every run starts from the same E, G, D and perceptual networks
    run = Distributed(0, 1, 0, torch.device("cpu"))
    with pytest.warns(UserWarning, match="RANDOM"):
        learner = MetaLearner(config, run, Precision("fp32", run.device))
    learner.table.rows_for(KEYS)
    applied = Applied()
    named_g = {
        **{f"E.{n}": p for n, p in learner.embedder.named_parameters()},
        **{f"G.{n}": p for n, p in learner.generator.named_parameters()},
    }

    def record_generator_side(optimizer, args, kwargs):
        applied.generator_side.update(
            {n: p.grad.clone() for n, p in named_g.items() if p.grad is not None}
        )

    def record_discriminator(optimizer, args, kwargs):
        applied.discriminator.append(
            {
                n: None if p.grad is None else p.grad.clone()
                for n, p in learner.discriminator.named_parameters()
            }
        )
        applied.generator_side_at_d_steps.append(
            [n for n, p in named_g.items() if p.grad is not None]
        )

    learner.update.optimizer_g.register_step_pre_hook(record_generator_side)
    learner.update.optimizer_d.register_step_pre_hook(record_discriminator)
    table_step = learner.table.step

    def record_w_step():
        per_row: dict[int, torch.Tensor] = {}
        for rows, grads in zip(learner.table._pending_rows, learner.table._pending_grads):
            for row, grad in zip(rows.tolist(), grads):
                per_row[row] = per_row.get(row, 0) + grad
        applied.w.append(per_row)
        return table_step()

    learner.table.step = record_w_step
    applied.scalars = learner.step(batch, torch.tensor(BATCH_ROWS), measure=False).scalars
    return applied


def changed(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Names (starting with prefix) whose applied gradients differ between two runs."""
    names = [n for n in a.keys() | b.keys() if str(n).startswith(prefix)]
    return sorted(
        n
        for n in names
        if (a.get(n) is None) != (b.get(n) is None)
        or (a.get(n) is not None and not torch.equal(a[n], b[n]))
    )


def same_d_and_w(a: Applied, b: Applied) -> None:
    assert len(a.discriminator) == len(b.discriminator) == 2
    for step_a, step_b in zip(a.discriminator, b.discriminator):
        assert changed(step_a, step_b) == []
    for rows_a, rows_b in zip(a.w, b.w, strict=True):
        assert changed(rows_a, rows_b) == []


P = "G.projection.parametrizations.weight.original"


@pytest.fixture(scope="module")
def default(batch):
    return applied_gradients(batch)


@pytest.mark.parametrize(
    "weights",
    [("loss.vgg19_weight=0",), ("loss.vggface_weight=0",), ("loss.feature_matching_weight=0",)],
    ids=["vgg19", "vggface", "feature_matching"],
)
def test_content_and_feature_matching_reach_e_g_and_p_but_not_d_or_w(batch, default, weights):
    """Dropping L_CNT's or L_FM's weight changes E's, G's and P's gradients, and nothing that D
    or W applies (feature matching logged but not back-propagated fails here)."""
    without = applied_gradients(batch, *weights)
    assert changed(default.generator_side, without.generator_side, "E.")
    assert changed(default.generator_side, without.generator_side, "G.")
    assert P in changed(default.generator_side, without.generator_side)
    same_d_and_w(default, without)


def test_the_adversarial_term_alone_reaches_every_parameter_of_e_g_and_p(batch, default):
    """With every weighted term at 0 only -r(x_hat) is left: it reaches all of E, G and P;
    what D and W apply is that of a run where only the match loss is off."""
    weights = ("vgg19_weight", "vggface_weight", "feature_matching_weight", "match_weight")
    alone = applied_gradients(batch, *(f"loss.{w}=0" for w in weights))
    missing = [n for n in default.generator_side if n not in alone.generator_side]
    assert missing == []
    assert alone.generator_side[P].abs().sum() > 0
    assert (
        alone.generator_side["E.trunk.layers.0.conv1.parametrizations.weight.original"].abs().sum()
        > 0
    )
    same_d_and_w(applied_gradients(batch, "loss.match_weight=0"), alone)


def test_the_match_loss_reaches_e_and_the_batch_rows_of_w_and_not_g(batch, default):
    """L_MCH's weight changes E's gradient and what the batch's W rows apply in the first D
    step (no zero_grad wiped it: SPEC mistake 4); G's and P's gradients stay the same."""
    config = load_config(PARAMS_DIR / "tiny.yaml")
    without = applied_gradients(batch, "loss.match_weight=0")
    assert changed(default.generator_side, without.generator_side, "G.") == []
    assert changed(default.generator_side, without.generator_side, "E.")
    # D's first step is the same; its second sees W rows that the match gradient moved.
    assert changed(default.discriminator[0], without.discriminator[0]) == []
    assert sorted(default.w[0]) == BATCH_ROWS
    difference = torch.stack([default.w[0][r] - without.w[0][r] for r in BATCH_ROWS])
    # d/dW of lambda * mean|e_hat - W_i| over B x D entries: lambda / (B D) in size everywhere.
    expected = config.loss.match_weight / difference.numel()
    assert torch.allclose(difference.abs(), torch.full_like(difference, expected), rtol=1e-4)


def test_with_the_switch_off_w_takes_only_the_hinge_gradient(batch, default):
    off = applied_gradients(batch, "loss.match_loss_updates_w=false")
    assert changed(default.w[0], off.w[0]) == [1, 3]
    assert changed(default.generator_side, off.generator_side) == []  # E still gets L_MCH


def test_the_hinge_loss_reaches_d_w0_b_and_the_batch_rows_only(default):
    for d_step, grads in enumerate(default.discriminator):
        missing = [n for n, g in grads.items() if g is None]
        assert missing == [], f"D step {d_step}: no gradient for {missing}"
        assert grads["w_0"].abs().sum() > 0  # b's is 0 while every score is inside the margin
    # Nothing of D's side reaches E or G: their gradients are gone when D steps.
    assert default.generator_side_at_d_steps == [[], []]
    assert [sorted(rows) for rows in default.w] == [BATCH_ROWS, BATCH_ROWS]


def test_the_logged_total_is_the_sum_of_the_logged_terms(default):
    parts = ["vgg19", "vggface", "adversarial", "feature_matching", "match"]
    logged = {
        name.removeprefix("loss_g/") for name in default.scalars if name.startswith("loss_g/")
    }
    assert logged == {*parts, "total"}
    total = sum(default.scalars[f"loss_g/{p}"] for p in parts)
    assert torch.allclose(default.scalars["loss_g/total"], total)
