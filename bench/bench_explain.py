"""Seconds per explanation method and model on this machine's CPU, as a table (never a pass/fail on time).

Models are the registry's, built as ``model:<name>`` (real weights where a package ships them, else random, which
costs the same). Each row: one warm-up call, then the median of ``--repeats`` timed calls (QA: one call, it is
the slow one). Integrated Gradients on QA uses fewer steps and a trimmed window (``max_length``), as the app would.

    .venv/bin/python bench/bench_explain.py [--repeats 3] [--data-dir DIR]
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TRANSFER_LAB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

QUESTION = "پایتخت ایران کجاست؟"
PASSAGE = ("تهران پایتخت و پرجمعیت‌ترین شهر ایران است. این شهر در دامنهٔ جنوبی رشته‌کوه البرز قرار دارد و "
           "جمعیت آن در سال ۱۳۹۵ بیش از هشت میلیون نفر بود. تهران از دوران قاجار پایتخت ایران بوده است.")


def _png(array) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def main() -> None:
    import torch

    from core.explain import explain
    from core.store.predictors import PredictorCache
    from core.tasks.images.data import first_test_image_per_class
    from core.tasks.tweets.data import load_split

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir")
    parser.add_argument("--only", help="comma-separated methods to time (default: all)")
    args = parser.parse_args()

    image = _png(first_test_image_per_class(args.data_dir, ("cat",))[0][1])
    tweet = load_split("test", args.data_dir)[0].text
    cases = [  # (model, method, inputs, settings, repeats)
        ("efficientnet_lite0", "grad_cam", {"image": image}, {}, args.repeats),
        ("resnet50", "grad_cam", {"image": image}, {}, args.repeats),
        ("coat_lite_small", "grad_cam", {"image": image}, {}, args.repeats),
        ("deit_small_distilled", "attention_rollout", {"image": image}, {}, args.repeats),
        ("cait_s24", "attention_rollout", {"image": image}, {}, args.repeats),
        ("deit_small_distilled", "gradient_rollout", {"image": image}, {}, args.repeats),
        ("efficientnet_lite0", "activations", {"image": image}, {}, args.repeats),
        ("minilm", "integrated_gradients", {"text": tweet}, {"steps": 50}, args.repeats),
        ("minilm", "attention_rollout", {"text": tweet}, {}, args.repeats),
        ("e5_small", "integrated_gradients", {"question": QUESTION, "context": PASSAGE},
         {"steps": 16, "max_length": 128, "stride": 32}, 1),
    ]
    if args.only:
        wanted = set(args.only.split(","))
        cases = [c for c in cases if c[1] in wanted]
    cache = PredictorCache(max_bytes=2 * 2**30)
    print(f"torch threads: {torch.get_num_threads()}, load: {os.getloadavg()[0]:.2f} (1 min)")
    print("| model | method | weights | seconds (median of timed calls) | first call | detail |")
    print("|---|---|---|---|---|---|")
    for name, method, inputs, settings, repeats in cases:
        task = cache.get(f"model:{name}")
        started = time.perf_counter()
        first = explain(task, method, inputs, **settings)
        first_s = time.perf_counter() - started
        times = []
        for _ in range(repeats if repeats > 1 else 0):
            started = time.perf_counter()
            explain(task, method, inputs, **settings)
            times.append(time.perf_counter() - started)
        median = statistics.median(times) if times else first_s
        detail = ""
        if first.completeness_gap is not None:
            detail = f"gap {first.completeness_gap:.2%}, {len(first.extras['subword_tokens'])} tokens"
        elif first.extras.get("coarse_shape"):
            detail = f"grid {first.extras['coarse_shape']}"
        detail += f" {settings}" if settings else ""
        print(f"| {name} | {method} | {task.model.weights.kind} | {median:.2f} | {first_s:.2f} | {detail} |",
              flush=True)


if __name__ == "__main__":
    main()
