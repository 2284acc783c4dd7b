"""A meta step never makes the host wait for the device (issue 25: CUDA users).

On a GPU the host queues kernels and goes on; an operation whose result it must read (.item(),
bool(), torch.unique's size, nonzero) or a copy of host data into the device makes it wait,
and with ~15 such waits a step an H100 idles. Here the step runs on PyTorch's "meta" device,
which has shapes but no values: any operation that needs a device value raises, and a copy
between the host and the device is seen. The optimisers' step counters stay on the host by
design (as torch's Adam keeps them).
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from bench.train_step import synthetic_batch
from runtime.precision import Precision
from training.distributed import Distributed
from training.meta import MetaLearner


class HostTraffic(TorchDispatchMode):
    """Records operations that read a device value on the host or copy between devices."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {t.device.type for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        outputs = {t.device.type for t in tree_leaves(out) if isinstance(t, torch.Tensor)}
        if inputs and outputs and inputs != outputs:
            self.seen.append(f"{func}: {sorted(inputs)} -> {sorted(outputs)}")
        return out


def record_tensors_from_host_data(monkeypatch, seen: list[str]) -> None:
    """torch.tensor(data, device=...) and x.new_tensor(data) copy host data to the device
    without passing the dispatcher: record those that land on a device."""
    for owner, name in ((torch, "tensor"), (torch, "as_tensor"), (torch.Tensor, "new_tensor")):
        original = getattr(owner, name)

        def made(*args, _original=original, _name=name, **kwargs):
            out = _original(*args, **kwargs)
            if out.device.type != "cpu":
                seen.append(f"{_name} from host data onto {out.device}")
            return out

        monkeypatch.setattr(owner, name, made)


@pytest.mark.parametrize("measure", [False, True])
def test_a_meta_step_neither_reads_the_device_nor_copies_to_it(tiny_config, measure, monkeypatch):
    run = Distributed(0, 1, 0, torch.device("meta"))
    with pytest.warns(UserWarning, match="RANDOM"):
        learner = MetaLearner(tiny_config, run, Precision("fp32", run.device))
    rows = learner.table.rows_for([f"video{i}" for i in range(6)])[[1, 3]].to(run.device)
    batch = learner.to_device(synthetic_batch(tiny_config))  # the loader's copy, done once
    learner.step(batch, rows, measure=False)  # the first step makes the optimiser states
    with HostTraffic() as traffic:
        record_tensors_from_host_data(monkeypatch, traffic.seen)
        result = learner.step(batch, rows, measure=measure)
    assert traffic.seen == []
    assert result.finite.device.type == "meta"


def test_a_compiled_step_compiles_once_and_matches_the_eager_step(tiny_config, monkeypatch):
    """train.compile compiles E, G, D and the content loss in place (before any DDP wrapper):
    the step runs (compiling D under two wrappers broke it), D's two callers at batch 2B and B
    share one compiled module, later steps compile nothing more, and the result is eager's.
    The graphs run eagerly here (a counting backend): what is tested is what gets compiled."""
    graphs = []
    real_compile = torch.compile

    def counting_compile(model, **options):
        def backend(graph, inputs):
            graphs.append(graph)
            return graph.forward

        return real_compile(model, backend=backend, dynamic=options.get("dynamic"))

    monkeypatch.setattr(torch, "compile", counting_compile)
    torch._dynamo.reset()
    run = Distributed(0, 1, 0, torch.device("cpu"))
    batch = synthetic_batch(tiny_config)
    learners = {}
    for compiled in (False, True):
        tiny_config.train.compile = compiled
        torch.manual_seed(0)
        with pytest.warns(UserWarning, match="RANDOM"):
            learners[compiled] = MetaLearner(tiny_config, run, Precision("fp32", run.device))
        rows = learners[compiled].table.rows_for([f"video{i}" for i in range(6)])[[1, 3]]
        learners[compiled].step(batch, rows, measure=False)
        after_first = len(graphs)
        for _ in range(2):
            learners[compiled].step(batch, rows, measure=False)
        assert len(graphs) == after_first  # no recompiling
    assert graphs  # something was compiled
    eager, compiled = (learners[c].state_dict() for c in (False, True))
    for name in ("generator", "discriminator"):
        for key, value in eager[name].items():
            assert torch.allclose(value, compiled[name][key], atol=1e-5), (name, key)
    torch._dynamo.reset()
