"""demo/compare_tab.py with three runs: the cost-first table, curves and times for all, the pairwise views for A
and B, and every result cleared when the task or the picks change (in process and over gradio_client).

The three runs are copies of the session's tiny image run (tests/conftest.py); B's and C's metrics.json and
history.jsonl are rewritten by hand so the columns differ, and the expected values are read back from the files.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

gr = pytest.importorskip("gradio")

from core.store.compare import COST_ROWS, WALL_TIME_NOTE  # noqa: E402


def _rewrite(folder: Path, name: str, change) -> None:
    path = folder / name
    if name.endswith(".jsonl"):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        path.write_text("".join(json.dumps(change(r)) + "\n" for r in rows))
    else:
        path.write_text(json.dumps(change(json.loads(path.read_text()))))


@pytest.fixture(scope="module")
def store(tiny_image_run, tiny_tweet_run, tmp_path_factory):
    """A run store with three image runs (A = the tiny run; B: accuracy 0.5 and 4 s epochs; C: accuracy 0.75 and a
    30 s setup pass) and the tiny tweet run."""
    root = tmp_path_factory.mktemp("compare_multi")
    base = tiny_image_run.name
    refs = {}
    for key, suffix in (("a", ""), ("b", "-b"), ("c", "-c")):
        shutil.copytree(tiny_image_run, root / f"{base}{suffix}")
        refs[key] = str(root / f"{base}{suffix}")
    _rewrite(Path(refs["b"]), "metrics.json", lambda m: {**m, "accuracy": 0.5})
    _rewrite(Path(refs["b"]), "history.jsonl", lambda h: {**h, "seconds": 4.0, "eval_seconds": 1.0})
    _rewrite(Path(refs["c"]), "metrics.json", lambda m: {**m, "accuracy": 0.75})
    _rewrite(Path(refs["c"]), "config.json", lambda c: {**c, "prepare_seconds": 30.0})
    shutil.copytree(tiny_tweet_run, root / tiny_tweet_run.name)
    refs["tweet"] = str(root / tiny_tweet_run.name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRANSFER_LAB_RUNS", str(root))
        mp.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        yield root, refs


@pytest.fixture
def tab(store):
    from demo import compare_tab

    return compare_tab


def raw(path: str, name: str):
    text = (Path(path) / name).read_text()
    return [json.loads(x) for x in text.splitlines() if x.strip()] if name.endswith(".jsonl") else json.loads(text)


def test_three_runs_cost_first_curves_and_times_for_all(tab, store):
    _, r = store
    (status, head, per_class, curves, heat_a, heat_b, true_pick, pred_pick) = tab.compare_many(
        r["a"], r["b"], [r["c"]])
    ids = [Path(r[k]).name for k in "abc"]
    assert status.startswith(f"Comparing images runs A ({ids[0]}, accuracy ")
    assert f"B ({ids[1]}, accuracy 0.5000) and C ({ids[2]}, accuracy 0.7500)" in status
    assert "compare A and B" in status and WALL_TIME_NOTE in status
    assert head["headers"] == ["metric", "A", "B", "C", "B − A", "C − A"] == per_class["headers"]
    names = [row[0] for row in head["data"]]
    assert names[:4 + len(COST_ROWS)] == ["run", "model", "strategy", "weights", *COST_ROWS]
    table = {row[0]: row[1:] for row in head["data"]}
    accuracy = raw(r["a"], "metrics.json")["accuracy"]
    assert table["accuracy"] == [f"{accuracy:.4f}", "0.5000", "0.7500", f"{0.5 - accuracy:.4f}",
                                 f"{0.75 - accuracy:.4f}"]
    history = raw(r["a"], "history.jsonl")[0]
    setup = raw(r["a"], "config.json")["prepare_seconds"]
    assert table["setup / feature cache (s)"][:3] == [f"{setup:.2f}", f"{setup:.2f}", "30.00"]
    assert table["validation seconds per epoch"][:3] == [f"{history['eval_seconds']:.2f}", "1.00",
                                                         f"{history['eval_seconds']:.2f}"]
    load, test = raw(r["b"], "config.json")["load_seconds"], raw(r["b"], "metrics.json")["test_seconds"]
    assert table["wall time (s)"][1] == f"{load + setup + 4.0 + 1.0 + test:.2f}"  # every recorded phase
    assert table["trainable parameters"][:3] == [f"{raw(r['a'], 'metrics.json')['parameters']['trainable']:,}"] * 3
    classes = raw(r["a"], "metrics.json")["classes"]
    assert [row[0] for row in per_class["data"]] == [f"{c} {n}" for c in classes for n in ("precision", "recall",
                                                                                          "F1")]
    assert not set(names) & {row[0] for row in per_class["data"]}
    # curves and times: all three runs, one colour each, with the tiny run's per-step loss
    groups = {t.legendgroup for t in curves.data}
    assert groups == {"A mlp scratch", "B mlp scratch", "C mlp scratch"}
    lines = [t for t in curves.data if t.type == "scatter" and t.mode != "markers"]
    assert len({t.line.color for t in lines}) == 3
    assert {t.name for t in curves.data if "per step" in t.name} == {f"{g} · train loss per step" for g in groups}
    assert curves.layout.title.text == "Learning curves: A, B and C"
    bars = {t.name: t for t in curves.data if t.type == "bar"}  # the third panel: seconds
    assert {t.xaxis for t in bars.values()} == {"x3"}
    assert list(bars["C mlp scratch · setup s"].y) == [30.0] and list(bars["B mlp scratch · validation s"].y) == [1.0]
    # pairwise: the heatmaps are A's and B's
    assert heat_a.layout.title.text.startswith(f"A: mlp scratch · {ids[0]}")
    assert heat_b.layout.title.text.startswith(f"B: mlp scratch · {ids[1]}")
    assert true_pick["value"] in classes and pred_pick["value"] in classes


def test_more_runs_are_checked_and_deduplicated(tab, store):
    _, r = store
    status = tab.compare_many(r["a"], r["b"], [r["tweet"]])[0]
    assert status.endswith("for the tweets task: pick runs of the same task.") and "run C" in status
    head = tab.compare_many(r["a"], r["b"], [r["a"], r["b"], r["c"], r["c"]])[1]
    assert head["headers"] == ["metric", "A", "B", "C", "B − A", "C − A"]  # A and B again, C twice: one C
    assert tab.compare_many(r["a"], r["b"], r["c"])[1]["headers"][3] == "C"  # one ref as a string
    assert tab.compare_many(r["a"], r["b"], [])[1]["headers"] == ["metric", "A", "B", "B − A"]
    assert tab.compare_many(r["a"], r["b"], [{"x": 1}])[0] == (
        "Pick the extra runs from the list of finished runs (their ids).")
    assert tab.compare_many(r["a"], r["b"], ["/etc"])[0] == "'/etc' is not a run of the run store."
    assert tab.compare_many(None, r["b"], [r["c"]])[0] == "Pick two runs to compare (run A and run B)."


def test_a_task_switch_or_a_new_pick_clears_every_result(tab, store):
    _, r = store
    assert tab.compare_many(r["a"], r["b"], [r["c"]])[1]["data"]
    more, *rest = tab.reset_for_task("tweets")
    assert more["value"] == [] and [ref for _, ref in more["choices"]] == [r["tweet"]]
    for cleared in (rest, tab.runs_picked()[1:]):
        (metrics, per_class, curves, heat_a, heat_b, matrix_a, matrix_b, true_pick, pred_pick,
         cell_note, cell_gallery, cell_table, dis_note, dis_gallery, dis_table, example_id, method, explain_note,
         *views) = cleared
        assert metrics["data"] == [] == per_class["data"] and not curves.data
        assert (heat_a, heat_b, matrix_a, matrix_b) == (None, None, None, None)
        assert true_pick["choices"] == [] == pred_pick["choices"] and method["choices"] == []
        for g in (cell_gallery, dis_gallery):
            assert g["value"] is None and g["visible"] is False
        assert cell_table["data"] == [] == dis_table["data"] and (cell_note, dis_note, example_id) == ("", "", "")
        assert explain_note == "" and views == [None] * 4
    assert tab.runs_picked()[0] == "Press Compare to compare the runs picked."
    # Compare pressed: the previous pair's examples go, at once
    assert len(tab.examples_cleared()) == 13 and tab.examples_cleared()[1]["visible"] is False


def test_the_tab_wires_every_result_to_the_clearing(tab, store):
    with gr.Blocks() as demo:
        tab.build()
    deps = {d["api_name"]: d for d in demo.config["dependencies"] if d.get("api_name")}
    picked = deps["compare_picked"]
    assert len(picked["outputs"]) == len(tab.runs_picked())
    assert len(deps["compare_reset"]["outputs"]) == len(tab.reset_for_task("images"))
    many = deps["compare_many"]
    assert set(many["outputs"]) <= set(picked["outputs"])  # whatever Compare fills, a new pick empties
    assert len(deps["compare_runs"]["inputs"]) == 2 and len(deps["compare_runs"]["outputs"]) == 7
    assert len(many["inputs"]) == 3


def test_endpoints_over_http_two_and_three_runs(tab, store, free_port):
    from gradio_client import Client

    _, r = store
    with gr.Blocks() as demo:
        tab.build()
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        client = Client(demo.local_url, verbose=False)
        status, head, per_class, curves, heat_a, heat_b, _, _ = client.predict(
            r["a"], r["b"], [r["c"]], api_name="/compare_many")
        assert status.startswith("Comparing images runs A (") and head["headers"][:4] == ["metric", "A", "B", "C"]
        plotted = json.loads(curves["plot"])["data"]
        assert {t["legendgroup"] for t in plotted} == {"A mlp scratch", "B mlp scratch", "C mlp scratch"}
        assert json.loads(heat_b["plot"])["data"][0]["z"] == raw(r["b"], "metrics.json")["confusion_matrix"]
        # the two-run endpoint scripts call, as before: 7 outputs, the whole table (per-class rows last)
        out = client.predict(r["a"], r["c"], api_name="/compare_runs")
        assert len(out) == 7 and out[0].startswith("Comparing images runs A (")
        assert out[1]["headers"] == ["metric", "A", "B", "B − A"]
        assert out[1]["data"][-1][0].endswith(" F1") and [row[0] for row in out[1]["data"]][:3] == [
            "run", "model", "strategy"]
        cleared = client.predict(api_name="/compare_picked")
        assert cleared[0] == "Press Compare to compare the runs picked." and cleared[1]["data"] == []
    finally:
        demo.close()
