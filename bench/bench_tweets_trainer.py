"""Examples/s of our engine against Hugging Face's ``transformers.Trainer`` at its documented best, in one process.

    TRANSFER_LAB_OFFLINE=1 .venv/bin/python bench/bench_tweets_trainer.py [--train-limit 128] [--batch-size 16]
        [--max-length 128] [--lr 5e-5] [--warmup-steps 2] [--rounds 2] [--precisions fp32 bf16]
        [--trainer-workers 0] [--trainer-static-padding] [--data-dir ../shared/datasets]

Both sides fine-tune ``minilm`` (all-MiniLM-L6-v2 + a linear head on the pooled [CLS], strategy ``full``) on the
same CONSTRAINT training tweets, tokenised once by TweetTask (cleaned, truncated to ``max_length``), from the same
starting weights, with the same optimizer (our ``make_optimizer``: Adam, no weight decay, constant learning rate)
and batch size, in each of ``--precisions``.

- ours: ``core.engine.fit.Trainer.fit`` on a throw-away run store, ``precision`` fp32 or bf16 (TrainConfig); the
  figure is the epoch's training time as the engine records it (history ``seconds``: the batch loop only).
  A batch is trimmed to its longest tweet (TweetTask; at batch size 16 on CPU one length-sorted chunk).
- Trainer, configured as transformers 5's CPU guide and TrainingArguments recommend for this hardware:
  ``use_cpu=True`` with ``bf16=True`` for the bf16 side (PyTorch CPU autocast; this CPU has AVX-512 BF16),
  ``train_sampling_strategy="group_by_length"`` (LengthGroupedSampler: batches of similar lengths, so less
  padding than ours, which takes random batches), ``DataCollatorWithPadding(padding="longest")``,
  ``dataloader_pin_memory=False`` (nothing to copy to a device) and ``dataloader_num_workers`` from
  ``--trainer-workers`` (0: collating 16 token lists takes well under a millisecond, and workers would take the
  two cores from the step), no evaluation, saving or logging, ``report_to=[]``, ``max_grad_norm=0`` (ours does
  not clip). Its figure is the time between its ``on_epoch_begin`` and ``on_epoch_end`` callbacks (data loading
  and collation included). ``--trainer-static-padding`` also times it on rows padded to ``max_length``.

Each side first runs ``--warmup-steps`` steps (then the starting weights are put back). ``--rounds`` repeats all
sides, rotating which goes first, so load from other jobs hits every side; the figures are medians.

Share of peak (MFU): the epoch's model FLOPs (matmuls and attention, forward and backward, counted with
``FlopCounterMode`` through ``bench/peak.py``'s ``length_flops`` over our batches' shapes: the same work for both
sides) over the epoch time, divided by this machine's measured GEMM peak in the side's precision. transformers'
Trainer needs ``accelerate``: without it this prints a one-line error and exits with status 1. Prints one JSON line.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
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

from core.config import TrainConfig  # noqa: E402
from core.freezing import set_train_mode, trainable_parameters  # noqa: E402
from core.store.runs import create_run  # noqa: E402
from core.engine.fit import Trainer, _autocast, make_optimizer, make_task  # noqa: E402
from peak import gemm_peak, length_flops, mfu, step_flops  # noqa: E402

EVAL_LIMIT = 16  # test tweets our engine evaluates after its epoch (not timed; fit() always ends with it)


def build_task(args, model: str = "minilm", weights: str = "offline", device: str = "cpu"):
    cfg = TrainConfig(task="tweets", model=model, strategy="full", epochs=1, lr=args.lr,
                      batch_size=args.batch_size, eval_batch_size=64, optimizer="adam", weight_decay=0.0,
                      scheduler="none", train_limit=args.train_limit, eval_limit=EVAL_LIMIT, val_fraction=0.0,
                      data_dir=args.data_dir, seed=0, max_length=args.max_length, feature_cache=False,
                      weights=weights, device=device)
    task = make_task(cfg, torch.device(device))
    task.load_data(("train", "test"))
    task.build_model()
    task.prepare_training()
    return task


def trainer_examples(task, padded: bool) -> list[dict]:
    """The training split's rows as the Trainer reads them: token lists cut to each tweet's real length
    (``padded``: kept at ``max_length``), and a float label (BCE)."""
    split = task.splits["train"]
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in split.encoding]
    rows = []
    for i in range(len(split)):
        n = split.encoding["input_ids"].shape[1] if padded else int(split.lengths[i])
        row = {k: split.encoding[k][i, :n].tolist() for k in keys}
        row["labels"] = float(split.labels[i])
        rows.append(row)
    return rows


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, rows: list[dict]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]


# -- ours ------------------------------------------------------------------------------------------------------
def warm_up_ours(task, steps: int, precision: str) -> None:
    opt = make_optimizer(task.cfg, trainable_parameters(task.model), task.cfg.lr)
    set_train_mode(task.model, True)
    for batch in task.train_batches(0)[:steps]:
        with _autocast(task.device, precision):
            loss, _, _ = task.train_step(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def epoch_ours(task, runs_root: str, precision: str) -> dict:
    """One epoch of core.engine.fit.Trainer.fit; the engine's own epoch seconds, and the whole fit() call's."""
    task.cfg.precision = precision  # the engine reads it at every step (core.engine.fit._autocast)
    run = create_run(task.cfg.model, task.cfg.strategy, runs_root)
    rows: list[dict] = []
    torch.manual_seed(0)
    engine = Trainer(task, run, on_epoch=rows.append)
    t0 = time.perf_counter()
    engine.fit()
    return {"epoch_seconds": rows[0]["seconds"], "call_seconds": time.perf_counter() - t0,
            "train_loss": rows[0]["train_loss"]}


# -- transformers.Trainer --------------------------------------------------------------------------------------
def hf_trainer(task, rows: list[dict], out_dir: str, dynamic: bool, precision: str, workers: int,
               max_steps: int = -1, use_cpu: bool = True):
    from transformers import DataCollatorWithPadding, Trainer as HFTrainer, TrainerCallback, TrainingArguments

    class EpochTimer(TrainerCallback):
        def __init__(self):
            self.seconds: list[float] = []
            self._t0 = 0.0

        def on_epoch_begin(self, args, state, control, **kwargs):
            self._t0 = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kwargs):
            self.seconds.append(time.perf_counter() - self._t0)

    args = TrainingArguments(
        output_dir=out_dir, use_cpu=use_cpu, bf16=precision == "bf16", report_to=[],
        per_device_train_batch_size=task.cfg.batch_size, num_train_epochs=1, max_steps=max_steps,
        learning_rate=task.cfg.lr, weight_decay=0.0, lr_scheduler_type="constant", warmup_steps=0,
        max_grad_norm=0.0, eval_strategy="no", save_strategy="no", logging_strategy="no", disable_tqdm=True,
        train_sampling_strategy="group_by_length" if dynamic else "random",
        dataloader_num_workers=workers, dataloader_pin_memory=False, dataloader_persistent_workers=workers > 0,
        remove_unused_columns=False, label_names=["labels"], seed=0,
    )
    timer = EpochTimer()
    # The same optimizer object our engine would build (Adam, no weight decay); a constant learning rate.
    optimizer = make_optimizer(task.cfg, trainable_parameters(task.model), task.cfg.lr)
    tokenizer = task.tokenizer()
    collator = DataCollatorWithPadding(tokenizer, padding="longest" if dynamic else "max_length",
                                       max_length=None if dynamic else task.max_length)
    # processing_class tells LengthGroupedSampler which field holds the tokens (input_ids).
    trainer = HFTrainer(model=task.model, args=args, train_dataset=ListDataset(rows), data_collator=collator,
                        processing_class=tokenizer, optimizers=(optimizer, None), callbacks=[timer])
    return trainer, timer


def epoch_trainer(task, rows: list[dict], out_dir: str, dynamic: bool, precision: str, workers: int,
                  use_cpu: bool = True) -> dict:
    trainer, timer = hf_trainer(task, rows, out_dir, dynamic, precision, workers, use_cpu=use_cpu)
    t0 = time.perf_counter()
    out = trainer.train()
    return {"epoch_seconds": timer.seconds[0], "call_seconds": time.perf_counter() - t0,
            "train_loss": out.training_loss}


def warm_up_trainer(task, rows: list[dict], out_dir: str, steps: int, precision: str, workers: int) -> None:
    trainer, _ = hf_trainer(task, rows, out_dir, True, precision, workers, max_steps=steps)
    trainer.train()


# -- share of peak ---------------------------------------------------------------------------------------------
def epoch_flops(task) -> float:
    """Model FLOPs (forward + backward) of one epoch of our batches: each batch at its longest tweet's length."""
    model = task.model
    split = task.splits["train"]
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in split.encoding]

    def one_row(t: int) -> int:
        inputs = {k: split.encoding[k][:1, :t].to(task.device) for k in keys}
        inputs["attention_mask"] = torch.ones_like(inputs["attention_mask"])
        labels = split.labels[:1].to(task.device)
        return step_flops(lambda: model(**inputs, labels=labels)["loss"].backward())

    per_row = length_flops(one_row)
    model.zero_grad(set_to_none=True)
    return sum(len(b) * per_row(int(split.lengths[b].max())) for b in task.train_batches(0))


