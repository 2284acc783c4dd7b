"""Giving freed memory back to the operating system between the phases of a training step.

glibc's malloc keeps memory that large tensors freed in its heap for reuse; after a phase of
a step (the generator side, each discriminator step) most of it is free, but the process still
holds it, and the next phase's differently sized tensors fragment it further: on the paper
config the process held about 1 GB more than it used. malloc_trim returns the free pages; it
costs a few milliseconds. Elsewhere (macOS, musl, Windows) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys


@functools.cache
def _libc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def release_free_memory() -> None:
    """Return the heap's free pages to the operating system (glibc only)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def peak_rss_gib() -> float | None:
    """This process's peak resident memory in GiB (getrusage's ru_maxrss, which Linux counts
    in KiB and macOS in bytes), or None where there is no getrusage (Windows)."""
    try:
        import resource  # POSIX only: imported here so that this module loads everywhere
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**30 if sys.platform == "darwin" else 2**20)
