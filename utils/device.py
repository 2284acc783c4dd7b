"""Which torch device a run uses: config.device, with 'auto' meaning CUDA when present."""

from __future__ import annotations

import torch


class DeviceError(ValueError):
    """A device that is not a torch device or that this machine does not have."""


def resolve_device(name: str) -> torch.device:
    """'auto' -> 'cuda' if available else 'cpu'; anything else must be a valid, present device.

    Raises DeviceError naming the device and what the machine has.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise DeviceError(f"device: '{name}' is not a torch device ({error})") from error
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device: '{name}' asked for, but this machine has no CUDA GPU")
        if device.index is not None and device.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise DeviceError(f"device: '{name}' asked for, but this machine has {count} GPU(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device: '{name}' asked for, but this machine has no Apple GPU (MPS)")
    return device
