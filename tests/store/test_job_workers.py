"""The job queue with several workers (one per GPU): jobs that really run at the same time, positions, cancel, a
failing job, the pinned device of each worker, and the TRANSFER_LAB_JOB_WORKERS setting.

Most tests replace the engine's train() with one that blocks on events, so which jobs run at once is decided by the
test, not by timing; one test trains two tiny real runs side by side."""
import contextlib
import threading

import pytest

import core.store.jobs as jobs_module
from core.config import TrainConfig
from core.errors import BadSettingError, CancelledError, OutOfMemoryError
from core.store.jobs import WORKERS_ENV, JobQueue, worker_count

WAIT = 30  # seconds: only reached when something is broken


def _cfg(data_dir, seed=0, **kw):
    return TrainConfig(**{**dict(task="images", model="mlp", strategy="scratch", epochs=1, train_limit=60,
                                 eval_limit=30, batch_size=20, data_dir=str(data_dir), seed=seed), **kw})


class _Finished:
    """What train() returns: a run whose status.json says completed."""

    def __init__(self, path):
        self.path = path

    def read_status(self):
        return {"status": "completed", "message": "Finished."}


class BlockingTrain:
    """Stands in for core.engine.fit.train: each call (a job, known by its seed) says it started, then blocks until
    the test releases that seed or cancels the job; ``fail`` seeds raise instead."""

    def __init__(self, tmp_path, fail=()):
        self.tmp_path, self.fail = tmp_path, dict(fail)
        self.lock = threading.Lock()
        self.started: dict[int, threading.Event] = {}
        self.release: dict[int, threading.Event] = {}
        self.threads: dict[int, str] = {}
        self.running = 0
        self.most_at_once = 0

    def _event(self, table, seed) -> threading.Event:
        with self.lock:
            return table.setdefault(seed, threading.Event())

    def __call__(self, cfg=None, *, resume=None, max_minutes=None, cancel=None, **kwargs):
        seed = cfg.seed
        with self.lock:
            self.threads[seed] = threading.current_thread().name
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        self._event(self.started, seed).set()
        try:
            if seed in self.fail:
                raise self.fail[seed]
            while not self._event(self.release, seed).wait(0.01):
                if cancel.is_set():
                    raise CancelledError("Cancelled at a batch; the checkpoint is kept.")
            return _Finished(self.tmp_path / f"run-{seed}")
        finally:
            with self.lock:
                self.running -= 1

    def wait_started(self, seed) -> None:
        assert self._event(self.started, seed).wait(WAIT), f"job {seed} never started"

    def finish(self, seed) -> None:
        self._event(self.release, seed).set()


@pytest.fixture
def blocking(tmp_path, monkeypatch):
    fake = BlockingTrain(tmp_path, fail={7: RuntimeError("a bug in training"),
                                         8: OutOfMemoryError("Out of memory at batch size 20.")})
    monkeypatch.setattr("core.engine.fit.train", fake)
    monkeypatch.setattr("os.cpu_count", lambda: 4)  # two workers are allowed whatever this machine has
    monkeypatch.delenv(WORKERS_ENV, raising=False)
    return fake


def test_two_workers_run_two_jobs_at_once_and_positions_count_both(data_dir, runs_root, blocking):
    q = JobQueue(runs_root=str(runs_root), workers=2)
    assert q.workers == 2
    a, b, c, d = (q.submit(_cfg(data_dir, seed)) for seed in range(4))
    blocking.wait_started(0)
    blocking.wait_started(1)  # both are inside train() now: two jobs at once
    sa, sb = q.snapshot(a.id), q.snapshot(b.id)
    assert sa["status"] == sb["status"] == "running"
    assert {sa["worker"], sb["worker"]} == {0, 1} and sa["device"] == sb["device"] == "cpu"
    assert [q.position(j.id) for j in (a, b, c, d)] == [0, 0, 2, 3]  # two running ahead of c, three of d
    snap_c = q.snapshot(c.id)
    assert snap_c["status"] == "queued" and snap_c["worker"] is None and snap_c["device"] is None
    assert snap_c["position"] == 2

    blocking.finish(1)  # b's worker comes free and takes c, the oldest queued job
    assert q.wait(b.id, timeout=WAIT)["status"] == "completed"
    blocking.wait_started(2)
    assert q.snapshot(c.id)["worker"] == sb["worker"]
    assert q.position(d.id) == 2 and q.snapshot(d.id)["status"] == "queued"
    for seed in (0, 2, 3):
        blocking.finish(seed)
    snaps = [q.wait(j.id, timeout=WAIT) for j in (a, b, c, d)]
    assert [s["status"] for s in snaps] == ["completed"] * 4
    assert blocking.most_at_once == 2
    assert snaps[0]["run_dir"].endswith("run-0") and snaps[3]["run_dir"].endswith("run-3")
    keys = {"id", "resume", "status", "message", "run_dir", "progress", "history", "submitted", "started",
            "finished", "kind", "group", "config", "cancelling", "position"}  # what the app reads
    assert keys | {"worker", "device"} == set(snaps[0])


