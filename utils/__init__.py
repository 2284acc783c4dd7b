"""Small helpers shared by every package.

Every script imports this package first, before anything loads torch, and so do the packages
whose modules are commands (python -m dataset.preprocess, python -m person.distill), so that on a
Mac the operations that Apple's GPU (MPS) lacks run on the CPU, each said once by torch's warning,
instead of stopping the run with NotImplementedError. Torch reads PYTORCH_ENABLE_MPS_FALLBACK
once, when it loads: its MPS fallback is registered at library load (TORCH_LIBRARY_IMPL(_, MPS)
in aten/src/ATen/mps/MPSFallback.mm), so setting it after ``import torch`` does nothing. A value
the user set is kept (0 keeps the error); torch builds without MPS (all but macOS's) ignore it.

Windows writes a piped or redirected stdout and stderr in the locale's code page (cp1252): a
file or person name outside it would end a command with UnicodeEncodeError at its first print.
Such characters are written escaped instead (\\u9854).
"""

import os
import sys

os.environ.setdefault("PYTORCH_ENABLE_MPS_FALLBACK", "1")
for _stream in (sys.stdout, sys.stderr):
    if hasattr(_stream, "reconfigure"):  # not when a host replaced the stream
        _stream.reconfigure(errors="backslashreplace")
