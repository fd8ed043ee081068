"""Images per second of a frozen CNN forward on CPU with glibc's default malloc thresholds against ours
(core/runtime.py), each in a fresh process, measured by this one script.

    .venv/bin/python bench/bench_cpu_allocator.py [--model efficientnet_lite0] [--images 256]
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


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--images", type=int, default=256)
    args = p.parse_args()
    default = images_per_second(args.model, args.images, True)
    tuned = images_per_second(args.model, args.images, False)
    print(json.dumps({"model": args.model, "images_per_second_default_malloc": round(default, 1),
                      "images_per_second_tuned": round(tuned, 1), "speedup": round(tuned / default, 2),
                      "cores": os.cpu_count()}))


if __name__ == "__main__":
    main()
