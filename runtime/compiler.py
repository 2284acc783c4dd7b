"""Whether torch.compile can work here: inductor writes C++ for the CPU, which a C++ compiler
must build at the first call (on macOS also with OpenMP), and Triton kernels for CUDA GPUs.
Windows and macOS laptops often have neither compiler; the commands then run without compiling
after one warning line instead of failing at the first frame or step."""

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


def compiler_hint() -> str:
    return COMPILER_HINT.get(sys.platform, COMPILER_HINT["linux"])


def compile_problem(device: torch.device) -> str | None:
    """None when torch.compile's code generator for device finds what it needs (a C++
    compiler for the CPU, found as inductor finds it; Triton for a CUDA GPU); otherwise one
    line saying what is missing and how to get it."""
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        if has_triton():
            return None
        return (
            "torch.compile needs Triton for CUDA GPUs (pip install triton; Windows: triton-windows)"
        )
    if device.type != "cpu":
        return None  # Apple's GPU: inductor writes Metal shaders, built by the OS
    from torch._inductor.cpp_builder import get_cpp_compiler

    try:
        get_cpp_compiler()
    except Exception as error:  # InvalidCxxCompiler, or MSVC's own checks on Windows
        return f"torch.compile finds no C++ compiler ({type(error).__name__}). {compiler_hint()}"
    return None
