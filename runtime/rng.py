"""Every random generator's state (torch, CUDA, Apple's GPU, Python, NumPy), to save with a
resumable job.

Checkpoints of meta-training and of fine-tuning keep it, so a resumed job draws the same numbers
as one that never stopped. Plain tensors and lists: loadable with weights_only=True.

CUDA's state is the process's own GPU's (its current device, utils/device.process_device), not
every visible GPU's: a run started on 8 GPUs resumes on 1, or under another
CUDA_VISIBLE_DEVICES, and checkpoints that hold a list of GPUs' states (older files) give the
process its own GPU's entry, or the first when the list is shorter. Apple's GPU (MPS) has one
generator (torch.mps.get_rng_state), saved where MPS is available; a checkpoint moved between a
Mac and a machine without MPS resumes with that generator as it is.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def rng_state() -> dict[str, object]:
    """Every random generator's state, as tensors and plain lists (loadable weights_only)."""
    version, mt_state, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": [version, list(mt_state), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    if torch.backends.mps.is_available():
        state["mps"] = torch.mps.get_rng_state()
    return state


def restore_rng(state: dict[str, object]) -> None:
    torch.set_rng_state(state["torch"])
    version, mt_state, gauss = state["python"]
    random.setstate((version, tuple(mt_state), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if isinstance(cuda, (list, tuple)):  # one per GPU the saving process saw
            index = torch.cuda.current_device()
            cuda = cuda[index] if index < len(cuda) else cuda[0]
        torch.cuda.set_rng_state(cuda)
    if "mps" in state and torch.backends.mps.is_available():
        torch.mps.set_rng_state(state["mps"])
