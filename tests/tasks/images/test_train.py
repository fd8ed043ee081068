"""The training engine on real CIFAR-10 with the packaged EfficientNet-Lite0: cache, resume, budget, reopen."""
import json
import subprocess
import sys
import threading

import pytest
import torch
from PIL import Image

from core.config import TrainConfig
from core.errors import BadSettingError, CancelledError, DataNotFoundError
from core.store.runs import open_run
from core.engine.fit import evaluate_run, load_run_task, make_task, train

SMALL = dict(task="images", model="efficientnet_lite0", train_limit=60, eval_limit=40, val_fraction=0.2,
             batch_size=16, eval_batch_size=40, weights="offline", seed=3)


def cfg(data_dir, **kw) -> TrainConfig:
    return TrainConfig(**{**SMALL, "data_dir": str(data_dir), **kw})


def test_real_run_learns_saves_and_reopens(data_dir, runs_root, tmp_path):
    run = train(cfg(data_dir, strategy="feature_extraction", epochs=3, train_limit=300, eval_limit=200,
                    val_fraction=0.1, batch_size=32, lr=1e-3), runs_root=runs_root)
    status = run.read_status()
    assert status["status"] == "completed"
    metrics = run.read_metrics()
    assert metrics["accuracy"] > 0.5  # chance is 0.1: the pretrained features carry real information
    assert metrics["parameters"] == {"trainable": 330_506, "total": 3_701_514}
    assert len(metrics["seconds_per_epoch"]) == 3 and len(run.read_history()) == 3
    assert sum(map(sum, metrics["confusion_matrix"])) == 200
    preds = run.read_predictions()
    assert len(preds) == 200 and abs(sum(preds[0]["probabilities"]) - 1) < 1e-3
    assert {p.name for p in run.path.iterdir()} >= {"config.json", "history.jsonl", "metrics.json",
                                                     "predictions.jsonl", "weights.safetensors", "status.json"}
    config = run.read_config()
    assert config["weights"]["kind"] == "package" and config["feature_cache"]["mode"] == "features"

    # Reopened from disk, the run gives the same test metrics.
    again = evaluate_run(str(run.path), data_dir=str(data_dir))
    assert again["accuracy"] == pytest.approx(metrics["accuracy"])
    assert again["confusion_matrix"] == metrics["confusion_matrix"]

    # predict: top-5 of an RGBA image of arbitrary size.
    img = tmp_path / "x.png"
    Image.new("RGBA", (300, 200), (200, 30, 30, 128)).save(img)
    out = subprocess.run([sys.executable, "-m", "core", "--runs-dir", str(runs_root), "predict", str(run.path),
                          "--image", str(img), "--json"], capture_output=True, text=True, check=True)
    top = json.loads(out.stdout)["top"]
    assert len(top) == 5 and top[0]["probability"] >= top[-1]["probability"]
    assert {t["label"] for t in top} <= set(config["labels"])

    # A corrupt image is one clear sentence and exit status 2.
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    out = subprocess.run([sys.executable, "-m", "core", "predict", str(run.path), "--image", str(bad)],
                         capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.startswith("error: The file is not a readable image")


def _train_predictions(data_dir, runs_root, **kw):
    run = train(cfg(data_dir, epochs=1, **kw), runs_root=runs_root)
    return torch.tensor([p["probabilities"] for p in run.read_predictions()])


@pytest.mark.parametrize("strategy", ["feature_extraction", "last_block"])
def test_feature_cache_gives_the_same_predictions(data_dir, runs_root, strategy):
    cached = _train_predictions(data_dir, runs_root, strategy=strategy, feature_cache=True)
    uncached = _train_predictions(data_dir, runs_root, strategy=strategy, feature_cache=False)
    torch.testing.assert_close(cached, uncached, rtol=1e-3, atol=1e-4)


def test_cache_mode_per_strategy(data_dir):
    task = make_task(cfg(data_dir, strategy="last_block"))
    task.load_data()
    task.build_model()
    facts = task.prepare_training()
    assert facts["feature_cache"]["mode"] == "prefix"
    n_train = len(task.splits["train"])
    assert task.cache.tensors["train"].shape[:2] == (2, n_train)  # one entry per image and flip


def _weights(run):
    return run.load_weights()


def test_interrupted_and_resumed_run_equals_uninterrupted(data_dir, runs_root):
    base = dict(strategy="feature_extraction", epochs=3, lr=1e-3)
    straight = train(cfg(data_dir, **base), runs_root=runs_root)

    cancel = threading.Event()

    def stop_midway(p):
        if p.phase == "train" and p.global_step == 5:  # epoch 2 of 3 (3 steps per epoch)
            cancel.set()

    with pytest.raises(CancelledError):
        train(cfg(data_dir, **base), runs_root=runs_root, on_progress=stop_midway, cancel=cancel)
    cancelled = sorted(p for p in runs_root.iterdir() if p != straight.path)[0]
    assert open_run(cancelled).read_status()["status"] == "cancelled"
    resumed = train(resume=str(cancelled), runs_root=runs_root)
    assert resumed.read_status()["status"] == "completed"
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert straight.read_metrics()["accuracy"] == resumed.read_metrics()["accuracy"]
    assert [r["epoch"] for r in resumed.read_history()] == [0, 1, 2]
    assert [r["train_loss"] for r in resumed.read_history()] == pytest.approx(
        [r["train_loss"] for r in straight.read_history()])


def test_time_budget_stops_cleanly_and_resumes(data_dir, runs_root):
    run = train(cfg(data_dir, strategy="feature_extraction", epochs=2, max_minutes=1e-6), runs_root=runs_root)
    status = run.read_status()
    assert status["status"] == "stopped" and "--resume" in status["message"]
    assert run.has_checkpoint() and run.read_metrics() is None
    done = train(resume=str(run.path), runs_root=runs_root)
    # The budget is part of the saved config, so the resumed run stops again after one more step ...
    assert done.read_status()["status"] in ("stopped", "completed")


@pytest.mark.parametrize("lr", [0.0, float("nan"), -1e-3])
def test_bad_learning_rate_is_one_sentence(data_dir, runs_root, lr):
    with pytest.raises(BadSettingError, match="learning rate must be a positive number"):
        train(cfg(data_dir, strategy="feature_extraction", lr=lr), runs_root=runs_root)


def test_missing_data_folder(tmp_path, runs_root):
    with pytest.raises(DataNotFoundError, match="No image data at"):
        train(TrainConfig(task="images", model="mlp", strategy="scratch", data_dir=str(tmp_path / "nowhere")),
              runs_root=runs_root)


def test_cli_errors_are_one_sentence(tmp_path):
    cases = [
        (["train", "--task", "images", "--model", "nope"], "error: Unknown model 'nope'"),
        (["train", "--task", "images", "--model", "mlp", "--strategy", "feature_extraction", "--data-dir",
          str(tmp_path)], "error: mlp supports the strategies scratch, full"),
        (["train", "--task", "images", "--model", "mlp", "--lr", "nan"], "error: The learning rate must be"),
        (["eval", str(tmp_path / "gone")], "error: No run at"),
    ]
    for argv, expected in cases:
        out = subprocess.run([sys.executable, "-m", "core", "--runs-dir", str(tmp_path), *argv],
                             capture_output=True, text=True)
        assert out.returncode == 2, out.stderr
        assert out.stderr.startswith(expected), out.stderr
        assert "Traceback" not in out.stderr


def test_mlp_baseline_trains_from_scratch(data_dir, runs_root):
    run = train(TrainConfig(task="images", model="mlp", strategy="scratch", epochs=2, train_limit=200,
                            eval_limit=100, batch_size=50, data_dir=str(data_dir)), runs_root=runs_root)
    cfg_saved = run.read_config()
    assert cfg_saved["weights"] == {"kind": "random", "id": None, "detail": ""} and cfg_saved["parameters"]["total"] == (
        3072 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10)
    # Reopening rebuilds the same model from the saved weights.
    _, task = load_run_task(str(run.path))
    task.load_data(("test",))
    assert task.evaluate("test").metrics["accuracy"] == run.read_metrics()["accuracy"]


def test_svm_on_frozen_features_is_a_reopenable_run(data_dir, runs_root):
    from core.tasks.images.svm import fit_svm

    run = fit_svm(cfg(data_dir, train_limit=200, eval_limit=100), C=0.5, runs_root=runs_root)
    metrics = run.read_metrics()
    assert run.read_status()["status"] == "completed" and metrics["accuracy"] > 0.4  # chance is 0.1
    assert "LinearSVC" in run.read_config()["classifier"]
    assert metrics["parameters"]["trainable"] == 1280 * 10 + 10
    again = evaluate_run(str(run.path), data_dir=str(data_dir))
    assert again["accuracy"] == pytest.approx(metrics["accuracy"])


def test_report_table_lists_completed_runs(data_dir, runs_root):
    from core.store.report import comparison_rows, markdown_table

    train(TrainConfig(task="images", model="mlp", strategy="scratch", epochs=1, train_limit=50, eval_limit=20,
                      data_dir=str(data_dir)), runs_root=runs_root)
    rows = comparison_rows("images", str(runs_root))
    assert [(r["family"], r["model"], r["strategy"], r["weights"]) for r in rows] == [
        ("mlp", "mlp", "scratch", "untrained")]
    table = markdown_table(rows)
    assert table.splitlines()[0].startswith("| task | family | model | strategy | trainable | total | setup s")
    assert "| mlp | mlp | scratch |" in table
