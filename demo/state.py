"""Process-wide state shared by every browser session: the training queue and the loaded-model cache.

Handlers import ``jobs()`` and ``predictors()`` rather than building their own, so that all sessions see one
queue (one training job at a time per device) and load each model once; ``explanations()`` keeps the last
explanations so a repeated one is not computed again. ``model_choices`` and ``best_run`` read the run store each
time they are called, so the model lists follow it (new runs appear, deleted ones go).
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import math
import os
import threading
import time
from collections import OrderedDict
from typing import Callable

import numpy as np

from core import registry
from core.errors import BadSettingError
from core.store.jobs import JobQueue
from core.store.predictors import PredictorCache
from core.starter import unavailable_reason
from core.store.runs import list_runs, run_id_time
from core.weights import weights_status


ZEROGPU_SLICE_MINUTES = 4.0  # ZeroGPU grants a few minutes per call (about 5 at most); a slice stays under it


def slice_minutes() -> float | None:
    """Minutes per training call: ``TRANSFER_LAB_GPU_SLICE_MINUTES`` if set (0 = no slicing), else
    ZEROGPU_SLICE_MINUTES where the ``spaces`` package exists (Hugging Face Spaces), else None (one call)."""
    value = os.environ.get("TRANSFER_LAB_GPU_SLICE_MINUTES", "").strip()
    if value:
        try:
            minutes = float(value)
        except ValueError:
            raise BadSettingError(f"TRANSFER_LAB_GPU_SLICE_MINUTES must be a number of minutes; got '{value}'.")
        return minutes if math.isfinite(minutes) and minutes > 0 else None
    return ZEROGPU_SLICE_MINUTES if importlib.util.find_spec("spaces") is not None else None


@functools.lru_cache(maxsize=1)
def jobs() -> JobQueue:
    return JobQueue(slice_minutes=slice_minutes())


@functools.lru_cache(maxsize=1)
def predictors() -> PredictorCache:
    return PredictorCache()


METRIC_WORDS = {"f1": "F1", "exact_match": "EM"}  # how a label names a headline metric (else its own name)


def run_title(run_id: str, name: str | None = None, escape: Callable[[str], str] | None = None) -> str:
    """How a sentence names a run: its id, or a named run's name with its id, '“my first run” (20261202-…)'.
    ``escape``: applied to the name only (Markdown: demo.pickers.md_escape), since ids are the store's own."""
    if not name:
        return run_id
    return f"“{escape(name) if escape else name}” ({run_id})"


def _id_tail(summary: dict) -> str:
    """What tells a run apart from others of the same model, strategy and minute: the part of its id after
    '<time>-<model>-<strategy>-' (its random suffix), else the whole id."""
    head = f"{summary['id'][:15]}-{summary['model']}-{summary['strategy']}-"
    tail = summary["id"][len(head):] if summary["id"].startswith(head) else ""
    return tail or summary["id"]


def run_label(summary: dict) -> str:
    """A short picker label for a run (a list_runs row): 'my first run · minilm full · F1 0.810', or unnamed
    'minilm full · 12-02 18:40 · accuracy 0.749' (the time from the run id); the full id is in the Runs tab and
    in the line a prediction tab shows about the picked model.

    >>> run_label({"id": "20261202-184012-mlp-scratch-1a2b", "name": None, "model": "mlp", "strategy": "scratch",
    ...            "headline_metric": "accuracy", "headline": 0.4612})
    'mlp scratch · 12-02 18:40 · accuracy 0.461'
    """
    parts = [summary["name"]] if summary.get("name") else []
    parts.append(f"{summary.get('model')} {summary.get('strategy')}")
    started = run_id_time(summary["id"])
    if not summary.get("name"):
        parts.append(time.strftime("%m-%d %H:%M", started) if started else summary["id"])
    value, metric = summary.get("headline"), summary.get("headline_metric") or "accuracy"
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        parts.append(f"{METRIC_WORDS.get(metric, metric)} {value:.3f}")
    return " · ".join(parts)


