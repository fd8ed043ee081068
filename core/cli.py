"""``python -m core``: list models, count parameters, train, evaluate, predict, list runs.

Every command prints plain text, or one JSON document with ``--json``; ``train`` always ends with one JSON line
holding ``run_dir`` and ``metrics``. A mistake a user can make exits with status 2 and one sentence on stderr.
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
from dataclasses import fields
from pathlib import Path

from core import registry
from core.config import TrainConfig
from core.errors import BadInputError, CancelledError, TransferLabError
from core.freezing import STRATEGIES, apply_strategy, count_parameters
from core.presets import PRESETS, compose_settings
from core.registry import BuildRequest

DEFAULT_NUM_CLASSES = {"images": 10, "tweets": 2, "qa": 2}


def _print_json(obj) -> None:
    print(json.dumps(obj, ensure_ascii=False, default=str))


def cmd_models(args) -> None:
    specs = registry.list_models(args.task)
    if args.json:
        _print_json([s.to_json() for s in specs])
        return
    if args.markdown:
        print("| name | task | hub id (pretrained with internet) | offline here | what last_block trains |")
        print("|---|---|---|---|---|")
        for s in specs:
            offline = f"packaged: {s.offline_source}" if s.offline == "packaged" else "untrained (random weights)"
            print(f"| `{s.name}` | {s.task} | `{s.hub_id or '-'}` | {offline} | {s.last_block or '-'} |")
        return
    for s in specs:
        print(f"{s.name:22} {s.task:7} {s.family:20} offline: {s.offline:9} hub: {s.hub_id or '-'}")


def parameter_counts(name: str, strategy: str, num_classes: int | None = None) -> dict[str, int]:
    """Trainable and total parameters of a registry model under a strategy, built on the meta device (no
    weights are allocated, so even BERT-large counts instantly)."""
    import torch

    spec = registry.get(name)
    if strategy not in spec.strategies:
        from core.errors import UnknownStrategyError

        raise UnknownStrategyError(f"{name} supports the strategies {', '.join(spec.strategies)}, not {strategy}.")
    request = BuildRequest(num_classes=num_classes or DEFAULT_NUM_CLASSES[spec.task], weights="random")
    with torch.device("meta"):
        model = spec.build(spec, request)
    apply_strategy(model, strategy)
    return count_parameters(model)


def cmd_params(args) -> None:
    counts = parameter_counts(args.name, args.strategy, args.num_classes)
    if args.json:
        _print_json(counts)
    else:
        print(f"{args.name} {args.strategy}: {counts['trainable']:,} trainable of {counts['total']:,}")


def _config_from_args(args) -> TrainConfig:
    """Model's recommended settings < preset < flags (core.presets.compose_settings)."""
    given = {f.name: getattr(args, f.name, None) for f in fields(TrainConfig)}
    values = compose_settings(None, args.preset, given)
    for required in ("task", "model"):
        if required not in values:
            raise BadInputError(f"train needs --{required} (or a --preset that sets it).")
    return TrainConfig(**values)


class _ProgressPrinter:
    """One line per epoch and per phase on stderr; a carriage-return line per step when stderr is a terminal."""

    def __init__(self):
        self.tty = sys.stderr.isatty()
        self.last_phase = None

    def __call__(self, p) -> None:
        if p.phase == "train":
            if self.tty:
                eta = f" eta {p.eta:5.0f}s" if p.eta is not None else ""
                print(f"\repoch {p.epoch + 1}/{p.epochs} step {p.step}/{p.steps} loss {p.loss:.4f}{eta}   ",
                      end="", file=sys.stderr, flush=True)
        elif p.phase != self.last_phase or p.step == p.steps:
            if p.step == p.steps:
                print(f"\n{p.phase}: {p.steps} done ({p.elapsed:.0f}s)" if self.tty else
                      f"{p.phase}: {p.steps} done ({p.elapsed:.0f}s)", file=sys.stderr, flush=True)
        self.last_phase = p.phase


def _print_epoch(row: dict) -> None:
    parts = [f"epoch {row['epoch'] + 1}", f"train_loss {row['train_loss']:.4f}",
             f"train_acc {row['train_accuracy']:.4f}"]
    parts += [f"{k} {v:.4f}" for k, v in row.items() if k.startswith("val_")]
    parts.append(f"{row['seconds']:.1f}s")
    print("  ".join(parts), file=sys.stderr, flush=True)


def cmd_train(args) -> None:
    from core.train import train

    cancel = threading.Event()
    kwargs = dict(runs_root=args.runs_dir, on_progress=_ProgressPrinter(), on_epoch=_print_epoch, cancel=cancel)
    try:
        if args.resume:
            run = train(resume=args.resume, **kwargs)
        else:
            run = train(_config_from_args(args), **kwargs)
    except KeyboardInterrupt:
        raise CancelledError("Interrupted; the last checkpoint is kept (resume with --resume).") from None
    status = run.read_status()
    _print_json({"run_dir": str(run.path), "status": status["status"], "message": status["message"],
                 "metrics": _headline_metrics(run.read_metrics())})


def _headline_metrics(metrics: dict | None) -> dict | None:
    """Metrics without the bulky per-example parts, for one readable JSON line."""
    if metrics is None:
        return None
    return {k: v for k, v in metrics.items() if k not in ("confusion_matrix",)}


def cmd_eval(args) -> None:
    from core.train import evaluate_run

    metrics = evaluate_run(args.run_dir, args.runs_dir, data_dir=args.data_dir, data_file=args.data_file,
                           write=args.write)
    if args.json:
        _print_json(metrics)
    else:
        from core.metrics import classification_report

        print(classification_report(metrics) if "per_class" in metrics else json.dumps(metrics, indent=2))


