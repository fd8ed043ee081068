"""The app's job queue and predictor cache, without Gradio."""
import sys

import pytest

from core.config import TrainConfig
from core.errors import BadSettingError, RunNotFoundError
from core.store.jobs import JobQueue
from core.store.predictors import PredictorCache
from core.store.runs import delete_run, open_run


def _mlp(data_dir, **kw):
    return TrainConfig(**{**dict(task="images", model="mlp", strategy="scratch", epochs=2, train_limit=60,
                                 eval_limit=30, batch_size=20, data_dir=str(data_dir)), **kw})


def test_queue_runs_one_job_at_a_time_and_reports_progress(data_dir, runs_root):
    q = JobQueue(runs_root=str(runs_root))
    first = q.submit(_mlp(data_dir))
    second = q.submit(_mlp(data_dir, seed=1))
    third = q.submit(_mlp(data_dir, seed=2))
    assert q.position(third.id) >= 1  # waiting behind at least one job
    q.cancel(third.id)
    a = q.wait(first.id, timeout=300)
    b = q.wait(second.id, timeout=300)
    assert a["status"] == b["status"] == "completed"
    assert q.snapshot(third.id)["status"] == "cancelled" and q.snapshot(third.id)["run_dir"] is None
    assert len(a["history"]) == 2 and a["progress"]["phase"] == "done"
    assert a["run_dir"] and a["run_dir"] != b["run_dir"]
    assert a["started"] <= b["started"] and a["finished"] <= b["started"] + 1e-3  # never two at once


def test_bad_settings_fail_at_submit(data_dir, runs_root):
    q = JobQueue(runs_root=str(runs_root))
    with pytest.raises(BadSettingError, match="learning rate"):
        q.submit(_mlp(data_dir, lr=float("nan")))
    with pytest.raises(BadSettingError, match="not known"):
        q.snapshot("nope")


def test_cancel_a_running_job_keeps_its_checkpoint_and_resume_finishes(data_dir, runs_root):
    q = JobQueue(runs_root=str(runs_root))
    job = q.submit(_mlp(data_dir, epochs=50, train_limit=200, batch_size=10))
    import time

    while (q.snapshot(job.id)["progress"] or {}).get("phase") != "train":
        time.sleep(0.05)
    q.cancel(job.id)
    snap = q.wait(job.id, timeout=120)
    assert snap["status"] == "cancelled" and "checkpoint" in snap["message"]
    resumed = q.submit_resume(snap["run_dir"])
    q.cancel(resumed.id)  # cancelled while queued: it never starts
    assert q.wait(resumed.id, timeout=60)["status"] == "cancelled"


def test_predictor_cache_reuses_and_evicts(data_dir, runs_root):
    q = JobQueue(runs_root=str(runs_root))
    run_dir = q.wait(q.submit(_mlp(data_dir, epochs=1)).id, timeout=300)["run_dir"]
    cache = PredictorCache(max_bytes=1, runs_root=str(runs_root))  # bound smaller than any model
    task = cache.get(run_dir)
    assert cache.get(run_dir) is task  # reused
    other = cache.get("model:mlp")
    assert other is not task and len(cache.keys()) == 1  # evicted down to the newest one
    delete_run(run_dir)
    with pytest.raises(RunNotFoundError, match="may have been deleted"):
        cache.get(run_dir)


def test_predictor_cache_builds_a_model_once_for_requests_at_the_same_time(monkeypatch):
    """Four requests for the same cold model at once (a class opening a tab, or the launch warm-up and the first
    request): one build, every request gets that model; a failed build is not cached and the next request tries
    again (and gets the error itself)."""
    import threading
    import time

    from core.store import predictors

    builds = []
    fail = {"now": False}

    def build(self, ref):
        builds.append(ref)
        time.sleep(0.3)  # a slow load: the other requests arrive while it runs
        if fail["now"]:
            raise RuntimeError("weights file truncated")
        return object()

    monkeypatch.setattr(predictors.PredictorCache, "_build", build)
    monkeypatch.setattr(predictors, "_model_bytes", lambda task: 10)
    cache = PredictorCache(max_bytes=10**9)
    got, errors = [], []

    def ask(ref):
        try:
            got.append(cache.get(ref, int8=False))
        except Exception as err:  # noqa: BLE001 - asserted below
            errors.append(err)

    threads = [threading.Thread(target=ask, args=("model:mlp",)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert builds == ["model:mlp"] and len(got) == 4 and all(m is got[0] for m in got) and not errors

    fail["now"] = True
    threads = [threading.Thread(target=ask, args=("model:vgg19",)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert builds.count("model:vgg19") == 2 and len(errors) == 2 and "model:vgg19" not in " ".join(cache.keys())
    fail["now"] = False
    assert cache.get("model:vgg19", int8=False) is not None and builds.count("model:vgg19") == 3


class _FakeSpaces:
    """Stands in for Hugging Face's ``spaces`` package: records each GPU call's requested duration."""

    def __init__(self):
        self.durations = []

    def GPU(self, duration):  # noqa: N802 (the package's name)
        def wrap(fn):
            def call(*args, **kwargs):
                self.durations.append(duration)
                return fn(*args, **kwargs)
            return call
        return wrap


def test_zerogpu_slices_resume_until_the_run_completes(data_dir, runs_root, monkeypatch):
    fake = _FakeSpaces()
    monkeypatch.setitem(sys.modules, "spaces", fake)
    q = JobQueue(runs_root=str(runs_root), slice_minutes=0.004)  # 0.24 s of training per call
    job = q.submit(_mlp(data_dir, epochs=30, train_limit=200, batch_size=10))
    snap = q.wait(job.id, timeout=600)
    assert snap["status"] == "completed", snap["message"]
    assert len(fake.durations) >= 2 and set(fake.durations) == {int(0.004 * 60) + 30}
    run = open_run(snap["run_dir"])
    assert run.read_config()["train"]["max_minutes"] is None  # slices never change the user's settings
    assert len(run.read_history()) == 30


def test_zerogpu_slices_stop_at_the_users_own_budget(data_dir, runs_root, monkeypatch):
    fake = _FakeSpaces()
    monkeypatch.setitem(sys.modules, "spaces", fake)
    q = JobQueue(runs_root=str(runs_root), slice_minutes=0.004)
    job = q.submit(_mlp(data_dir, epochs=10_000, train_limit=200, batch_size=10, max_minutes=0.02))  # 1.2 s
    snap = q.wait(job.id, timeout=600)
    assert snap["status"] == "stopped" and "0.02-minute budget" in snap["message"], snap["message"]
    assert len(fake.durations) >= 2


def test_slice_minutes_setting(monkeypatch):
    from demo.state import ZEROGPU_SLICE_MINUTES, slice_minutes

    monkeypatch.setenv("TRANSFER_LAB_GPU_SLICE_MINUTES", "2.5")
    assert slice_minutes() == 2.5
    monkeypatch.setenv("TRANSFER_LAB_GPU_SLICE_MINUTES", "0")
    assert slice_minutes() is None
    monkeypatch.setenv("TRANSFER_LAB_GPU_SLICE_MINUTES", "soon")
    with pytest.raises(BadSettingError, match="number of minutes"):
        slice_minutes()
    monkeypatch.delenv("TRANSFER_LAB_GPU_SLICE_MINUTES")
    monkeypatch.setitem(sys.modules, "spaces", _FakeSpaces())
    monkeypatch.setattr("importlib.util.find_spec", lambda name: object() if name == "spaces" else None)
    assert slice_minutes() == ZEROGPU_SLICE_MINUTES
