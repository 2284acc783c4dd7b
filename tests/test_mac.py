"""What a creator on a Mac with Apple Silicon meets, tested without one: Apple's GPU (MPS) chosen
by 'auto' and said, its missing operations run on the CPU, no float64 on it, its random
generator resumed, its precision, the camera permission, and ONNX Runtime kept off CoreML."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from test_layout import SCRIPTS
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch_load_probe import variable_at_torch_load

import live.render
import runtime.precision
from bench.drive import random_person
from bench.train_step import synthetic_batch
from dataset.store import StoreError
from dataset.video import VideoReadError
from live.sources import FrameSource
from params.config import ConfigError
from runtime.cli import run_settings
from runtime.precision import Precision, resolve_precision
from runtime.rng import restore_rng, rng_state
from training import distributed
from training.distributed import Distributed
from training.loop import train
from training.meta import MetaLearner
from utils.device import resolve_device

MPS = torch.device("mps")


@pytest.fixture
def apple_gpu(monkeypatch):
    """This machine as a Mac's torch sees one: MPS available, no CUDA."""
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "get_name", lambda: "Apple M2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_auto_is_cuda_then_apples_gpu_then_the_cpu(apple_gpu, monkeypatch):
    assert resolve_device("auto") == MPS
    assert resolve_device("mps") == MPS
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")  # CUDA first when both
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")


def test_commands_say_their_device(apple_gpu, tiny_config, tmp_path, capsys, caplog):
    """The person, live and evaluation commands (run_settings) print it; training logs it."""
    run = run_settings(tiny_config, argparse.Namespace(config=None, overrides=["device=auto"]))
    assert run.device == MPS
    assert capsys.readouterr().out == "device: mps (Apple GPU: Apple M2)\n"
    run_settings(tiny_config, argparse.Namespace(config=None, overrides=[]))
    assert capsys.readouterr().out == "device: cpu\n"
    tiny_config.data.store = str(tmp_path / "no store")
    with caplog.at_level(logging.INFO), pytest.raises(StoreError):
        train(tiny_config, tmp_path / "run", progress_bar=False)
    assert "device: cpu" in caplog.messages


