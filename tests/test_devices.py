"""Host code that must work whatever device holds the tensors (issue 25: CUDA users)."""

from __future__ import annotations

import copy

import pytest
import torch
from device_tensors import on_gpu

from bench.drive import random_person
from models.meta_model import weights_identity
from person.distill import made_from
from person.finetune import origin


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
