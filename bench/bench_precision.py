"""bf16 autocast and torch.compile against fp32 eager for one text and one image training step, in one process.

    TRANSFER_LAB_OFFLINE=1 .venv/bin/python bench/bench_precision.py [--steps 6] [--workloads text image]
        [--no-compile] [--text-batch 16] [--image-batch 16] [--image-model efficientnet_lite0]
        [--data-dir ../shared/datasets]

Workloads (real data, real packaged weights, the engine's own ``train_step`` and Adam from ``make_optimizer``):
- text: ``minilm`` full fine-tuning on CONSTRAINT training tweets, ``--text-batch`` tweets per step;
- image: ``efficientnet_lite0`` (``--image-model``) full fine-tuning on CIFAR-10 at 224 px, ``--image-batch``
  images per step, channels-last input as ImageTask prepares it.

For each workload and each variant (fp32 eager, bf16 autocast eager, and unless ``--no-compile`` fp32 and bf16
with the model's parts compiled in place by ``nn.Module.compile()``, inductor), the same starting weights train
on the same ``--steps`` batches.
Reported: the median step time after the first, the first step's time (for compile: the compile time is the first
step minus a steady one), the loss of every step (so bf16's numerical drift against fp32 is visible) and, for
compile, the break-even step count: compile seconds / (eager step - compiled step), "never" when compiling does
not make steps faster. Prints one JSON line.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TRANSFER_LAB_OFFLINE", "1")

import torch  # noqa: E402

from core.config import TrainConfig  # noqa: E402
from core.engine.fit import make_optimizer, make_task  # noqa: E402
from core.freezing import set_train_mode, trainable_parameters  # noqa: E402


def build(workload: str, args):
    if workload == "text":
        cfg = TrainConfig(task="tweets", model="minilm", strategy="full", lr=5e-5, batch_size=args.text_batch,
                          optimizer="adam", weight_decay=0.0, train_limit=args.text_batch * args.steps,
                          eval_limit=16, val_fraction=0.0, data_dir=args.data_dir, seed=0, feature_cache=False,
                          weights="offline", device="cpu")
    else:
        cfg = TrainConfig(task="images", model=args.image_model, strategy="full", lr=1e-4,
                          batch_size=args.image_batch, optimizer="adam", weight_decay=0.0,
                          train_limit=args.image_batch * args.steps, eval_limit=16, val_fraction=0.0,
                          data_dir=args.data_dir, seed=0, feature_cache=False, weights="offline", device="cpu")
    task = make_task(cfg, torch.device("cpu"))
    task.load_data(("train",))
    task.build_model()
    task.prepare_training()
    return task


def compiled_parts(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The modules the tasks call (TweetTask: the encoder and the head; ImageTask: the backbone and each head):
    compiling ``model`` itself would compile only its ``forward``, which training steps do not call."""
    parts = []
    for child in model.children():
        parts.extend(child if isinstance(child, torch.nn.ModuleList) else [child])
    return parts


def run_variant(task, start: dict, batches: list, bf16: bool, compiled: bool) -> dict:
    task.model.load_state_dict(start)
    eager = task.model
    parts = compiled_parts(eager) if compiled else []
    if compiled:
        torch._dynamo.reset()
        for m in parts:
            m.compile()  # in place (nn.Module.compile): same parameters and state_dict keys
    opt = make_optimizer(task.cfg, trainable_parameters(eager), task.cfg.lr)
    set_train_mode(eager, True)
    torch.manual_seed(0)
    times, losses = [], []
    try:
        for batch in batches:
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss, _, _ = task.train_step(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t0)
            losses.append(round(float(loss.detach()), 5))
    finally:
        for m in parts:
            m._compiled_call_impl = None  # back to eager for the next variant
    steady = statistics.median(times[1:]) if len(times) > 1 else times[0]
    return {"first_step_seconds": round(times[0], 3), "median_step_seconds": round(steady, 3),
            "step_seconds": [round(t, 3) for t in times], "losses": losses}


def workload_figures(workload: str, args) -> dict:
    task = build(workload, args)
    start = copy.deepcopy(task.model.state_dict())
    batches = task.train_batches(0)[:args.steps]
    variants = [("fp32", False, False), ("bf16", True, False)]
    if not args.no_compile:
        variants += [("fp32_compiled", False, True), ("bf16_compiled", True, True)]
    # A warm-up step first (oneDNN's first-call kernel selection), off the clock.
    run_variant(task, start, batches[:1], False, False)
    out = {"load_average_1min_at_start": round(os.getloadavg()[0], 2)}
    for name, bf16, compiled in variants:
        try:
            out[name] = run_variant(task, start, batches, bf16, compiled)
        except Exception as err:  # an inductor failure on this machine is a result, not a crash of the bench
            out[name] = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}
    fp32, bf16 = out["fp32"], out["bf16"]
    out["bf16_speedup"] = round(fp32["median_step_seconds"] / bf16["median_step_seconds"], 3)
    out["final_loss_fp32_vs_bf16"] = [fp32["losses"][-1], bf16["losses"][-1]]
    out["max_loss_gap"] = round(max(abs(a - b) for a, b in zip(fp32["losses"], bf16["losses"])), 5)
    for eager_name in ("fp32", "bf16"):
        comp = out.get(f"{eager_name}_compiled")
        if not comp or "error" in comp:
            continue
        eager_step = out[eager_name]["median_step_seconds"]
        compile_s = comp["first_step_seconds"] - comp["median_step_seconds"]
        gain = eager_step - comp["median_step_seconds"]
        comp["compile_seconds"] = round(compile_s, 2)
        comp["speedup_per_step"] = round(eager_step / comp["median_step_seconds"], 3)
        comp["break_even_steps"] = round(compile_s / gain, 1) if gain > 0 else "never"
    out["batch"] = len(batches[0]) if workload == "text" else len(batches[0][0])
    out["model"] = task.cfg.model
    out["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--workloads", nargs="+", choices=("text", "image"), default=["text", "image"])
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--text-batch", type=int, default=16)
    p.add_argument("--image-batch", type=int, default=16)
    p.add_argument("--image-model", default="efficientnet_lite0")
    p.add_argument("--data-dir", default=None)
    args = p.parse_args()
    out = {w: workload_figures(w, args) for w in args.workloads}
    out["steps"] = args.steps
    cpuinfo = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
    out["cpu_bf16_flags"] = sorted({f for f in cpuinfo if f in ("avx512_bf16", "amx_bf16", "avx512f")})
    out["machine"] = (f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
                      f"threads {torch.get_num_threads()}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
