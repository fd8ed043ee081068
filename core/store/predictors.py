"""Loaded models for inference, shared across sessions, with a memory bound.

``get_task(ref)`` returns a TaskRun ready to predict: ``ref`` is a run folder/id (a fine-tuned model) or
``model:<registry name>`` (the registry's model as built here: pretrained where weights exist, else untrained).
Run folders must lie inside the run store (``confined``, the default: the cache serves the app's clients).
Entries are evicted least-recently-used once their parameters exceed ``max_bytes`` together; one model larger
than the bound is still kept alone.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict

from core import registry
from core.config import TrainConfig
from core.errors import RunNotFoundError
from core.store.runs import open_run

DEFAULT_MAX_BYTES = int(float(os.environ.get("TRANSFER_LAB_MODEL_CACHE_GB", "4")) * 2**30)


def _model_bytes(task) -> int:
    return sum(p.numel() * p.element_size() for p in task.model.parameters())


class PredictorCache:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, runs_root: str | None = None, confined: bool = True):
        self.max_bytes = max_bytes
        self.runs_root = runs_root
        self.confined = confined
        self._items: OrderedDict[str, tuple[object, int]] = OrderedDict()
        self._lock = threading.Lock()

    def _key(self, ref: str) -> str:
        if not isinstance(ref, str):
            raise RunNotFoundError("Name a run of the run store or a registry model (model:<name>).")
        if ref.startswith("model:"):
            registry.get(ref.removeprefix("model:"))  # UnknownModelError: one sentence
            return ref
        run = open_run(ref, self.runs_root, self.confined)  # one sentence when the run is gone or outside the store
        # A run re-trained in place (resume) gets a new weights file: key on its mtime.
        weights = run.path / "weights.safetensors"
        if not weights.is_file():
            raise RunNotFoundError(f"Run {run.id} has no saved weights yet.")
        return f"{run.path}@{weights.stat().st_mtime_ns}"

    def _build(self, ref: str):
        from core.engine.fit import load_run_task, make_task

        if ref.startswith("model:"):
            spec = registry.get(ref.removeprefix("model:"))
            cfg = TrainConfig(task=spec.task, model=spec.name, strategy="full")
            task = make_task(cfg)
            labels = registry.get_task(spec.task).labels
            task.build_model(list(labels) if labels else None)
            task.model.eval()
            return task
        path = open_run(ref, self.runs_root, self.confined).path
        return load_run_task(str(path), self.runs_root)[1]

    def get(self, ref: str):
        key = self._key(ref)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
        task = self._build(ref)  # outside the lock: building can take seconds
        size = _model_bytes(task)
        with self._lock:
            self._items[key] = (task, size)
            self._items.move_to_end(key)
            while len(self._items) > 1 and sum(s for _, s in self._items.values()) > self.max_bytes:
                self._items.popitem(last=False)
        return task

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._items)

    def forget_run(self, run_path: str) -> None:
        """Drop a deleted run's entries."""
        with self._lock:
            for key in [k for k in self._items if k.startswith(f"{run_path}@")]:
                del self._items[key]
