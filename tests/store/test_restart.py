"""A restart never orphans a run: a training process killed with -9 leaves a run that reads "interrupted" and
resumes to completion, with or without a checkpoint; status.json carries pid, host and heartbeat."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from core.config import TrainConfig
from core.engine.fit import train
from core.paths import REPO_ROOT
from core.store.runs import HOST, STALE_SECONDS, create_run, open_run, process_gone


def _wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_a_killed_training_reads_interrupted_and_resumes(data_dir, runs_root):
    # 20 epochs of 5 steps each, with a time checkpoint at (nearly) every step: killed mid-run
    argv = [sys.executable, "-m", "core", "train", "--task", "images", "--model", "mlp", "--strategy", "scratch",
            "--epochs", "20", "--train-limit", "40", "--eval-limit", "8", "--batch-size", "8",
            "--checkpoint-minutes", "0.0001", "--device", "cpu", "--data-dir", str(data_dir),
            "--runs-dir", str(runs_root)]
    env = {**os.environ, "TRANSFER_LAB_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: any((p / "checkpoint" / "state.json").is_file() for p in runs_root.iterdir()))
        (run_dir,) = runs_root.iterdir()
        raw = json.loads((run_dir / "status.json").read_text())
        assert raw["status"] == "running" and raw["pid"] == proc.pid and raw["host"] == HOST
        assert "heartbeat" in raw
        assert open_run(run_dir).read_status()["status"] == "running"  # alive: not interrupted
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    run = open_run(run_dir)
    status = run.read_status()
    assert status["status"] == "interrupted" and "resume it" in status["message"]
    resumed = train(resume=str(run_dir))
    assert resumed.read_status()["status"] == "completed" and len(resumed.read_history()) == 20


def test_a_run_interrupted_before_its_first_checkpoint_restarts_from_the_beginning(data_dir, runs_root):
    cfg = TrainConfig(task="images", model="mlp", strategy="scratch", epochs=1, train_limit=40, eval_limit=8,
                      device="cpu", data_dir=str(data_dir))
    run = create_run(cfg.model, cfg.strategy, runs_root)
    run.write_config({"train": cfg.to_json()})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run.set_status("running", "Training mlp (scratch).")
    raw = json.loads((run.path / "status.json").read_text())
    (run.path / "status.json").write_text(json.dumps({**raw, "pid": dead.pid}))
    assert run.read_status()["status"] == "interrupted" and "from the start" in run.read_status()["message"]
    resumed = train(resume=str(run.path), runs_root=str(runs_root))
    assert resumed.read_status()["status"] == "completed"


def test_a_stale_heartbeat_from_another_host_is_interrupted():
    now = time.time()
    beat = {"status": "running", "pid": 1, "host": "elsewhere", "heartbeat": now - STALE_SECONDS - 1}
    assert process_gone(beat, now)
    assert not process_gone({**beat, "heartbeat": now}, now)
    assert not process_gone({**beat, "status": "completed"}, now)
    assert process_gone({**beat, "host": HOST, "pid": 2 ** 22 + 12345, "heartbeat": now}, now)
