"""int8 dynamic quantisation (core/quantize.py) against fp32 on the text models' prediction path, in one process.

    TRANSFER_LAB_OFFLINE=1 .venv/bin/python bench/bench_int8.py [--qa-questions 200] [--tweets 200]
        [--qa-model model:e5_small | --qa-model RUN_DIR] [--tweets-model model:minilm | RUN_DIR] [--rounds 1]
        [--tasks qa tweets] [--data-dir ../shared/datasets]

For each task the same model is loaded twice (a registry model ``model:<name>`` or a fine-tuned run folder), one
copy quantised, and both score the same test questions / tweets through the task's own evaluation (TweetTask and
QATask ``evaluate("test")``: batched, length-ordered, the decoding of the app). Reported:

- QA (PQuAD Test.json, the first ``--qa-questions`` of ``limit_examples``): seconds for the whole evaluation
  (median over ``--rounds``, the two precisions alternating), the speed-up, the share of questions whose answer
  text is identical, of those whose no-answer decision is the same, and the F1 / EM of each against the gold
  answers.
- tweets (CONSTRAINT test split, ``--tweets`` of them): seconds, speed-up, label agreement, the largest change
  of P(real), and the accuracy of each.

A registry model's task head was never trained (``head_trained`` false in the output): its answers are not
meaningful and its logits sit near the decision boundary, so agreement measured on it is a pessimistic bound; a
fine-tuned run (``--qa-model RUN_DIR``) gives the figures a user sees. Prints one JSON line.
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
from core.engine.fit import load_run_task, make_task  # noqa: E402
from core.quantize import model_bytes, quantize_task  # noqa: E402


def load(ref: str, task_name: str, limit: int, data_dir: str | None):
    """(TaskRun with its test split loaded, head_trained)."""
    if ref.startswith("model:"):
        cfg = TrainConfig(task=task_name, model=ref.removeprefix("model:"), strategy="full", eval_limit=limit,
                          data_dir=data_dir, device="cpu", weights="offline", seed=0)
        task = make_task(cfg, torch.device("cpu"))
        task.build_model()
        trained = False
    else:
        _, task = load_run_task(ref, data_dir=data_dir, device=torch.device("cpu"))
        task.cfg.eval_limit = limit
        task.cfg.data_file = None
        trained = True
    if task.task != task_name:
        sys.exit(f"{ref} is a {task.task} model, not a {task_name} one.")
    task.model.eval()
    task.load_data(("test",))
    return task, trained


def timed_evaluations(fp32, int8, rounds: int):
    secs = {"fp32": [], "int8": []}
    results = {}
    for r in range(rounds):
        for name in (("fp32", "int8") if r % 2 == 0 else ("int8", "fp32")):
            task = fp32 if name == "fp32" else int8
            t0 = time.perf_counter()
            results[name] = task.evaluate("test")
            secs[name].append(time.perf_counter() - t0)
    return results, secs


def timing(secs: dict, n: int) -> dict:
    f, q = statistics.median(secs["fp32"]), statistics.median(secs["int8"])
    return {"fp32_seconds": [round(s, 2) for s in secs["fp32"]], "int8_seconds": [round(s, 2) for s in secs["int8"]],
            "fp32_ms_per_item": round(1000 * f / n, 1), "int8_ms_per_item": round(1000 * q / n, 1),
            "speedup": round(f / q, 3)}


def bench_qa(args) -> dict:
    fp32, trained = load(args.qa_model, "qa", args.qa_questions, args.data_dir)
    int8 = quantize_task(copy.deepcopy(fp32))
    res, secs = timed_evaluations(fp32, int8, args.rounds)
    a, b = res["fp32"].predictions, res["int8"].predictions
    n = len(a)
    same_text = sum(x.prediction == y.prediction for x, y in zip(a, b))
    same_null = sum((x.prediction == "") == (y.prediction == "") for x, y in zip(a, b))
    return {"model": args.qa_model, "head_trained": trained, "questions": n, "windows": len(fp32.splits["test"]),
            **timing(secs, n),
            "answer_text_agreement": round(same_text / n, 4), "no_answer_agreement": round(same_null / n, 4),
            "fp32_f1": round(res["fp32"].metrics["f1"], 4), "int8_f1": round(res["int8"].metrics["f1"], 4),
            "fp32_exact": round(res["fp32"].metrics["exact"], 4), "int8_exact": round(res["int8"].metrics["exact"], 4),
            "fp32_mb": round(model_bytes(fp32.model) / 2**20, 1), "int8_mb": round(model_bytes(int8.model) / 2**20, 1)}


def bench_tweets(args) -> dict:
    fp32, trained = load(args.tweets_model, "tweets", args.tweets, args.data_dir)
    int8 = quantize_task(copy.deepcopy(fp32))
    res, secs = timed_evaluations(fp32, int8, args.rounds)
    a, b = res["fp32"].predictions, res["int8"].predictions
    n = len(a)
    return {"model": args.tweets_model, "head_trained": trained, "tweets": n, **timing(secs, n),
            "label_agreement": round(sum(x.prediction == y.prediction for x, y in zip(a, b)) / n, 4),
            "max_probability_change": round(max(abs(x.probability_real - y.probability_real) for x, y in zip(a, b)), 4),
            "fp32_accuracy": round(res["fp32"].metrics["accuracy"], 4),
            "int8_accuracy": round(res["int8"].metrics["accuracy"], 4),
            "fp32_mb": round(model_bytes(fp32.model) / 2**20, 1), "int8_mb": round(model_bytes(int8.model) / 2**20, 1)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--qa-questions", type=int, default=200)
    p.add_argument("--tweets", type=int, default=200)
    p.add_argument("--qa-model", default="model:e5_small")
    p.add_argument("--tweets-model", default="model:minilm")
    p.add_argument("--rounds", type=int, default=1, help="timed evaluations of each precision (alternating)")
    p.add_argument("--tasks", nargs="+", choices=("qa", "tweets"), default=["qa", "tweets"])
    p.add_argument("--data-dir", default=None)
    args = p.parse_args()
    out = {"load_average_1min_at_start": round(os.getloadavg()[0], 2)}
    if "tweets" in args.tasks:
        out["tweets"] = bench_tweets(args)
    if "qa" in args.tasks:
        out["qa"] = bench_qa(args)
    out.update({"load_average_1min_at_end": round(os.getloadavg()[0], 2), "torch_threads": torch.get_num_threads(),
                "quantized_engine": torch.backends.quantized.engine,
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
