"""Training strategies as data: which parameter groups each strategy trains.

Every model built through the registry answers two questions (the :class:`Freezable` protocol):
``head_modules()`` (the new task head) and ``last_block_modules()`` (the last backbone block and the norm layers
after it). A strategy is then just the set of groups it leaves trainable. Frozen modules are also kept in eval
mode while training (:func:`set_train_mode`), so frozen BatchNorm layers keep their running statistics and frozen
dropout stays off, which is what makes a frozen prefix deterministic and its outputs cacheable.

>>> apply_strategy(model, "feature_extraction")   # doctest: +SKIP
>>> count_parameters(model)                       # doctest: +SKIP
{'trainable': 494346, 'total': 18586890}
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # annotations only: importing the strategy table must not import torch
    from torch import nn

from core.errors import UnknownStrategyError


class Freezable(Protocol):
    def head_modules(self) -> list[nn.Module]: ...

    def last_block_modules(self) -> list[nn.Module]: ...


@dataclass(frozen=True)
class Strategy:
    name: str
    random_init: bool  # backbone starts from random weights instead of pretrained ones
    train_last_block: bool
    train_backbone: bool  # everything trainable
    description: str


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("scratch", True, True, True, "random initialisation, every parameter trained"),
        Strategy("feature_extraction", False, False, False, "pretrained backbone frozen, only the new head trained"),
        Strategy("last_block", False, True, False, "last backbone block (and the norm after it) plus the head trained"),
        Strategy("full", False, True, True, "pretrained backbone and head, every parameter trained"),
    )
}


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise UnknownStrategyError(
            f"Unknown strategy '{name}'. Choose one of: {', '.join(STRATEGIES)}."
        ) from None


def trainable_roots(model: Freezable, strategy: str) -> list[nn.Module]:
    """The modules whose parameters a strategy trains (the whole model for scratch/full)."""
    s = get_strategy(strategy)
    if s.train_backbone:
        return [model]  # type: ignore[list-item]
    roots = list(model.head_modules())
    if s.train_last_block:
        roots += list(model.last_block_modules())
    return roots


def apply_strategy(model: nn.Module, strategy: str) -> nn.Module:
    """Set ``requires_grad`` so that exactly the strategy's groups train. Returns the model."""
    roots = trainable_roots(model, strategy)  # type: ignore[arg-type]
    model.requires_grad_(False)
    for m in roots:
        m.requires_grad_(True)
    model.transfer_strategy = strategy  # remembered by set_train_mode
    return model


def set_train_mode(model: nn.Module, training: bool = True) -> nn.Module:
    """Like ``model.train(training)``, but frozen parts stay in eval mode (BatchNorm statistics, dropout off)."""
    strategy = getattr(model, "transfer_strategy", "full")
    if not training:
        return model.eval()
    roots = trainable_roots(model, strategy)  # type: ignore[arg-type]
    model.eval()
    for m in roots:
        m.train()
    return model


def count_parameters(model: nn.Module) -> dict[str, int]:
    """``{"trainable": n, "total": m}``, counting shared parameters once."""
    seen: set[int] = set()
    trainable = total = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return {"trainable": trainable, "total": total}


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters the optimizer should see: frozen ones never reach it."""
    return [p for p in model.parameters() if p.requires_grad]
