"""The GPU figures in one script: feature-cached DeiT-B epochs, a BERT-base tweet epoch, the peers, and MFU.

    .venv/bin/python bench/gpu_suite.py [--smoke] [--device cuda|cpu] [--data-dir ../shared/datasets]
        [--image-train-limit 50000] [--tweet-train-limit 6420] [--peer-train-limit 2048] [--precisions bf16 fp32]

Made for a CUDA machine (a few minutes there); ``--smoke`` runs every part end to end at tiny sizes, and with
smaller models (DeiT-S instead of DeiT-B, MiniLM instead of BERT-base), so that the script is known to work on a
CPU. Parts, each printed as it finishes (one JSON line per part, then a summary line):

1. ``peak``: measured GEMM FLOP/s of the device in fp32 (TF32 off) and bf16 (bench/peak.py).
2. ``deit_cache``: ``python -m core train``'s engine on CIFAR-10, ``deit_base_distilled`` ``last_block`` with
   the frozen-feature cache (``core.engine.fit.train``), two epochs: the one-time cache pass, each epoch's
   seconds, and test accuracy. The course took about 1,700 s per epoch; the goal is under 30 s. The weights are
   the Hub's where this machine has them in its cache, else random (``weights`` in the output says which:
   random weights time the same work but the accuracy then means nothing).
3. ``bert_tweets``: ``bert_base`` full fine-tuning, one epoch of CONSTRAINT tweets, ours against
   ``transformers.Trainer`` at its best (bench/bench_tweets_trainer.py's settings: bf16, group_by_length, dynamic
   padding), examples/s, ratio and MFU; random weights unless the Hub cache has them (labelled).
4. ``timm_peer``: ``efficientnet_lite0`` full fine-tuning against timm's training loop (bench/bench_timm_peer.py),
   examples/s, ratio and MFU.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TRANSFER_LAB_OFFLINE", "1")

import torch  # noqa: E402

import bench_timm_peer as timm_peer  # noqa: E402
import bench_tweets_trainer as tweets_peer  # noqa: E402
from core.config import TrainConfig  # noqa: E402
from core.engine.fit import train  # noqa: E402
from peak import gemm_peak, mfu, peak_summary  # noqa: E402


def emit(name: str, figures: dict) -> dict:
    figures = {"part": name, "load_average_1min": round(os.getloadavg()[0], 2), **figures}
    print(json.dumps(figures), flush=True)
    return figures


def weights_for(model: str) -> str:
    """"hub" where the Hub (or its local cache) has the model's weights, else "random" (labelled in the output)."""
    from core import registry
    from core.weights import hub_available

    spec = registry.get(model)
    if hub_available():
        return "hub"
    try:
        from huggingface_hub import try_to_load_from_cache

        for filename in ("model.safetensors", "pytorch_model.bin"):
            if isinstance(try_to_load_from_cache(spec.hub_id, filename), str):
                return "hub"
    except ImportError:
        pass
    return "random"


def part_deit_cache(args, device: str) -> dict:
    weights = weights_for(args.image_model)
    cfg = TrainConfig(task="images", model=args.image_model, strategy="last_block", epochs=2,
                      train_limit=args.image_train_limit, eval_limit=args.image_eval_limit, val_fraction=0.0,
                      batch_size=args.image_batch, eval_batch_size=max(64, args.image_batch), feature_cache=True,
                      weights=weights, device=device, data_dir=args.data_dir, seed=0,
                      precision="bf16" if "bf16" in args.precisions else "fp32")
    with tempfile.TemporaryDirectory(prefix="gpu-suite-runs-") as runs:
        t0 = time.perf_counter()
        run = train(cfg, runs_root=runs)
        wall = time.perf_counter() - t0
        config, metrics = run.read_config(), run.read_metrics()
        history = run.read_history()
    epochs = [row["seconds"] for row in history]
    return {"model": args.image_model, "weights": weights, "train_images": args.image_train_limit,
            "feature_cache": config.get("feature_cache"),
            "cache_pass_seconds": round(config.get("prepare_seconds", 0), 2),
            "epoch_seconds": [round(e, 3) for e in epochs],
            "first_epoch_with_cache_pass_seconds": round(config.get("prepare_seconds", 0) + epochs[0], 2),
            "goal_seconds_per_epoch": 30, "course_seconds_per_epoch": 1700,
            "test_accuracy": round(metrics.get("accuracy", float("nan")), 4), "wall_seconds": round(wall, 2)}


def part_bert_tweets(args, device: str) -> dict:
    weights = weights_for(args.text_model)
    targs = SimpleNamespace(lr=5e-5, batch_size=args.tweet_batch, train_limit=args.tweet_train_limit,
                            data_dir=args.data_dir, max_length=128)
    task = tweets_peer.build_task(targs, model=args.text_model, weights=weights, device=device)
    start = copy.deepcopy(task.model.state_dict())
    rows = tweets_peer.trainer_examples(task, padded=False)
    flops = tweets_peer.epoch_flops(task)
    n = len(task.splits["train"])
    out = {"model": args.text_model, "weights": weights, "tweets": n, "batch_size": args.tweet_batch,
           "epoch_model_gflops": round(flops / 1e9, 1)}
    with tempfile.TemporaryDirectory(prefix="gpu-suite-tweets-") as tmp:
        for prec in args.precisions:
            peak = gemm_peak(torch.bfloat16 if prec == "bf16" else torch.float32, device)
            sides = {"ours": [], "trainer": []}
            for r in range(args.rounds):
                for who in (("ours", "trainer") if r % 2 == 0 else ("trainer", "ours")):
                    task.model.load_state_dict(start)
                    if who == "ours":
                        sides[who].append(tweets_peer.epoch_ours(task, tmp, prec)["epoch_seconds"])
                    else:
                        sides[who].append(tweets_peer.epoch_trainer(task, rows, tmp, True, prec, 0,
                                                                    use_cpu=device == "cpu")["epoch_seconds"])
            out.update(_summary(sides, "trainer", prec, n, flops, peak))
    return out


