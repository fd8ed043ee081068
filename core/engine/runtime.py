"""Process-level CPU tuning, applied once before heavy work.

glibc returns every freed block above its mmap threshold (32 MB at most by default) to the kernel, so a CNN
forward that allocates and frees large activations each batch spends most of its time in page faults
(bench/bench_cpu_allocator.py measures the difference; the README quotes its figures). Raising the thresholds
keeps freed memory in the heap for reuse; the cost is that the process's resident size stays at its peak.

That cost is large for one workload: training with activation checkpointing, whose backward pass recomputes one
layer at a time and frees blocks of ever-changing sizes (a QA batch of 16 windows of 384 tokens: attention
tensors of 113 MB among many smaller ones). Kept in the heap they fragment it: on the longest batches the process
grew to 6.1 GB where glibc's own thresholds held it to 4.0 GB, for 12% less time (bench/bench_cpu_allocator.py
--qa; README, "Persian QA in under 6 GB").
:func:`large_blocks_released` lowers the mmap threshold to glibc's largest, 32 MiB, for such a run. The
setting is the process's: while such a run trains in the app, the app's other work (a CNN's batch evaluation in
Compare) allocates under it too, somewhat slower, and gets the 1 GiB heap back when the run ends.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import sys
import threading

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_ONE_GIB = 1 << 30
# Blocks this size and up go back to the system while a run with activation checkpointing trains: glibc's own
# largest mmap threshold (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit), below the QA preset's feed-forward activations
# (16 x 384 x 1536 floats, 36 MiB) and its attention scores (16 x 12 heads x 384 x 384 floats, 108 MiB). 64 MiB
# keeps the feed-forward blocks in the heap: 12% faster on the longest steps for 0.23 GB more there, and closer
# to 6 GB on a whole run (bench/bench_cpu_allocator.py --qa has both; README, "Persian QA in under 6 GB").
RELEASED_ABOVE = 32 << 20
RELEASED_TRIM = 64 << 20  # and the heap's free top beyond this (twice the mmap threshold, as glibc pairs them)

_lock = threading.Lock()
_releasing = 0  # runs inside large_blocks_released(); the threshold is low while any is


@functools.lru_cache(maxsize=1)
def _glibc():
    """glibc, or None (not Linux, musl, or ``TRANSFER_LAB_DEFAULT_MALLOC=1``)."""
    if not sys.platform.startswith("linux") or os.environ.get("TRANSFER_LAB_DEFAULT_MALLOC") == "1":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None  # musl has neither


def _mallopt():
    libc = _glibc()
    return None if libc is None else libc.mallopt


def _malloc_trim() -> None:
    """Return the heap's free memory to the system (malloc_trim(0): the free top, and whole free pages inside)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.lru_cache(maxsize=1)
def tune_cpu_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds to 1 GiB, and give every thread started from now on the main heap
    (one malloc arena); True if applied (Linux with glibc only). Call it before the process starts threads:
    app.py and ``python -m core`` do, first thing.

    The one arena is for the app, which trains in a worker thread: a thread's own arena is made of heaps of 64
    MiB at most, so it maps every larger block afresh whatever the thresholds say, and it fragments on its own.
    The QA preset's longest steps in a worker thread took 14% more time with an arena of its own than with the
    main heap, at a 0.15 GB higher peak (bench/bench_cpu_allocator.py --qa --in-thread). The cost, threads waiting on
    one heap's lock, is small where threads allocate tensors, not many small objects (Python has its own
    allocator for those).

    ``TRANSFER_LAB_DEFAULT_MALLOC=1`` leaves glibc's defaults (for comparison in bench/); ``MALLOC_ARENA_MAX``
    (glibc's variable) keeps its number of arenas.
    """
    mallopt = _mallopt()
    if mallopt is None:
        return False
    if "MALLOC_ARENA_MAX" not in os.environ:  # glibc's own setting, where someone chose it, stands
        mallopt(_M_ARENA_MAX, 1)  # threads that already have an arena keep it
    with _lock:
        mmap, trim = (RELEASED_ABOVE, RELEASED_TRIM) if _releasing else (_ONE_GIB, _ONE_GIB)
        return bool(mallopt(_M_MMAP_THRESHOLD, mmap)) and bool(mallopt(_M_TRIM_THRESHOLD, trim))


def mmap_threshold() -> int | None:
    """The mmap threshold this module set (bytes), or None where it leaves glibc's own (dynamic) one."""
    if not tune_cpu_allocator():
        return None
    with _lock:
        return RELEASED_ABOVE if _releasing else _ONE_GIB


@contextlib.contextmanager
def large_blocks_released(on: bool = True):
    """While inside (and ``on``), blocks of 32 MiB and more go back to the system when freed, and so does the heap's
    free top beyond 64 MiB, instead of staying in the heap: for activation checkpointing (the module's docstring). Process-wide, so
    nested and concurrent uses count: the threshold goes back up when the last one leaves. Nothing to do where
    :func:`tune_cpu_allocator` does not apply."""
    global _releasing
    if not on or not tune_cpu_allocator():
        yield
        return
    mallopt = _mallopt()
    with _lock:
        _releasing += 1
        if _releasing == 1:
            mallopt(_M_MMAP_THRESHOLD, RELEASED_ABOVE)
            mallopt(_M_TRIM_THRESHOLD, RELEASED_TRIM)
            _malloc_trim()  # and what the 1 GiB heap kept free until now (the app's earlier work) goes back too
    try:
        yield
    finally:
        with _lock:
            _releasing -= 1
            if not _releasing:
                mallopt(_M_MMAP_THRESHOLD, _ONE_GIB)
                mallopt(_M_TRIM_THRESHOLD, _ONE_GIB)
