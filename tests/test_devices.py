"""Host code that must work whatever device holds the tensors (issue 25: CUDA users)."""

from __future__ import annotations

import copy
import os

import pytest
import torch
from device_tensors import on_gpu

from bench.drive import random_person
from models.meta_model import weights_identity
from person.distill import made_from
from person.finetune import origin
from runtime.precision import (
    Precision,
    configure_backends,
    load_scaler_state,
    resolve_precision,
)
from runtime.rng import restore_rng, rng_state


def test_the_fake_gpu_tensor_refuses_numpy_until_copied():
    tensor = on_gpu(torch.ones(2))
    with pytest.raises(TypeError, match="cuda"):
        tensor.float().numpy()
    assert tensor.cpu().numpy().tolist() == [1.0, 1.0]
    assert tensor.to("cpu", torch.float32).numpy().tolist() == [1.0, 1.0]


def test_identities_and_origins_are_the_same_from_a_gpu(tiny_config):
    """A person model on a GPU (psi there, as distillation moves the teacher before hashing)
    has the identity it has on the CPU; so do a fine-tuning's and a distillation's origin."""
    person = random_person(tiny_config)
    on_device = copy.deepcopy(person)
    on_device.psi = on_gpu(person.psi)
    assert on_device.identity == person.identity
    assert made_from(on_device, tiny_config, []) == made_from(person, tiny_config, [])

    class Meta:
        identity = "meta"

    assert origin(Meta, on_device) == origin(Meta, person)
    states = {"embedder": {}, "generator": person.network_state(), "discriminator": {}}
    gpu_states = {**states, "generator": {k: on_gpu(v) for k, v in states["generator"].items()}}
    assert weights_identity(gpu_states) == weights_identity(states)


@pytest.mark.parametrize(
    ("capability", "expected"),
    [((7, 0), "fp16"), ((7, 5), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16")],
)
def test_auto_precision_is_bf16_only_where_a_gpu_computes_it_natively(
    monkeypatch, capability, expected
):
    """V100 / T4 / RTX 20xx report bf16 support (emulated) but have no fast bf16 kernels."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert resolve_precision("auto", torch.device("cuda", 0)) == expected


def test_cuda_backends_autotune_or_run_deterministically(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "use_deterministic_algorithms", lambda on: calls.append(on))
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    flags = torch.backends.cudnn
    saved = flags.benchmark, flags.deterministic, torch.backends.cuda.matmul.allow_tf32
    try:
        configure_backends(torch.device("cuda"))
        assert flags.benchmark and not flags.deterministic and calls == [False]
        assert torch.backends.cuda.matmul.allow_tf32
        configure_backends(torch.device("cuda"), deterministic=True)
        assert not flags.benchmark and flags.deterministic and calls == [False, True]
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        flags.benchmark, flags.deterministic, torch.backends.cuda.matmul.allow_tf32 = saved
    configure_backends(torch.device("cpu"), deterministic=True)  # nothing to do on a CPU
    assert calls == [False, True]


def test_an_fp16_run_resumes_from_a_bf16_checkpoint_and_back():
    """bf16 / fp32 runs save their pass-through scaler's empty state; GradScaler refuses to
    load it, so resuming such a run with fp16 (or a checkpoint moved to an older GPU) raised."""
    cpu = torch.device("cpu")
    saved_bf16 = Precision("bf16", cpu).scaler().state_dict()
    assert saved_bf16 == {}
    fp16 = Precision("fp16", cpu).scaler()  # enabled: GradScaler works on the CPU too
    load_scaler_state(fp16, saved_bf16)
    assert fp16.get_scale() == 65536.0  # a fresh scale
    fp16.scale(torch.ones(()))
    fp16.update(1024.0)
    back = Precision("bf16", cpu).scaler()
    load_scaler_state(back, fp16.state_dict())  # ignored: bf16 needs no scale
    assert not back.is_enabled()
    again = Precision("fp16", cpu).scaler()
    load_scaler_state(again, fp16.state_dict())
    assert again.get_scale() == 1024.0


def test_a_run_saved_on_8_gpus_resumes_on_one(monkeypatch):
    """Older checkpoints hold every visible GPU's CUDA RNG state, and restoring all of them
    asks for GPUs the resuming process may not have; now a process saves and restores its own."""
    touched = []
    own = torch.get_rng_state()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": own)

    def set_rng_state(state, device="cuda"):
        index = torch.device(device).index if not isinstance(device, int) else device
        if index is not None and index >= torch.cuda.device_count():
            raise RuntimeError(f"invalid device ordinal {index}")
        touched.append(state)

    monkeypatch.setattr(torch.cuda, "set_rng_state", set_rng_state)
    state = rng_state()
    assert torch.equal(state["cuda"], own)  # this process's GPU only
    eight = [torch.full_like(own, rank) for rank in range(8)]
    restore_rng({**state, "cuda": eight})
    assert len(touched) == 1 and torch.equal(touched[0], eight[0])
    restore_rng(state)
    assert torch.equal(touched[1], own)


def test_the_tests_model_stays_on_the_cpu_on_a_gpu_machine(tiny_config):
    """Tests assert bit-identical resumes, which CUDA gives only with deterministic algorithms."""
    assert tiny_config.device == "cpu"
