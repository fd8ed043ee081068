"""Loaded models for inference, shared across sessions, with a memory bound.

``get_task(ref)`` returns a TaskRun ready to predict: ``ref`` is a run folder/id (a fine-tuned model) or
``model:<registry name>`` (the registry's model as built here: pretrained where weights exist, else untrained).
Run folders must lie inside the run store (``confined``, the default: the cache serves the app's clients).
Entries are evicted least-recently-used once their parameters exceed ``max_bytes`` together; one model larger
than the bound is still kept alone. One model is built once however many requests ask for it at the same time:
the first builds it, the others wait for that build (a class opening the same tab at once, or the app's warm-up
at launch and the first request) instead of each building a copy.

int8 (core/quantize.py): ``get(ref, int8=True)`` returns the text model with its linear layers quantised, cached
under its own key (``<key>#int8``) beside the fp32 one. ``int8=None`` takes the cache's default, which
``TRANSFER_LAB_INT8=1`` turns on for the app; the default quantises only where it applies (tweet and QA models on
the CPU) and leaves image models as they are, while an explicit ``int8=True`` that does not apply is refused with
one sentence.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict

from core import registry
from core.config import TrainConfig
from core.errors import BadSettingError, RunNotFoundError
from core.paths import env_switch
from core.quantize import model_bytes, quantize_task, why_not
from core.store.runs import open_run

DEFAULT_MAX_BYTES = int(float(os.environ.get("TRANSFER_LAB_MODEL_CACHE_GB", "4")) * 2**30)
INT8_SUFFIX = "#int8"


def _model_bytes(task) -> int:
    return model_bytes(task.model)


def _build_device() -> str:
    """Where ``_build`` puts a model (TrainConfig's device "auto"): a GPU when there is one."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def int8_from_env() -> bool:
    """``TRANSFER_LAB_INT8``: 1/true/yes/on turns int8 prediction on by default, 0/false/no/off or unset leaves
    it off; anything else is a BadSettingError."""
    return env_switch("TRANSFER_LAB_INT8", False)


class PredictorCache:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, runs_root: str | None = None, confined: bool = True,
                 int8: bool | None = None):
        self.max_bytes = max_bytes
        self.runs_root = runs_root
        self.confined = confined
        self.int8 = int8_from_env() if int8 is None else bool(int8)  # the default for get(ref) (text models only)
        self._items: OrderedDict[str, tuple[object, int]] = OrderedDict()
        self._building: dict[str, threading.Event] = {}  # key -> set when its build ends (loaded or failed)
        self._lock = threading.Lock()

    def _resolve(self, ref: str):
        """(cache key of the fp32 model, a function that returns its task name)."""
        if not isinstance(ref, str):
            raise RunNotFoundError("Name a run of the run store or a registry model (model:<name>).")
        if ref.startswith("model:"):
            spec = registry.get(ref.removeprefix("model:"))  # UnknownModelError: one sentence
            return ref, lambda: spec.task
        run = open_run(ref, self.runs_root, self.confined)  # one sentence when the run is gone or outside the store
        # A run re-trained in place (resume) gets a new weights file: key on its mtime.
        weights = run.path / "weights.safetensors"
        if not weights.is_file():
            raise RunNotFoundError(f"Run {run.id} has no saved weights yet.")
        return f"{run.path}@{weights.stat().st_mtime_ns}", lambda: run.train_config().task

    def _key(self, ref: str, int8: bool | None = None) -> str:
        key, task_name = self._resolve(ref)
        if int8 is False or (int8 is None and not self.int8):
            return key  # the fp32 model: no need to read the run's config
        return key + INT8_SUFFIX if self._wants_int8(task_name(), int8) else key

    def _wants_int8(self, task_name: str, int8: bool | None) -> bool:
        """Whether ``get`` quantises: an explicit True must apply (else one sentence); the default only where it
        does."""
        device = _build_device()
        if int8 is None:
            return self.int8 and why_not(task_name, device) is None
        if int8:
            reason = why_not(task_name, device)
            if reason is not None:
                raise BadSettingError(reason)
        return bool(int8)

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

    def get(self, ref: str, int8: bool | None = None):
        """The loaded TaskRun for ``ref``; ``int8``: True quantises (text models on the CPU), False never, None
        the cache's default."""
        key = self._key(ref, int8)
        while True:
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key][0]
                building = self._building.get(key)
                if building is None:
                    self._building[key] = threading.Event()
                    break
            building.wait()  # another request builds it: take its model (or, if that build failed, try ourselves)
        try:
            task = self._build(ref)  # outside the lock: building can take seconds
            if key.endswith(INT8_SUFFIX):
                quantize_task(task)  # BadSettingError when the model sits on a GPU
            size = _model_bytes(task)
            with self._lock:
                self._items[key] = (task, size)
                self._items.move_to_end(key)
                while len(self._items) > 1 and sum(s for _, s in self._items.values()) > self.max_bytes:
                    self._items.popitem(last=False)
        finally:
            with self._lock:
                self._building.pop(key).set()
        return task

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._items)

    def loaded(self, ref: str, int8: bool | None = None) -> bool:
        """Whether ``get(ref, int8)`` would answer from the cache, without loading: a resumed run's new weights
        are a new entry, so they count as not loaded. False for a ref that cannot be resolved (``get`` says why,
        in one sentence)."""
        try:
            key = self._key(ref, int8)
        except Exception:  # noqa: BLE001 - the load that follows gives its own sentence
            return False
        with self._lock:
            return key in self._items

    def forget_run(self, run_path: str) -> None:
        """Drop a deleted run's entries."""
        with self._lock:
            for key in [k for k in self._items if k.startswith(f"{run_path}@")]:  # fp32 and int8 entries
                del self._items[key]
