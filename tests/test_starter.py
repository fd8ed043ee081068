"""Starter runs (core/starter.py, `python -m core starter`): the plan with its estimates, a real small starter run
on the queue, cancel and resume, and a Hub checkpoint already fine-tuned recorded without training (against a
stand-in Hub cache)."""
from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from core import cli, starter
from core.paths import REPO_ROOT
from core.store.jobs import JobQueue
from core.store.runs import list_runs, open_run

pytestmark = pytest.mark.usefixtures("offline")


def _tiny(monkeypatch, task: str, **settings) -> None:
    """Small limits for the starter's training part of ``task`` (the test's own, not the machine's)."""
    monkeypatch.setitem(starter.STARTER_TRAINING, task, settings)


def test_the_plan_takes_the_packaged_models_offline_and_says_why(data_dir, runs_root):
    parts = starter.plan(runs_root=str(runs_root), data_dir=str(data_dir), with_estimates=False)
    assert [(p.task, p.cfg.model, p.cfg.strategy, p.evaluate_only, p.action) for p in parts] == [
        ("images", "efficientnet_lite0", "feature_extraction", False, "start"),
        ("tweets", "minilm_bigru", "feature_extraction", False, "start"),
        ("qa", "e5_small", "full", False, "start")]
    qa = parts[2].cfg
    assert (qa.train_limit, qa.eval_limit, qa.epochs) == (2000, 500, 1)
    assert (qa.preset, qa.optimizer, qa.lr, qa.batch_size, qa.micro_batch, qa.activation_checkpointing,
            qa.max_length) == ("qa-e5-small", "adamw", 1e-4, 16, 0, True, 384)  # the preset's settings
    assert all("real pretrained weights here, offline" in p.why for p in parts)
    assert starter.tasks_without_a_completed_run(str(runs_root)) == ["images", "tweets", "qa"]


def test_dry_run_prints_each_part_with_its_estimate_and_runs_nothing(data_dir, runs_root):
    out = io.StringIO()
    with redirect_stdout(out):
        rc = cli.main(["starter", "--task", "tweets", "--dry-run", "--json", "--runs-dir", str(runs_root),
                       "--data-dir", str(data_dir)])
    assert rc == 0
    plan = json.loads(out.getvalue())
    (part,) = plan["parts"]
    assert part["model"] == "minilm_bigru" and part["action"] == "start"
    # 900 training tweets (1000 less the 10% validation), cached once, 2 epochs, 500 test tweets
    assert part["estimated_seconds"] > 0 and plan["estimated_seconds"] == part["estimated_seconds"]
    assert "caching 1,500 frozen features" in part["estimate"] and "2 epochs" in part["estimate"]
    assert list(runs_root.iterdir()) == []


def test_a_real_small_starter_run_completes_and_is_then_done(data_dir, runs_root, monkeypatch):
    _tiny(monkeypatch, "images", model="efficientnet_lite0", strategy="feature_extraction", train_limit=40,
          eval_limit=16, epochs=1, batch_size=16)
    (part,) = starter.plan(["images"], str(runs_root), str(data_dir), with_estimates=False)
    lines: list[str] = []
    (snap,) = starter.run_in_process([part], str(runs_root), echo=lines.append, poll=0.2)
    assert snap["status"] == "completed" and snap["group"] == starter.GROUP
    run = open_run(snap["run_dir"])
    assert run.read_config()["weights"]["kind"] == "package"  # the packaged real weights
    assert 0.0 <= run.read_metrics()["accuracy"] <= 1.0 and len(run.read_predictions()) == 16
    assert lines[0].startswith("images · efficientnet_lite0") and "completed" in lines[-1]
    # planned again: the completed run is the part's, nothing to do; the task has its completed run
    (again,) = starter.plan(["images"], str(runs_root), str(data_dir), with_estimates=False)
    assert again.action == "done" and again.existing["path"] == snap["run_dir"]
    assert "images" not in starter.tasks_without_a_completed_run(str(runs_root))


