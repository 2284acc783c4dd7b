"""torchrun / DDP: one process per GPU (or per CPU worker), NCCL on GPUs, gloo on CPUs.

``python train.py`` alone runs one process; under torchrun (RANK, WORLD_SIZE, LOCAL_RANK set)
each process joins the group, takes its local GPU, and only rank 0 writes logs, samples and
checkpoints. ``check_in_sync`` compares every rank's parameters by checksum, so a run whose
ranks drifted apart stops instead of training on silently. What the ranks exchange on the device
is fp32 or int64, never float64 (which Apple's GPU, MPS, lacks).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from utils.device import process_device


@dataclass(frozen=True)
class Distributed:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device_name: str) -> Distributed:
    """Join the process group when launched by torchrun; the device of this process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Distributed(0, 1, 0, process_device(device_name, None))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = process_device(device_name, local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    return Distributed(rank, world, local_rank, device)


def teardown(run: Distributed) -> None:
    if run.enabled and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_object(value: object, run: Distributed) -> object:
    """Rank 0's value on every rank (a decision that all ranks must share)."""
    if not run.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_mean(values: dict[str, float], run: Distributed) -> dict[str, float]:
    """Average scalars over the ranks (for logging: summed in fp32)."""
    if not run.enabled or not values:
        return values
    names = sorted(values)
    tensor = torch.tensor([values[n] for n in names], dtype=torch.float32, device=run.device)
    dist.all_reduce(tensor)
    return {name: float(v) / run.world_size for name, v in zip(names, tensor.tolist(), strict=True)}


def all_min(value: int, run: Distributed) -> int:
    """The smallest of the ranks' integers (int64)."""
    if not run.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.int64, device=run.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return int(tensor)


def check_in_sync(named_tensors: dict[str, torch.Tensor], run: Distributed) -> None:
    """Raise on every rank if any tensor differs between ranks (compared by checksums).

    The checksums are int64 sums of the values' fp32 bit patterns (of integer tensors, of the
    values), and of their absolute values: exact, so equal tensors give equal sums whatever
    order the device adds in, and any one changed bit changes the first sum.
    """
    if not run.enabled:
        return
    names = sorted(named_tensors)
    # (2 * names,): every tensor's first sum, then every tensor's second.
    sums = torch.stack([_checksums(named_tensors[n]).to(run.device) for n in names]).T.flatten()
    everyone = [torch.zeros_like(sums) for _ in range(run.world_size)]
    dist.all_gather(everyone, sums)
    for rank, other in enumerate(everyone):
        if not torch.equal(other, everyone[0]):
            diff = (other != everyone[0]).nonzero().flatten().tolist()
            differing = sorted({names[i % len(names)] for i in diff})
            raise RuntimeError(f"rank {rank} differs from rank 0 in {differing[:5]}")


def _checksums(tensor: torch.Tensor) -> torch.Tensor:
    """(2,) int64: the sum of a tensor's values as fp32 bit patterns (an integer tensor's values
    as they are), and the sum of their absolute values."""
    values = tensor.detach()
    if values.is_floating_point():
        values = values.float().view(torch.int32)
    values = values.long()
    return torch.stack([values.sum(), values.abs().sum()])
