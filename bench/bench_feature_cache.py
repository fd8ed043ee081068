"""Seconds per training epoch with and without the frozen-feature cache, measured in one process.

    .venv/bin/python bench/bench_feature_cache.py [--model efficientnet_lite0] [--strategy feature_extraction]
        [--train-limit 2000] [--epochs 2] [--data-dir ../shared/datasets]

Both paths train the same model on the same batches (same seed); the cached path pays once for the frozen part
(prepare) and then trains on stored tensors. Prints one JSON line with the figures and the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TRANSFER_LAB_OFFLINE", "1")

import torch  # noqa: E402

from core.config import TrainConfig  # noqa: E402
from core.freezing import set_train_mode, trainable_parameters  # noqa: E402
from core.engine.fit import make_optimizer, make_task  # noqa: E402


def epoch_seconds(task, epochs: int) -> list[float]:
    opt = make_optimizer(task.cfg, trainable_parameters(task.model), 1e-3)
    times = []
    for epoch in range(epochs):
        set_train_mode(task.model, True)
        t0 = time.perf_counter()
        for batch in task.train_batches(epoch):
            loss, _, _ = task.train_step(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--strategy", default="feature_extraction", choices=["feature_extraction", "last_block"])
    p.add_argument("--train-limit", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--data-dir", default=None)
    args = p.parse_args()
    results = {}
    for cached in (True, False):
        cfg = TrainConfig(task="images", model=args.model, strategy=args.strategy, train_limit=args.train_limit,
                          val_fraction=0.0, batch_size=args.batch_size, data_dir=args.data_dir, seed=0,
                          feature_cache=cached)
        task = make_task(cfg, torch.device("cpu"))
        task.load_data(("train",))
        task.build_model()
        torch.manual_seed(0)
        t0 = time.perf_counter()
        facts = task.prepare_training()
        prepare = time.perf_counter() - t0
        secs = epoch_seconds(task, args.epochs)
        results["cached" if cached else "uncached"] = {"prepare_seconds": round(prepare, 2),
                                                       "epoch_seconds": [round(s, 2) for s in secs],
                                                       "cache": facts.get("feature_cache")}
    c, u = results["cached"], results["uncached"]
    mean_c = sum(c["epoch_seconds"]) / len(c["epoch_seconds"])
    mean_u = sum(u["epoch_seconds"]) / len(u["epoch_seconds"])
    results.update({
        "model": args.model, "strategy": args.strategy, "train_images": len(task.splits["train"]),
        "batch_size": args.batch_size,
        "uncached_over_cached_epoch_ratio": round(mean_u / mean_c, 1),
        # The cache costs one pass per flip up front; from this epoch on the cached run is ahead in total time.
        "break_even_epochs": round(c["prepare_seconds"] / max(1e-9, mean_u - mean_c), 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
                   f"threads {torch.get_num_threads()}, cuda {torch.cuda.is_available()}",
    })
    print(json.dumps(results))


if __name__ == "__main__":
    main()
