"""The engine on a public Space: divergence stops with one sentence, settings are range-checked in one place,
a cancel is honoured in the frozen-feature cache phase, broken run files give one sentence, writes are atomic."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from core import cli
from core.config import TrainConfig
from core.engine.fit import evaluate_run, load_run_task, train
from core.errors import BadSettingError, CancelledError, RunNotFoundError
from core.store.jobs import JobQueue
from core.store.runs import open_run

TINY = dict(task="images", model="mlp", strategy="scratch", epochs=1, train_limit=40, eval_limit=20,
            batch_size=8, device="cpu")


def test_a_huge_learning_rate_stops_with_one_sentence_and_status_failed(data_dir, runs_root):
    with pytest.raises(BadSettingError, match=r"^Training diverged at epoch 1, .*lower the learning rate"):
        train(TrainConfig(**TINY, lr=1e9, data_dir=str(data_dir)), runs_root=str(runs_root))
    (run_dir,) = runs_root.iterdir()
    status = open_run(run_dir).read_status()
    assert status["status"] == "failed" and "lower the learning rate (it is 1e+09)" in status["message"]
    assert open_run(run_dir).read_metrics() is None  # no test metrics of diverged weights


@pytest.mark.parametrize("changes, words", [
    (dict(max_length=0), "max length must be a whole number"),
    (dict(max_length=10 ** 9), "max length must be a whole number"),
    (dict(task="qa", model="e5_small", strategy="full", max_length=64, doc_stride=64), "doc stride (64) must be smaller"),
    (dict(doc_stride=0), "doc stride must be"),
    (dict(epochs=True), "Epochs must be a whole number"),
    (dict(batch_size=10 ** 7), "Batch size must be a whole number from 1"),
    (dict(train_limit=0), "train limit must be a positive"),
    (dict(checkpoint_minutes=float("nan")), "Checkpoint minutes must be a positive"),
    (dict(max_minutes="5"), "time budget must be a positive"),
    (dict(seed=-1), "seed must be"),
])
def test_every_setting_is_range_checked_in_validate(changes, words):
    with pytest.raises(BadSettingError) as err:
        TrainConfig(**{**TINY, **changes}).validate()
    assert words in str(err.value) and "\n" not in str(err.value)


def _config_without_train(runs_root: Path) -> Path:
    run = runs_root / "20260101-000000-mlp-scratch-beef"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"lr": 0.1}))
    return run


def test_eval_and_resume_of_a_config_without_settings_say_one_sentence(runs_root, capsys):
    run = _config_without_train(runs_root)
    for argv in (["eval", str(run)], ["train", "--resume", str(run)]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: The config.json of run") and "has no training settings" in err
        assert "KeyError" not in err and "Traceback" not in err


def test_a_truncated_weights_file_is_one_sentence(data_dir, runs_root):
    run = train(TrainConfig(**TINY, data_dir=str(data_dir)), runs_root=str(runs_root))
    weights = run.path / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(RunNotFoundError, match=r"weights file of run .* is truncated or corrupt"):
        load_run_task(str(run.path))
    optimizer = run.path / "checkpoint" / "optimizer.safetensors"
    optimizer.write_bytes(b"\x00" * 7)
    with pytest.raises(RunNotFoundError, match=r"checkpoint of run .* is truncated or corrupt"):
        run.load_checkpoint()
    # atomic writes leave no temporary files behind
    assert not [p for p in run.path.rglob("*") if p.name.endswith(".tmp")]


def test_eval_of_a_data_file_scores_the_whole_file(data_dir, runs_root, tmp_path, monkeypatch):
    run = train(TrainConfig(**TINY, data_dir=str(data_dir)), runs_root=str(runs_root))
    seen = {}
    from core.tasks.images.task import ImageTask

    original = ImageTask.load_data

    def spy(self, splits=("train", "val", "test")):
        seen["eval_limit"], seen["data_file"] = self.cfg.eval_limit, self.cfg.data_file
        self.cfg.data_file = None  # the images task reads its own test split; what matters is the limit
        return original(self, splits)

    monkeypatch.setattr(ImageTask, "load_data", spy)
    evaluate_run(str(run.path), data_file=str(tmp_path / "mine.csv"))
    assert seen == {"eval_limit": None, "data_file": str(tmp_path / "mine.csv")}


def test_a_cancel_during_the_feature_cache_ends_the_job_at_once_and_it_resumes(data_dir, runs_root):
    """EfficientNet-Lite0 with feature_extraction caches its frozen part: the cancel arrives at the first cache
    batch (tiny: 16 training images, no flips)."""
    cancel = threading.Event()
    phases = []

    def on_progress(p):
        phases.append(p.phase)
        if p.phase == "cache":
            cancel.set()

    cfg = TrainConfig(**{**TINY, "model": "efficientnet_lite0", "strategy": "feature_extraction", "train_limit": 16,
                         "eval_limit": 8, "eval_batch_size": 8, "hflip": False}, data_dir=str(data_dir))
    with pytest.raises(CancelledError, match="before the first checkpoint"):
        train(cfg, runs_root=str(runs_root), on_progress=on_progress, cancel=cancel)
    assert phases == ["cache"]  # no second cache batch, no training step
    (run_dir,) = runs_root.iterdir()
    run = open_run(run_dir)
    assert run.read_status()["status"] == "cancelled" and not run.has_checkpoint()
    resumed = train(resume=str(run_dir), runs_root=str(runs_root))  # from the start, with the saved config
    assert resumed.read_status()["status"] == "completed" and len(resumed.read_history()) == 1


def test_the_queue_says_cancelling_at_once(data_dir, runs_root):
    q = JobQueue(runs_root=str(runs_root))
    job = q.submit(TrainConfig(**{**TINY, "epochs": 200, "train_limit": 200}, data_dir=str(data_dir)))
    for _ in range(600):
        if q.snapshot(job.id)["status"] == "running":
            break
        threading.Event().wait(0.05)
    q.cancel(job.id)
    snap = q.snapshot(job.id)
    assert snap["cancelling"] and snap["message"].startswith("Cancelling")
    assert q.wait(job.id, timeout=60)["status"] == "cancelled"
    with pytest.raises(BadSettingError, match="not known to this server"):
        q.snapshot({"id": 1})
