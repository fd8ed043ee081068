"""``python -m core prefetch``: fill this machine's Hugging Face caches so that it later runs without network.

:func:`plan` lists what the app can load from the Hub: every registry model's ``hub_id`` (its weights), the
tokenizer of every text model's hub id, and each task's data set Hub copy. :func:`prefetch` then takes each
item in turn and never stops at the first failure:

* Hub reachable (:func:`core.weights.hub_available`): the item is loaded through the same code a user's run
  calls -- ``registry.build(name, BuildRequest(weights="hub"))`` for models, the Hub branch of the tokenizer
  loaders, the data loaders' Hub path (``load_split(source="hub")``, PQuAD's Hub copy, ``load_cifar10_hub``) --
  so what lands in the caches is exactly what a later offline run reads (huggingface_hub's ``snapshot_download``
  would fetch whole repositories -- TensorFlow, Flax, ONNX copies -- and not the prepared arrow cache that
  ``datasets`` needs offline). Afterwards the item is checked the way an offline run would find it.
* Hub unreachable (no network, ``HF_HUB_OFFLINE=1`` or ``TRANSFER_LAB_OFFLINE=1``): nothing touches the
  network; each item is looked up in the local caches only, "already cached" or "failed" with the reason.

Each item becomes a :class:`Row`: kind (model / tokenizer / dataset), id, status (fetched / already cached /
failed), seconds, and one sentence when it failed.
"""
from __future__ import annotations

import gc
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from core import registry

KINDS = ("model", "tokenizer", "dataset")
FETCHED, CACHED, FAILED = "fetched", "already cached", "failed"
UNREACHABLE = "not fetched: the Hub cannot be reached"

# Weight files a transformers checkpoint may hold; a sharded one names its shards in the index.
_TRANSFORMERS_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
_TRANSFORMERS_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
# The one file timm's offline path reads from the Hub cache (core.tasks.images.models.build_timm_image_model).
_TIMM_WEIGHTS = "model.safetensors"


@dataclass(frozen=True)
class DatasetPlan:
    """A task's data set Hub copy: its id, the Hub splits an offline run reads, and how to load one split
    through the task's own loader (``load(split)``, ``split`` in the loader's own naming)."""

    hub_id: str
    hub_splits: tuple[str, ...]  # the split names datasets caches (covid_fake_news-validation.arrow, ...)
    loader_splits: tuple[str, ...]  # the same splits as the task's loader names them
    load: Callable[[str], object]


def dataset_plan(task_name: str) -> DatasetPlan:
    """A task's data set Hub copy, as its data.py declares it (TaskSpec.hub_dataset)."""
    return DatasetPlan(**registry.get_task(task_name).hub_dataset())


@dataclass
class Item:
    """One thing to fetch: a model's weights, a tokenizer or a data set, with the registry models that use it."""

    kind: str
    id: str
    task: str
    used_by: list[str] = field(default_factory=list)


@dataclass
class Row:
    kind: str
    id: str
    status: str
    seconds: float
    reason: str = ""
    used_by: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def plan(task: str | None = None) -> list[Item]:
    """What the app can load from the Hub (for one task, or all): models, then tokenizers, then data sets;
    one item per Hub id and kind, naming the registry models that use it."""
    tasks = [registry.get_task(task).name] if task else list(registry.task_names())
    items: dict[tuple[str, str], Item] = {}

    def add(kind: str, hub_id: str, task_name: str, user: str | None) -> None:
        item = items.setdefault((kind, hub_id), Item(kind, hub_id, task_name))
        if user and user not in item.used_by:
            item.used_by.append(user)

    for kind in ("model", "tokenizer"):
        for task_name in tasks:
            tokenizer = registry.get_task(task_name).tokenizer_loader()
            for spec in registry.list_models(task_name):
                if spec.hub_id and (kind == "model" or tokenizer is not None):
                    add(kind, spec.hub_id, task_name, spec.name)
    for task_name in tasks:
        add("dataset", dataset_plan(task_name).hub_id, task_name, None)
    return list(items.values())


# ------------------------------------------------------------------------------------------- the local caches
def _cached_file(repo_id: str, filename: str, repo_type: str = "model") -> str | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, repo_type=repo_type)
    return found if isinstance(found, str) else None


def _missing_model(item: Item) -> str | None:
    """None when an offline run finds the item's weights in the Hub cache, else what is missing."""
    if registry.get_task(registry.get(item.used_by[0]).task).image_inputs and item.id.startswith("timm/"):
        return None if _cached_file(item.id, _TIMM_WEIGHTS) else f"{_TIMM_WEIGHTS} of {item.id}"
    if not _cached_file(item.id, "config.json"):
        return f"config.json of {item.id}"
    if any(_cached_file(item.id, name) for name in _TRANSFORMERS_WEIGHTS):
        return None
    import json

    for index in _TRANSFORMERS_INDEXES:
        path = _cached_file(item.id, index)
        if path:
            shards = sorted(set(json.loads(Path(path).read_text()).get("weight_map", {}).values()))
            absent = [s for s in shards if not _cached_file(item.id, s)]
            return f"{len(absent)} weight shards of {item.id}" if absent else None
    return f"the weights file of {item.id}"


