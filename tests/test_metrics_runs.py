import json

import pytest
import torch

from core.errors import RunNotFoundError
from core.metrics import classification_metrics, classification_report, roc_auc
from core.runs import create_run, delete_run, list_runs, open_run


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