def test_one_worker_never_runs_two_jobs_at_once(data_dir, runs_root, blocking):
    q = JobQueue(runs_root=str(runs_root), workers=1)
    a, b = q.submit(_cfg(data_dir, 0)), q.submit(_cfg(data_dir, 1))
    blocking.wait_started(0)
    assert not blocking._event(blocking.started, 1).wait(0.3)  # b waits behind a
    assert q.position(b.id) == 1
    blocking.finish(0)
    blocking.finish(1)
    assert q.wait(b.id, timeout=WAIT)["status"] == "completed"
    assert blocking.most_at_once == 1 and q.snapshot(b.id)["worker"] == 0


def test_cancel_with_two_workers(data_dir, runs_root, blocking):
    q = JobQueue(runs_root=str(runs_root), workers=2)
    a, b, c, d = (q.submit(_cfg(data_dir, seed)) for seed in range(4))
    blocking.wait_started(0)
    blocking.wait_started(1)
    q.cancel(c.id)  # queued: it never starts, and d moves up
    assert q.snapshot(c.id)["status"] == "cancelled" and q.position(d.id) == 2
    q.cancel(a.id)  # running: it stops at its next "batch", and its worker takes d (c is skipped)
    assert q.snapshot(a.id)["cancelling"] or q.snapshot(a.id)["status"] == "cancelled"
    assert q.wait(a.id, timeout=WAIT)["status"] == "cancelled"
    blocking.wait_started(3)
    assert q.snapshot(b.id)["status"] == "running"  # the other worker's job is untouched
    blocking.finish(1)
    blocking.finish(3)
    assert q.wait(d.id, timeout=WAIT)["status"] == q.wait(b.id, timeout=WAIT)["status"] == "completed"
    assert 2 not in blocking.threads  # the cancelled queued job never reached train()


def test_a_failing_job_leaves_its_worker_running(data_dir, runs_root, blocking):
    q = JobQueue(runs_root=str(runs_root), workers=2)
    bug, oom = q.submit(_cfg(data_dir, 7)), q.submit(_cfg(data_dir, 8))
    snap = q.wait(bug.id, timeout=WAIT)
    assert snap["status"] == "failed" and "unexpectedly" in snap["message"]
    snap = q.wait(oom.id, timeout=WAIT)
    assert snap["status"] == "failed" and snap["message"] == "Out of memory at batch size 20."
    a, b = q.submit(_cfg(data_dir, 0)), q.submit(_cfg(data_dir, 1))
    blocking.wait_started(0)
    blocking.wait_started(1)  # both workers are still alive and take a job each
    assert {q.snapshot(a.id)["worker"], q.snapshot(b.id)["worker"]} == {0, 1}
    blocking.finish(0)
    blocking.finish(1)
    assert q.wait(a.id, timeout=WAIT)["status"] == q.wait(b.id, timeout=WAIT)["status"] == "completed"


def test_each_worker_pins_its_own_gpu(data_dir, runs_root, blocking, monkeypatch):
    """With two GPUs (faked: this machine has none), worker i makes GPU i current in its thread for its job; a job
    set to the CPU pins nothing."""
    pinned: dict[str, int] = {}  # thread name -> GPU made current while train() runs

    @contextlib.contextmanager
    def on_gpu(index):
        pinned[threading.current_thread().name] = index
        try:
            yield
        finally:
            pinned.pop(threading.current_thread().name)

    seen: dict[int, int | None] = {}
    inner = blocking.__call__

    def train(cfg=None, **kwargs):
        seen[cfg.seed] = pinned.get(threading.current_thread().name)
        return inner(cfg, **kwargs)

    monkeypatch.setattr(jobs_module, "visible_gpus", lambda: 2)
    monkeypatch.setattr(jobs_module, "_on_gpu", on_gpu)
    monkeypatch.setattr("core.engine.fit.train", train)
    q = JobQueue(runs_root=str(runs_root))
    assert q.gpus == q.workers == 2  # one worker per GPU by default
    a, b = q.submit(_cfg(data_dir, 0)), q.submit(_cfg(data_dir, 1))
    blocking.wait_started(0)
    blocking.wait_started(1)
    sa, sb = q.snapshot(a.id), q.snapshot(b.id)
    assert {sa["device"], sb["device"]} == {"cuda:0", "cuda:1"}
    assert seen[0] == sa["worker"] and seen[1] == sb["worker"] and sa["device"] == f"cuda:{sa['worker']}"
    blocking.finish(0)
    blocking.finish(1)
    q.wait(a.id, timeout=WAIT)
    q.wait(b.id, timeout=WAIT)
    cpu = q.submit(_cfg(data_dir, 2, device="cpu"))
    blocking.wait_started(2)
    assert seen[2] is None and q.snapshot(cpu.id)["device"] == "cpu"
    blocking.finish(2)
    assert q.wait(cpu.id, timeout=WAIT)["status"] == "completed"


