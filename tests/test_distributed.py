"""Which GPU a process takes, on a CPU machine: torch.cuda's queries are mocked."""

from __future__ import annotations

import pytest
import torch

from training import distributed
from utils.device import process_device


@pytest.fixture
def gpus(monkeypatch):
    """A fake machine with CUDA; set the visible GPUs' count, see which devices were set current."""
    machine = {"count": 1, "current": 0, "set": []}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: machine["count"])
    monkeypatch.setattr(torch.cuda, "current_device", lambda: machine["current"])
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: machine["set"].append(device))
    return machine


@pytest.mark.parametrize(("local_rank", "count", "expected"), [(3, 1, 0), (3, 2, 1), (2, 4, 2)])
def test_a_torchrun_process_takes_its_local_rank_modulo_the_gpus_it_sees(
    gpus, local_rank, count, expected
):
    # Slurm tasks that each see one GPU still count LOCAL_RANK up over the node.
    gpus["count"] = count
    device = process_device("cuda", local_rank)
    assert device == torch.device("cuda", expected)
    assert gpus["set"] == [device]


def test_a_lone_process_makes_the_gpu_it_asked_for_current(gpus, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    gpus["count"] = 2
    run = distributed.setup("cuda:1")
    assert run.device == torch.device("cuda", 1)
    assert gpus["set"] == [torch.device("cuda", 1)]


def test_an_index_less_cuda_is_the_current_gpu(gpus):
    gpus["count"], gpus["current"] = 2, 1
    assert process_device("cuda", None) == torch.device("cuda", 1)
    assert gpus["set"] == [torch.device("cuda", 1)]


def test_a_cpu_process_leaves_cuda_alone(gpus):
    assert process_device("cpu", 0) == torch.device("cpu")
    assert gpus["set"] == []
