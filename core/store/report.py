"""Comparison tables across runs: the course's CNN-versus-transformer table, from the run store.

>>> print(markdown_table(comparison_rows()))   # doctest: +SKIP
"""
from __future__ import annotations

from core import registry
from core.presets import references_for
from core.store.runs import list_runs, open_run
from core.weights import WeightsSource

# "setup s" is the one-time frozen-feature pass of a cached run; "s/epoch" (training) and "val s/epoch" exclude it;
# "wall s" adds them up: setup + every epoch's training and validation (see run_cost). "reference" is what the
# course report or paper behind the run's preset got on the same metric (blank without a preset); untrained
# offline models will not reach it, and the "weights" column says which runs those are.
COLUMNS = ("task", "family", "model", "strategy", "trainable", "total", "setup s", "s/epoch", "val s/epoch",
           "wall s", "test metric", "reference", "macro F1", "weights", "run")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def run_cost(config: dict, metrics: dict | None, history: list[dict]) -> dict:
    """What a run cost, from what it recorded: trainable/total parameters, epochs, ``setup_seconds`` (the
    one-time preparation before the first epoch, config.json ``prepare_seconds``: the frozen-feature cache pass of
    a cached run), mean training and validation seconds per epoch (history rows' ``seconds`` and
    ``eval_seconds``; an SVM run has no history, its fit time is its one "epoch"), and ``wall_seconds``: loading
    the data and building the model (config.json ``load_seconds``) + setup + all training + all validation + the
    final test pass (metrics.json ``test_seconds``). Runs written before those two were recorded leave them out.

    >>> run_cost({"prepare_seconds": 30.0, "load_seconds": 4.0}, {"test_seconds": 1.5},
    ...          [{"seconds": 2.0, "eval_seconds": 0.5}])["wall_seconds"]
    38.0
    """
    metrics = metrics or {}
    params = metrics.get("parameters") or config.get("parameters") or {}
    train = [r["seconds"] for r in history if _number(r.get("seconds"))]
    if not history:
        train = [s for s in metrics.get("seconds_per_epoch") or () if _number(s)]
    val = [r["eval_seconds"] for r in history if _number(r.get("eval_seconds"))]
    setup = config.get("prepare_seconds") if _number(config.get("prepare_seconds")) else None
    load = config.get("load_seconds") if _number(config.get("load_seconds")) else None
    test = metrics.get("test_seconds") if _number(metrics.get("test_seconds")) else None
    parts = [p for p in (load, setup, sum(train) if train else None, sum(val) if val else None, test)
             if p is not None]
    return {"trainable": params.get("trainable"), "total": params.get("total"),
            "epochs": len(history) or len(train) or None, "setup_seconds": setup,
            "train_seconds_per_epoch": _mean(train), "val_seconds_per_epoch": _mean(val),
            "wall_seconds": sum(parts) if parts else None}


def split_sizes(config: dict) -> dict[str, int]:
    """Examples per split as the run recorded them (config.json ``data``: images and tweets ``n``, QA
    ``questions``), e.g. ``{"train": 60, "val": 20, "test": 20}``; empty when the run does not say."""
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    sizes = {}
    for split, facts in data.items():
        n = facts.get("n", facts.get("questions")) if isinstance(facts, dict) else None
        if _number(n):
            sizes[split] = int(n)
    return sizes


def comparison_rows(task: str | None = None, runs_root: str | None = None) -> list[dict]:
    """One row per completed run (of ``task``, or of every task): family, model, strategy, parameter counts,
    setup, training and validation seconds (see run_cost), the task's headline test metric (accuracy, or F1 for
    QA) and macro F1."""
    rows = []
    for summary in list_runs(runs_root, task):
        if summary["status"] != "completed":
            continue
        run = open_run(summary["path"])
        cfg, metrics = run.read_config(), run.read_metrics() or {}
        cost = run_cost(cfg, metrics, run.read_history())
        strategy = "svm" if cfg.get("classifier") else cfg["train"]["strategy"]
        rows.append({
            "task": cfg["train"]["task"],
            "family": cfg.get("model_spec", {}).get("family", "?"),
            "model": cfg["train"]["model"],
            "strategy": strategy,
            "trainable": cost["trainable"],
            "total": cost["total"],
            "setup s": cost["setup_seconds"],
            "s/epoch": cost["train_seconds_per_epoch"],
            "val s/epoch": cost["val_seconds_per_epoch"],
            "wall s": cost["wall_seconds"],
            "test metric": metrics.get(cfg.get("headline_metric", "accuracy")),
            "reference": _reference(cfg["train"].get("preset"), cfg.get("headline_metric", "accuracy")),
            "macro F1": (metrics.get("macro") or {}).get("f1"),
            "weights": "pretrained" if WeightsSource.from_json(cfg.get("weights")).pretrained else "untrained",
            "run": summary["id"],
        })
    order = {name: i for i, name in enumerate(registry.task_names())}
    return sorted(rows, key=lambda r: (order.get(r["task"], 99), r["family"], r["model"], r["strategy"]))


def _reference(preset: str | None, headline: str) -> str | None:
    """"0.9619 (R2)" for each figure of the preset's report or paper, on the headline metric (QA: the standard
    SQuAD-v2 F1 the reports used)."""
    wanted = {headline, f"squad_{headline}"}
    refs = [f"{r['value']:.4f} ({r['source']})" for r in references_for(preset) if r["metric"] in wanted]
    return "; ".join(refs) or None


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if value < 10 else f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(r[c]) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)
