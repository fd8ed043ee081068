"""Comparison tables across runs: the course's CNN-versus-transformer table, from the run store.

>>> print(markdown_table(comparison_rows()))   # doctest: +SKIP
"""
from __future__ import annotations

from core import registry
from core.presets import references_for
from core.store.runs import list_runs, open_run
from core.weights import WeightsSource

# "setup s" is the one-time frozen-feature pass of a cached run; "s/epoch" excludes it. "reference" is what the
# course report or paper behind the run's preset got on the same metric (blank without a preset); untrained
# offline models will not reach it, and the "weights" column says which runs those are.
COLUMNS = ("task", "family", "model", "strategy", "trainable", "total", "setup s", "s/epoch", "test metric",
           "reference", "macro F1", "weights", "run")


def comparison_rows(task: str | None = None, runs_root: str | None = None) -> list[dict]:
    """One row per completed run (of ``task``, or of every task): family, model, strategy, parameter counts,
    seconds per epoch, the task's headline test metric (accuracy, or F1 for QA) and macro F1."""
    rows = []
    for summary in list_runs(runs_root, task):
        if summary["status"] != "completed":
            continue
        run = open_run(summary["path"])
        cfg, metrics = run.read_config(), run.read_metrics() or {}
        params = metrics.get("parameters") or cfg.get("parameters") or {}
        strategy = "svm" if cfg.get("classifier") else cfg["train"]["strategy"]
        rows.append({
            "task": cfg["train"]["task"],
            "family": cfg.get("model_spec", {}).get("family", "?"),
            "model": cfg["train"]["model"],
            "strategy": strategy,
            "trainable": params.get("trainable"),
            "total": params.get("total"),
            "setup s": cfg.get("prepare_seconds"),
            "s/epoch": metrics.get("mean_seconds_per_epoch"),
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
