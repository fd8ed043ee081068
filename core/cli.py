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

from core import registry
from core.config import MAX_NAME, TrainConfig
from core.errors import BadInputError, CancelledError, TransferLabError, WeightsUnavailableError
from core.freezing import STRATEGIES
from core.presets import PRESETS, compose_settings

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


def cmd_params(args) -> None:
    counts = registry.parameter_counts(args.name, args.strategy, args.num_classes)
    if args.json:
        _print_json(counts)
    else:
        print(f"{args.name} {args.strategy}: {counts['trainable']:,} trainable of {counts['total']:,}")
        notes = registry.get(args.name).notes
        if notes:  # e.g. where the paper's count differs and why
            print(notes)


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
    from core import starter
    from core.engine.distributed import main_process
    from core.engine.fit import train

    cancel = threading.Event()
    kwargs = dict(runs_root=args.runs_dir, on_progress=_ProgressPrinter(), on_epoch=_print_epoch, cancel=cancel)
    try:
        if args.resume and starter.is_evaluation_only(args.resume, args.runs_dir):
            # a recorded fine-tuned checkpoint: resuming evaluates it again, it never trains its head
            run = starter.record_pretrained(resume=args.resume, runs_root=args.runs_dir,
                                            on_progress=kwargs["on_progress"], cancel=cancel)
        elif args.resume:
            run = train(resume=args.resume, **kwargs)
        else:
            run = train(_config_from_args(args), **kwargs)
    except KeyboardInterrupt:
        raise CancelledError("Interrupted; the last checkpoint is kept (resume with --resume).") from None
    if not main_process():  # started under torch.distributed.run: rank 0 alone prints the JSON line
        return
    status = run.read_status()
    _print_json({"run_dir": str(run.path), "status": status["status"], "message": status["message"],
                 "metrics": _headline_metrics(run.read_metrics())})


def _headline_metrics(metrics: dict | None) -> dict | None:
    """Metrics without the bulky per-example parts, for one readable JSON line."""
    if metrics is None:
        return None
    return {k: v for k, v in metrics.items() if k not in ("confusion_matrix",)}


def cmd_eval(args) -> None:
    from core.engine.fit import evaluate_run

    metrics = evaluate_run(args.run_dir, args.runs_dir, data_dir=args.data_dir, data_file=args.data_file,
                           write=args.write)
    if args.json:
        _print_json(metrics)
    else:
        from core.metrics import classification_report

        print(classification_report(metrics) if "per_class" in metrics else json.dumps(metrics, indent=2))


def cmd_predict(args) -> None:
    from core.engine.fit import load_run_task

    run, task = load_run_task(args.run_dir, args.runs_dir)
    if args.int8:
        from core.quantize import quantize_task

        quantize_task(task)  # one sentence where it does not apply (an image model, a GPU)
    inputs = task.task_spec.read_inputs(vars(args))  # what the run's task takes: --image, --text, ...
    result = task.predict(top_k=args.top_k, **inputs)
    result["run_dir"] = str(run.path)
    if args.json:
        _print_json(result)
    else:
        print(json.dumps(result, indent=2, ensure_ascii=False))


def cmd_explain(args) -> None:
    from core.explain.command import explain_ref, summary_lines

    settings = {k: v for k, v in (("steps", args.steps), ("layer", args.layer), ("head", args.head),
                                  ("qa_target", args.qa_target)) if v is not None}
    if isinstance(settings.get("layer"), str) and settings["layer"].lstrip("-").isdigit():
        settings["layer"] = int(settings["layer"])
    if isinstance(settings.get("head"), str) and settings["head"].lstrip("-").isdigit():
        settings["head"] = int(settings["head"])
    given = {"image": args.image, "text": args.text, "question": args.question, "context": args.context}
    explanation = explain_ref(args.ref, args.method, given, target=args.target, runs_root=args.runs_dir,
                              out=args.out, **settings)
    if args.json:
        _print_json(explanation.to_json())
    else:
        print("\n".join(summary_lines(explanation)))
        if args.out:
            print(f"wrote {args.out}")


def cmd_svm(args) -> None:
    from core.tasks.images.svm import fit_svm

    cfg = TrainConfig(task=registry.get(args.model).task, model=args.model, train_limit=args.train_limit, eval_limit=args.eval_limit,
                      val_fraction=0.0, data_dir=args.data_dir, seed=args.seed, weights=args.weights)
    run = fit_svm(cfg, C=args.C, runs_root=args.runs_dir)
    _print_json({"run_dir": str(run.path), "status": run.read_status()["status"],
                 "metrics": _headline_metrics(run.read_metrics())})


