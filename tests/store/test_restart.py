"""A restart never orphans a run: a training process killed with -9 leaves a run that reads "interrupted" and
resumes to completion, with or without a checkpoint; status.json carries pid, host and heartbeat."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
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


# -- the queue picks interrupted runs up again on start (app.py: core.store.jobs.resume_interrupted) -------------
def _killed_training(data_dir, runs_root, epochs: int = 20):
    """A `python -m core train` subprocess killed with -9 after its first checkpoint: its run folder."""
    before = set(runs_root.iterdir())
    argv = [sys.executable, "-m", "core", "train", "--task", "images", "--model", "mlp", "--strategy", "scratch",
            "--epochs", str(epochs), "--train-limit", "40", "--eval-limit", "8", "--batch-size", "8",
            "--checkpoint-minutes", "0.0001", "--device", "cpu", "--data-dir", str(data_dir),
            "--runs-dir", str(runs_root)]
    env = {**os.environ, "TRANSFER_LAB_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: any((p / "checkpoint" / "state.json").is_file() for p in set(runs_root.iterdir()) - before))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    (run_dir,) = set(runs_root.iterdir()) - before
    return run_dir


def test_resume_interrupted_puts_the_killed_runs_back_on_the_queue_and_leaves_the_others(data_dir, runs_root):
    from core.store.jobs import JobQueue, resume_interrupted

    killed = _killed_training(data_dir, runs_root)
    stopped = create_run("mlp", "scratch", runs_root)  # stopped on purpose (Ctrl-C): its owner resumes it
    stopped.write_config({"train": TrainConfig(task="images", model="mlp", strategy="scratch").to_json()})
    stopped.set_status("interrupted", "Interrupted (Ctrl-C); resume it to continue from its last checkpoint.")
    assert open_run(killed).read_status()["status"] == "interrupted"

    queue = JobQueue(runs_root=str(runs_root))
    (job,) = resume_interrupted(str(runs_root), queue)
    assert job.resume == str(killed)
    assert resume_interrupted(str(runs_root), queue) == []  # already on the queue: not twice
    snap = queue.wait(job.id, timeout=300)
    assert snap["status"] == "completed" and len(open_run(killed).read_history()) == 20
    assert open_run(stopped.path).read_status()["status"] == "interrupted"  # left alone
    assert resume_interrupted(str(runs_root), queue) == []


def _completed_others(runs_root, killed) -> list:
    from core.store.runs import list_runs

    return [r for r in list_runs(str(runs_root)) if r["status"] == "completed" and r["path"] != str(killed)]


def test_auto_resume_can_be_turned_off(monkeypatch):
    from core.store.jobs import auto_resume_enabled

    assert auto_resume_enabled()
    for off in ("0", "false", " NO "):
        monkeypatch.setenv("TRANSFER_LAB_AUTO_RESUME", off)
        assert not auto_resume_enabled()
    monkeypatch.setenv("TRANSFER_LAB_AUTO_RESUME", "1")
    assert auto_resume_enabled()


def _tiny(data_dir, **kw) -> TrainConfig:
    return TrainConfig(**{**dict(task="images", model="mlp", strategy="scratch", epochs=1, train_limit=40,
                                 eval_limit=8, batch_size=8, device="cpu", data_dir=str(data_dir)), **kw})


def _stopped_server(data_dir, runs_root):
    """A queue standing for a server that stops now: its worker is stuck in its first job (which has no run
    folder yet) and a second job waits behind it; a third was cancelled while it waited. Returns (queue, the two
    live jobs, the event that lets the stuck worker go)."""
    from core.store.jobs import JobQueue

    release = threading.Event()
    old = JobQueue(runs_root=str(runs_root))
    old._run = lambda job: release.wait(600)  # the worker "trains" until released, making no run folder
    first = old.submit(_tiny(data_dir))
    _wait_for(lambda: old.snapshot(first.id)["status"] == "running")
    second = old.submit(_tiny(data_dir, seed=1))
    old.cancel(old.submit(_tiny(data_dir, seed=2)).id)
    return old, [first, second], release


def _let_go(old, jobs, release) -> None:
    """End the stand-in server without it running anything more."""
    for job in reversed(jobs):
        old.cancel(job.id)
    release.set()


def test_jobs_still_waiting_at_a_restart_are_queued_again_under_their_old_ids(data_dir, runs_root):
    from core.store.jobs import QUEUE_FOLDER, JobQueue

    old, (first, second), release = _stopped_server(data_dir, runs_root)
    try:
        folder = runs_root / QUEUE_FOLDER
        assert sorted(p.stem for p in folder.iterdir()) == sorted([first.id, second.id])  # not the cancelled one
        (folder / "garbled.json").write_text("{")
        gone = create_run("mlp", "scratch", runs_root)
        (folder / "resumegone.json").write_text(json.dumps({"id": "resumegone", "resume": str(gone.path)}))
        shutil.rmtree(gone.path)  # the run it would resume was deleted since

        new = JobQueue(runs_root=str(runs_root))  # the next server, on the same run store
        restored = new.restore_queued()
        assert [j.id for j in restored] == [first.id, second.id]  # their old ids, in their old order
        assert new.restore_queued() == []  # not twice
        assert sorted(p.name for p in folder.iterdir()) == sorted([f"{first.id}.json", f"{second.id}.json"])
        for job in restored:
            snap = new.wait(job.id, timeout=300)
            assert snap["status"] == "completed" and open_run(snap["run_dir"]).read_status()["status"] == "completed"
        assert not folder.exists()  # each file went once its job had a run folder, then the empty folder
    finally:
        _let_go(old, [first, second], release)


def test_the_next_app_start_resumes_a_killed_training_to_completion(data_dir, runs_root, free_port):
    """Kill the training process, then start the app (`python app.py`) on the same run store: it resumes the run
    from its checkpoint and finishes it, and runs the jobs that were still waiting, with nobody pressing
    anything."""
    killed = _killed_training(data_dir, runs_root)
    old, waiting, release = _stopped_server(data_dir, runs_root)
    env = {**os.environ, "TRANSFER_LAB_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFER_LAB_RUNS": str(runs_root),
           "GRADIO_SERVER_PORT": str(free_port()), "GRADIO_ANALYTICS_ENABLED": "False",
           "TRANSFER_LAB_WARMUP": "0"}  # the tabs' models need not load beside the resumed training here
    env.pop("TRANSFER_LAB_AUTO_RESUME", None)
    app = subprocess.Popen([sys.executable, "app.py"], cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: (open_run(killed).read_raw_status()["status"] in ("completed", "failed")
                           and len(_completed_others(runs_root, killed)) >= len(waiting)) or app.poll() is not None,
                  timeout=900)
        assert app.poll() is None, app.stderr.read()[-3000:]
        assert len(_completed_others(runs_root, killed)) == len(waiting)  # the waiting jobs ran, once each
    finally:
        _let_go(old, waiting, release)
        app.terminate()
        try:
            app.wait(timeout=30)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()
    run = open_run(killed)
    assert run.read_status()["status"] == "completed" and len(run.read_history()) == 20
