"""The prediction tabs' model lists follow the run store: a run finished after the app was built is listed on page
load (no Refresh click) and is the default when it is the best; a deleted run goes; models this machine cannot
run are not offered, and the line under the pickers says which run is the default and what is left out."""
from __future__ import annotations

import json
import shutil

import pytest

gr = pytest.importorskip("gradio")

from core.starter import check_models, unavailable_reason  # noqa: E402
from demo import images_tab, qa_tab  # noqa: E402
from demo.pickers import follow_store  # noqa: E402
from demo.state import best_run, model_choices, unrunnable_models  # noqa: E402

pytestmark = pytest.mark.usefixtures("offline")



def _copy_run(source, root, name: str, accuracy: float | None = None):
    target = root / name
    shutil.copytree(source, target)
    if accuracy is not None:
        metrics = json.loads((target / "metrics.json").read_text())
        (target / "metrics.json").write_text(json.dumps({**metrics, "accuracy": accuracy}))
    return target


def _build_images_tab():
    with gr.Blocks(analytics_enabled=False) as app:
        lists = images_tab.build()
    return app, lists


def _load_dependency(app, api_name: str) -> dict:
    config = app.get_config_file()
    (dep,) = [d for d in config["dependencies"] if d.get("api_name") == api_name]
    return dep


def test_a_run_finished_after_the_app_was_built_is_listed_on_load_and_is_the_default(app_store, tiny_image_run):
    app, lists = _build_images_tab()
    assert all(not ref.startswith(str(app_store)) for _, ref in lists.pickers[0].choices)  # nothing trained yet
    assert lists.pickers[0].value == "model:efficientnet_lite0"  # real weights, untrained head
    # the lists follow the store on page load: an event with no trigger but the load
    dep = _load_dependency(app, "images_follow_models")
    assert [t[1] for t in dep["targets"]] == ["load"] and dep["inputs"] == []

    run = _copy_run(tiny_image_run, app_store, "20991231-000000-mlp-scratch-aaaa")  # finished after the build
    on_load = app.fns[dep["id"]].fn  # what the page load runs
    shown, first, second, third, note = on_load()
    assert str(run) in [ref for _, ref in first["choices"]]
    assert first["value"] == str(run) and second["value"] is None and third["value"] is None
    assert f"run `{run.name}`".replace("_", "\\_") in note and "only completed run" in note

    # nothing changed since: nothing is sent again
    assert all(isinstance(u, type(gr.skip())) for u in follow_store("images", shown, first["value"], None, None))


def test_the_default_is_the_best_run_by_the_headline_metric_and_a_deleted_run_goes(app_store, tiny_image_run):
    worse = _copy_run(tiny_image_run, app_store, "20991231-000002-mlp-scratch-newer", accuracy=0.20)
    better = _copy_run(tiny_image_run, app_store, "20991231-000001-mlp-scratch-older", accuracy=0.90)
    assert best_run("images")["path"] == str(better)
    shown, first, *_, note = follow_store("images", None, None, None, None)
    refs = [ref for _, ref in first["choices"]]
    assert refs[:2] == [str(worse), str(better)]  # newest first in the list ...
    assert first["value"] == str(better)  # ... the best by test accuracy is the default, and the note says so
    assert "best of 2 completed runs by test accuracy" in note and "0.900" in note

    # the user picks the worse run for Model 1 and the better one for Model 2; then the better one is deleted
    shutil.rmtree(better)
    shown2, first2, second2, _, note2 = follow_store("images", shown, str(worse), str(better), None)
    assert str(better) not in [ref for _, ref in first2["choices"]]
    assert first2["value"] == str(worse) and second2["value"] is None
    assert "only completed run" in note2


def test_a_user_pick_is_kept_when_the_store_changes(app_store, tiny_image_run):
    _copy_run(tiny_image_run, app_store, "20991231-000001-mlp-scratch-aaaa", accuracy=0.5)
    shown, first, *_ = follow_store("images", None, None, None, None)
    # the user picks a registry model; a better run finishes: Model 1 stays the user's pick
    _copy_run(tiny_image_run, app_store, "20991231-000002-mlp-scratch-bbbb", accuracy=0.9)
    _, first2, *_ = follow_store("images", shown, "model:mlp", None, None)
    assert first2["value"] == "model:mlp"
    # had the user kept the default, Model 1 would move to the new best run
    _, first3, *_ = follow_store("images", shown, first["value"], None, None)
    assert first3["value"].endswith("bbbb")


def test_models_this_machine_cannot_run_are_not_offered():
    reasons = check_models("qa")  # the background checks, waited for
    assert reasons["parsbert"] and "Hub" in reasons["parsbert"]  # its Persian vocabulary is only on the Hub
    assert [name for name, why in reasons.items() if why] == ["parsbert", "albert_fa", "distilbert_fa_pquad"]
    assert unavailable_reason("e5_small") is None and unavailable_reason("efficientnet_lite0") is None
    refs = [ref for _, ref in model_choices("qa")]
    assert "model:e5_small" in refs and "model:xlmr_base" in refs  # XLM-R reads the packaged tokenizer
    for name in ("parsbert", "albert_fa", "distilbert_fa_pquad"):
        assert f"model:{name}" not in refs
    assert {name for name, _ in unrunnable_models("qa")} == {"parsbert", "albert_fa", "distilbert_fa_pquad"}

    with gr.Blocks(analytics_enabled=False):
        lists = qa_tab.build()
    assert lists.pickers[0].value == "model:e5_small"
    assert "Not offered on this machine" in lists.note.value and "parsbert" in lists.note.value
    assert "`albert_fa`" in lists.note.value  # a code span shows its text as is: no Markdown backslash in it
    assert "Model A" in lists.note.value

    from demo.models_tab import COLUMNS, model_rows

    rows = {r[0]: dict(zip(COLUMNS, r)) for r in model_rows("qa")}
    assert rows["parsbert"]["runs here"].startswith("no: ") and rows["e5_small"]["runs here"] == "yes"
