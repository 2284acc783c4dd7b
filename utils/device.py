"""Which torch device a run uses: config.device, with 'auto' meaning CUDA when present, made
CUDA's current device for the process (process_device)."""

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


def process_device(device_name: str, local_rank: int | None) -> torch.device:
    """The device this process computes on, made CUDA's current device when it is a GPU.

    Under torchrun (local_rank given) a GPU run takes GPU local_rank modulo the GPUs this
    process sees: torchrun gives each process every GPU of the node, while Slurm tasks
    often see one GPU each with LOCAL_RANK still counting up. A lone process keeps the GPU
    it was asked for; an index-less 'cuda' is the current device. CUDA's current device is
    set in every case, because the CUDA RNG state, NCCL, cuDNN handles and argument-less
    calls such as torch.cuda.max_memory_allocated() work on it, not on the device our tensors name.
    """
    device = resolve_device(device_name)
    if device.type != "cuda":
        return device
    if local_rank is not None:
        index = local_rank % torch.cuda.device_count()
    else:
        index = torch.cuda.current_device() if device.index is None else device.index
    device = torch.device("cuda", index)
    torch.cuda.set_device(device)
    return device