def _summary(sides: dict[str, list[float]], peer: str, prec: str, n: int, flops: float, peak: float) -> dict:
    """Each side's examples/s, epoch seconds and MFU (medians over the rounds), and the peer's time over ours."""
    out = {}
    for who, secs in sides.items():
        med = statistics.median(secs)
        out[f"{who}_{prec}"] = {"examples_per_second": round(n / med, 3),
                                "epoch_seconds": [round(x, 3) for x in secs],
                                "mfu": round(mfu(flops, med, peak), 4)}
    out[f"ours_over_{peer}_{prec}"] = round(statistics.median(sides[peer]) / statistics.median(sides["ours"]), 3)
    return out


def part_timm_peer(args, device: str) -> dict:
    pargs = SimpleNamespace(model="efficientnet_lite0", strategy="full", train_limit=args.peer_train_limit,
                            batch_size=args.peer_batch, lr=1e-4, data_dir=args.data_dir)
    task = timm_peer.build_task(pargs, device=device)
    start = copy.deepcopy(task.model.state_dict())
    n = len(task.splits["train"])
    flops = timm_peer.image_step_flops(task) * n
    out = {"model": "efficientnet_lite0", "images": n, "batch_size": args.peer_batch}
    with tempfile.TemporaryDirectory(prefix="gpu-suite-timm-") as tmp:
        for prec in args.precisions:
            peak = gemm_peak(torch.bfloat16 if prec == "bf16" else torch.float32, device)
            task.model.load_state_dict(start)
            timm_peer.epoch_timm(task, prec, max_steps=1)  # warm-up (kernel selection, cuDNN autotune)
            sides = {"ours": [], "timm": []}
            for r in range(args.rounds):
                for who in (("ours", "timm") if r % 2 == 0 else ("timm", "ours")):
                    task.model.load_state_dict(start)
                    run_side = timm_peer.epoch_ours if who == "ours" else lambda t, _, p: timm_peer.epoch_timm(t, p)
                    res = run_side(task, tmp, prec)
                    sides[who].append(res["epoch_seconds"])
            out.update(_summary(sides, "timm", prec, n, flops, peak))
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--smoke", action="store_true", help="tiny sizes and smaller models: proves the script runs")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--precisions", nargs="+", choices=("bf16", "fp32"), default=None)
    p.add_argument("--image-train-limit", type=int, default=50000)
    p.add_argument("--tweet-train-limit", type=int, default=6420)
    p.add_argument("--peer-train-limit", type=int, default=2048)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--parts", nargs="+", choices=("peak", "deit_cache", "bert_tweets", "timm_peer"),
                   default=["peak", "deit_cache", "bert_tweets", "timm_peer"])
    args = p.parse_args()
    args.image_model, args.text_model = "deit_base_distilled", "bert_base"
    args.image_eval_limit, args.image_batch, args.tweet_batch, args.peer_batch = 10000, 256, 32, 128
    if args.smoke:
        args.image_model, args.text_model = "deit_small_distilled", "minilm"
        args.image_train_limit, args.image_eval_limit, args.image_batch = 10, 10, 5
        args.tweet_train_limit, args.tweet_batch = 8, 4
        args.peer_train_limit, args.peer_batch = 4, 2
        args.rounds = 1
    if args.precisions is None:
        # bf16 first: the GPU's fast path; fp32 on a CPU smoke run keeps it short
        args.precisions = ["bf16", "fp32"] if args.device == "cuda" else ["fp32"]
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("No CUDA device here: run with --device cpu (and --smoke) to check the script, or on a GPU machine.")
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 peak and fp32 runs are true fp32
        torch.backends.cudnn.benchmark = True
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    parts = {"peak": lambda: peak_summary(args.device, (1024, 2048, 4096) if args.device == "cuda" else (512, 1024)),
             "deit_cache": lambda: part_deit_cache(args, args.device),
             "bert_tweets": lambda: part_bert_tweets(args, args.device),
             "timm_peer": lambda: part_timm_peer(args, args.device)}
    results = {}
    t0 = time.perf_counter()
    for name in args.parts:
        t1 = time.perf_counter()
        results[name] = emit(name, {**parts[name](), "part_seconds": round(time.perf_counter() - t1, 1)})
    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else "none"
    emit("summary", {"smoke": args.smoke, "device": args.device, "gpu": gpu, "parts": list(results),
                     "total_seconds": round(time.perf_counter() - t0, 1),
                     "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"})


if __name__ == "__main__":
    main()