def cmd_report(args) -> None:
    from core.store.report import comparison_rows, markdown_table

    rows = comparison_rows(args.task, args.runs_dir)
    if args.json:
        _print_json(rows)
    else:
        print(markdown_table(rows))


def cmd_presets(args) -> None:
    """Every preset with the report it comes from and the figures that report (or the paper) got."""
    from core.presets import PRESET_INFO, SOURCES

    presets = [p for p in PRESET_INFO.values() if args.task is None or p.settings.get("task") == args.task]
    if args.json:
        _print_json([p.to_json() for p in presets])
        return
    print("| preset | from | model, strategy | reference figures | note |")
    print("|---|---|---|---|---|")
    for p in presets:
        refs = "; ".join(f"{r.source} {r.metric} {r.value:g}" + (f" ({r.note})" if r.note else "")
                         for r in p.references) or "-"
        print(f"| `{p.name}` | {SOURCES[p.report]} | {p.settings.get('model')}, {p.settings.get('strategy')} | "
              f"{refs} | {p.note or '-'} |")


def cmd_data(args) -> None:
    """The statistics each course report opens with, per split of the task's data set."""
    task = registry.get_task(args.task)
    splits = [args.split] if args.split else list(task.splits())
    out = {split: task.statistics(split, data_dir=args.data_dir, data_file=args.data_file) for split in splits}
    if args.json:
        _print_json(out)
        return
    for split, stats in out.items():
        print(f"{task.title}, {split}:")
        print(json.dumps(stats, indent=2, ensure_ascii=False))


def cmd_runs(args) -> None:
    from core.store.runs import list_runs

    rows = list_runs(args.runs_dir, args.task)
    if args.json:
        _print_json(rows)
        return
    for r in rows:
        head = r["headline"]
        head = f"{r['headline_metric']} {head:.4f}" if isinstance(head, (int, float)) else "-"
        named = f"  “{r['name']}”" if r.get("name") else ""
        print(f"{r['id']:50} {r['task'] or '-':7} {r['status'] or '-':10} {head}{named}")


def cmd_rename(args) -> None:
    """Give a finished (or stopped) run a friendly name, or clear it with an empty one: what the Runs tab's Rename
    does. A run still training is refused: its process writes its config.json again."""
    from core.errors import BadSettingError
    from core.store.runs import open_run

    run = open_run(args.run, args.runs_dir)
    if run.read_status().get("status") in ("queued", "running"):
        raise BadSettingError(f"Run {run.id} is still training; rename it once it has ended.")
    stored = run.rename(args.name)
    if args.json:
        _print_json({"run": run.id, "name": stored})
    else:
        print(f"Run {run.id} is now named “{stored}”." if stored else f"Run {run.id} has no name now.")


def cmd_prefetch(args) -> None:
    """Fill the Hugging Face caches with every Hub model, tokenizer and data set the app uses (core/prefetch.py)."""
    from core.prefetch import failure_sentence, prefetch

    def show(row) -> None:
        reason = f"  {row.reason}" if row.reason else ""
        print(f"{row.status:15} {row.kind:9} {row.id:55} {row.seconds:7.1f}s{reason}", flush=True)

    report = prefetch(args.task, on_row=None if args.json else show)
    if args.json:
        _print_json(report)
    else:
        c = report["counts"]
        print(f"{c['fetched']} fetched, {c['already cached']} already cached, {c['failed']} failed "
              f"(Hub cache {report['hub_cache']}, datasets cache {report['datasets_cache']})")
    sentence = failure_sentence(report)
    if sentence:
        raise WeightsUnavailableError(sentence)


def cmd_starter(args) -> None:
    """One good run per task with the best weights here (core/starter.py): the plan and its estimates first, then
    the runs on a queue of this process; Ctrl-C cancels, and running it again resumes."""
    from core import starter

    parts = starter.plan([args.task] if args.task else None, args.runs_dir, args.data_dir)
    total = starter.total_seconds(parts)
    if args.json and args.dry_run:
        _print_json({"parts": [p.to_json() for p in parts], "estimated_seconds": total})
        return
    from core.estimate import duration

    for p in parts:
        print(p.line(), file=sys.stderr if args.json else sys.stdout, flush=True)
    todo = [p for p in parts if p.action in ("start", "resume")]
    when = f"about {duration(total, rounded=True)} in all" if total is not None else "no estimate for all of it"
    print(f"{len(todo)} run{'s' if len(todo) != 1 else ''} to make ({when})." if todo else
          "Nothing to do: every task has its starter run.", file=sys.stderr if args.json else sys.stdout, flush=True)
    if args.dry_run or not todo:
        return
    snaps = starter.run_in_process(parts, args.runs_dir, echo=lambda line: print(line, file=sys.stderr,
                                                                                   flush=True))
    rows = [{"run_dir": s["run_dir"], "status": s["status"], "message": s["message"]} for s in snaps]
    _print_json(rows)
    failed = [s for s in snaps if s["status"] != "completed"]
    if failed:
        raise TransferLabError(f"{len(failed)} of {len(snaps)} starter runs did not complete: "
                               f"{failed[0]['message'] or failed[0]['status']}")


