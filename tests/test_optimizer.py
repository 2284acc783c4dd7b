"""The paper's Adam without its redundant first moment: same updates as torch's Adam."""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from runtime.optimizer import AdamWithoutMomentum, make_adam


def test_adam_without_momentum_matches_torch_adam_with_beta1_zero():
    torch.manual_seed(0)
    start = [torch.randn(5, 3), torch.randn(7)]
    ours = [torch.nn.Parameter(t.clone()) for t in start]
    theirs = [torch.nn.Parameter(t.clone()) for t in start]
    mine, reference = (
        make_adam(ours, 1e-2, (0.0, 0.999)),
        torch.optim.Adam(theirs, 1e-2, (0.0, 0.999)),
    )
    assert isinstance(mine, AdamWithoutMomentum)
    for step in range(20):
        for params, optimizer in ((ours, mine), (theirs, reference)):
            optimizer.zero_grad()
            sum(((p - step) ** 2).sum() for p in params).backward()
            optimizer.step()
    for a, b in zip(ours, theirs):
        assert torch.allclose(a, b, atol=1e-6)
    assert "exp_avg" not in mine.state[ours[0]]  # the memory it saves
    restored = make_adam([torch.nn.Parameter(t.clone()) for t in start], 1e-2, (0.0, 0.999))
    restored.load_state_dict(mine.state_dict())
    assert torch.equal(
        restored.state_dict()["state"][0]["exp_avg_sq"], mine.state[ours[0]]["exp_avg_sq"]
    )


def test_a_nonzero_beta1_gets_torch_adam():
    assert isinstance(
        make_adam([torch.nn.Parameter(torch.zeros(2))], 1e-3, (0.5, 0.999)), torch.optim.Adam
    )


def test_the_gpu_update_is_multi_tensor_and_equal_to_the_cpu_one():
    """On CUDA the update runs as a few multi-tensor operations (a launch each on a GPU), not
    a few per parameter; it is the same update, and one device's state loads on the other."""
    torch.manual_seed(0)
    start = [torch.randn(4, 3) for _ in range(30)]
    per_param = [torch.nn.Parameter(t.clone()) for t in start]
    together = [torch.nn.Parameter(t.clone()) for t in start]
    cpu = make_adam(per_param, 1e-2, (0.0, 0.999), torch.device("cpu"))
    gpu = make_adam(together, 1e-2, (0.0, 0.999), torch.device("cuda"))  # builds on any machine
    assert not cpu.foreach and gpu.foreach
    operations = {}
    for name, params, optimizer in (("cpu", per_param, cpu), ("gpu", together, gpu)):
        for step in range(3):
            optimizer.zero_grad()
            sum(((p - step) ** 2).sum() for p in params).backward()
            with OperationCount() as count:
                optimizer.step()
            operations[name] = count.total
    assert operations["gpu"] <= 10 < 4 * len(start) <= operations["cpu"]
    for a, b in zip(per_param, together):
        assert torch.allclose(a, b, atol=1e-7)
    restored = make_adam([torch.nn.Parameter(t.clone()) for t in start], 1e-2, (0.0, 0.999))
    restored.load_state_dict(gpu.state_dict())
    assert not restored.foreach  # the device decides, not the checkpoint


class OperationCount(TorchDispatchMode):
    """Counts the operations on parameter-sized tensors run inside it (kernel launches on a
    GPU); the step counters are 0-d tensors that stay on the host."""

    total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        leaves = tree_leaves((args, kwargs))
        self.total += any(isinstance(t, torch.Tensor) and t.dim() > 0 for t in leaves)
        return func(*args, **(kwargs or {}))
