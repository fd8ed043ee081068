"""``python -m core prefetch`` (core/prefetch.py) without network: its plan, and its answers against the stand-in Hub.

The stand-in (tests/hub/standin.py) lays out the caches a machine with internet would have filled: every text
model and tokenizer, one timm model (efficientnet_lite0) and the three data sets. A subprocess with HF_HUB_OFFLINE=1
and the HF cache variables pointing there must report those "already cached", every other item "failed" with the
reason, exit 2 with one sentence on stderr, and answer in seconds. Fetching itself needs internet; here the
fetching path is run with the stand-in as the "Hub" (HF_HUB_OFFLINE=1 makes the loaders read the cache).
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

for _package in ("torch", "transformers", "timm", "datasets", "safetensors", "huggingface_hub"):
    pytest.importorskip(_package, reason=f"the prefetch tests need the package {_package}")

from core import prefetch, registry  # noqa: E402
from core.tasks.images.data import CIFAR10_HUB_ID  # noqa: E402
from core.tasks.qa.data import PQUAD_HUB_ID  # noqa: E402
from core.tasks.tweets.data import HUB_DATASET_ID  # noqa: E402

if "hub_standin" in sys.modules:  # test_hub_paths.py loaded it already
    standin = sys.modules["hub_standin"]
else:
    _spec = importlib.util.spec_from_file_location("hub_standin", Path(__file__).with_name("standin.py"))
    standin = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = standin  # dataclasses look their module up there
    _spec.loader.exec_module(standin)

REPO = Path(__file__).resolve().parents[2]
TIMM_STOOD_IN = {"efficientnet_lite0": "float32"}  # the smallest timm model: enough to see one image hit
_CACHE_OVERRIDES = ("HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE", "HF_ASSETS_CACHE", "HF_DATASETS_CACHE",
                    "HF_HUB_CACHE", "HF_HOME", "HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE",
                    "TRANSFER_LAB_OFFLINE")
OFFLINE_SECONDS = 60  # the whole offline CLI run, imports included, on 2 shared cores (it takes ~4 s)


def _env(root: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _CACHE_OVERRIDES}
    env.update(HF_HOME=str(root / "home"), HF_HUB_CACHE=str(root / "hub"), HF_DATASETS_CACHE=str(root / "datasets"),
               TRANSFER_LAB_DATA=str(root / "no_local_data"), TRANSFER_LAB_CACHE=str(root / "transfer_lab_cache"),
               HF_HUB_DISABLE_TELEMETRY="1", TOKENIZERS_PARALLELISM="false", **extra)
    return env


def _cli(root: Path, *args: str, **extra) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "core", "prefetch", *args], cwd=REPO, env=_env(root, **extra),
                          capture_output=True, text=True, timeout=300)
    return proc, time.perf_counter() - start


@pytest.fixture(scope="module")
def standin_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("prefetch_standin")
    standin.lay_out(root, TIMM_STOOD_IN)
    (root / "no_local_data").mkdir()
    return root


def _stood_in() -> set[tuple[str, str]]:
    held = {(kind, repo) for repo in standin.text_repos() for kind in ("model", "tokenizer")}
    held |= {("model", registry.get(name).hub_id) for name in TIMM_STOOD_IN}
    return held | {("dataset", d) for d in (HUB_DATASET_ID, PQUAD_HUB_ID, CIFAR10_HUB_ID)}


# ------------------------------------------------------------------------------------------- the plan
def test_plan_for_tweets():
    items = prefetch.plan("tweets")
    assert [(i.kind, i.id) for i in items] == [
        ("model", "bert-base-uncased"), ("model", "digitalepidemiologylab/covid-twitter-bert-v2"),
        ("model", "sentence-transformers/all-MiniLM-L6-v2"),
        ("tokenizer", "bert-base-uncased"), ("tokenizer", "digitalepidemiologylab/covid-twitter-bert-v2"),
        ("tokenizer", "sentence-transformers/all-MiniLM-L6-v2"),
        ("dataset", HUB_DATASET_ID),
    ]
    by_id = {(i.kind, i.id): i for i in items}
    assert by_id[("model", "bert-base-uncased")].used_by == ["bert_base", "bert_bigru"]
    assert by_id[("model", "sentence-transformers/all-MiniLM-L6-v2")].used_by == ["minilm", "minilm_bigru"]
    assert {i.task for i in items} == {"tweets"}


def test_plan_covers_every_registry_hub_id_and_every_tasks_data_set():
    items = prefetch.plan()
    keys = [(i.kind, i.id) for i in items]
    assert len(keys) == len(set(keys)), "one item per hub id and kind"
    assert {i.task for i in items if i.kind == "dataset"} == set(registry.task_names()), "every task's data set"
    specs = [s for s in registry.list_models() if s.hub_id]
    assert {i.id for i in items if i.kind == "model"} == {s.hub_id for s in specs}
    assert {i.id for i in items if i.kind == "tokenizer"} == {s.hub_id for s in specs if s.task in ("tweets", "qa")}
    assert {i.id for i in items if i.kind == "dataset"} == {HUB_DATASET_ID, PQUAD_HUB_ID, CIFAR10_HUB_ID}
    assert sorted(n for i in items if i.kind == "model" for n in i.used_by) == sorted(s.name for s in specs)


# ------------------------------------------------------------------------------------------- offline, the CLI
def test_offline_against_the_standin_reports_cached_and_failed_items(standin_root):
    proc, seconds = _cli(standin_root, "--json", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    assert proc.returncode == 2, proc.stderr[-3000:]
    report = json.loads(proc.stdout)  # one JSON document
    assert seconds < OFFLINE_SECONDS, f"the offline answer took {seconds:.0f}s"
    assert report["hub_reachable"] is False and report["complete"] is False
    assert report["hub_cache"] == str(standin_root / "hub")
    rows = {(r["kind"], r["id"]): r for r in report["items"]}
    assert set(rows) == {(i.kind, i.id) for i in prefetch.plan()}
    held = _stood_in()
    for key, row in rows.items():
        if key in held:
            assert row["status"] == "already cached", row
            assert row["reason"] == ""
        else:
            assert row["status"] == "failed", row
            assert row["reason"].startswith(prefetch.UNREACHABLE) and row["reason"].endswith("."), row
            assert key[1] in row["reason"]
        assert isinstance(row["seconds"], (int, float)) and row["seconds"] >= 0
    failed = sum(r["status"] == "failed" for r in rows.values())
    assert failed == len(rows) - len(held) > 0
    assert report["counts"] == {"fetched": 0, "already cached": len(held), "failed": failed}
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"{failed} of {len(rows)}" in lines[0], proc.stderr


def test_offline_a_task_that_is_all_cached_exits_0(standin_root):
    proc, _ = _cli(standin_root, "--task", "tweets", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.strip() == ""
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == len(prefetch.plan("tweets")) + 1  # one line per item and the summary
    assert all(line.startswith("already cached") for line in lines[:-1]), proc.stdout
    assert lines[-1].startswith("0 fetched, 7 already cached, 0 failed")


def test_offline_a_missing_data_set_split_is_reported(standin_root, tmp_path):
    """A datasets cache that lacks one split is not "already cached": an offline run of that split would fail."""
    import shutil

    root = tmp_path / "partial"
    root.mkdir()
    (root / "no_local_data").mkdir()
    shutil.copytree(standin_root / "hub", root / "hub", symlinks=True)
    shutil.copytree(standin_root / "datasets", root / "datasets")
    for arrow in (root / "datasets").glob("nanyy1025___covid_fake_news/*/*/*/covid_fake_news-test.arrow"):
        arrow.unlink()
    proc, _ = _cli(root, "--task", "tweets", "--json", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    assert proc.returncode == 2
    (row,) = [r for r in json.loads(proc.stdout)["items"] if r["kind"] == "dataset"]
    assert row["status"] == "failed" and "the test split of nanyy1025/covid_fake_news" in row["reason"]


def test_offline_with_empty_caches_answers_quickly_without_hf_hub_offline(tmp_path):
    """TRANSFER_LAB_OFFLINE=1 alone (huggingface_hub itself not told): nothing may wait on the network."""
    proc, seconds = _cli(tmp_path, "--json", TRANSFER_LAB_OFFLINE="1")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert seconds < OFFLINE_SECONDS
    report = json.loads(proc.stdout)
    assert report["counts"]["failed"] == len(report["items"]) == len(prefetch.plan())
    assert all(r["reason"].startswith(prefetch.UNREACHABLE) for r in report["items"])


# ------------------------------------------------------------------------------------------- the fetching path
_FETCH_SCRIPT = """
import json, sys
from core import prefetch
report = prefetch.prefetch(sys.argv[1], online=True)
print("PREFETCH-JSON " + json.dumps(report))
"""


@pytest.mark.parametrize("task", ["tweets", "qa"])
def test_fetching_path_loads_every_item_through_the_users_loaders(standin_root, task):
    """``online=True`` with HF_HUB_OFFLINE=1: each item goes through registry.build(weights="hub"), the tokenizer
    loaders and the data loaders' Hub path, which read the stand-in cache; everything is then found."""
    proc = subprocess.run([sys.executable, "-c", _FETCH_SCRIPT, task], cwd=REPO,
                          env=_env(standin_root, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1"),
                          capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("PREFETCH-JSON ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    report = json.loads(lines[-1][len("PREFETCH-JSON "):])
    assert report["hub_reachable"] is True
    bad = [r for r in report["items"] if r["status"] != "already cached"]
    assert not bad, bad


def test_fetching_never_stops_at_the_first_failure(monkeypatch):
    """Statuses online: fetched (absent before, found after), failed (the loader raised, or it loaded but an
    offline run would still not find it), already cached (found before and after)."""
    items = prefetch.plan("tweets")
    calls = []
    found_after = {}

    def fake_fetch(item):
        calls.append((item.kind, item.id))
        if item.id == "bert-base-uncased" and item.kind == "model":
            raise OSError("Connection reset by peer")
        found_after[(item.kind, item.id)] = item.kind != "tokenizer" or item.id != "bert-base-uncased"

    def fake_missing(item):
        key = (item.kind, item.id)
        if item.kind == "dataset":
            return None
        return None if found_after.get(key) else f"something of {item.id}"

    monkeypatch.setattr(prefetch, "_FETCH", {k: fake_fetch for k in prefetch.KINDS})
    monkeypatch.setattr(prefetch, "missing", fake_missing)
    report = prefetch.prefetch("tweets", online=True)
    assert calls == [(i.kind, i.id) for i in items]  # every item tried, in the plan's order
    status = {(r["kind"], r["id"]): r for r in report["items"]}
    assert status[("model", "bert-base-uncased")]["status"] == "failed"
    assert status[("model", "bert-base-uncased")]["reason"] == \
        "Fetching bert-base-uncased failed: Connection reset by peer."
    assert status[("tokenizer", "bert-base-uncased")]["status"] == "failed"
    assert "would not find something of bert-base-uncased" in status[("tokenizer", "bert-base-uncased")]["reason"]
    assert status[("model", "sentence-transformers/all-MiniLM-L6-v2")]["status"] == "fetched"
    assert status[("dataset", HUB_DATASET_ID)]["status"] == "already cached"
    assert report["counts"] == {"fetched": 4, "already cached": 1, "failed": 2}
    assert prefetch.failure_sentence(report) == ("2 of 7 items could not be fetched; a run on this machine without "
                                                 "network will not find them.")
