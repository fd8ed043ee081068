"""Examples/s of our engine against timm's own training loop on a CIFAR-10 fine-tune, measured in one process.

    TRANSFER_LAB_OFFLINE=1 .venv/bin/python bench/bench_timm_peer.py [--model efficientnet_lite0]
        [--strategy full] [--train-limit 128] [--batch-size 32] [--lr 1e-4] [--rounds 2]
        [--precisions fp32 bf16] [--warmup-steps 1] [--data-dir ../shared/datasets]

Both sides train the very same module (the registry model: timm's network, e.g. ``tf_efficientnet_lite0`` with
its packaged ImageNet weights, plus the course's paper head) from the same starting weights, on the same decoded
CIFAR-10 training images (uint8, 32x32, class balanced), upsampled to the model's input size (224) bilinearly,
with random horizontal flips (p 0.5) as the only augmentation, the backbone's mean/std, the same batch size and
the same optimizer (Adam, no weight decay, constant learning rate).

- ours: ``core.engine.fit.Trainer.fit`` (ImageTask; ``precision`` fp32 or bf16) on a throw-away run store; the
  figure is the engine's own epoch seconds (the batch loop only). ``last_block`` / ``feature_extraction`` use the
  frozen-feature cache, whose one-time pass is reported apart (``prepare_seconds``).
- timm: the loop of timm's ``train.py`` (``train_one_epoch``) with its recommended settings for this hardware:
  ``timm.optim.create_optimizer_v2(model, opt="adam", weight_decay=0)`` (which, like ours, gives the optimizer
  only the parameters that require grad), the model and every input in ``channels_last`` (``--channels-last``),
  ``torch.autocast("cpu", dtype=torch.bfloat16)`` for the bf16 side (``--amp --amp-dtype bfloat16``), the loss
  ``nn.CrossEntropyLoss`` and ``zero_grad / backward / step`` per batch. Its data path is a torch DataLoader over
  the same uint8 tensors (random order, batch, no workers: two shared cores), the flip, resize and normalisation
  done per batch on tensors the way timm's ``PrefetchLoader`` normalises on the device: the best timm can do with
  data that is already in memory (its PIL transform pipeline would resize image by image).

``--rounds`` repeats every side, rotating which goes first; medians are reported with the load average seen by
each epoch. MFU: the step's FLOPs (3 x FlopCounterMode's count of a 2-image forward, scaled by the batch: a
CNN's matmul and convolution FLOPs are linear in the batch; see ``image_step_flops``) over the epoch time,
against the GEMM peak measured by ``bench/peak.py`` in the side's precision. Prints one JSON line.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TRANSFER_LAB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from core.config import TrainConfig  # noqa: E402
from core.engine.fit import Trainer, make_task  # noqa: E402
from core.freezing import set_train_mode  # noqa: E402
from core.store.runs import create_run  # noqa: E402
from peak import gemm_peak, mfu, step_flops  # noqa: E402


def build_task(args, device: str = "cpu", weights: str = "offline"):
    cfg = TrainConfig(task="images", model=args.model, strategy=args.strategy, epochs=1, lr=args.lr,
                      batch_size=args.batch_size, eval_batch_size=64, optimizer="adam", weight_decay=0.0,
                      scheduler="none", train_limit=args.train_limit, eval_limit=16, val_fraction=0.0,
                      data_dir=args.data_dir, seed=0, feature_cache=True, weights=weights, device=device,
                      hflip=True)
    task = make_task(cfg, torch.device(device))
    task.load_data(("train", "test"))
    task.build_model()
    return task


# -- ours ------------------------------------------------------------------------------------------------------
def epoch_ours(task, runs_root: str, precision: str) -> dict:
    task.cfg.precision = precision
    t0 = time.perf_counter()
    prepared = task.prepare_training()  # the frozen-feature cache for last_block / feature_extraction
    prepare_seconds = time.perf_counter() - t0
    run = create_run(task.cfg.model, task.cfg.strategy, runs_root)
    rows: list[dict] = []
    torch.manual_seed(0)
    Trainer(task, run, on_epoch=rows.append).fit()
    return {"epoch_seconds": rows[0]["seconds"], "prepare_seconds": prepare_seconds,
            "train_loss": rows[0]["train_loss"], "cached": prepared.get("feature_cache") is not None}


# -- timm's loop -----------------------------------------------------------------------------------------------
def timm_batches(task, generator: torch.Generator):
    """(images uint8 (B, 3, 32, 32), labels) in a random order, as a DataLoader over the in-memory split."""
    split = task.splits["train"]
    data = torch.utils.data.TensorDataset(split.images, split.labels)
    return torch.utils.data.DataLoader(data, batch_size=task.cfg.batch_size, shuffle=True, generator=generator,
                                       num_workers=0, drop_last=False)


def timm_prepare(model, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """hflip (p 0.5), bilinear resize to the input size, normalise, channels_last: (B, 3, S, S) float32."""
    x = images.to(model.mean.device).float() / 255.0
    flip = (torch.rand(len(x), generator=generator) < 0.5).view(-1, 1, 1, 1).to(x.device)
    x = torch.where(flip, x.flip(-1), x)
    s = model.input_size
    x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)
    x = (x - model.mean) / model.std
    return x.contiguous(memory_format=torch.channels_last)


def epoch_timm(task, precision: str, max_steps: int | None = None) -> dict:
    from timm.optim import create_optimizer_v2

    model = task.model
    model.to(memory_format=torch.channels_last)
    task.cache = None  # timm has no frozen-feature cache: a frozen prefix is recomputed every step
    optimizer = create_optimizer_v2(model, opt="adam", lr=task.cfg.lr, weight_decay=0.0)
    loss_fn = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(0)
    set_train_mode(model, True)  # frozen modules stay in eval mode (BatchNorm statistics), as in our engine
    device = task.device.type
    amp = torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16")
    losses, steps = [], 0
    t0 = time.perf_counter()
    for images, target in timm_batches(task, g):
        x = timm_prepare(model, images, g)
        with amp:
            output = model(x)["logits"]
            loss = loss_fn(output, target.to(x.device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.detach() * len(target))  # summed after the loop: no device sync per step
        steps += 1
        if max_steps is not None and steps >= max_steps:
            break
    train_loss = float(sum(losses)) / len(task.splits["train"])  # waits for the device's last step
    return {"epoch_seconds": time.perf_counter() - t0, "prepare_seconds": 0.0, "train_loss": train_loss,
            "cached": False}


def image_step_flops(task) -> float:
    """FLOPs of one training image: 3 x the forward's (the backward costs about twice the forward), from a 2-image
    forward under FlopCounterMode. The forward is counted and the backward derived because FlopCounterMode's
    count of a depthwise convolution's backward is wrong (it came out 14x the forward for EfficientNet-Lite0,
    whose forward it counts right: 0.77 GFLOP at 224 px, timm's figure). For a frozen strategy the backward
    is shorter, so the MFU is an upper bound there."""
    model = task.model
    x = timm_prepare(model, task.splits["train"].images[:2], torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        flops = step_flops(lambda: model(x))
    return 3 * flops / 2


def summary(results: list[dict], n: int, flops: float, peak: float) -> dict:
    secs = statistics.median(r["epoch_seconds"] for r in results)
    return {"examples_per_second": round(n / secs, 3), "median_epoch_seconds": round(secs, 3),
            "epoch_seconds": [round(r["epoch_seconds"], 2) for r in results],
            "prepare_seconds": [round(r["prepare_seconds"], 2) for r in results],
            "cached": results[0]["cached"], "train_loss": [round(r["train_loss"], 4) for r in results],
            "mfu": round(mfu(flops, secs, peak), 4), "load_average_1min": [r["load"] for r in results]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--strategy", default="full", choices=("full", "last_block", "feature_extraction"))
    p.add_argument("--train-limit", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"])
    p.add_argument("--warmup-steps", type=int, default=1)
    p.add_argument("--data-dir", default=None)
    args = p.parse_args()
    load_before = os.getloadavg()[0]
    task = build_task(args)
    start = copy.deepcopy(task.model.state_dict())
    n = len(task.splits["train"])
    # Work per epoch: ours with a cache only trains what follows the cached part, but the useful model FLOPs of
    # the epoch are the same for both sides, so both MFUs use the full step's count.
    flops = image_step_flops(task) * n
    peaks = {"fp32": gemm_peak(torch.float32), "bf16": gemm_peak(torch.bfloat16)}
    for prec in args.precisions:  # first-call costs (oneDNN kernel selection) off the clock, for both sides
        epoch_timm(task, prec, max_steps=args.warmup_steps)
        task.model.load_state_dict(start)
    sides = [(who, prec) for prec in args.precisions for who in ("ours", "timm")]
    results: dict[tuple[str, str], list[dict]] = {side: [] for side in sides}
    with tempfile.TemporaryDirectory(prefix="bench-timm-peer-") as tmp:
        for r in range(args.rounds):
            for who, prec in sides[r % len(sides):] + sides[:r % len(sides)]:
                task.model.load_state_dict(start)
                load = round(os.getloadavg()[0], 2)
                out = epoch_ours(task, tmp, prec) if who == "ours" else epoch_timm(task, prec)
                results[(who, prec)].append({**out, "load": load})
    per_side = {f"{who}_{prec}": summary(res, n, flops, peaks[prec]) for (who, prec), res in results.items()}
    best = {who: max((k for k in per_side if k.startswith(who)), key=lambda k: -per_side[k]["median_epoch_seconds"])
            for who in ("ours", "timm")}
    import timm

    print(json.dumps({
        **per_side,
        # ratios from the median seconds (the examples/s figures are rounded)
        "ours_over_timm_best_vs_best": round(per_side[best["timm"]]["median_epoch_seconds"]
                                             / per_side[best["ours"]]["median_epoch_seconds"], 3),
        "best": best,
        **{f"ours_over_timm_{prec}": round(per_side[f"timm_{prec}"]["median_epoch_seconds"]
                                           / per_side[f"ours_{prec}"]["median_epoch_seconds"], 3)
           for prec in args.precisions},
        "model": args.model, "strategy": args.strategy, "weights": task.model.weights.to_json(),
        "input_size": task.model.input_size, "examples": n, "batch_size": args.batch_size, "lr": args.lr,
        "step_gflops_per_image": round(flops / n / 1e9, 3),
        "peak_gflops": {k: round(v / 1e9, 1) for k, v in peaks.items()},
        "rounds": args.rounds, "torch_threads": torch.get_num_threads(),
        "load_average_1min_at_start": round(load_before, 2), "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, timm {timm.__version__}, "
                   f"cuda {torch.cuda.is_available()}",
    }))


if __name__ == "__main__":
    main()