# Help for each TrainConfig field's `train` flag, keyed by field name (tests/test_cli.py checks it covers them all).
_TRAIN_HELP = {
    "task": "what the run learns (or let --preset set it)",
    "model": "registry model name, see `python -m core models` (or let --preset set it)",
    "strategy": "which parameters train (`python -m core params` counts them)",
    "epochs": "passes over the training split",
    "lr": "learning rate (default: 1e-3 for a new head or from scratch, else the model's fine-tuning rate)",
    "batch_size": "training examples per step",
    "micro_batch": "split each step's batch into chunks of at most this many examples, one optimizer step per "
                   "batch (the same update, less memory; 0: the whole batch at once)",
    "activation_checkpointing": "QA: recompute each encoder layer in the backward pass instead of keeping its "
                                "activations (the same gradients, less memory, about one more forward pass)",
    "eval_batch_size": "examples per step when evaluating",
    "optimizer": "adamw decouples the weight decay; sgd uses --momentum (and --nesterov)",
    "momentum": "sgd's momentum (0 to below 1)",
    "nesterov": "sgd with Nesterov momentum (the course's MLP)",
    "normalize": "images: backbone (its ImageNet mean/std), cifar10 (CIFAR-10 mean/std) or half (0.5/0.5)",
    "log_every": "steps between points of the per-step loss history (0: about 50 per epoch)",
    "precision": "bf16 autocast: auto (on a GPU only), fp32 or bf16",
    "weight_decay": "the optimizer's weight decay",
    "scheduler": "learning-rate schedule: plateau (on the validation monitor), step or none",
    "plateau_factor": "plateau schedule: factor the learning rate is multiplied by when validation stalls",
    "plateau_patience": "plateau schedule: epochs without improvement before the rate drops",
    "min_lr": "plateau schedule: the lowest learning rate",
    "step_size": "step schedule: epochs between drops",
    "step_gamma": "step schedule: factor per drop",
    "train_limit": "use at most this many training examples",
    "eval_limit": "use at most this many evaluation examples",
    "val_fraction": "fraction of the training split held out for per-epoch validation (0: none)",
    "data_dir": "data folder (default: $TRANSFER_LAB_DATA, else the shared datasets)",
    "data_file": "a user file instead of the built-in data (QA JSON, tweet CSV)",
    "seed": "random seed",
    "max_minutes": "time budget: stop cleanly at a checkpoint, resumable with --resume",
    "checkpoint_every": "epochs between checkpoints (a stop or cancel always checkpoints)",
    "checkpoint_minutes": "also checkpoint within an epoch this often, so a crash loses at most this much",
    "feature_cache": "do not cache the frozen part's outputs (feature_extraction, last_block)",
    "cache_max_gb": "feature caches larger than this fall back to the uncached path",
    "hflip": "images: no random horizontal flips while training",
    "weights": "pretrained weights from: auto (the Hub when reachable, else offline), hub, offline or random",
    "head": "images: paper (the course's head, 256 units), paper_1024 (1024 units) or linear (one Linear layer; what `core svm` fits)",
    "device": "where to train",
    "devices": "data-parallel processes on this machine (torch.distributed; one GPU each on CUDA); --batch-size "
               "stays the global batch",
    "max_length": "text tasks: tokens per example (window size for QA)",
    "doc_stride": "QA: overlap between windows",
    "name": f"a friendly name for the run, shown in the Runs tab and the model pickers (at most {MAX_NAME} "
            "characters)",
}
# TrainConfig fields with no generated flag. `preset` has its own hand-written --preset (its choices are the
# preset names, and it must be declared before the settings it fills in); compose_settings records it in the config.
_NOT_TRAIN_FLAGS = ("preset",)


def _task_names() -> tuple[str, ...]:
    return registry.task_names()


