"""Whether torch.compile works here: inductor writes C++ for the CPU, which a C++ compiler must
build (on macOS with OpenMP too), and Triton kernels for CUDA GPUs. Windows and macOS laptops
often lack them; the commands then run uncompiled after one warning line instead of failing at
the first frame or step."""

from __future__ import annotations

import sys

import torch

# What torch.compile's CPU code needs on each OS.
COMPILER_HINT = {
    "win32": "It needs Microsoft's C++ compiler: install Visual Studio Build Tools (C++ "
    "workload) and run from the 'x64 Native Tools Command Prompt'.",
    "darwin": "It needs Apple's Command Line Tools (xcode-select --install) and OpenMP "
    "(brew install libomp).",
    "linux": "It needs a C++ compiler (e.g. apt install g++).",
}
TRITON_HINT = "On a CUDA GPU it needs Triton (pip install triton; on Windows: triton-windows)."


def compiler_hint(device: torch.device) -> str:
    """What to install for torch.compile on device, on this OS."""
    if device.type == "cuda":
        return TRITON_HINT
    return COMPILER_HINT.get(sys.platform, COMPILER_HINT["linux"])


def compile_problem(device: torch.device) -> str | None:
    """None when torch.compile works on device, else one line: why not, and what to install.

    Tried on a two-operation function, compiled and run once (a few seconds): a compiler that
    is found but cannot build (macOS's clang without OpenMP) fails here as it would at the
    first step.
    """
    try:
        trial = torch.compile(lambda x: torch.sin(x) * 2.0 + 1.0, dynamic=False)
        trial(torch.ones(8, device=device))
    except Exception as error:  # inductor's many failures: compiler, headers, OpenMP, Triton
        return f"torch.compile does not work here ({describe(error)}). {compiler_hint(device)}"
    return None


def describe(error: Exception) -> str:
    """'Type: first line' of a compile failure, at most 200 characters."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:200] if text else ''}"
