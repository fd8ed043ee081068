"""The run store: one folder per run, plain files only.

``runs/<id>/``
  config.json        the TrainConfig, the model spec, where the weights came from, parameter counts
  status.json        queued | running | completed | cancelled | stopped | failed, with a one-sentence message
  history.jsonl      one JSON object per epoch (losses, metrics, learning rate, seconds)
  metrics.json       final test metrics
  predictions.jsonl  one JSON object per test example (id, label, prediction, probabilities, ...)
  weights.safetensors            trainable parameters and all buffers (frozen pretrained weights are rebuilt)
  checkpoint/state.json          progress, scheduler and RNG state (JSON), for --resume
  checkpoint/optimizer.safetensors

Nothing is ever unpickled: tensors go through safetensors, everything else through JSON.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from core import registry
from core.engine.rows import PredictionRow
from core.errors import RunNotFoundError
from core.paths import runs_dir
from core.weights import WeightsSource

STATUSES = ("queued", "running", "completed", "cancelled", "stopped", "failed")


def _write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False))
    os.replace(tmp, path)


def _save_tensors_atomic(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


@dataclass
class Run:
    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    # -- config and status -----------------------------------------------------------------------------------
    def read_config(self) -> dict:
        return json.loads((self.path / "config.json").read_text())

    def write_config(self, config: dict) -> None:
        _write_json_atomic(self.path / "config.json", config)

    def set_status(self, status: str, message: str = "", **extra) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        _write_json_atomic(self.path / "status.json",
                           {"status": status, "message": message, "updated": time.time(), **extra})

    def read_status(self) -> dict:
        p = self.path / "status.json"
        return json.loads(p.read_text()) if p.is_file() else {"status": "queued", "message": ""}

    # -- history, metrics, predictions -----------------------------------------------------------------------
    def append_history(self, row: dict) -> None:
        with open(self.path / "history.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    def write_history(self, rows: list[dict]) -> None:
        tmp = self.path / "history.jsonl.tmp"
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        os.replace(tmp, self.path / "history.jsonl")

    def read_history(self) -> list[dict]:
        return _read_jsonl(self.path / "history.jsonl")

    def write_metrics(self, metrics: dict) -> None:
        _write_json_atomic(self.path / "metrics.json", metrics)

    def read_metrics(self) -> dict | None:
        p = self.path / "metrics.json"
        return json.loads(p.read_text()) if p.is_file() else None

    def write_predictions(self, rows: list) -> None:
        """One JSON line per test example: the task's PredictionRow dataclasses (or plain dicts)."""
        tmp = self.path / "predictions.jsonl.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r.to_json() if isinstance(r, PredictionRow) else dict(r), ensure_ascii=False)
                        + "\n")
        os.replace(tmp, self.path / "predictions.jsonl")

    def read_predictions(self) -> list[dict]:
        return _read_jsonl(self.path / "predictions.jsonl")

    def read_rows(self) -> list[PredictionRow]:
        """predictions.jsonl as the run's task's PredictionRow dataclasses (TaskSpec.row_class)."""
        task = (self.read_config().get("train") or {}).get("task")
        row_cls = registry.get_task(task).rows()
        return [row_cls.from_json(r) for r in self.read_predictions()]

    # -- weights and checkpoints -----------------------------------------------------------------------------
    def save_weights(self, tensors: dict[str, torch.Tensor]) -> None:
        _save_tensors_atomic(self.path / "weights.safetensors", tensors)

    def load_weights(self) -> dict[str, torch.Tensor]:
        p = self.path / "weights.safetensors"
        if not p.is_file():
            raise RunNotFoundError(f"Run {self.id} has no saved weights yet.")
        return load_file(str(p))

    def has_checkpoint(self) -> bool:
        return (self.path / "checkpoint" / "state.json").is_file()

    def save_checkpoint(self, state: dict, optimizer_tensors: dict[str, torch.Tensor]) -> None:
        """Optimizer tensors first, state.json last: a state.json on disk always has its tensors."""
        ck = self.path / "checkpoint"
        ck.mkdir(exist_ok=True)
        _save_tensors_atomic(ck / "optimizer.safetensors", optimizer_tensors)
        _write_json_atomic(ck / "state.json", state)

    def load_checkpoint(self) -> tuple[dict, dict[str, torch.Tensor]]:
        ck = self.path / "checkpoint"
        if not (ck / "state.json").is_file():
            raise RunNotFoundError(f"Run {self.id} has no checkpoint to resume from.")
        return json.loads((ck / "state.json").read_text()), load_file(str(ck / "optimizer.safetensors"))

    def summary(self) -> dict:
        """One row for run lists: id, task, model, strategy, status, headline metric, date."""
        try:
            cfg = self.read_config()
        except (OSError, json.JSONDecodeError):
            cfg = {}
        train = cfg.get("train", {})
        metrics = self.read_metrics() or {}
        status = self.read_status()
        headline_name = cfg.get("headline_metric", "accuracy")
        return {
            "id": self.id,
            "path": str(self.path),
            "task": train.get("task"),
            "model": train.get("model"),
            "strategy": train.get("strategy"),
            "status": status.get("status"),
            "message": status.get("message", ""),
            "headline_metric": headline_name,
            "headline": metrics.get(headline_name),
            "created": cfg.get("created"),
            "weights": weights_label(cfg.get("weights")),
        }


def weights_label(record) -> str | None:
    """"pretrained (<where from>)" or "untrained" for a config.json ``weights`` record; None when absent."""
    try:
        source = WeightsSource.from_json(record)
    except RunNotFoundError:
        return None
    return f"pretrained ({source.label()})" if source.pretrained else "untrained"


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


def new_run_id(model: str, strategy: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{model}-{strategy}-{secrets.token_hex(2)}"


def create_run(model: str, strategy: str, root: str | os.PathLike | None = None) -> Run:
    base = runs_dir(root)
    base.mkdir(parents=True, exist_ok=True)
    path = base / new_run_id(model, strategy)
    path.mkdir()
    run = Run(path)
    run.set_status("queued")
    return run


def open_run(ref: str | os.PathLike, root: str | os.PathLike | None = None) -> Run:
    """A run by folder path or by id inside the run store."""
    p = Path(ref)
    if not p.is_dir():
        p = runs_dir(root) / str(ref)
    if not (p / "config.json").is_file():
        raise RunNotFoundError(f"No run at '{ref}' (it may have been deleted).")
    return Run(p)


def list_runs(root: str | os.PathLike | None = None, task: str | None = None) -> list[dict]:
    """Summaries of every run, newest first."""
    base = runs_dir(root)
    if not base.is_dir():
        return []
    rows = [Run(p).summary() for p in base.iterdir() if (p / "config.json").is_file()]
    rows = [r for r in rows if task is None or r["task"] == task]
    return sorted(rows, key=lambda r: r["id"], reverse=True)


def delete_run(ref: str | os.PathLike, root: str | os.PathLike | None = None) -> None:
    run = open_run(ref, root)
    shutil.rmtree(run.path)
