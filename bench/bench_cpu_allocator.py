"""Images per second of a frozen CNN forward on CPU with glibc's default malloc thresholds against ours
(core/engine/runtime.py), each in a fresh process, measured by this one script.

    .venv/bin/python bench/bench_cpu_allocator.py [--model efficientnet_lite0] [--images 256]
    .venv/bin/python bench/bench_cpu_allocator.py --qa [--in-thread] [--steps 10] [--data-dir ../shared/datasets]

``--qa``: the other side of the trade. A QA training step with activation checkpointing (the qa-e5-small preset,
on its first batches of 2,000 PQuAD questions, the longest first: 16 windows of 384 tokens), four ways: glibc's
defaults, our 1 GiB heap, our heap with large blocks released (runtime.large_blocks_released, what a run with
activation checkpointing gets: blocks of 32 MiB and up), and the same released from 64 MiB up: the peak resident size of each process (ru_maxrss) and the seconds of every step after
the first. ``--in-thread`` trains in a worker thread, as the app does, with one malloc arena (ours) and with
glibc's arena per thread (MALLOC_ARENA_MAX=8 x cores, its default).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import time, torch
from core.engine.runtime import tune_cpu_allocator
tune_cpu_allocator()
from core import registry
from core.registry import BuildRequest
spec = registry.get({model!r})
m = spec.build(spec, BuildRequest(10, "random")).eval()
x = torch.randint(0, 256, ({images}, 3, 32, 32), dtype=torch.uint8)
with torch.inference_mode():
    m.forward_features(m.preprocess(x[:16]))
    t = time.perf_counter()
    for i in range(0, {images}, 64):
        m.forward_features(m.preprocess(x[i:i + 64]))
    print({images} / (time.perf_counter() - t))
"""


def images_per_second(model: str, images: int, default_malloc: bool) -> float:
    env = {**os.environ, "TRANSFER_LAB_OFFLINE": "1", "PYTHONPATH": str(ROOT),
           "TRANSFER_LAB_DEFAULT_MALLOC": "1" if default_malloc else "0"}
    out = subprocess.run([sys.executable, "-c", CHILD.format(model=model, images=images)], env=env,
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


QA_CHILD = """
import contextlib, resource, sys, threading, time, torch
from core.config import TrainConfig
from core.engine import runtime
from core.engine.fit import make_optimizer, make_task
from core.freezing import set_train_mode, trainable_parameters
from core.presets import get_preset

runtime.tune_cpu_allocator()  # first thing, as app.py and python -m core do
if {released_mib}:
    runtime.RELEASED_ABOVE, runtime.RELEASED_TRIM = {released_mib} << 20, 2 * {released_mib} << 20
seconds = []


def work():
    cfg = TrainConfig(**{{**get_preset("qa-e5-small"), "train_limit": 2000, "eval_limit": 10,
                         "data_dir": {data_dir!r}}})
    with runtime.large_blocks_released() if {released} else contextlib.nullcontext():
        task = make_task(cfg)
        task.load_data(("train",))
        task.build_model()
        task.set_activation_checkpointing(True)
        optimizer = make_optimizer(cfg, trainable_parameters(task.model), cfg.lr)
        set_train_mode(task.model, True)
        lengths = task.splits["train"].lengths
        batches = sorted(task.train_batches(0), key=lambda b: -int(lengths[b].max()))[:{steps}]
        for batch in batches:
            t = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            task.train_step(batch)[0].backward()
            optimizer.step()
            seconds.append(time.perf_counter() - t)


if {in_thread}:  # as the app trains: in a worker thread
    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
else:
    work()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, sum(seconds[1:]))
"""

# (name, glibc's defaults, large blocks released, released from MiB (0: runtime's), environment)
QA_REGIMES = (("glibc_default", True, False, 0, {}), ("heap_1gib", False, False, 0, {}),
              ("large_blocks_released", False, True, 0, {}), ("released_from_64mib", False, True, 64, {}))
# --in-thread: the app's case, one arena (runtime.tune_cpu_allocator) against glibc's arena per thread
QA_THREAD_REGIMES = (("large_blocks_released", False, True, 0, {}),
                     ("released_arena_per_thread", False, True, 0, {"MALLOC_ARENA_MAX": str(8 * (os.cpu_count() or 1))}))


def qa_step(data_dir: str, steps: int, default_malloc: bool, released: bool, released_mib: int = 0,
            extra_env: dict | None = None, in_thread: bool = False) -> tuple[float, float]:
    """(peak GB, seconds of steps 2..steps) of one fresh process; ``released_mib``: release from this size up
    instead of runtime.RELEASED_ABOVE."""
    env = {**os.environ, "TRANSFER_LAB_OFFLINE": "1", "PYTHONPATH": str(ROOT),
           "TRANSFER_LAB_DEFAULT_MALLOC": "1" if default_malloc else "0", **(extra_env or {})}
    code = QA_CHILD.format(data_dir=data_dir, steps=steps, released=released, released_mib=released_mib,
                           in_thread=in_thread)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    peak, seconds = out.stdout.strip().splitlines()[-1].split()
    return float(peak), float(seconds)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--qa", action="store_true", help="QA training with activation checkpointing instead")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--in-thread", action="store_true", help="with --qa: train in a worker thread, as the app does")
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "datasets"))
    args = p.parse_args()
    if args.qa:
        regimes = QA_THREAD_REGIMES if args.in_thread else QA_REGIMES
        rows = {name: qa_step(args.data_dir, args.steps, default, released, mib, env, args.in_thread)
                for name, default, released, mib, env in regimes}
        print(json.dumps({"steps_timed": args.steps - 1, "cores": os.cpu_count(), "in_thread": args.in_thread,
                          **{f"{k}_peak_gb": round(v[0], 2) for k, v in rows.items()},
                          **{f"{k}_seconds": round(v[1], 1) for k, v in rows.items()}}))
        return
    default = images_per_second(args.model, args.images, True)
    tuned = images_per_second(args.model, args.images, False)
    print(json.dumps({"model": args.model, "images_per_second_default_malloc": round(default, 1),
                      "images_per_second_tuned": round(tuned, 1), "speedup": round(tuned / default, 2),
                      "cores": os.cpu_count()}))


if __name__ == "__main__":
    main()