def cmd_predict(args) -> None:
    from core.train import load_run_task

    run, task = load_run_task(args.run_dir, args.runs_dir)
    if task.task == "images":
        if not args.image:
            raise BadInputError("Give an image with --image PATH.")
        path = Path(args.image)
        if not path.is_file():
            raise BadInputError(f"No image file at {path}.")
        result = {"top": task.predict_image(path.read_bytes(), top_k=args.top_k)}
    elif task.task == "tweets":
        if args.text is None:
            raise BadInputError("Give a tweet with --text \"...\".")
        result = task.predict_text(args.text)
    else:
        if args.question is None or args.context is None:
            raise BadInputError("Give --question \"...\" and --context \"...\".")
        result = task.answer(args.question, args.context, top_k=args.top_k)
    result["run_dir"] = str(run.path)
    if args.json:
        _print_json(result)
    else:
        print(json.dumps(result, indent=2, ensure_ascii=False))


def cmd_svm(args) -> None:
    from core.svm import fit_svm

    cfg = TrainConfig(task="images", model=args.model, train_limit=args.train_limit, eval_limit=args.eval_limit,
                      val_fraction=0.0, data_dir=args.data_dir, seed=args.seed, weights=args.weights)
    run = fit_svm(cfg, C=args.C, runs_root=args.runs_dir)
    _print_json({"run_dir": str(run.path), "status": run.read_status()["status"],
                 "metrics": _headline_metrics(run.read_metrics())})


def cmd_report(args) -> None:
    from core.report import comparison_rows, markdown_table

    rows = comparison_rows(args.task, args.runs_dir)
    if args.json:
        _print_json(rows)
    else:
        print(markdown_table(rows))


def cmd_runs(args) -> None:
    from core.runs import list_runs

    rows = list_runs(args.runs_dir, args.task)
    if args.json:
        _print_json(rows)
        return
    for r in rows:
        head = r["headline"]
        head = f"{r['headline_metric']} {head:.4f}" if isinstance(head, (int, float)) else "-"
        print(f"{r['id']:50} {r['task'] or '-':7} {r['status'] or '-':10} {head}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core", description="Transfer Lab: fine-tune, evaluate, predict.")
    p.add_argument("--runs-dir", default=None, help="run store (default: $TRANSFER_LAB_RUNS or ./runs)")
    sub = p.add_subparsers(dest="command", required=True)

    m = sub.add_parser("models", help="list the registry's models")
    m.add_argument("--task", choices=registry.TASKS)
    m.add_argument("--json", action="store_true")
    m.add_argument("--markdown", action="store_true", help="the README's model table")
    m.set_defaults(func=cmd_models)

    c = sub.add_parser("params", help="count trainable/total parameters of a model under a strategy")
    c.add_argument("name")
    c.add_argument("--strategy", default="full", choices=list(STRATEGIES))
    c.add_argument("--num-classes", type=int)
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_params)

    t = sub.add_parser("train", help="train a model (or resume a run)")
    t.add_argument("--preset", choices=sorted(PRESETS))
    t.add_argument("--resume", metavar="RUN_DIR")
    t.add_argument("--task", choices=registry.TASKS)
    t.add_argument("--model")
    t.add_argument("--strategy", choices=list(STRATEGIES))
    t.add_argument("--epochs", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--eval-batch-size", type=int)
    t.add_argument("--optimizer", choices=["adam", "adamw"])
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--scheduler", choices=["plateau", "step", "none"])
    t.add_argument("--train-limit", type=int)
    t.add_argument("--eval-limit", type=int)
    t.add_argument("--val-fraction", type=float)
    t.add_argument("--data-dir")
    t.add_argument("--data-file")
    t.add_argument("--seed", type=int)
    t.add_argument("--max-minutes", type=float)
    t.add_argument("--checkpoint-every", type=int)
    t.add_argument("--no-feature-cache", dest="feature_cache", action="store_false", default=None)
    t.add_argument("--no-hflip", dest="hflip", action="store_false", default=None)
    t.add_argument("--weights", choices=["auto", "hub", "offline", "random"])
    t.add_argument("--device", choices=["auto", "cpu", "cuda"])
    t.add_argument("--max-length", type=int)
    t.add_argument("--doc-stride", type=int)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="re-evaluate a saved run")
    e.add_argument("run_dir")
    e.add_argument("--data-dir")
    e.add_argument("--data-file")
    e.add_argument("--write", action="store_true", help="overwrite the run's metrics and predictions")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_eval)

    r = sub.add_parser("predict", help="predict one example with a saved run")
    r.add_argument("run_dir")
    r.add_argument("--image")
    r.add_argument("--text")
    r.add_argument("--question")
    r.add_argument("--context")
    r.add_argument("--top-k", type=int, default=5)
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_predict)

    v = sub.add_parser("svm", help="fit a linear SVM on a frozen image backbone's features (saved as a run)")
    v.add_argument("--model", required=True)
    v.add_argument("--C", type=float, default=1.0)
    v.add_argument("--train-limit", type=int)
    v.add_argument("--eval-limit", type=int)
    v.add_argument("--data-dir")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--weights", choices=["auto", "hub", "offline", "random"], default="auto")
    v.set_defaults(func=cmd_svm)

    rp = sub.add_parser("report", help="comparison table of completed runs (CNN versus transformer, strategies)")
    rp.add_argument("--task", choices=registry.TASKS, default="images")
    rp.add_argument("--json", action="store_true")
    rp.set_defaults(func=cmd_report)

    ls = sub.add_parser("runs", help="list saved runs")
    ls.add_argument("--task", choices=registry.TASKS)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_runs)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except TransferLabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
