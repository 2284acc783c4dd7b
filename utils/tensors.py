"""A tensor's bytes, read from whatever device holds it.

Model identities (models/meta_model.py, models/person_model.py) and what a work folder is made
from (person/finetune.py, person/distill.py) are sha256 digests of tensor bytes. ``.numpy()``
works on CPU tensors only: a person model driven on a GPU holds psi there, and hashing it in
place raised. ``tensor_bytes`` copies to the host first, so a digest is the same on every device.
"""

from __future__ import annotations

import torch


def tensor_bytes(tensor: torch.Tensor, dtype: torch.dtype | None = None) -> bytes:
    """The tensor's values as bytes (C order), copied to the CPU and cast to dtype if given.

    Any device, any layout; dtype must be one NumPy has (not bfloat16: pass torch.float32).
    """
    host = tensor.detach().to("cpu", dtype or tensor.dtype).contiguous()
    return host.numpy().tobytes()
