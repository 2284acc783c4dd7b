"""Which number format the networks compute in: fp32, bf16 autocast or fp16 with loss scaling.

bf16 keeps fp32's range, so it needs no loss scaling; it is fast where the hardware computes it
natively (GPUs of compute capability 8.0 and newer: A100, RTX 30xx, H100; CPUs with AVX-512 BF16
or AMX). Older GPUs (V100, T4, RTX 20xx) get fp16 with a gradient scaler:
``torch.cuda.is_bf16_supported()`` says yes there too, counting emulation, which has no fast
cuDNN kernels. Apple's GPU (MPS) gets fp32: torch's autocast takes bf16 there only from macOS 14
on, and no measurement here shows it faster on Apple GPUs (ask for it with precision bf16).
Parameters, optimiser states and W stay fp32 in every mode.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from params.config import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def cpu_has_native_bf16() -> bool:
    """AVX-512 BF16 or AMX: oneDNN then runs bf16 convolutions and matrix products natively."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(name: str, device: torch.device) -> str:
    """'auto' -> the fastest safe format on this device (CUDA: bf16 or fp16; Apple's GPU: fp32;
    a CPU: bf16 where native, else fp32); other names are checked (ConfigError)."""
    if name not in PRECISIONS:
        raise ConfigError(f"train.precision: '{name}' is not one of {', '.join(PRECISIONS)}")
    if name == "fp16" and device.type != "cuda":
        raise ConfigError(
            "train.precision: fp16 needs a CUDA GPU (use bf16 or fp32 on a CPU or an Apple GPU)"
        )
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if gpu_has_native_bf16(device) else "fp16"
    if device.type == "mps":
        return "fp32"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def gpu_has_native_bf16(device: torch.device) -> bool:
    """Compute capability 8.0 or newer (Ampere on): tensor cores and cuDNN kernels in bf16."""
    return torch.cuda.get_device_capability(device) >= (8, 0)


def configure_backends(device: torch.device, deterministic: bool = False) -> None:
    """Process-wide CUDA switches of every command: TF32 for fp32 matrix products and
    convolutions (Ampere on: 10 mantissa bits in the products, fp32 sums; bf16 / fp16 runs are
    unaffected), cuDNN's autotuner (the shapes repeat every step), or, when deterministic,
    deterministic algorithms throughout (bit-exact resume on CUDA: cuDNN's convolution backward,
    index_add_ and attention backward are not deterministic otherwise; slower, and an operation
    without a deterministic kernel raises). Does nothing on a CPU, which is deterministic.
    """
    if device.type != "cuda":
        return
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's condition
    torch.use_deterministic_algorithms(deterministic)


@dataclass
class Precision:
    """The autocast context and gradient scaler of one resolved precision."""

    name: str  # 'fp32' | 'bf16' | 'fp16'
    device: torch.device

    @property
    def dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def scaler(self) -> torch.amp.GradScaler:
        """A gradient scaler: active for fp16, a pass-through otherwise."""
        return torch.amp.GradScaler(self.device.type, enabled=self.name == "fp16")


def load_scaler_state(scaler: torch.amp.GradScaler, state: dict[str, object]) -> None:
    """A saved scaler's state into this run's, across precisions: a bf16 or fp32 run saves an
    empty state (its scaler is a pass-through), which GradScaler.load_state_dict refuses; an
    fp16 run resumed from one starts its scale afresh, and a run that needs no scaler ignores
    a saved one. Otherwise the scale and its growth tracker carry on."""
    if scaler.is_enabled() and state:
        scaler.load_state_dict(state)