def padded_tokens(task) -> dict:
    """Tokens each side's encoder runs per epoch against the real tokens. Ours: TweetTask.train_batches (batches
    grouped by length), each run in length-sorted chunks of TRAIN_CHUNK_ROWS rows (TweetTask on CPU), a chunk
    padded to its longest tweet. The
    Trainer: LengthGroupedSampler's batches (similar lengths together), each padded to its longest tweet (one
    typical draw of its sampler)."""
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from core.tasks.tweets.task import TRAIN_CHUNK_ROWS

    lengths = task.splits["train"].lengths
    bs = task.cfg.batch_size

    def cost(batch: torch.Tensor, chunk: int) -> int:
        ls = lengths[batch].sort(descending=True).values
        return sum(len(c) * int(c[0]) for c in ls.split(chunk))

    ours = sum(cost(b, TRAIN_CHUNK_ROWS) for b in task.train_batches(0))
    order = torch.tensor(list(LengthGroupedSampler(bs, lengths=lengths.tolist(),
                                                   generator=torch.Generator().manual_seed(0))))
    theirs = sum(cost(b, len(b)) for b in order.split(bs))
    return {"real": int(lengths.sum()), "ours": ours, "trainer_group_by_length": theirs}


def summary(results: list[dict], n: int, flops: float, peak: float) -> dict:
    secs = statistics.median(r["epoch_seconds"] for r in results)
    return {"examples_per_second": round(n / secs, 3), "median_epoch_seconds": round(secs, 3),
            "epoch_seconds": [round(r["epoch_seconds"], 2) for r in results],
            "call_seconds": [round(r["call_seconds"], 2) for r in results],
            "train_loss": [round(r["train_loss"], 4) for r in results],
            "mfu": round(mfu(flops, secs, peak), 4), "load_average_1min": [r["load"] for r in results]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--train-limit", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--warmup-steps", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2, help="repeats of every side (the first side rotates)")
    p.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"])
    p.add_argument("--trainer-workers", type=int, default=0, help="the Trainer's dataloader_num_workers")
    p.add_argument("--trainer-static-padding", action="store_true",
                   help="also time the Trainer on rows padded to max_length (the default collator's situation)")
    p.add_argument("--data-dir", default=None, help="folder holding constraint_covid19_fake_news/ "
                                                    "(default: $TRANSFER_LAB_DATA, else ../shared/datasets)")
    args = p.parse_args()
    if importlib.util.find_spec("accelerate") is None:
        sys.exit("transformers.Trainer needs accelerate>=1.1.0, which is not installed here: "
                 "pip install 'accelerate>=1.1.0' (or put a folder holding it on PYTHONPATH).")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    load_before = os.getloadavg()[0]
    threads_before = torch.get_num_threads()

    task = build_task(args)
    start_state = copy.deepcopy(task.model.state_dict())
    dynamic_rows = trainer_examples(task, padded=False)
    lengths = task.splits["train"].lengths.float()
    flops = epoch_flops(task)
    peaks = {"fp32": gemm_peak(torch.float32), "bf16": gemm_peak(torch.bfloat16)}
    sides = [(who, prec) for prec in args.precisions for who in ("ours", "trainer")]
    results: dict[tuple[str, str], list[dict]] = {side: [] for side in sides}
    static = []
    # The Trainer prints its final metrics to stdout whatever logging_strategy says: keep stdout for the JSON line.
    with tempfile.TemporaryDirectory(prefix="bench-tweets-trainer-") as tmp, contextlib.redirect_stdout(sys.stderr):
        for prec in args.precisions:
            warm_up_ours(task, args.warmup_steps, prec)
            task.model.load_state_dict(start_state)
            warm_up_trainer(task, dynamic_rows, tmp, args.warmup_steps, prec, args.trainer_workers)
        for r in range(args.rounds):
            for who, prec in sides[r % len(sides):] + sides[:r % len(sides)]:
                task.model.load_state_dict(start_state)
                load = round(os.getloadavg()[0], 2)
                if who == "ours":
                    out = epoch_ours(task, tmp, prec)
                else:
                    out = epoch_trainer(task, dynamic_rows, tmp, True, prec, args.trainer_workers)
                results[(who, prec)].append({**out, "load": load})
        if args.trainer_static_padding:
            task.model.load_state_dict(start_state)
            static.append(epoch_trainer(task, trainer_examples(task, padded=True), tmp, False, args.precisions[0],
                                        args.trainer_workers))

    n = len(task.splits["train"])
    per_side = {f"{who}_{prec}": summary(res, n, flops, peaks[prec]) for (who, prec), res in results.items()}
    best = {who: max((k for k in per_side if k.startswith(who)), key=lambda k: -per_side[k]["median_epoch_seconds"])
            for who in ("ours", "trainer")}
    result = {
        **per_side,
        # ratios from the median seconds (the examples/s figures are rounded)
        "ours_over_trainer_best_vs_best": round(per_side[best["trainer"]]["median_epoch_seconds"]
                                                / per_side[best["ours"]]["median_epoch_seconds"], 3),
        "best": best,
        **{f"ours_over_trainer_{prec}": round(per_side[f"trainer_{prec}"]["median_epoch_seconds"]
                                              / per_side[f"ours_{prec}"]["median_epoch_seconds"], 3)
           for prec in args.precisions},
        "epoch_model_gflops": round(flops / 1e9, 1),
        "encoder_tokens_per_epoch": padded_tokens(task),
        "peak_gflops": {k: round(v / 1e9, 1) for k, v in peaks.items()},
        "trainer_settings": "use_cpu, bf16 per side, train_sampling_strategy=group_by_length, "
                            "DataCollatorWithPadding(longest), dataloader_pin_memory=False, "
                            f"dataloader_num_workers={args.trainer_workers}, no eval/save/logging, max_grad_norm 0",
        "model": "minilm", "strategy": "full", "weights": task.model.weights.to_json(),
        "optimizer": "torch.optim.Adam (core.engine.fit.make_optimizer), weight_decay 0, constant lr",
        "examples": n, "mean_tokens_per_tweet": round(float(lengths.mean()), 1),
        "max_length": task.max_length, "batch_size": args.batch_size, "lr": args.lr,
        "warmup_steps": args.warmup_steps, "rounds": args.rounds,
        "torch_threads": torch.get_num_threads(), "torch_threads_at_start": threads_before,
        "load_average_1min_at_start": round(load_before, 2),
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
                   f"transformers {__import__('transformers').__version__}, "
                   f"accelerate {__import__('accelerate').__version__}, cuda {torch.cuda.is_available()}",
    }
    if static:
        result["trainer_static_padding_seconds_per_epoch"] = round(static[0]["epoch_seconds"], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
