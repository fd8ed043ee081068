"""Comparison tables across runs: the course's CNN-versus-transformer table, from the run store.

>>> print(markdown_table(comparison_rows(task="images")))   # doctest: +SKIP
"""
from __future__ import annotations

from core.runs import list_runs, open_run

# "setup s" is the one-time frozen-feature pass of a cached run; "s/epoch" excludes it.
COLUMNS = ("family", "model", "strategy", "trainable", "total", "setup s", "s/epoch", "accuracy", "macro F1", "weights", "run")


def comparison_rows(task: str | None = "images", runs_root: str | None = None) -> list[dict]:
    """One row per completed run: family, model, strategy, parameter counts, seconds per epoch, test metrics."""
    rows = []
    for summary in list_runs(runs_root, task):
        if summary["status"] != "completed":
            continue
        run = open_run(summary["path"])
        cfg, metrics = run.read_config(), run.read_metrics() or {}
        params = metrics.get("parameters") or cfg.get("parameters") or {}
        strategy = "svm" if cfg.get("classifier") else cfg["train"]["strategy"]
        rows.append({
            "family": cfg.get("model_spec", {}).get("family", "?"),
            "model": cfg["train"]["model"],
            "strategy": strategy,
            "trainable": params.get("trainable"),
            "total": params.get("total"),
            "setup s": cfg.get("prepare_seconds"),
            "s/epoch": metrics.get("mean_seconds_per_epoch"),
            "accuracy": metrics.get("accuracy", metrics.get("f1")),
            "macro F1": (metrics.get("macro") or {}).get("f1"),
            "weights": "pretrained" if cfg.get("pretrained") else "untrained",
            "run": summary["id"],
        })
    return sorted(rows, key=lambda r: (r["family"], r["model"], r["strategy"]))


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
