"""The contract between a task and the training engine.

A TaskRun owns one model and its data for one run. The engine (core.engine.fit.fit) asks it for the batches of an
epoch, for one training step's loss, and for an evaluation; it never looks inside the model or the data.
Batches are small descriptors (index tensors), so a resumed run can skip the batches already done for free.

The engine also cuts batches into pieces (micro-batches, and each process's share with ``devices`` > 1) through
:meth:`TaskRun.batch_length` and :meth:`TaskRun.slice_batch`. The default treats a batch as tensors along dim 0,
nested in tuples, lists and dicts (:func:`slice_batch`); a task whose batch is something else overrides both.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from core import registry
from core.config import TrainConfig
from core.errors import BadInputError, BadSettingError, RunNotFoundError
from core.freezing import apply_strategy, count_parameters
from core.registry import BuildRequest


def batch_length(batch: Any) -> int:
    """Examples in a batch: the dim-0 length its tensors share (see :func:`slice_batch`)."""
    lengths = set()

    def walk(part) -> None:
        if isinstance(part, torch.Tensor) and part.dim() > 0:
            lengths.add(len(part))
        elif isinstance(part, dict):
            for value in part.values():
                walk(value)
        elif isinstance(part, (tuple, list)):
            for value in part:
                walk(value)

    walk(batch)
    if len(lengths) != 1:
        raise ValueError(f"A batch's tensors must share one length along dim 0; found {sorted(lengths)}.")
    return lengths.pop()


def slice_batch(batch: Any, start: int, stop: int) -> Any:
    """Examples ``start:stop`` of a batch: every tensor with a dim 0 is sliced along it, tuples, lists and dicts
    keep their structure, and the other parts -- 0-dim tensors, numbers, strings, None: facts about the whole batch,
    such as a padding width -- are given unchanged to every piece. Anything else is a bug in the task.

    >>> slice_batch((torch.arange(5), {"flip": torch.zeros(5), "width": 7}), 1, 3)
    (tensor([1, 2]), {'flip': tensor([0., 0.]), 'width': 7})
    """
    if isinstance(batch, torch.Tensor):
        return batch[start:stop] if batch.dim() > 0 else batch
    if isinstance(batch, dict):
        return {key: slice_batch(value, start, stop) for key, value in batch.items()}
    if isinstance(batch, tuple):
        parts = [slice_batch(v, start, stop) for v in batch]
        return type(batch)(*parts) if hasattr(batch, "_fields") else tuple(parts)  # a namedtuple keeps its type
    if isinstance(batch, list):
        return [slice_batch(v, start, stop) for v in batch]
    if batch is None or isinstance(batch, (bool, int, float, str)):
        return batch
    raise TypeError(f"Cannot cut a batch part of type {type(batch).__name__} into micro-batches; the task must "
                    "override TaskRun.slice_batch.")


@dataclass
class EvalResult:
    metrics: dict  # always has "loss" and the task's monitor/headline metric
    predictions: list[dict] = field(default_factory=list)


ProgressFn = Callable[[str, int, int], None]  # (phase, done, total)


class TaskRun(abc.ABC):
    """Subclasses set ``task`` to their TaskSpec's name; the monitor and headline metrics come from that spec."""

    task: str = ""

    def __init__(self, cfg: TrainConfig, device: torch.device):
        self.cfg = cfg
        self.device = device
        self.model: nn.Module | None = None
        self.spec = None
        self.task_spec = registry.get_task(self.task)

    @property
    def monitor(self) -> str:
        """The validation metric the plateau scheduler maximises."""
        return self.task_spec.monitor

    @property
    def headline(self) -> str:
        """The one number run lists show."""
        return self.task_spec.headline

    # -- model ----------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def build_model(self, labels: list[str] | None = None) -> nn.Module:
        """Build the model (weights per cfg), apply the strategy, move it to the device, set self.model."""

    def _build_request(self, num_classes: int) -> BuildRequest:
        """Check the config's model against this task and strategy (registry.check), remember its spec, and say
        what to build: random weights for ``scratch``, else the config's weights choice."""
        self.spec = registry.check(self.task, self.cfg.model, self.cfg.strategy)
        weights = "random" if self.cfg.strategy == "scratch" else self.cfg.weights
        return BuildRequest(num_classes=num_classes, weights=weights, seed=self.cfg.seed, head=self.cfg.head)

    def _check_max_length(self, positions: int) -> None:
        """Text tasks: one sentence when the configured max_length exceeds what the model can read."""
        if self.max_length > positions:
            raise BadSettingError(f"max_length {self.max_length} is longer than {self.spec.name} can read "
                                  f"({positions} tokens).")

    def parameter_counts(self) -> dict[str, int]:
        return count_parameters(self.model)

    def set_activation_checkpointing(self, on: bool) -> None:
        """Recompute the model's layers in the backward pass instead of keeping their activations (the
        ``activation_checkpointing`` setting). A task whose models support it overrides this; here it is one
        sentence."""
        if on:
            raise BadSettingError(f"Activation checkpointing is not available for {self.cfg.model} "
                                  f"({self.task} task); leave it off.")

    def _finish_model(self, model: nn.Module) -> nn.Module:
        apply_strategy(model, self.cfg.strategy)
        self.model = model.to(self.device)
        return self.model

    # -- data and training ----------------------------------------------------------------------------------
    @abc.abstractmethod
    def load_data(self, splits: tuple[str, ...] = ("train", "val", "test")) -> None:
        """Load the splits a run needs, honouring train_limit/eval_limit/val_fraction."""

    def prepare_training(self, progress: ProgressFn | None = None) -> dict:
        """Work done once before the first epoch (e.g. the frozen-feature cache); returns facts for config.json."""
        return {}

    def epoch_order(self, epoch: int) -> tuple[torch.Tensor, torch.Generator]:
        """A permutation of the training examples that depends only on (seed, epoch), and the generator that
        drew it (for further per-epoch draws such as image flips)."""
        g = torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch)
        return torch.randperm(len(self.splits["train"]), generator=g), g

    def train_batches(self, epoch: int) -> list[Any]:
        """The batches of one epoch, in order, deterministic in (seed, epoch): index tensors by default."""
        order, _ = self.epoch_order(epoch)
        bs = self.cfg.batch_size
        return [order[i:i + bs] for i in range(0, len(order), bs)]

    def length_grouped_batches(self, epoch: int, lengths: torch.Tensor, group_batches: int = 50) -> list[Any]:
        """Batches of indices of similar length, deterministic in (seed, epoch), for tasks that trim a batch to its
        longest example: the epoch's shuffled order (:meth:`epoch_order`) is cut into groups of ``group_batches``
        batches, each group is sorted by length and cut into batches, and the batches are shuffled (what
        transformers' LengthGroupedSampler does, with its default of 50 batches a group)."""
        order, g = self.epoch_order(epoch)
        bs = self.cfg.batch_size
        group = bs * group_batches
        batches = []
        for i in range(0, len(order), group):
            members = order[i:i + group]
            members = members[torch.argsort(lengths[members], descending=True, stable=True)]
            batches += [members[j:j + bs] for j in range(0, len(members), bs)]
        return [batches[k] for k in torch.randperm(len(batches), generator=g).tolist()]

    @abc.abstractmethod
    def train_step(self, batch: Any) -> tuple[torch.Tensor, int, int]:
        """Forward one batch in training mode: (mean loss, number correct, number of examples).

        The loss must be the mean over the batch's examples of a per-example loss, so that a batch cut into pieces
        (micro-batches, processes) and their losses weighted by their shares of examples gives the same gradient.
        """

    def batch_length(self, batch: Any) -> int:
        """Examples in one of :meth:`train_batches`' batches."""
        return batch_length(batch)

    def slice_batch(self, batch: Any, start: int, stop: int) -> Any:
        """Examples ``start:stop`` of one of :meth:`train_batches`' batches, itself a batch for :meth:`train_step`."""
        return slice_batch(batch, start, stop)

    @abc.abstractmethod
    def evaluate(self, split: str, progress: ProgressFn | None = None) -> EvalResult:
        """Metrics (and per-example predictions) on "val" or "test"."""

    def has_split(self, name: str) -> bool:
        """True when ``name`` is loaded and not empty (a run without a validation split skips it)."""
        split = getattr(self, "splits", {}).get(name)
        return split is not None and len(split) > 0

    # -- inference ------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def predict_one(self, inputs: dict, top_k: int = 5) -> dict:
        """The model's answer for one input, given by the TaskSpec's input names (``{"text": ...}``)."""

    def predict(self, top_k: int = 5, **inputs) -> dict:
        """One prediction from the inputs the task declares (``TaskSpec.inputs``); one sentence when one is
        missing.

        >>> task.predict(text="Wash your hands")["label"]   # doctest: +SKIP
        'real'
        """
        missing = [f for f in self.task_spec.inputs if inputs.get(f.name) is None]
        if missing:
            raise BadInputError(f"Give {' and '.join(f'the {f.help}' for f in missing)}.")
        return self.predict_one({f.name: inputs[f.name] for f in self.task_spec.inputs}, top_k=top_k)

    def describe(self) -> dict:
        """Facts about the data for config.json (labels, sizes, sources)."""
        return {}

    # -- weights --------------------------------------------------------------------------------------------
    def state_to_save(self) -> dict[str, torch.Tensor]:
        """Trainable parameters and every buffer; frozen weights are rebuilt from their source on reopening."""
        trainable = {n for n, p in self.model.named_parameters() if p.requires_grad}
        buffers = {n for n, _ in self.model.named_buffers()}
        return {k: v for k, v in self.model.state_dict().items() if k in trainable or k in buffers}

    def frozen_fingerprint(self) -> float:
        """A cheap checksum of the frozen weights, to check that reopening rebuilt the same ones."""
        total = 0.0
        for p in self.model.parameters():
            if not p.requires_grad:
                total += float(p.detach().double().abs().sum())
        return total

    def load_state(self, tensors: dict[str, torch.Tensor], fingerprint: float | None = None) -> None:
        result = self.model.load_state_dict(tensors, strict=False)
        if result.unexpected_keys:
            raise RunNotFoundError("The saved weights do not fit this model (unexpected tensors: "
                                   f"{', '.join(result.unexpected_keys[:3])}).")
        if fingerprint is not None:
            now = self.frozen_fingerprint()
            if abs(now - fingerprint) > 1e-6 * max(1.0, abs(fingerprint)):
                raise RunNotFoundError("The frozen weights rebuilt for this run differ from the ones it was "
                                       "trained with (the pretrained source changed), so it cannot be reopened.")
