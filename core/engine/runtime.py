"""Process-level CPU tuning, applied once before heavy work.

glibc returns every freed block above its mmap threshold (32 MB at most by default) to the kernel, so a CNN
forward that allocates and frees large activations each batch spends most of its time in page faults
(bench/bench_cpu_allocator.py measures the difference; the README quotes its figures). Raising them keeps freed memory in the heap for
reuse; the cost is that the process's resident size stays at its peak.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_ONE_GIB = 1 << 30


@functools.lru_cache(maxsize=1)
def tune_cpu_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds to 1 GiB; True if applied (Linux with glibc only).

    ``TRANSFER_LAB_DEFAULT_MALLOC=1`` leaves glibc's defaults (for comparison in bench/).
    """
    if not sys.platform.startswith("linux") or os.environ.get("TRANSFER_LAB_DEFAULT_MALLOC") == "1":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # musl or another libc without mallopt
    return bool(mallopt(_M_MMAP_THRESHOLD, _ONE_GIB)) and bool(mallopt(_M_TRIM_THRESHOLD, _ONE_GIB))
