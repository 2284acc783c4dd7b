"""bench/RESULTS.md: one section per benchmark, each rewritten by its own script."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path

from utils.files import atomic_write_bytes

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text(encoding="utf-8"))
        if found:
            return found.group(1).strip()
    return platform.processor() or "unknown CPU"


def machine_line() -> str:
    """'Machine: CPU, cores, GPU; versions.' for the top of a section."""
    import cv2
    import dlib
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, GPU {gpu}; Python "
        f"{platform.python_version()}, OpenCV {cv2.__version__}, dlib {dlib.__version__}, "
        f"torch {torch.__version__}."
    )


def write_section(name: str, text: str) -> None:
    """Replace the section between <!-- name:start --> and <!-- name:end --> (or append it)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    section = f"{start}\n{text.strip()}\n{end}"
    current = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _: section, current)
    else:
        updated = current.rstrip("\n") + "\n\n" + section + "\n"
    atomic_write_bytes(RESULTS, updated.encode())


def report(name: str, text: str, write: bool) -> None:
    """Print a benchmark's section; with --write also put it into bench/RESULTS.md."""
    print(text)
    if write:
        write_section(name, text)
