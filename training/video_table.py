"""W: the discriminator's table of one embedding per training video, updated row by row.

At VoxCeleb2 scale W has 145,569 rows of 512 (298 MB in fp32). Held as a dense parameter with
Adam it costs a dense gradient, a dense optimiser update and, under DDP, an all-reduce of the
whole table every step, although a batch touches a handful of rows. Here W and its Adam moments
are plain tensors; a step gathers the batch's rows as a small leaf tensor, the losses put their
gradients into it, and ``step`` updates exactly those rows.

The update is dense Adam's (torch.optim.Adam on W as one parameter), computed lazily:
- bias correction uses the table's one global step count, as dense Adam's single counter for
  the parameter (torch.optim.SparseAdam keeps one counter per parameter too);
- a row that sat idle for n steps had its second moment multiplied by beta2 at each of them in
  dense Adam (its gradient there is zero); the table applies beta2 ** n when the row is next
  used, so a row used once every 18,000 steps (VoxCeleb2, batch 8) moves exactly as far as
  dense Adam moves it, not 30 times less as with a moment that never decays.
With beta1 = 0 (the paper's setting, SPEC section 3) dense Adam leaves idle rows where they are,
so the two are equal to float rounding (tests/test_video_table.py). With beta1 > 0 dense Adam
would also move idle rows along their decaying first moment; the table decays that moment
lazily too but moves a row only when it is used (as "lazy Adam" does). With beta1 = 0 the
first moment is the gradient itself and is not stored (runtime/optimizer.py).
Under DDP the ranks exchange only (row, gradient) pairs, so every rank applies the same update
and the tables stay identical. Rows are addressed by video key, never by position: a store
that grows, or a config that filters other videos, maps each key to the same row on resume.
A new row's initial value is a function of the seed and its key alone, so rows added on a
resume differ from the first rows and from each other.
The decays beta ** steps are computed in float64 where the device has it (the CPU and CUDA),
in fp32 elsewhere: Apple's GPU (MPS) has no float64 (fp32's 1 - beta2 ** step is off by about
1e-5 relative in the first steps, as 0.999 is not an fp32 number: harmless to Adam).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
import torch.distributed as dist

INIT_STD = 0.02  # N(0, 0.02) per entry, as w_0 and b start at 0 (docs/DESIGN.md item 9)


def initial_row(seed: int, key: str, dim: int) -> torch.Tensor:
    """W_i at the start, N(0, INIT_STD) from a generator seeded by (seed, key): (dim,) fp32."""
    digest = hashlib.sha256(f"{seed}/{key}".encode()).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)
    return torch.randn(dim, generator=generator) * INIT_STD


class VideoTable:
    """W with dense Adam's update applied row-wise. ``rows_for(keys)`` maps video keys to rows,
    adding new keys.

    State: ``weight`` (rows, dim), ``exp_avg_sq`` (rows, dim), ``exp_avg`` (rows, dim; 0 columns
    when beta1 = 0), ``last_step`` (rows,) int64, the global step at which each row's moments
    were last brought up to date (0: never used), and ``step_count``, the number of Adam steps
    taken (a device tensor, so that counting needs no wait for the device).
    """

    def __init__(
        self,
        dim: int,
        lr: float,
        betas: Sequence[float],
        eps: float = 1e-8,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        self.dim, self.lr, self.betas, self.eps = dim, lr, tuple(betas), eps
        self.device = torch.device(device)
        self.seed = seed
        self.keys: list[str] = []
        self._row_of: dict[str, int] = {}
        self.weight = torch.zeros(0, dim, device=self.device)
        # First moments, only when beta1 > 0 (with beta1 = 0 they would equal the gradient).
        self.exp_avg = torch.zeros(0, dim if self.betas[0] else 0, device=self.device)
        self.exp_avg_sq = torch.zeros(0, dim, device=self.device)
        self.last_step = torch.zeros(0, dtype=torch.int64, device=self.device)
        self._step = torch.zeros((), dtype=torch.int64, device=self.device)  # Adam steps taken
        self._decay_dtype = decay_dtype(self.device)
        self._pending_rows: list[torch.Tensor] = []
        self._pending_grads: list[torch.Tensor] = []
        self._pending_valid: list[torch.Tensor] = []  # (rows,) bool: the gradient is kept

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
            fresh = torch.empty(len(new), self.dim)  # filled row by row: no 145k small tensors
            for index, key in enumerate(new):
                fresh[index] = initial_row(self.seed, key, self.dim)
            self.weight = torch.cat([self.weight, fresh.to(self.device)])
            zeros = torch.zeros(len(new), self.dim, device=self.device)
            self.exp_avg = torch.cat([self.exp_avg, zeros[:, : self.exp_avg.shape[1]]])
            self.exp_avg_sq = torch.cat([self.exp_avg_sq, zeros])
            self.last_step = torch.cat(
                [self.last_step, torch.zeros(len(new), dtype=torch.int64, device=self.device)]
            )
        return torch.tensor([self._row_of[key] for key in keys], dtype=torch.int64)

    def gather(self, rows: torch.Tensor) -> torch.Tensor:
        """The rows as a new leaf tensor that collects their gradient (B, dim). rows: (B,) int64,
        best already on the table's device (training moves them once per step)."""
        return self.weight[rows.to(self.device)].clone().requires_grad_(True)

    def accumulate(self, rows: torch.Tensor, gathered: torch.Tensor) -> None:
        """Keep the gradient a gathered leaf received, to be applied by the next ``step``; one
        that is not finite everywhere will be dropped there (as a scaler skips a step), decided
        on the device, so the host does not wait to know."""
        if gathered.grad is not None:
            grad = gathered.grad.detach().float()
            self._pending_rows.append(rows.to(self.device))
            self._pending_grads.append(grad)
            self._pending_valid.append(torch.isfinite(grad).all().expand(len(rows)))

    @property
    def step_count(self) -> int:
        """Adam steps taken (reading it waits for the device)."""
        return int(self._step)

    def step(self) -> None:
        """Apply every accumulated gradient to its rows (one Adam step).

        Under DDP the (row, gradient) pairs of all ranks are gathered first and averaged over
        the ranks like DDP averages parameter gradients; every rank then applies the same
        update. A step with no finite gradient on any rank is not counted (as an optimiser
        step that a gradient scaler skips). O(rows in the batch) in time and memory, and no
        operation whose result the host must wait for: a row's gradients are summed through
        the (entries x entries) matrix of equal row numbers, not torch.unique, and every
        entry of a row computes the same update, so repeated rows write equal values.
        """
        if not self._pending_rows:
            rows = torch.zeros(0, dtype=torch.int64, device=self.device)
            grads = torch.zeros(0, self.dim, device=self.device)
            valid = torch.zeros(0, dtype=torch.bool, device=self.device)
        else:
            rows, grads = torch.cat(self._pending_rows), torch.cat(self._pending_grads)
            valid = torch.cat(self._pending_valid)
        self._pending_rows, self._pending_grads, self._pending_valid = [], [], []
        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if world > 1:
            rows, grads, valid = _all_gather_rows(rows, grads, valid)
            grads = grads / world
        if rows.numel() == 0:
            return
        self._step += valid.any()
        step = self._step.to(self._decay_dtype)
        # same[i, j]: entry j is a kept gradient of entry i's row.
        same = (rows[:, None] == rows[None, :]) & valid[None, :]
        grad = same.float() @ torch.where(valid[:, None], grads, 0.0)
        used = same.any(dim=1)  # the row has a kept gradient: its moments and weight move
        beta1, beta2 = self.betas
        # Steps since each row's moments were last updated, this one included: dense Adam
        # multiplied them by beta once per step, with a zero gradient on the idle ones.
        elapsed = step - self.last_step[rows].to(self._decay_dtype)
        self.last_step[rows] = torch.where(used, self._step, self.last_step[rows])
        keep = used[:, None]
        decay2 = torch.pow(beta2, elapsed).float()[:, None]
        exp_avg_sq = self.exp_avg_sq[rows] * decay2 + (1 - beta2) * grad * grad
        self.exp_avg_sq[rows] = torch.where(keep, exp_avg_sq, self.exp_avg_sq[rows])
        if beta1:
            decay1 = torch.pow(beta1, elapsed).float()[:, None]
            exp_avg = self.exp_avg[rows] * decay1 + (1 - beta1) * grad
            self.exp_avg[rows] = torch.where(keep, exp_avg, self.exp_avg[rows])
            first = exp_avg / (1 - torch.pow(beta1, step)).float()
        else:
            first = grad
        denominator = (exp_avg_sq / (1 - torch.pow(beta2, step)).float()).sqrt_().add_(self.eps)
        moved = self.weight[rows] - self.lr * first / denominator
        self.weight[rows] = torch.where(keep, moved, self.weight[rows])

    def state_dict(self) -> dict[str, object]:
        return {
            "keys": list(self.keys),
            "weight": self.weight.cpu(),
            "exp_avg": self.exp_avg.cpu(),
            "exp_avg_sq": self.exp_avg_sq.cpu(),
            "last_step": self.last_step.cpu(),
            "step": self.step_count,
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        keys = list(state["keys"])
        tensors = {name: state[name] for name in ("weight", "exp_avg", "exp_avg_sq", "last_step")}
        shapes = {name: tuple(t.shape) for name, t in tensors.items()}
        expected = (len(keys), self.dim)
        moments = (len(keys), self.dim if self.betas[0] else 0)
        if (
            shapes["weight"] != expected
            or shapes["exp_avg_sq"] != expected
            or shapes["exp_avg"] != moments
            or shapes["last_step"] != (len(keys),)
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
        self.last_step = tensors["last_step"].to(self.device, torch.int64)
        self._step = torch.tensor(int(state["step"]), device=self.device)


def decay_dtype(device: torch.device) -> torch.dtype:
    """float64 where the device has it (the CPU, CUDA), fp32 elsewhere (Apple's GPU, MPS)."""
    return torch.float64 if device.type in ("cpu", "cuda") else torch.float32


def _all_gather_rows(
    rows: torch.Tensor, grads: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every rank's (rows, grads, valid), concatenated in rank order. Every rank holds the same
    number of entries (the same batch size through the same update), so no sizes travel."""
    world = dist.get_world_size()
    gathered = []
    for tensor in (rows, grads, valid.to(torch.uint8)):  # gloo has no bool
        parts = [torch.empty_like(tensor) for _ in range(world)]
        dist.all_gather(parts, tensor)
        gathered.append(torch.cat(parts))
    return gathered[0], gathered[1], gathered[2].bool()