def run_labels(summaries: list[dict]) -> list[str]:
    """run_label of each run, made unique: runs that would share a label get their id's random suffix added,
    and where even that is shared, their whole id."""
    labels = [run_label(r) for r in summaries]
    for extra in (_id_tail, lambda r: r["id"]):
        seen: dict[str, int] = {}
        for label in labels:
            seen[label] = seen.get(label, 0) + 1
        labels = [f"{label} · {extra(r)}" if seen[label] > 1 else label for label, r in zip(labels, summaries)]
    return labels


def model_choices(task: str, include_registry: bool = True) -> list[tuple[str, str]]:
    """(label, ref) pairs for a task's model pickers: finished runs first (newest first), then the registry's
    models that this machine can run (:func:`unrunnable_models` lists the others, with why).

    A run's ref is its folder; a registry model's is ``model:<name>``. Labels say plainly what a choice is and stay
    short (:func:`run_label`), e.g. "efficientnet_lite0 feature_extraction · 12-02 18:40 · accuracy 0.749",
    "my first run · minilm full · F1 0.810" or "vgg19 (untrained, head not trained)".
    """
    done = [r for r in list_runs(task=task) if r["status"] == "completed"]
    choices = [(label, r["path"]) for label, r in zip(run_labels(done), done)]
    if include_registry:
        for spec in registry.list_models(task):
            if unavailable_reason(spec.name) is None:
                choices.append((f"{spec.name} ({weights_status(spec)}, head not trained)", f"model:{spec.name}"))
    return choices


def unrunnable_models(task: str) -> list[tuple[str, str]]:
    """(name, one sentence why) of the task's registry models this machine cannot run (core.starter's check:
    e.g. a Persian vocabulary only the Hub holds, with the Hub unreachable); they are left out of the pickers."""
    found = []
    for spec in registry.list_models(task):
        reason = unavailable_reason(spec.name)
        if reason is not None:
            found.append((spec.name, reason))
    return found


def best_run(task: str) -> dict | None:
    """The completed run of ``task`` with the best test headline metric (the task's own: accuracy, F1), the newest
    of equal ones; a completed run without one counts below any scored run. None when there is no completed run."""
    done = [r for r in list_runs(task=task) if r["status"] == "completed"]
    if not done:
        return None
    scored = lambda r: isinstance(r["headline"], (int, float)) and math.isfinite(r["headline"])  # noqa: E731
    return max(done, key=lambda r: (scored(r), r["headline"] if scored(r) else 0.0, r["id"]))


class ExplanationCache:
    """A small bounded LRU of explanations keyed by (model ref, input hash, method, settings): repeating an
    explanation (another layer and back, a second browser, a re-render with a shared colour scale) costs nothing.
    Thread-safe: inference events run a few at a time."""

    def __init__(self, max_items: int = 64):
        self.max_items = max_items
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def input_hash(inputs: dict) -> str:
        """A digest of the inputs by name: text as UTF-8, bytes as they are, arrays by shape, dtype and bytes."""
        digest = hashlib.sha256()
        for name in sorted(inputs):
            value = inputs[name]
            digest.update(name.encode() + b"\x00")
            if isinstance(value, (bytes, bytearray)):
                digest.update(bytes(value))
            elif hasattr(value, "tobytes"):
                array = np.ascontiguousarray(value)
                digest.update(f"{array.shape}{array.dtype}".encode() + array.tobytes())
            else:
                digest.update(str(value).encode("utf-8"))
            digest.update(b"\x01")
        return digest.hexdigest()

    def key(self, ref: str, inputs: dict, method: str, settings: dict) -> tuple:
        return (ref, self.input_hash(inputs), method, tuple(sorted((k, repr(v)) for k, v in settings.items())))

    def get(self, key: tuple):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key: tuple, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


@functools.lru_cache(maxsize=1)
def explanations() -> ExplanationCache:
    return ExplanationCache()