def _train_choices() -> dict[str, tuple[str, ...]]:
    """The allowed values of each fixed-choice TrainConfig field, from where they are defined."""
    from core.config import CHOICES

    return {"task": _task_names(), "strategy": tuple(STRATEGIES), **CHOICES}


def _field_type(annotation) -> tuple[type, bool]:
    """(base type, optional) of a TrainConfig annotation: ``int`` -> (int, False), ``float | None`` -> (float, True)."""
    import types
    import typing

    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    elif isinstance(annotation, type):
        return annotation, False
    raise TypeError(f"TrainConfig annotation {annotation!r} has no CLI flag type; add one in core/cli.py")


def _add_train_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (``batch_size`` -> ``--batch-size``), generated so that the CLI and the
    config cannot drift. Every flag defaults to None ("not given"), so compose_settings can layer the model's
    recommendations, the preset and the flags; a True-by-default bool becomes ``--no-<name>``."""
    import typing
    from dataclasses import MISSING

    hints = typing.get_type_hints(TrainConfig)
    choices = _train_choices()
    group = parser.add_argument_group(
        "settings", "TrainConfig's fields; one left out takes the --preset's value, else the model's recommended "
                    "one, else the default shown")
    for f in fields(TrainConfig):
        if f.name in _NOT_TRAIN_FLAGS:
            continue
        kind, _ = _field_type(hints[f.name])  # optional or not, the flag defaults to None
        flag = "--" + f.name.replace("_", "-")
        help_text = _TRAIN_HELP.get(f.name) or f.name.replace("_", " ")
        if f.default is not MISSING and f.default is not None and kind is not bool:
            help_text += f" (default: {f.default})"
        if kind is bool:  # --x and --no-x, as a preset may turn on what the defaults leave off
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                               help=help_text + f" (default: {'on' if f.default else 'off'})")
        elif f.name in choices:
            group.add_argument(flag, dest=f.name, choices=list(choices[f.name]), default=None, help=help_text)
        elif kind in (int, float, str):
            group.add_argument(flag, dest=f.name, type=kind, default=None, help=help_text,
                               metavar={int: "N", float: "X"}.get(kind, f.name.upper()))
        else:
            raise TypeError(f"TrainConfig.{f.name}: no CLI flag for type {kind!r}; add one in core/cli.py")


def _global_options(default) -> argparse.ArgumentParser:
    """The options every command takes, as a parent parser: on the top-level parser with their real default, and
    on each subcommand with ``argparse.SUPPRESS`` so they also work after the subcommand without a missing
    sub-level value overwriting the top-level one."""
    g = argparse.ArgumentParser(add_help=False)
    g.add_argument("--runs-dir", default=default, help="run store (default: $TRANSFER_LAB_RUNS, else runs/ in the "
                                                       "repository)")
    return g


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core", description="Transfer Lab: fine-tune, evaluate, predict.",
                                parents=[_global_options(None)])
    sub = p.add_subparsers(dest="command", required=True)
    common = [_global_options(argparse.SUPPRESS)]
    tasks = _task_names()

    m = sub.add_parser("models", help="list the registry's models", parents=common)
    m.add_argument("--task", choices=tasks)
    m.add_argument("--json", action="store_true")
    m.add_argument("--markdown", action="store_true", help="the README's model table")
    m.set_defaults(func=cmd_models)

    c = sub.add_parser("params", help="count trainable/total parameters of a model under a strategy", parents=common)
    c.add_argument("name")
    c.add_argument("--strategy", default="full", choices=list(STRATEGIES))
    c.add_argument("--num-classes", type=int)
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_params)

    t = sub.add_parser("train", help="train a model (or resume a run)", parents=common)
    t.add_argument("--preset", choices=sorted(PRESETS), help="named settings (core/presets.py); flags override them")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run from its last checkpoint")
    _add_train_setting_flags(t)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="re-evaluate a saved run", parents=common)
    e.add_argument("run_dir")
    e.add_argument("--data-dir")
    e.add_argument("--data-file")
    e.add_argument("--write", action="store_true", help="overwrite the run's metrics and predictions")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_eval)

    r = sub.add_parser("predict", help="predict one example with a saved run", parents=common)
    r.add_argument("run_dir")
    r.add_argument("--image")
    r.add_argument("--text")
    r.add_argument("--question")
    r.add_argument("--context")
    r.add_argument("--top-k", type=int, default=5)
    r.add_argument("--json", action="store_true")
    r.add_argument("--int8", action="store_true",
                   help="int8 dynamic quantisation of a text model's linear layers (CPU; faster, answers may differ "
                        "slightly: bench/bench_int8.py measures by how much)")
    r.set_defaults(func=cmd_predict)

    v = sub.add_parser("svm", help="fit a linear SVM on a frozen image backbone's features (saved as a run)",
                       parents=common)
    v.add_argument("--model", required=True)
    v.add_argument("--C", type=float, default=1.0)
    v.add_argument("--train-limit", type=int)
    v.add_argument("--eval-limit", type=int)
    v.add_argument("--data-dir")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--weights", choices=list(_train_choices()["weights"]), default="auto")
    v.set_defaults(func=cmd_svm)

    rp = sub.add_parser("report", help="comparison table of completed runs (CNN versus transformer, strategies)",
                        parents=common)
    rp.add_argument("--task", choices=tasks, help="only the runs of this task (default: every task)")
    rp.add_argument("--json", action="store_true")
    rp.set_defaults(func=cmd_report)

    ps = sub.add_parser("presets", help="the course's experiments as presets, with the figures their reports got",
                        parents=common)
    ps.add_argument("--task", choices=_task_names())
    ps.add_argument("--json", action="store_true")
    ps.set_defaults(func=cmd_presets)

    d = sub.add_parser("data", help="statistics of a task's data set, per split (counts, lengths, classes)",
                       parents=common)
    d.add_argument("task", choices=_task_names())
    d.add_argument("--split", help="one split only (default: every split of the data set)")
    d.add_argument("--data-dir")
    d.add_argument("--data-file", help="a file of your own instead of the built-in data set")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_data)

    ls = sub.add_parser("runs", help="list saved runs", parents=common)
    ls.add_argument("--task", choices=tasks)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_runs)

    rn = sub.add_parser("rename", help="give a run a friendly name (an empty name clears it)", parents=common)
    rn.add_argument("run", help="run folder or id")
    rn.add_argument("name", help=f"at most {MAX_NAME} characters, one line; \"\" clears the name")
    rn.add_argument("--json", action="store_true")
    rn.set_defaults(func=cmd_rename)

    x = sub.add_parser("explain", help="explain one prediction of a run or of model:<registry name>", parents=common)
    x.add_argument("ref", metavar="RUN_OR_MODEL", help="a run folder or id, or model:<registry name>")
    x.add_argument("--method", required=True, help="integrated_gradients, attention, attention_rollout, grad_cam "
                                                   "or activations (those that apply to the model)")
    x.add_argument("--image")
    x.add_argument("--text")
    x.add_argument("--question")
    x.add_argument("--context")
    x.add_argument("--target", help="class (index or label) to explain; default: the predicted one ('real' for "
                                    "tweets, the answer for QA)")
    x.add_argument("--steps", type=int, help="Integrated Gradients steps (default 50)")
    x.add_argument("--layer", help="attention: layer index; activations: a module name of the backbone")
    x.add_argument("--head", help="attention: head index or mean")
    x.add_argument("--qa-target", choices=["sum", "start", "end"], help="QA: which answer logit IG explains")
    x.add_argument("--json", action="store_true")
    x.add_argument("--out", help="write the explanation as a PNG here")
    x.set_defaults(func=cmd_explain)

    st = sub.add_parser("starter", help="one good run per task with the best weights this machine has (a Hub "
                                        "checkpoint already fine-tuned, else a packaged model trained for a few "
                                        "minutes); says how long each takes first; run again to resume",
                        parents=common)
    st.add_argument("--task", choices=tasks, help="only this task's starter run (default: every task)")
    st.add_argument("--dry-run", action="store_true", help="print the plan and its estimates, run nothing")
    st.add_argument("--data-dir", help="data folder (default: $TRANSFER_LAB_DATA, else the shared datasets)")
    st.add_argument("--json", action="store_true", help="with --dry-run: the plan as JSON; else the plan on "
                                                        "stderr and the runs as one JSON line at the end")
    st.set_defaults(func=cmd_starter)

    pf = sub.add_parser("prefetch", help="download every Hub model, tokenizer and data set the app uses into the "
                                         "local caches, so this machine later runs without network",
                        parents=common)
    pf.add_argument("--task", choices=tasks, help="only what this task uses (default: every task)")
    pf.add_argument("--json", action="store_true")
    pf.set_defaults(func=cmd_prefetch)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            if not args.resume:
                _config_from_args(args).validate()  # a bad setting is one sentence before any process starts
            from core.engine.distributed import launch

            code = launch(sys.argv[1:] if argv is None else list(argv), args.devices)
            if code is not None:  # --devices N: this process started the N processes and waited for them
                return code
        args.func(args)
    except TransferLabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
