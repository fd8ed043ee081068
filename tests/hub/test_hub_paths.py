"""The Hub path, run against a stand-in Hub (tests/hub/standin.py): what Spaces and any laptop with internet load.

The stand-in lays out the Hugging Face caches in a temporary folder; one subprocess, with HF_HUB_OFFLINE=1 and
HF_HOME / HF_HUB_CACHE / HF_DATASETS_CACHE pointing there (huggingface_hub reads them when imported), loads every
registry text model, two timm models, their tokenizers and the three data sets' Hub copies through the code users
run (``registry.build(..., weights="hub")``, ``load_tokenizer``, ``load_split(source="hub")``, ``load_pquad`` with no
local folder, ``load_cifar10_hub``) and prints JSON; the tests compare it with what the stand-in wrote.
The other timm models are checked by id only: timm resolves their hub id without downloading anything.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

for _package in ("torch", "transformers", "timm", "datasets", "safetensors", "huggingface_hub"):
    pytest.importorskip(_package, reason=f"the stand-in Hub test needs the package {_package}")

from core import registry  # noqa: E402

_spec = importlib.util.spec_from_file_location("hub_standin", Path(__file__).with_name("standin.py"))
standin = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = standin  # dataclasses look their module up there
_spec.loader.exec_module(standin)

TEXT_MODELS = [s.name for s in registry.list_models() if s.task in ("tweets", "qa")]
IMAGE_HUB_MODELS = [s.name for s in registry.list_models("images") if s.hub_id]
# Tokenizers that no offline package stands in for: with or without the packages they come from the Hub cache.
HUB_ONLY_TOKENIZERS = ("bert_base", "bert_bigru", "ctbert_bigru", "parsbert", "albert_fa", "distilbert_fa_pquad")
# Variables that would point huggingface_hub or transformers elsewhere than the stand-in.
_CACHE_OVERRIDES = ("HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE", "HF_ASSETS_CACHE", "HF_DATASETS_CACHE",
                    "HF_HUB_CACHE", "HF_HOME", "HF_ENDPOINT")


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """(what the stand-in wrote, what the subprocess loaded through core)."""
    root = tmp_path_factory.mktemp("standin_hub")
    expected = standin.lay_out(root)
    (root / "no_local_data").mkdir()  # TRANSFER_LAB_DATA: no pquad/ folder, so load_pquad goes to the Hub
    env = {k: v for k, v in os.environ.items() if k not in _CACHE_OVERRIDES}
    env.update(HF_HOME=str(root / "home"), HF_HUB_CACHE=str(root / "hub"), HF_DATASETS_CACHE=str(root / "datasets"),
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFER_LAB_OFFLINE="1",
               TRANSFER_LAB_DATA=str(root / "no_local_data"), TRANSFER_LAB_CACHE=str(root / "transfer_lab_cache"),
               HF_HUB_DISABLE_TELEMETRY="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run([sys.executable, str(Path(standin.__file__)), "load", str(root),
                           ",".join(standin.TIMM_LOADED)], env=env, capture_output=True, text=True, timeout=900)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("STANDIN-JSON ")]
    if proc.returncode != 0 or not lines:
        pytest.fail(f"the loading subprocess failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}")
    return expected, json.loads(lines[-1][len("STANDIN-JSON "):])


def _no_error(found, key):
    assert key not in found["errors"], found["errors"][key]


def _assert_holds(loaded: dict[str, str], written: dict[str, str], what: str) -> None:
    """Every tensor of the loaded module is the one written under the same name (none freshly initialised)."""
    assert loaded, f"{what}: nothing loaded"
    missing = sorted(set(loaded) - set(written))
    assert not missing, f"{what}: tensors not in the stand-in checkpoint (left at their initial values): {missing}"
    differ = sorted(k for k in loaded if loaded[k] != written[k])
    assert not differ, f"{what}: tensors that differ from the stand-in checkpoint: {differ}"


# ------------------------------------------------------------------------------------------- text models
@pytest.mark.parametrize("name", TEXT_MODELS)
def test_text_model_loads_the_hub_checkpoint(hub, name):
    expected, found = hub
    spec = registry.get(name)
    _no_error(found, f"build:{name}")
    record = found["models"][name]
    assert record["weights"] == {"kind": "hub", "id": spec.hub_id, "detail": ""}
    _assert_holds(record["encoder"], expected["text"][spec.hub_id]["encoder"], f"{name} encoder")
    if spec.task == "tweets" and spec.family == "bert":  # the pooled head reads the checkpoint's pooler
        assert "pooler.dense.weight" in record["encoder"]


@pytest.mark.parametrize("name", [n for n in TEXT_MODELS if registry.get(n).task == "qa"])
def test_qa_head_is_the_checkpoints_qa_layer_only_when_fine_tuned(hub, name):
    expected, found = hub
    spec = registry.get(name)
    _no_error(found, f"build:{name}")
    record = found["models"][name]
    head = {k.removeprefix("qa_outputs."): v for k, v in record["head"].items()}
    written = expected["text"][spec.hub_id].get("qa_outputs")
    if spec.finetuned_head:
        assert written is not None, f"the stand-in of {spec.hub_id} should be a ...ForQuestionAnswering checkpoint"
        assert head == written
        assert record["head_is_trained"] is True
    else:
        assert written is None and set(head) == {"weight", "bias"}
        assert record["head_is_trained"] is False


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_tokenizer_loads_from_the_hub_snapshot(hub, name):
    """With the offline packages hidden, the tokenizer comes from the Hub cache: the stand-in's vocabulary, and the
    model runs on what it tokenises."""
    expected, found = hub
    spec = registry.get(name)
    _no_error(found, f"hub-tokenizer:{name}")
    record = found["hub_tokenizers"][name]
    written = expected["text"][spec.hub_id]
    sample = standin.SAMPLE_ENGLISH if spec.task == "tweets" else standin.SAMPLE_PERSIAN
    assert record["source"] == f"hub:{spec.hub_id}"
    assert record["vocab_size"] == written["vocab_size"]
    assert record["sample_ids"] == written["sample_ids"][sample]
    assert record["forward_shape"] == ([1] if spec.task == "tweets" else [1, 32])


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_tokenizer_source_with_the_offline_packages_installed(hub, name):
    """Where the packages stand in (MiniLM; e5 and, offline, the XLM-R models) they are asked first; the others
    still read the Hub cache."""
    _, found = hub
    spec = registry.get(name)
    _no_error(found, f"tokenizer:{name}")
    source = found["tokenizers"][name]["source"]
    if name in HUB_ONLY_TOKENIZERS:
        assert source == f"hub:{spec.hub_id}"
    else:
        assert source == f"hub:{spec.hub_id}" or source.startswith("package:")


@pytest.mark.parametrize("name", standin.AUTO_CHECKED)
def test_auto_weights_read_the_hub_cache_when_the_hub_is_unreachable(hub, name):
    _, found = hub
    _no_error(found, f"auto:{name}")
    assert found["auto"][name] == {"kind": "hub", "id": registry.get(name).hub_id, "detail": ""}


def test_every_hub_text_repo_of_the_registry_is_stood_in():
    hub_ids = {registry.get(n).hub_id for n in TEXT_MODELS}
    assert hub_ids == set(standin.text_repos())


# ------------------------------------------------------------------------------------------- timm
@pytest.mark.parametrize("name", IMAGE_HUB_MODELS)
def test_timm_resolves_the_registry_hub_id(name):
    """What ``timm.create_model(f"{timm_name}.{tag}", pretrained=True)`` would download: the registry's repo, and
    there the default weights file (model.safetensors, else pytorch_model.bin), no custom loader."""
    from timm.models import get_pretrained_cfg

    hub_id = registry.get(name).hub_id
    assert hub_id.startswith("timm/")
    cfg = get_pretrained_cfg(hub_id.removeprefix("timm/"))  # RuntimeError for an unknown name or tag
    assert cfg.hf_hub_id == hub_id
    assert cfg.hf_hub_filename is None and not cfg.custom_load


@pytest.mark.parametrize("name", list(standin.TIMM_LOADED))
def test_timm_model_loads_the_hub_weights(hub, name):
    expected, found = hub
    _no_error(found, f"build:{name}")
    record = found["models"][name]
    assert record["weights"] == {"kind": "hub", "id": registry.get(name).hub_id, "detail": ""}
    written = expected["timm"][name]["backbone"]
    _assert_holds(record["backbone"], written, f"{name} backbone")
    # num_classes=0 drops the ImageNet classifier; everything else of the file is in the backbone.
    assert len(written) - len(record["backbone"]) in (2, 4)  # head (+ head_dist for DeiT) weight and bias
    assert record["logits_shape"] == [1, 10]


# ------------------------------------------------------------------------------------------- data sets
@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_tweets_from_the_hub_copy(hub, split):
    _, found = hub
    _no_error(found, f"tweets:{split}")
    want = [[str(i), text, 1 if label == "real" else 0] for i, text, label in standin.TWEET_ROWS[split]]
    assert found["data"][f"tweets:{split}"] == want


@pytest.mark.parametrize("split", ["validation", "test", "train"])
def test_pquad_from_the_hub_copy_without_a_local_folder(hub, split):
    _, found = hub
    _no_error(found, f"pquad:{split}")
    want = [[str(int(r["id"])), r["question"], [list(p) for p in zip(r["answers"]["text"], r["answers"]["answer_start"])],
             not r["answers"]["text"]] for r in standin.PQUAD_ROWS[split]]
    assert found["data"][f"pquad:{split}"] == want


@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar10_from_the_hub_copy(hub, split):
    _, found = hub
    _no_error(found, f"cifar:{split}")
    got = found["data"][f"cifar:{split}"]
    labels = standin.CIFAR_LABELS[split]
    assert got["shape"] == [len(labels), 3, 32, 32] and got["dtype"] == "torch.uint8"
    assert got["labels"] == labels
    assert tuple(got["classes"]) == standin.CIFAR_CLASSES
    assert got["corner"] == [[len(split), i, 200] for i in range(len(labels))]  # (3, H, W): pixel (0, 0) per image
    assert got["band"] == 250.0  # rows 5-8 of the green channel: the image is not transposed
    assert got["ids"] == [f"{split}/{i:05d}" for i in range(len(labels))]
    assert got["source"] == "hub:uoft-cs/cifar10"
