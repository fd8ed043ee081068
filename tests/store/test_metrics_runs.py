"""core/metrics.py (classification metrics, checked against hand-computed values and scikit-learn) and the run
store (core/store/runs.py)."""
import json

import pytest
import torch

from core.errors import RunNotFoundError
from core.metrics import classification_metrics, classification_report, roc_auc
from core.store.runs import create_run, delete_run, list_runs, open_run


def test_classification_metrics_by_hand():
    # true: a a a b b c ; pred: a a b b c c
    m = classification_metrics([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2], ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["per_class"]["a"] == {"precision": 1.0, "recall": pytest.approx(2 / 3), "f1": pytest.approx(0.8),
                                   "support": 3}
    assert m["per_class"]["b"]["precision"] == 0.5 and m["per_class"]["c"]["f1"] == pytest.approx(2 / 3)
    assert m["macro"]["f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert m["weighted"]["f1"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * 2 / 3) / 6)
    assert "macro avg" in classification_report(m)


def test_roc_auc_by_hand():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)  # ties count half
    assert roc_auc([1, 1], [0.2, 0.3]) is None


def test_classification_metrics_agree_with_sklearn_report():
    import numpy as np
    from sklearn.metrics import classification_report as sk_report, roc_auc_score

    rng = np.random.default_rng(7)
    y_true, y_pred = rng.integers(0, 3, 200).tolist(), rng.integers(0, 3, 200).tolist()
    classes = ["cat", "dog", "owl"]
    m = classification_metrics(y_true, y_pred, classes)
    ref = sk_report(y_true, y_pred, labels=[0, 1, 2], target_names=classes, output_dict=True, zero_division=0.0)
    assert m["accuracy"] == pytest.approx(ref["accuracy"]) and m["n"] == 200
    for c in classes:
        mine, theirs = m["per_class"][c], ref[c]
        assert (mine["precision"], mine["recall"], mine["f1"]) == pytest.approx(
            (theirs["precision"], theirs["recall"], theirs["f1-score"]))
        assert mine["support"] == theirs["support"] and type(mine["support"]) is int
    for avg in ("macro", "weighted"):
        assert (m[avg]["precision"], m[avg]["recall"], m[avg]["f1"]) == pytest.approx(
            (ref[f"{avg} avg"]["precision"], ref[f"{avg} avg"]["recall"], ref[f"{avg} avg"]["f1-score"]))
    assert sum(map(sum, m["confusion_matrix"])) == 200
    assert [sum(row) for row in m["confusion_matrix"]] == [m["per_class"][c]["support"] for c in classes]
    json.dumps(m)  # plain Python types only

    scores = rng.random(200).round(1).tolist()  # rounded: many ties
    binary = [int(y == 1) for y in y_true]
    mb = classification_metrics(binary, [int(s > 0.5) for s in scores], ["no", "yes"], positive_scores=scores)
    assert mb["roc_auc"] == pytest.approx(roc_auc_score(binary, scores)) and type(mb["roc_auc"]) is float


def test_classification_metrics_edge_cases():
    empty = classification_metrics([], [], ["a", "b"], positive_scores=[])
    assert empty["n"] == 0 and empty["accuracy"] == 0.0 and empty["confusion_matrix"] == [[0, 0], [0, 0]]
    assert empty["per_class"]["a"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert empty["macro"] == empty["weighted"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert empty["roc_auc"] is None and "macro avg" in classification_report(empty)
    # "c" is in neither y_true nor y_pred, "b" only in y_true: both still listed, zero division gives 0.0.
    m = classification_metrics([0, 0, 1], [0, 0, 0], ["a", "b", "c"])
    assert list(m["per_class"]) == ["a", "b", "c"] and m["confusion_matrix"] == [[2, 0, 0], [1, 0, 0], [0, 0, 0]]
    assert m["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["macro"]["f1"] == pytest.approx(0.8 / 3) and m["weighted"]["f1"] == pytest.approx(2 * 0.8 / 3)
    one_class = classification_metrics([1, 1], [1, 0], ["no", "yes"], positive_scores=[0.9, 0.2])
    assert one_class["roc_auc"] is None and "roc_auc" not in classification_metrics([1], [1], ["a", "b", "c"], [0.5])


def test_run_store_round_trip(tmp_path):
    run = create_run("mlp", "scratch", tmp_path)
    run.write_config({"train": {"task": "images", "model": "mlp", "strategy": "scratch"},
                      "headline_metric": "accuracy"})
    run.append_history({"epoch": 0, "train_loss": 1.0})
    run.write_metrics({"accuracy": 0.5})
    run.write_predictions([{"id": "x", "label": 1, "prediction": 0}])
    run.save_weights({"w": torch.arange(3.0)})
    run.set_status("completed", "done")
    again = open_run(run.id, tmp_path)
    assert again.read_history() == [{"epoch": 0, "train_loss": 1.0}]
    assert torch.equal(again.load_weights()["w"], torch.arange(3.0))
    assert list_runs(tmp_path)[0] | {} == {**list_runs(tmp_path)[0], "headline": 0.5, "status": "completed"}
    # Plain files only: JSON and safetensors, nothing pickled.
    for f in run.path.iterdir():
        assert f.suffix in (".json", ".jsonl", ".safetensors")
        if f.suffix == ".json":
            json.loads(f.read_text())
    delete_run(run.id, tmp_path)
    with pytest.raises(RunNotFoundError, match="may have been deleted"):
        open_run(run.id, tmp_path)


def test_a_runs_wall_time_adds_every_recorded_phase(tiny_image_run):
    """Loading, setup, every epoch's training and validation and the final test pass are all recorded, and the
    wall time of Compare and `core report` is their sum (so a cached run cannot look as cheap as an MLP)."""
    from core.store.report import run_cost

    run = open_run(str(tiny_image_run))
    config, metrics, history = run.read_config(), run.read_metrics(), run.read_history()
    for name in ("load_seconds", "prepare_seconds"):
        assert config[name] >= 0
    assert metrics["test_seconds"] > 0
    cost = run_cost(config, metrics, history)
    parts = (config["load_seconds"] + config["prepare_seconds"] + metrics["test_seconds"]
             + sum(r["seconds"] + r["eval_seconds"] for r in history))
    assert cost["wall_seconds"] == pytest.approx(parts)
