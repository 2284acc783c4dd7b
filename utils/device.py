"""Which torch device a run uses: config.device, with 'auto' meaning CUDA when present, else
Apple's GPU (MPS), else the CPU; made CUDA's current device for the process (process_device).

On MPS, operations that Apple's GPU lacks run on the CPU (each said once by torch's warning),
because the scripts import ``utils`` before torch: see utils/__init__.py.
"""

from __future__ import annotations

import shutil
import warnings

import torch

# PyPI's torch for Windows has no CUDA; the CUDA builds come from pytorch.org's own index.
CUDA_BUILD_HINT = (
    "this torch has no CUDA (PyPI's Windows build), yet an NVIDIA GPU is present: for it, "
    "install torch==2.14.1 and torchvision==0.29.1 with the pip command that "
    "https://pytorch.org/get-started/locally/ gives for CUDA; running on the CPU"
)


class DeviceError(ValueError):
    """A device that is not a torch device or that this machine does not have."""


def resolve_device(name: str) -> torch.device:
    """'auto' -> 'cuda' if available, else 'mps' (Apple's GPU) if available, else 'cpu';
    anything else must be a valid, present device.

    Raises DeviceError naming the device and what the machine has.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        if torch.version.cuda is None and shutil.which("nvidia-smi"):
            warnings.warn(CUDA_BUILD_HINT, stacklevel=2)
        return torch.device("cpu")
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


def describe_device(device: torch.device) -> str:
    """The device as a command says it: 'cuda:0 (NVIDIA H100 80GB HBM3)', 'mps (Apple GPU:
    Apple M2)' (torch's name of the Metal device), 'cpu'."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return f"{device} (Apple GPU: {torch.backends.mps.get_name()})"
    return str(device)


def onnx_providers(device: torch.device, available: list[str]) -> list:
    """onnxruntime's execution providers for a model run on device, best first.

    The providers are always named: onnxruntime-gpu refuses a session without them. CUDA
    (on device's GPU) leads when device is a GPU and onnxruntime offers it; the CPU always
    comes last, the fallback for whatever an earlier provider cannot run. No other provider
    is taken, even where offered: on a Mac, CoreML would convert the model at every start and
    may compute in fp16, other numbers than the CPU's.
    """
    providers: list = []
    if device.type == "cuda" and "CUDAExecutionProvider" in available:
        index = torch.cuda.current_device() if device.index is None else device.index
        providers.append(("CUDAExecutionProvider", {"device_id": index}))
    return [*providers, "CPUExecutionProvider"]
