"""demo/warmup.py: at launch the default model of each prediction tab is loaded in the background, the same one
the tab's first picker shows (the best completed run, else a registry model with real weights); a model that
cannot load is skipped with its sentence; TRANSFER_LAB_WARMUP turns it off."""
from __future__ import annotations

import shutil

import pytest

pytest.importorskip("gradio")

from core.errors import BadSettingError  # noqa: E402
from demo import warmup  # noqa: E402
from demo.state import predictors  # noqa: E402

pytestmark = pytest.mark.usefixtures("offline")



def test_warm_loads_what_each_tab_shows_by_default(app_store, tiny_image_run):
    run = shutil.copytree(tiny_image_run, app_store / tiny_image_run.name)
    refs = dict(warmup.default_refs(("images", "tweets")))
    assert refs == {"images": str(run), "tweets": "model:minilm"}  # the completed run; the packaged model
    assert not predictors().loaded(str(run))
    done = warmup.warm(("images", "tweets"))
    assert [(d["task"], d["ref"], d["error"]) for d in done] == [("images", str(run), None),
                                                                  ("tweets", "model:minilm", None)]
    assert predictors().loaded(str(run)) and predictors().loaded("model:minilm")  # the tabs' first answers wait no more


def test_a_model_that_cannot_load_is_skipped_with_its_sentence(app_store, monkeypatch):
    monkeypatch.setattr(warmup, "default_refs", lambda tasks: [("images", str(app_store / "gone")),
                                                               ("tweets", "model:minilm")])
    done = warmup.warm()
    assert done[0]["error"] and "\n" not in done[0]["error"] and done[0]["error"].endswith(".")
    assert done[1]["error"] is None  # the next model still loads


def test_the_setting(monkeypatch):
    for value, on in (("", True), ("1", True), ("on", True), ("0", False), ("off", False)):
        monkeypatch.setenv("TRANSFER_LAB_WARMUP", value)
        assert warmup.enabled() is on
    monkeypatch.setenv("TRANSFER_LAB_WARMUP", "0")
    assert warmup.start() is None
    monkeypatch.setenv("TRANSFER_LAB_WARMUP", "maybe")
    with pytest.raises(BadSettingError, match="TRANSFER_LAB_WARMUP must be 1 or 0"):
        warmup.enabled()
