"""The app's handlers, in process: they list the registry and the run store."""
import pytest

from core.store.runs import create_run


def test_models_tab_marks_weight_status():
    from demo.models_tab import model_rows

    rows = {r[0]: r for r in model_rows("all")}
    assert rows["efficientnet_lite0"][3] == "packaged offline"
    assert rows["vgg19"][3] == "untrained"
    assert {r[1] for r in model_rows("images")} == {"images"}


def test_runs_tab_lists_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFER_LAB_RUNS", str(tmp_path))
    from demo.runs_tab import run_rows

    assert run_rows() == []
    run = create_run("mlp", "scratch")
    run.write_config({"train": {"task": "images", "model": "mlp", "strategy": "scratch"},
                      "headline_metric": "accuracy", "created": "2026-11-23T10:00:00"})
    run.write_metrics({"accuracy": 0.41234})
    run.set_status("completed")
    assert run_rows() == [[run.id, "images", "mlp", "scratch", "completed", "accuracy", 0.4123,
                           "2026-11-23T10:00:00", ""]]  # no friendly name
    run.rename("  first try ")
    assert run_rows()[0][-1] == "first try"


def test_app_builds():
    gr = pytest.importorskip("gradio")
    from demo import build_app

    assert isinstance(build_app(), gr.Blocks)