def test_auto_precision_on_apples_gpu_is_fp32(monkeypatch):
    """Not the CPU's answer (bf16 on a CPU with AMX); bf16 may be asked for, fp16 may not."""
    monkeypatch.setattr(runtime.precision, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", torch.device("cpu")) == "bf16"
    assert resolve_precision("auto", MPS) == "fp32"
    assert resolve_precision("bf16", MPS) == "bf16"
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        resolve_precision("fp16", MPS)


def test_the_apple_gpus_random_generator_is_saved_and_restored(apple_gpu, monkeypatch):
    mine, restored = torch.arange(8, dtype=torch.uint8), []
    monkeypatch.setattr(torch.mps, "get_rng_state", lambda device="mps": mine)
    monkeypatch.setattr(
        torch.mps, "set_rng_state", lambda state, device="mps": restored.append(state)
    )
    state = rng_state()
    assert torch.equal(state["mps"], mine)
    restore_rng(state)
    assert len(restored) == 1 and torch.equal(restored[0], mine)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    restore_rng(state)  # a Mac's checkpoint resumed elsewhere
    assert "mps" not in rng_state() and len(restored) == 1


class NoFloat64OnTheDevice(TorchDispatchMode):
    """Raises at any operation that makes a float64 tensor off the CPU (MPS has no float64)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            is_tensor = isinstance(tensor, torch.Tensor)
            if is_tensor and tensor.dtype == torch.float64 and tensor.device.type != "cpu":
                raise AssertionError(f"{func} made a float64 tensor on {tensor.device}")
        return out


def test_a_meta_step_makes_no_float64_on_the_device(tiny_config, monkeypatch):
    """The real step (networks, losses, optimisers, W's row-wise Adam) on PyTorch's 'meta'
    device, standing for Apple's GPU: float64 stays on the host (the optimisers' step counts).
    W's decays take the dtype decay_dtype gives Apple's GPU (CUDA and the CPU keep float64)."""
    from training import video_table

    assert video_table.decay_dtype(torch.device("mps")) == torch.float32
    assert video_table.decay_dtype(torch.device("cuda")) == torch.float64
    real = video_table.decay_dtype
    monkeypatch.setattr(video_table, "decay_dtype", lambda device: real(torch.device("mps")))
    run = Distributed(0, 1, 0, torch.device("meta"))
    with pytest.warns(UserWarning, match="RANDOM"):
        learner = MetaLearner(tiny_config, run, Precision("fp32", run.device))
    rows = learner.table.rows_for([f"video{i}" for i in range(6)])[[1, 3]].to(run.device)
    batch = learner.to_device(synthetic_batch(tiny_config))
    with NoFloat64OnTheDevice():
        for _ in range(2):  # the first step makes the optimiser states, the second uses them
            learner.step(batch, rows, measure=True)


def test_what_the_ranks_exchange_is_never_float64(monkeypatch):
    """all_mean, all_min and check_in_sync under two ranks (the collectives faked: this rank's
    tensor comes back from the other), and a drifted rank still caught."""
    carried = []

    def all_reduce(tensor, op=None):
        carried.append(tensor.dtype)

    def all_gather(parts, tensor):
        carried.append(tensor.dtype)
        for part in parts:
            part.copy_(tensor)

    monkeypatch.setattr(dist, "all_reduce", all_reduce)
    monkeypatch.setattr(dist, "all_gather", all_gather)
    run = Distributed(0, 2, 0, torch.device("cpu"))
    assert distributed.all_mean({"loss": 0.5}, run) == {"loss": 0.25}  # summed over 1 of 2
    assert distributed.all_min(2**40 + 1, run) == 2**40 + 1  # exact
    weights = {"W": torch.randn(3, 4), "steps": torch.arange(3)}
    distributed.check_in_sync(weights, run)
    assert torch.float64 not in carried and len(carried) == 3

    def drifted(parts, tensor):
        parts[0].copy_(tensor)
        parts[1].copy_(tensor)
        parts[1][0] += 1  # rank 1's first checksum: W's

    monkeypatch.setattr(dist, "all_gather", drifted)
    with pytest.raises(RuntimeError, match=r"rank 1 differs from rank 0 in \['W'\]"):
        distributed.check_in_sync(weights, run)


@pytest.mark.parametrize(
    "command",
    [Path(script).stem for script in SCRIPTS]
    + ["dataset.preprocess", "person.distill", "examples.forward_pass"],
)
def test_a_command_loads_torch_with_the_mps_cpu_fallback_on(command):
    """Torch reads PYTORCH_ENABLE_MPS_FALLBACK once, as it loads: each script and python -m
    command must have set it by then (utils/__init__.py). The import stops where torch would
    load."""
    assert variable_at_torch_load(command, "PYTORCH_ENABLE_MPS_FALLBACK") == "1"


@pytest.mark.parametrize(
    ("platform", "says"),
    [
        ("darwin", "System Settings > Privacy & Security > Camera, then run again"),
        ("win32", "Settings > Privacy (& security) > Camera"),
        ("linux", "is it connected and free?"),
    ],
)
def test_a_closed_camera_says_where_to_allow_it(monkeypatch, tmp_path, platform, says):
    """macOS answers a camera's first use with a permission question, and OpenCV with a closed
    camera."""

    class ClosedCamera:
        def __init__(self, index):
            self.index = index

        def isOpened(self):
            return False

    monkeypatch.chdir(tmp_path)  # no file named "0"
    monkeypatch.setattr("live.sources.cv2.VideoCapture", ClosedCamera)
    monkeypatch.setattr(sys, "platform", platform)
    with pytest.raises(VideoReadError, match="cannot open webcam 0") as error:
        FrameSource("0")
    assert says in str(error.value)


def test_onnx_runtime_runs_on_cuda_or_the_cpu_never_on_coreml(tiny_config, monkeypatch):
    import onnxruntime

    made = []

    class Session:
        def __init__(self, path, options=None, providers=None):
            made.append(providers)

    offered = ["CoreMLExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: offered)
    monkeypatch.setattr(onnxruntime, "InferenceSession", Session)
    monkeypatch.setattr(live.render, "export_person", lambda person, path, kind: path)
    person = random_person(tiny_config)
    for device in (torch.device("cpu"), MPS):
        live.render.make_renderer(person, "onnx", device, "auto", False)
    offered.insert(0, "CUDAExecutionProvider")
    live.render.make_renderer(person, "onnx", torch.device("cuda", 1), "auto", False)
    cpu = ["CPUExecutionProvider"]
    assert made == [cpu, cpu, [("CUDAExecutionProvider", {"device_id": 1}), *cpu]]
