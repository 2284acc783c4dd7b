"""W: the discriminator's table of one embedding per training video, updated row by row.

At VoxCeleb2 scale W has 145,569 rows of 512 (298 MB in fp32). Held as a dense parameter with
Adam it costs a dense gradient, a dense optimiser update and, under DDP, an all-reduce of the
whole table every step, although a batch touches a handful of rows. Here W and its Adam moments
are plain tensors; a step gathers the batch's rows as a small leaf tensor, the losses put their
gradients into it, and ``step`` updates exactly those rows (lazy Adam: a row's moments and bias
correction advance only when the row is used, as in torch.optim.SparseAdam). With the paper's
beta1 = 0 the first moment is the gradient itself and is not stored (training/optimizer.py).
Under DDP the ranks exchange only (row, gradient) pairs, so every rank applies the same update
and the tables stay identical. Rows are addressed by video key, never by position: a store
that grows, or a config that filters other videos, maps each key to the same row on resume.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist

INIT_STD = 0.02  # N(0, 0.02) per entry, as w_0 and b start at 0 (docs/DESIGN.md item 9)


class VideoTable:
    """W with row-wise Adam. ``rows_for(keys)`` maps video keys to rows, adding new keys."""

    def __init__(
        self,
        dim: int,
        lr: float,
        betas: Sequence[float],
        eps: float = 1e-8,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ) -> None:
        self.dim, self.lr, self.betas, self.eps = dim, lr, tuple(betas), eps
        self.device = torch.device(device)
        self.generator = generator
        self.keys: list[str] = []
        self._row_of: dict[str, int] = {}
        self.weight = torch.zeros(0, dim, device=self.device)
        # First moments, only when beta1 > 0 (with beta1 = 0 they would equal the gradient).
        self.exp_avg = torch.zeros(0, dim if self.betas[0] else 0, device=self.device)
        self.exp_avg_sq = torch.zeros(0, dim, device=self.device)
        self.steps = torch.zeros(0, dtype=torch.int64, device=self.device)
        self._pending_rows: list[torch.Tensor] = []
        self._pending_grads: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.keys)

    def rows_for(self, keys: Sequence[str]) -> torch.Tensor:
        """Row numbers of these video keys (int64), appending fresh rows for unseen keys."""
        new = [key for key in dict.fromkeys(keys) if key not in self._row_of]
        if new:
            start = len(self.keys)
            for offset, key in enumerate(new):
                self._row_of[key] = start + offset
            self.keys.extend(new)
            fresh = torch.randn(len(new), self.dim, generator=self.generator) * INIT_STD
            self.weight = torch.cat([self.weight, fresh.to(self.device)])
            zeros = torch.zeros(len(new), self.dim, device=self.device)
            self.exp_avg = torch.cat([self.exp_avg, zeros[:, : self.exp_avg.shape[1]]])
            self.exp_avg_sq = torch.cat([self.exp_avg_sq, zeros])
            self.steps = torch.cat(
                [self.steps, torch.zeros(len(new), dtype=torch.int64, device=self.device)]
            )
        return torch.tensor([self._row_of[key] for key in keys], dtype=torch.int64)

    def gather(self, rows: torch.Tensor) -> torch.Tensor:
        """The rows as a new leaf tensor that collects their gradient (B, dim)."""
        return self.weight[rows.to(self.device)].clone().requires_grad_(True)

    def accumulate(self, rows: torch.Tensor, gathered: torch.Tensor) -> None:
        """Keep the gradient a gathered leaf received, to be applied by the next ``step``."""
        if gathered.grad is not None:
            self._pending_rows.append(rows.to(self.device))
            self._pending_grads.append(gathered.grad.detach().float())

    def step(self) -> int:
        """Apply every accumulated gradient to its rows (one Adam step); returns rows updated.

        Under DDP the (row, gradient) pairs of all ranks are gathered first and averaged over
        the ranks like DDP averages parameter gradients; every rank then applies the same
        update.
        """
        if not self._pending_rows:
            rows = torch.zeros(0, dtype=torch.int64, device=self.device)
            grads = torch.zeros(0, self.dim, device=self.device)
        else:
            rows, grads = torch.cat(self._pending_rows), torch.cat(self._pending_grads)
        self._pending_rows, self._pending_grads = [], []
        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if world > 1:
            rows, grads = _all_gather_rows(rows, grads)
            grads = grads / world
        if rows.numel() == 0:
            return 0
        unique, inverse = torch.unique(rows, return_inverse=True)
        grad = torch.zeros(len(unique), self.dim, device=self.device).index_add_(0, inverse, grads)
        beta1, beta2 = self.betas
        steps = self.steps[unique] + 1
        self.steps[unique] = steps
        exp_avg_sq = self.exp_avg_sq[unique].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        self.exp_avg_sq[unique] = exp_avg_sq
        if beta1:
            exp_avg = self.exp_avg[unique].mul_(beta1).add_(grad, alpha=1 - beta1)
            self.exp_avg[unique] = exp_avg
            first = exp_avg / (1 - beta1 ** steps.double()).float()[:, None]
        else:
            first = grad
        correction2 = (1 - beta2 ** steps.double()).float()[:, None]
        denominator = (exp_avg_sq / correction2).sqrt_().add_(self.eps)
        self.weight[unique] -= self.lr * first / denominator
        return len(unique)

    def state_dict(self) -> dict[str, object]:
        return {
            "keys": list(self.keys),
            "weight": self.weight.cpu(),
            "exp_avg": self.exp_avg.cpu(),
            "exp_avg_sq": self.exp_avg_sq.cpu(),
            "steps": self.steps.cpu(),
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        keys = list(state["keys"])
        tensors = {name: state[name] for name in ("weight", "exp_avg", "exp_avg_sq", "steps")}
        shapes = {name: tuple(t.shape) for name, t in tensors.items()}
        expected = (len(keys), self.dim)
        moments = (len(keys), self.dim if self.betas[0] else 0)
        if (
            shapes["weight"] != expected
            or shapes["exp_avg_sq"] != expected
            or shapes["exp_avg"] != moments
            or shapes["steps"] != (len(keys),)
        ):
            raise ValueError(
                f"W table does not fit: {len(keys)} keys of dim {self.dim}, tensors {shapes}"
            )
        if len(set(keys)) != len(keys):
            raise ValueError("W table names a video twice")
        self.keys = keys
        self._row_of = {key: row for row, key in enumerate(keys)}
        self.weight = tensors["weight"].to(self.device, torch.float32)
        self.exp_avg = tensors["exp_avg"].to(self.device, torch.float32)
        self.exp_avg_sq = tensors["exp_avg_sq"].to(self.device, torch.float32)
        self.steps = tensors["steps"].to(self.device, torch.int64)


def _all_gather_rows(rows: torch.Tensor, grads: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every rank's (rows, grads), concatenated in rank order; ranks may hold different counts."""
    world = dist.get_world_size()
    count = torch.tensor([rows.numel()], device=rows.device)
    counts = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(counts, count)
    largest = int(max(c.item() for c in counts))
    padded_rows = torch.zeros(largest, dtype=rows.dtype, device=rows.device)
    padded_grads = torch.zeros(largest, grads.shape[1], device=grads.device)
    padded_rows[: rows.numel()], padded_grads[: rows.numel()] = rows, grads
    all_rows = [torch.zeros_like(padded_rows) for _ in range(world)]
    all_grads = [torch.zeros_like(padded_grads) for _ in range(world)]
    dist.all_gather(all_rows, padded_rows)
    dist.all_gather(all_grads, padded_grads)
    sizes = [int(c.item()) for c in counts]
    return (
        torch.cat([r[:n] for r, n in zip(all_rows, sizes, strict=True)]),
        torch.cat([g[:n] for g, n in zip(all_grads, sizes, strict=True)]),
    )