def _missing_tokenizer(item: Item) -> str | None:
    """Loads the tokenizer from the Hub cache only (what ``local_files_only`` reads offline): cheap and exact."""
    from transformers import AutoTokenizer

    try:
        AutoTokenizer.from_pretrained(item.id, local_files_only=True)
    except Exception as err:  # not cached, half cached, or a file that cannot be converted here
        return f"the tokenizer of {item.id} ({type(err).__name__})"
    return None


def _datasets_cache() -> Path:
    import datasets.config

    return Path(datasets.config.HF_DATASETS_CACHE)


def _missing_dataset(item: Item) -> str | None:
    """The prepared arrow cache ``datasets.load_dataset`` reads offline:
    ``<HF_DATASETS_CACHE>/<org>___<name>/<config>/<version>/<hash>/<name>-<split>[-NNNNN-of-NNNNN].arrow``."""
    data = dataset_plan(item.task)
    folder = _datasets_cache() / item.id.replace("/", "___")
    name = item.id.split("/")[-1]
    absent = [split for split in data.hub_splits
              if not any(folder.glob(f"*/*/*/{name}-{split}.arrow")) and
              not any(folder.glob(f"*/*/*/{name}-{split}-*-of-*.arrow"))]
    if not absent:
        return None
    return f"the {', '.join(absent)} split{'s' if len(absent) > 1 else ''} of {item.id} in {_datasets_cache()}"


_MISSING = {"model": _missing_model, "tokenizer": _missing_tokenizer, "dataset": _missing_dataset}


def missing(item: Item) -> str | None:
    """None when a run without network finds the item in this machine's caches, else what it would miss."""
    return _MISSING[item.kind](item)


# ------------------------------------------------------------------------------------------- fetching
def _fetch_model(item: Item) -> None:
    spec = registry.get(item.used_by[0])
    request = registry.BuildRequest(num_classes=registry.get_task(spec.task).num_outputs, weights="hub")
    model = registry.build(spec.name, request)
    del model
    gc.collect()


def _fetch_tokenizer(item: Item) -> None:
    tokenizer = registry.get_task(item.task).tokenizer_loader()(item.used_by[0])
    if getattr(tokenizer, "transfer_lab_source", "") != f"hub:{item.id}":
        # The loader preferred an offline package; an offline run without it reads the Hub copy, so fetch that
        # too, through the same call the loaders' Hub branch makes.
        from transformers import AutoTokenizer

        from core.tasks.tweets.models import _from_pretrained

        _from_pretrained(AutoTokenizer, item.id)


def _fetch_dataset(item: Item) -> None:
    data = dataset_plan(item.task)
    for split in data.loader_splits:
        data.load(split)
        gc.collect()


_FETCH = {"model": _fetch_model, "tokenizer": _fetch_tokenizer, "dataset": _fetch_dataset}


def _sentence(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    text = text if len(text) <= 300 else text[:297] + "..."
    return text if text.endswith((".", "?", "!")) else text + "."


def prefetch_item(item: Item, online: bool) -> Row:
    start = time.perf_counter()

    def row(status: str, reason: str = "") -> Row:
        return Row(item.kind, item.id, status, round(time.perf_counter() - start, 2), reason, list(item.used_by))

    try:
        absent = missing(item)
    except Exception as err:  # a cache that cannot be read counts as absent
        absent = f"{item.id} ({type(err).__name__}: {_sentence(err)})"
    if not online:
        if absent is None:
            return row(CACHED)
        return row(FAILED, f"{UNREACHABLE} and this machine's cache lacks {absent}.")
    try:
        _FETCH[item.kind](item)
    except Exception as err:  # recorded; the next item is still fetched
        return row(FAILED, f"Fetching {item.id} failed: {_sentence(err)}")
    try:
        after = missing(item)
    except Exception as err:
        after = f"{item.id} ({type(err).__name__})"
    if after is not None:
        return row(FAILED, f"{item.id} loaded, but a run without network would not find {after} in the cache.")
    return row(CACHED if absent is None else FETCHED)


def prefetch(task: str | None = None, on_row: Callable[[Row], None] | None = None,
             online: bool | None = None) -> dict:
    """Fetch (or, without the Hub, look up) every item of :func:`plan`; one JSON-able report.

    ``online`` (default: :func:`core.weights.hub_available`) chooses between fetching through the loaders and
    looking in the caches only; tests set it to run the fetching path against a stand-in cache.
    """
    if online is None:
        from core.weights import hub_available

        online = hub_available()
    rows = []
    for item in plan(task):
        result = prefetch_item(item, online)
        rows.append(result)
        if on_row is not None:
            on_row(result)
    counts = {status: sum(r.status == status for r in rows) for status in (FETCHED, CACHED, FAILED)}
    return {"hub_reachable": online, "task": task, "hub_cache": _hub_cache(), "datasets_cache": str(_datasets_cache()),
            "items": [r.to_json() for r in rows], "counts": counts, "complete": counts[FAILED] == 0}


def _hub_cache() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def failure_sentence(report: dict) -> str | None:
    """One sentence for stderr when something could not be fetched, else None."""
    failed = report["counts"][FAILED]
    if not failed:
        return None
    why = " (the Hub cannot be reached)" if not report["hub_reachable"] else ""
    return (f"{failed} of {len(report['items'])} items could not be fetched{why}; a run on this machine without "
            "network will not find them.")