def test_worker_count_setting(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    monkeypatch.delenv(WORKERS_ENV, raising=False)
    assert worker_count() == 1 and worker_count(None, gpus=3) == 3  # one per GPU, one without
    assert worker_count(2) == 2 and worker_count(1, gpus=3) == 1
    monkeypatch.setenv(WORKERS_ENV, " 3 ")
    assert worker_count() == 3 and worker_count(None, gpus=8) == 3
    assert worker_count(2) == 2  # the argument wins over the variable
    for bad in ("0", "5", "two", "1.5", "-1", "²"):
        monkeypatch.setenv(WORKERS_ENV, bad)
        with pytest.raises(BadSettingError, match=rf"^{WORKERS_ENV} must be a whole number from 1 to 4 "
                                                  rf"\(the CPU cores of this machine\); got '{bad}'\.$"):
            worker_count()
    monkeypatch.setenv(WORKERS_ENV, "3")
    with pytest.raises(BadSettingError, match="from 1 to 2 \\(the GPUs of this machine\\); got '3'"):
        worker_count(None, gpus=2)
    for bad in (0, 5, True, 2.0, "2"):
        with pytest.raises(BadSettingError, match="number of job workers must be a whole number from 1 to 4"):
            worker_count(bad)
    with pytest.raises(BadSettingError, match="got 0"):
        JobQueue(workers=0)


def test_default_queue_has_one_worker_on_this_cpu(monkeypatch):
    monkeypatch.delenv(WORKERS_ENV, raising=False)
    monkeypatch.setattr(jobs_module, "visible_gpus", lambda: 0)
    q = JobQueue()
    assert q.workers == 1 and q.gpus == 0 and q._worker.name == "transfer-lab-trainer"


def test_two_real_tiny_runs_train_side_by_side(data_dir, runs_root, monkeypatch):
    from core.tasks.images.data import load_images

    # Decode CIFAR-10 into its cache first: two jobs decoding it at once race on one temporary file name
    # (core/tasks/images/data.py), which is that module's to fix, not the queue's.
    load_images("train", data_dir)
    load_images("test", data_dir)
    with monkeypatch.context() as m:
        m.setattr("os.cpu_count", lambda: 2)  # two workers are allowed on a one-core machine too
        q = JobQueue(runs_root=str(runs_root), workers=2)
    a = q.submit(_cfg(data_dir, 0, epochs=3, train_limit=200, batch_size=10))
    b = q.submit(_cfg(data_dir, 1, epochs=3, train_limit=200, batch_size=10))
    sa, sb = q.wait(a.id, timeout=300), q.wait(b.id, timeout=300)
    assert sa["status"] == sb["status"] == "completed", (sa["message"], sb["message"])
    assert {sa["worker"], sb["worker"]} == {0, 1} and sa["run_dir"] != sb["run_dir"]
    assert sa["started"] < sb["finished"] and sb["started"] < sa["finished"]  # their times overlap
    assert len(sa["history"]) == len(sb["history"]) == 3


def test_a_resumed_job_keeps_the_device_its_run_was_set_to(runs_root):
    from core.store.jobs import _saved_device
    from core.store.runs import create_run

    run = create_run("mlp", "scratch", str(runs_root))
    run.write_config({"train": {"task": "images", "model": "mlp", "device": "cpu"}})
    assert _saved_device(str(run.path), str(runs_root)) == "cpu"  # so the queue pins no GPU for its resume
    run.write_config({"train": "garbled"})
    assert _saved_device(str(run.path), str(runs_root)) is None
    assert _saved_device(str(runs_root / "no-such-run"), str(runs_root)) is None
