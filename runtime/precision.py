"""Which number format the networks compute in: fp32, bf16 autocast or fp16 with loss scaling.

bf16 keeps fp32's range, so it needs no loss scaling; it is fast where the hardware computes it
natively (Ampere and newer GPUs, CPUs with AVX-512 BF16 or AMX). Older GPUs get fp16 with a
gradient scaler. Parameters, optimiser states and W stay fp32 in every mode.
"""

from __future__ import annotations

import contextlib
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
    """'auto' -> the fastest safe format on this device; other names are checked."""
    if name not in PRECISIONS:
        raise ConfigError(f"train.precision: '{name}' is not one of {', '.join(PRECISIONS)}")
    if name == "fp16" and device.type != "cuda":
        raise ConfigError("train.precision: fp16 needs a CUDA GPU (use bf16 or fp32 on a CPU)")
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_native_bf16() else "fp32"


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
