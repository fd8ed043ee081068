"""Seconds per training epoch of our engine against Hugging Face's ``transformers.Trainer``, measured in one process.

    TRANSFER_LAB_OFFLINE=1 .venv/bin/python bench/bench_tweets_trainer.py [--train-limit 256] [--batch-size 16]
        [--max-length 128] [--lr 5e-5] [--warmup-steps 2] [--rounds 1] [--trainer-static-padding]
        [--data-dir ../shared/datasets]

Both sides fine-tune ``minilm`` (all-MiniLM-L6-v2 + a linear head on the pooled [CLS], strategy ``full``) on the
same CONSTRAINT training tweets, tokenised once by TweetTask (cleaned, truncated to ``max_length``), from the same
starting weights, with the same optimizer (our ``make_optimizer``: Adam, no weight decay, constant learning rate)
and batch size.

- ours: ``core.engine.fit.Trainer.fit`` on a throw-away run store; the figure is the epoch's training time as the
  engine records it (history ``seconds``: the batch loop only, not the checkpoint or the test evaluation).
  A batch is trimmed to its longest tweet (TweetTask; at batch size 16 on CPU one length-sorted chunk).
- Trainer: ``transformers.Trainer`` on the very same ``TweetClassifier`` module (its forward returns ``loss``),
  no evaluation, saving or logging, ``report_to=[]``, ``use_cpu=True``, ``max_grad_norm=0`` (our engine does not
  clip), ``DataCollatorWithPadding`` padding each batch to its longest tweet -- the Trainer's fair best; the
  default collator on pre-padded rows would pad every batch to ``max_length``. The figure is the time between
  its ``on_epoch_begin`` and ``on_epoch_end`` callbacks (data loading and collation included); the whole
  ``train()`` call, set-up included, is reported too. ``--trainer-static-padding`` also times the Trainer on
  rows padded to ``max_length``.

Each side first runs ``--warmup-steps`` steps (then the starting weights are put back). The batch order differs
(each side shuffles its own way), so the final losses agree only roughly. ``--rounds`` repeats the pair of
epochs, alternating which side goes first. transformers' Trainer needs ``accelerate`` (not in
requirements.txt): without it this prints a one-line error and exits with status 1. Prints one JSON line.
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
os.environ.setdefault("TRANSFER_LAB_OFFLINE", "1")

import torch  # noqa: E402

from core.config import TrainConfig  # noqa: E402
from core.freezing import set_train_mode, trainable_parameters  # noqa: E402
from core.store.runs import create_run  # noqa: E402
from core.engine.fit import Trainer, make_optimizer, make_task  # noqa: E402

EVAL_LIMIT = 16  # test tweets our engine evaluates after its epoch (not timed; fit() always ends with it)


def build_task(args):
    cfg = TrainConfig(task="tweets", model="minilm", strategy="full", epochs=1, lr=args.lr,
                      batch_size=args.batch_size, eval_batch_size=64, optimizer="adam", weight_decay=0.0,
                      scheduler="none", train_limit=args.train_limit, eval_limit=EVAL_LIMIT, val_fraction=0.0,
                      data_dir=args.data_dir, seed=0, max_length=args.max_length, feature_cache=False,
                      weights="offline", device="cpu")
    task = make_task(cfg, torch.device("cpu"))
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
def warm_up_ours(task, steps: int) -> None:
    opt = make_optimizer(task.cfg, trainable_parameters(task.model), task.cfg.lr)
    set_train_mode(task.model, True)
    for batch in task.train_batches(0)[:steps]:
        loss, _, _ = task.train_step(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def epoch_ours(task, runs_root: str) -> dict:
    """One epoch of core.engine.fit.Trainer.fit; the engine's own epoch seconds, and the whole fit() call's."""
    run = create_run(task.cfg.model, task.cfg.strategy, runs_root)
    rows: list[dict] = []
    torch.manual_seed(0)
    engine = Trainer(task, run, on_epoch=rows.append)
    t0 = time.perf_counter()
    engine.fit()
    return {"epoch_seconds": rows[0]["seconds"], "fit_call_seconds": time.perf_counter() - t0,
            "train_loss": rows[0]["train_loss"]}


# -- transformers.Trainer --------------------------------------------------------------------------------------
def hf_trainer(task, rows: list[dict], out_dir: str, dynamic: bool, max_steps: int = -1):
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
        output_dir=out_dir, use_cpu=True, report_to=[], per_device_train_batch_size=task.cfg.batch_size,
        num_train_epochs=1, max_steps=max_steps, learning_rate=task.cfg.lr, weight_decay=0.0,
        lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=0.0, eval_strategy="no", save_strategy="no",
        logging_strategy="no", disable_tqdm=True, dataloader_num_workers=0, remove_unused_columns=False,
        label_names=["labels"], seed=0,
    )
    timer = EpochTimer()
    # The same optimizer object our engine would build (Adam, no weight decay); a constant learning rate.
    optimizer = make_optimizer(task.cfg, trainable_parameters(task.model), task.cfg.lr)
    collator = DataCollatorWithPadding(task.tokenizer(), padding="longest" if dynamic else "max_length",
                                       max_length=None if dynamic else task.max_length)
    trainer = HFTrainer(model=task.model, args=args, train_dataset=ListDataset(rows), data_collator=collator,
                        optimizers=(optimizer, None), callbacks=[timer])
    return trainer, timer


def epoch_trainer(task, rows: list[dict], out_dir: str, dynamic: bool) -> dict:
    trainer, timer = hf_trainer(task, rows, out_dir, dynamic)
    t0 = time.perf_counter()
    out = trainer.train()
    return {"epoch_seconds": timer.seconds[0], "train_call_seconds": time.perf_counter() - t0,
            "train_loss": out.training_loss}


def warm_up_trainer(task, rows: list[dict], out_dir: str, steps: int) -> None:
    trainer, _ = hf_trainer(task, rows, out_dir, dynamic=True, max_steps=steps)
    trainer.train()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--train-limit", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--warmup-steps", type=int, default=2)
    p.add_argument("--rounds", type=int, default=1, help="pairs of timed epochs (the first side alternates)")
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
    ours, theirs, static = [], [], []
    # The Trainer prints its final metrics to stdout whatever logging_strategy says: keep stdout for the JSON line.
    with tempfile.TemporaryDirectory(prefix="bench-tweets-trainer-") as tmp, contextlib.redirect_stdout(sys.stderr):
        warm_up_ours(task, args.warmup_steps)
        task.model.load_state_dict(start_state)
        warm_up_trainer(task, dynamic_rows, tmp, args.warmup_steps)
        for r in range(args.rounds):
            sides = ["ours", "trainer"] if r % 2 == 0 else ["trainer", "ours"]
            for side in sides:
                task.model.load_state_dict(start_state)
                if side == "ours":
                    ours.append(epoch_ours(task, tmp))
                else:
                    theirs.append(epoch_trainer(task, dynamic_rows, tmp, dynamic=True))
        if args.trainer_static_padding:
            task.model.load_state_dict(start_state)
            static.append(epoch_trainer(task, trainer_examples(task, padded=True), tmp, dynamic=False))

    mean_ours = statistics.mean(r["epoch_seconds"] for r in ours)
    mean_theirs = statistics.mean(r["epoch_seconds"] for r in theirs)
    result = {
        "ours_seconds_per_epoch": round(mean_ours, 2),
        "trainer_seconds_per_epoch": round(mean_theirs, 2),
        "trainer_over_ours_ratio": round(mean_theirs / mean_ours, 2),
        "ours_epoch_seconds": [round(r["epoch_seconds"], 2) for r in ours],
        "trainer_epoch_seconds": [round(r["epoch_seconds"], 2) for r in theirs],
        "ours_fit_call_seconds": [round(r["fit_call_seconds"], 2) for r in ours],
        "trainer_train_call_seconds": [round(r["train_call_seconds"], 2) for r in theirs],
        "ours_train_loss": [round(r["train_loss"], 4) for r in ours],
        "trainer_train_loss": [round(r["train_loss"], 4) for r in theirs],
        "trainer_padding": "dynamic: DataCollatorWithPadding(padding='longest'), each batch padded to its longest "
                           "tweet (the Trainer's fair best); ours trims each batch to its longest tweet",
        "model": "minilm", "strategy": "full", "weights": task.model.weights_source,
        "optimizer": "torch.optim.Adam (core.engine.fit.make_optimizer), weight_decay 0, constant lr; Trainer "
                     "max_grad_norm 0 (no clipping, as ours)",
        "examples": len(task.splits["train"]), "mean_tokens_per_tweet": round(float(lengths.mean()), 1),
        "max_length": task.max_length, "batch_size": args.batch_size, "lr": args.lr,
        "warmup_steps": args.warmup_steps, "rounds": args.rounds,
        "torch_threads": torch.get_num_threads(), "torch_threads_at_start": threads_before,
        "load_average_1min_at_start": round(load_before, 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
                   f"transformers {__import__('transformers').__version__}, "
                   f"accelerate {__import__('accelerate').__version__}, cuda {torch.cuda.is_available()}",
    }
    if static:
        result["trainer_static_padding_seconds_per_epoch"] = round(static[0]["epoch_seconds"], 2)
        result["trainer_static_over_ours_ratio"] = round(static[0]["epoch_seconds"] / mean_ours, 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