def test_a_cancelled_starter_run_is_resumed_by_the_next_starter(data_dir, runs_root, monkeypatch):
    _tiny(monkeypatch, "images", model="mlp", strategy="scratch", train_limit=200, eval_limit=20, epochs=30,
          batch_size=10)
    (part,) = starter.plan(["images"], str(runs_root), str(data_dir), with_estimates=False)
    queue = JobQueue(runs_root=str(runs_root))
    (job,) = starter.submit([part], queue)
    while (queue.snapshot(job.id)["progress"] or {}).get("phase") != "train":
        time.sleep(0.05)
    queue.cancel(job.id)
    cancelled = queue.wait(job.id, timeout=120)
    assert cancelled["status"] == "cancelled"

    (part,) = starter.plan(["images"], str(runs_root), str(data_dir), with_estimates=False)
    assert part.action == "resume" and part.existing["path"] == cancelled["run_dir"]
    assert part.line().startswith(f"images: mlp (scratch): resume run {Path(cancelled['run_dir']).name}")
    (snap,) = starter.run_in_process([part], str(runs_root), echo=lambda line: None, poll=0.2)
    assert snap["status"] == "completed" and snap["run_dir"] == cancelled["run_dir"]
    assert len(open_run(snap["run_dir"]).read_history()) == 30
    assert [r["id"] for r in list_runs(str(runs_root))] == [Path(snap["run_dir"]).name]  # the same run


# -- a checkpoint already fine-tuned, recorded without training (stand-in Hub cache) ----------------------------
def _standin():
    """tests/hub/standin.py, the stand-in Hub (loaded once, as tests/hub/test_hub_paths.py does)."""
    if "hub_standin" not in sys.modules:
        spec = importlib.util.spec_from_file_location("hub_standin", REPO_ROOT / "tests" / "hub" / "standin.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules["hub_standin"]


_RUN_STARTER = """
import sys
from core import cli, starter
starter.STARTER_EVALUATION.update(max_length=64, doc_stride=16)  # the stand-in checkpoint reads 64 positions
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_hub_checkpoint_already_fine_tuned_is_recorded_as_a_run_without_training(data_dir, tmp_path):
    """Only Gholamreza/distilbert-fa-zwnj-base-finetuned-pquad is in the (stand-in) Hub cache: the QA part takes
    it instead of training e5_small, evaluates it, and records it as a completed run that reopens."""
    pytest.importorskip("transformers")
    standin = _standin()
    hub = tmp_path / "hub"
    repo = standin.text_repos()["Gholamreza/distilbert-fa-zwnj-base-finetuned-pquad"]
    standin.write_text_repo(hub, repo)
    runs = tmp_path / "runs"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))}
    env.update(HF_HOME=str(tmp_path / "home"), HF_HUB_CACHE=str(hub), HF_HUB_OFFLINE="1", TRANSFER_LAB_OFFLINE="1",
               TRANSFER_LAB_DATA=str(data_dir), TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run([sys.executable, "-c", _RUN_STARTER, "starter", "--task", "qa", "--runs-dir", str(runs)],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "distilbert_fa_pquad (evaluated, no training): start" in proc.stdout
    (row,) = json.loads(proc.stdout.strip().splitlines()[-1])
    assert row["status"] == "completed" and "without training" in row["message"]
    run = open_run(row["run_dir"])
    config = run.read_config()
    assert config["evaluation_only"] and config["weights"] == {"kind": "hub", "id": repo.repo_id, "detail": ""}
    assert config["train"]["model"] == "distilbert_fa_pquad" and run.read_history() == []
    metrics = run.read_metrics()
    assert metrics["evaluation_only"] and 0.0 <= metrics["f1"] <= 1.0 and len(run.read_predictions()) == 500
    assert "null_threshold" in metrics["val"]  # the validation split tuned the no-answer threshold
    assert starter.is_evaluation_only(row["run_dir"])
