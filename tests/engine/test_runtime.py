"""core/engine/runtime.py: the process's malloc thresholds. The heap stays large for CNN forwards (1 GiB mmap
threshold), and drops to glibc's 32 MiB while a run trains with activation checkpointing, whose recomputed
layers would fragment it (the figures: bench/bench_cpu_allocator.py --qa, quoted in the README)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from core.config import TrainConfig
from core.engine import fit, runtime

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not runtime.tune_cpu_allocator(), reason="glibc's mallopt is not available here")


def test_released_while_any_user_is_inside_and_raised_again_after_the_last():
    assert runtime.mmap_threshold() == runtime._ONE_GIB
    with runtime.large_blocks_released(False):
        assert runtime.mmap_threshold() == runtime._ONE_GIB  # off: nothing changes
    inside, leave = threading.Event(), threading.Event()

    def other_run():
        with runtime.large_blocks_released():
            inside.set()
            leave.wait(10)

    t = threading.Thread(target=other_run)
    with runtime.large_blocks_released():
        assert runtime.mmap_threshold() == runtime.RELEASED_ABOVE
        t.start()
        assert inside.wait(10)
    assert runtime.mmap_threshold() == runtime.RELEASED_ABOVE  # the other run is still inside
    leave.set()
    t.join(10)
    assert runtime.mmap_threshold() == runtime._ONE_GIB
    with pytest.raises(KeyError), runtime.large_blocks_released():
        raise KeyError("a failed run")
    assert runtime.mmap_threshold() == runtime._ONE_GIB


# Both children start as the app does (tune_cpu_allocator first), then call glibc directly.
_CHILD_PRELUDE = """
import ctypes, threading
from core.engine import runtime
runtime.tune_cpu_allocator()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, (ctypes.c_size_t,), (ctypes.c_void_p,)
"""

_MAPPED_CHILD = _CHILD_PRELUDE + """
fields = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
libc.mallinfo2.restype = type("MallInfo2", (ctypes.Structure,), {"_fields_": [(f, ctypes.c_size_t) for f in fields]})


def mapped_by(size):  # bytes glibc holds in mapped blocks while one malloc(size) block is live, less before it
    before = libc.mallinfo2().hblkhd
    block = libc.malloc(size)
    try:
        return libc.mallinfo2().hblkhd - before
    finally:
        libc.free(block)


size = runtime.RELEASED_ABOVE + (8 << 20)  # between the released threshold and the 1 GiB heap's
seen = [mapped_by(size)]
kept = libc.mallinfo2().arena  # the heap's size: that block's memory is still in it, freed
with runtime.large_blocks_released():
    trimmed = libc.mallinfo2().arena
    seen += [mapped_by(size), mapped_by(runtime.RELEASED_ABOVE - (8 << 20))]
seen.append(mapped_by(size))
print(size, kept - trimmed, *seen)
"""


def test_glibc_maps_a_large_block_only_while_blocks_are_released():
    """In a fresh process, whose heap has no free block of that size to hand out (malloc maps a block only when
    none fits): a block between the two thresholds is kept in the heap, except while blocks are released; and
    the memory the heap kept goes back to the system on entering."""
    out = subprocess.run([sys.executable, "-c", _MAPPED_CHILD], env=_env(), capture_output=True, text=True,
                         cwd=str(ROOT), timeout=120)
    if "mallinfo2" in out.stderr:
        pytest.skip("glibc older than 2.33: no mallinfo2")
    assert out.returncode == 0, out.stderr
    size, returned, before, inside, smaller_inside, after = map(int, out.stdout.split())
    assert before == 0  # kept in the heap
    assert returned >= size  # and given back to the system on entering
    assert inside >= size  # its own mapping, unmapped when freed
    assert smaller_inside == 0  # smaller blocks stay in the heap
    assert after == 0


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "TRANSFER_LAB_DEFAULT_MALLOC")}
    return {**env, **extra}


@pytest.mark.parametrize("checkpointing", [True, False])
def test_a_run_trains_with_the_threshold_its_setting_asks_for(checkpointing, data_dir, runs_root, monkeypatch):
    seen = []

    def body(run, cfg, *args):
        seen.append(runtime.mmap_threshold())
        return run

    monkeypatch.setattr(fit, "_train_in", body)
    cfg = TrainConfig(task="images", model="mlp", strategy="scratch", epochs=1, train_limit=20, eval_limit=10,
                      device="cpu", data_dir=str(data_dir), activation_checkpointing=checkpointing)
    fit.train(cfg, runs_root=str(runs_root))
    assert seen == [runtime.RELEASED_ABOVE if checkpointing else runtime._ONE_GIB]
    assert runtime.mmap_threshold() == runtime._ONE_GIB


_THREAD_CHILD = _CHILD_PRELUDE + """

def worker():
    block = libc.malloc(8 << 20)
    libc.free(block)

t = threading.Thread(target=worker)
t.start()
t.join()
libc.malloc_stats()  # on stderr: "Arena 0:" (the main heap), "Arena 1:" ... for each other arena
"""


@pytest.mark.parametrize("arena_max, main_heap", [(None, True), ("8", False)])
def test_a_thread_started_after_tuning_allocates_from_the_main_heap(arena_max, main_heap):
    """The app trains in a worker thread; glibc would give it an arena of its own, whose heaps of 64 MiB at most
    map every larger block afresh. After tune_cpu_allocator() a new thread shares the main heap, unless
    MALLOC_ARENA_MAX (glibc's own setting) says otherwise."""
    env = _env(MALLOC_ARENA_MAX=arena_max) if arena_max else _env()
    out = subprocess.run([sys.executable, "-c", _THREAD_CHILD], env=env, capture_output=True, text=True,
                         cwd=str(ROOT), timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Arena 0:" in out.stderr
    assert ("Arena 1:" not in out.stderr) == main_heap, out.stderr
