"""Nothing heavy at import: the registry, the task data modules, the model declarations, explanations, metrics and
int8 quantisation load without torch, transformers, timm, captum, scikit-learn & co (issue 12, item 5).

The app's first page and ``python -m core models`` list every model and the explanation methods that apply to it;
that needs the registry's declarations only. The networks (``core/tasks/<task>/nets.py``), the explanation
methods' tensor code and scikit-learn are imported when a model is built, explained or scored.

Checked in a fresh interpreter (this test process has long imported torch); one subprocess for all modules, so the
test takes about a second.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Imported in this order; each entry reports the heavy packages its own import added (so only the culprit fails).
LIGHT_MODULES = (
    "core.registry",
    "core.weights",
    "core.tasks.images.data",
    "core.tasks.tweets.data",
    "core.tasks.qa.data",
    "core.tasks.images.models",
    "core.tasks.tweets.models",
    "core.tasks.qa.models",
    "core.explain",
    "core.explain.command",
    "core.metrics",
    "core.quantize",
    "core.store.runs",
    "core.store.report",
)
HEAVY = ("torch", "transformers", "timm", "torchvision", "captum", "sklearn", "scipy", "datasets", "pandas",
         "safetensors", "tokenizers")

_PROBE = """
import importlib, json, sys
heavy = set(HEAVY)
def loaded():
    return sorted(heavy & {m.split(".")[0] for m in sys.modules})
report = {}
for name in MODULES:
    before = loaded()
    importlib.import_module(name)
    report[name] = [m for m in loaded() if m not in before]  # what this import added
# What the first page and `python -m core models` do with them: every model's spec and its explanation methods.
from core import registry
from core.explain import methods_for
report["registry.list_models + methods_for"] = [len(registry.list_models()),
                                               sum(len(methods_for(s)) for s in registry.list_models())]
report["after listing"] = loaded()
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def report() -> dict:
    code = _PROBE.replace("HEAVY", repr(HEAVY)).replace("MODULES", repr(LIGHT_MODULES))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_module_imports_nothing_heavy(report, module):
    assert report[module] == [], f"importing {module} imported {', '.join(report[module])}"


def test_listing_every_model_and_its_explanations_imports_nothing_heavy(report):
    n_models, n_methods = report["registry.list_models + methods_for"]
    assert n_models > 10 and n_methods > n_models  # every task's models were registered and matched
    assert report["after listing"] == []


@pytest.mark.parametrize("task", ["images", "tweets", "qa"])
def test_names_moved_to_nets_still_resolve_from_models(task):
    """``core.tasks.<task>.models.X`` is the same object as ``core.tasks.<task>.nets.X`` for every moved name."""
    import importlib

    models = importlib.import_module(f"core.tasks.{task}.models")
    nets = importlib.import_module(f"core.tasks.{task}.nets")
    assert models._FROM_NETS
    for name in models._FROM_NETS:
        assert getattr(models, name) is getattr(nets, name), name
        assert name in dir(models)
    with pytest.raises(AttributeError):
        models.no_such_name  # noqa: B018


def test_gridtap_still_resolves_from_gradcam():
    from core.explain import gradcam
    from core.explain.gridtap import GridTap

    assert gradcam.GridTap is GridTap


def test_the_app_module_imports_no_deep_learning_package():
    """``import demo`` (what ``python app.py`` does before building the page) loads gradio and its own needs
    (pandas, numpy), but no torch, transformers, timm, captum or scikit-learn: those come with the first model."""
    code = ("import json, sys; import demo; "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(%r))))" % (HEAVY,))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1])) - {"pandas"}  # gradio imports pandas itself
    assert loaded == set(), f"import demo imported {', '.join(sorted(loaded))}"
