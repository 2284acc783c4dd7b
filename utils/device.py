"""Which torch device a run uses: config.device, with 'auto' meaning CUDA when present."""

from __future__ import annotations

import torch


def resolve_device(name: str) -> torch.device:
    """'auto' -> 'cuda' if available else 'cpu'; anything else must be a valid, present device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"device: '{name}' is not a torch device ({error})") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: '{name}' asked for, but this machine has no CUDA GPU")
    return device
