"""What every explanation method is and returns: the :class:`Method` interface and the :class:`Explanation` record.

An explanation is data, never a picture: per-token scores, a grid over the image, or a token-by-token matrix, with
what was explained (the target) and how far to trust it (the completeness gap of Integrated Gradients, notes such
as "these are random weights"). Rendering lives elsewhere (:mod:`core.explain.png`, the UI).

>>> Explanation("integrated_gradients", "tokens", [0.5, -0.25], tokens=["[CLS]", "masks"]).to_json()["kind"]
'tokens'
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import numpy as np

KINDS = ("tokens", "grid", "matrix")


def _plain(value: Any, digits: int | None = 6) -> Any:
    """Tensors and arrays -> nested lists of floats (rounded), tuples -> lists, dicts recursively."""
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().float().cpu().numpy()
    if isinstance(value, np.ndarray):
        value = np.round(value.astype(np.float64), digits) if digits is not None and value.dtype.kind == "f" else value
        return value.tolist()
    if isinstance(value, (np.floating, float)):
        return round(float(value), digits) if digits is not None else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, dict):
        return {str(k): _plain(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, digits) for v in value]
    return value


@dataclass
class Explanation:
    """One explanation of one prediction.

    kind: "tokens" (``values[i]`` scores ``tokens[i]``), "grid" (``values`` is (H, W) at the model's input size, or
    (k, h, w) for k feature maps; ``grid`` gives its shape) or "matrix" (``values`` is (T, T) over ``tokens``).
    target / target_name: what was explained (a class index, or QA's [start, end] token positions and the answer).
    completeness_gap: Integrated Gradients only, ``|sum(attr) - (f(x) - f(baseline))| / |f(x) - f(baseline)|``.
    extras: small side results a UI may show (the coarse feature-map grid, the attention rollout, the prediction);
    never a whole layers x heads x T x T stack.
    """

    method: str
    kind: str
    values: Any
    tokens: list[str] | None = None
    grid: tuple[int, ...] | None = None
    target: int | list[int] | None = None
    target_name: str = ""
    completeness_gap: float | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    extras: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown explanation kind {self.kind!r}; one of {KINDS}")

    def array(self) -> np.ndarray:
        """``values`` as a float32 numpy array."""
        values = self.values.detach().cpu().numpy() if hasattr(self.values, "detach") else self.values
        return np.asarray(values, dtype=np.float32)

    def to_json(self) -> dict:
        return {
            "method": self.method, "kind": self.kind, "values": _plain(self.values),
            "tokens": list(self.tokens) if self.tokens is not None else None,
            "grid": list(self.grid) if self.grid is not None else None,
            "target": _plain(self.target), "target_name": self.target_name,
            "completeness_gap": _plain(self.completeness_gap), "seconds": round(float(self.seconds), 4),
            "notes": list(self.notes), "extras": _plain(self.extras),
        }


class Method(abc.ABC):
    """One explanation method. Subclasses set ``name`` and ``kind`` and implement ``applies_to`` and ``explain``.

    ``applies_to(spec)`` answers from a ModelSpec alone (no model is built), so the UI can offer only what applies;
    ``explain(task_run, inputs, target=None, **settings)`` explains one prediction of ``task_run.model`` and leaves
    every hook, flag and mode of the model as it found it (:func:`core.explain.hygiene.explaining`).
    """

    name: str = ""
    kind: str = ""
    description: str = ""

    @abc.abstractmethod
    def applies_to(self, spec) -> bool:
        """Whether this method explains models of this ModelSpec."""

    @abc.abstractmethod
    def explain(self, task_run, inputs: dict, target=None, **settings) -> Explanation:
        """One prediction of ``task_run.model`` explained."""
