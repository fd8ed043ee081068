"""The interactive gate: a fine-tune's batch loop waits while a prediction is served, resumes after it, never waits
longer than its bound, and still honours a cancel (core/engine/interactive.py, core/engine/fit.py)."""
from __future__ import annotations

import threading

import pytest

from core.config import TrainConfig
from core.engine import interactive
from core.engine.fit import train
from core.engine.interactive import InteractiveGate
from core.errors import CancelledError
from core.store.runs import open_run

TINY = dict(task="images", model="mlp", strategy="scratch", epochs=1, train_limit=40, eval_limit=16,
            batch_size=8, device="cpu")


class Held:
    """A request held inside ``gate.serving()`` from ``start()`` until ``release()``; ``ended`` once it is
    leaving."""

    def __init__(self, gate: InteractiveGate):
        self.gate = gate
        self.entered, self.go, self.ended = threading.Event(), threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        with self.gate.serving():
            self.entered.set()
            self.go.wait(60)
            self.ended.set()  # set before the gate hears the end, so a loop that resumes sees it

    def start(self) -> "Held":
        self.thread.start()
        assert self.entered.wait(10)
        return self

    def release(self) -> None:
        self.go.set()
        self.thread.join(10)


def in_thread(fn):
    """Run ``fn`` in a thread: (thread, result dict with "value" or "error")."""
    out: dict = {}

    def body():
        try:
            out["value"] = fn()
        except BaseException as err:  # noqa: BLE001 (handed to the test)
            out["error"] = err

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, out


def test_no_request_means_no_wait():
    gate = InteractiveGate(quiet_s=0.0)
    assert not gate.busy()
    assert gate.yield_to_requests(max_wait_s=5) == 0.0
    assert gate.waits == 0


def test_the_count_follows_requests_also_when_one_raises():
    gate = InteractiveGate(quiet_s=0.0)
    with pytest.raises(ValueError):
        with gate.serving():
            with gate.serving():
                assert gate.busy()
            assert gate.busy()  # the outer request is still served
            raise ValueError("the forward failed")
    assert not gate.busy()


def test_a_waiting_loop_resumes_when_the_request_ends():
    gate = InteractiveGate(quiet_s=0.0)
    held = Held(gate).start()
    thread, out = in_thread(lambda: gate.yield_to_requests(max_wait_s=60))
    thread.join(0.3)
    assert thread.is_alive() and not held.ended.is_set()  # still waiting while the request is served
    held.release()
    thread.join(10)
    assert not thread.is_alive() and held.ended.is_set()
    assert 0.3 <= out["value"] < 60 and gate.waits == 1


def test_the_wait_is_bounded_while_a_request_never_ends():
    gate = InteractiveGate(quiet_s=0.0)
    held = Held(gate).start()
    try:
        thread, out = in_thread(lambda: gate.yield_to_requests(max_wait_s=0.2))
        thread.join(10)
        assert not thread.is_alive() and not held.ended.is_set()  # it returned with the request still served
        assert out["value"] >= 0.2
    finally:
        held.release()


def test_a_cancel_ends_the_wait_and_a_set_cancel_never_waits():
    gate = InteractiveGate(quiet_s=0.0)
    cancel = threading.Event()
    held = Held(gate).start()
    try:
        thread, out = in_thread(lambda: gate.yield_to_requests(cancel, max_wait_s=60))
        thread.join(0.2)
        assert thread.is_alive()
        cancel.set()
        thread.join(10)
        assert not thread.is_alive() and not held.ended.is_set() and out["value"] < 60
        assert gate.yield_to_requests(cancel, max_wait_s=60) == 0.0
    finally:
        held.release()


def test_a_short_gap_between_requests_keeps_the_loop_waiting():
    gate = InteractiveGate(quiet_s=60.0)  # a request just ended: within the quiet gap
    with gate.serving():
        pass
    assert gate.busy()
    cancel = threading.Event()
    thread, _ = in_thread(lambda: gate.yield_to_requests(cancel, max_wait_s=60))
    thread.join(0.2)
    assert thread.is_alive()
    cancel.set()
    thread.join(10)
    assert not thread.is_alive()


def _train_holding_a_request(data_dir, runs_root, monkeypatch, max_wait_s: float, release_after_step: bool,
                             cancel: threading.Event | None = None):
    """Train TINY; at its first training step a request starts (held in the process gate). Returns (the steps
    reported with whether the request had ended by then, the held request, the train thread and its result)."""
    monkeypatch.setattr(interactive.GATE, "max_wait_s", max_wait_s)
    monkeypatch.setattr(interactive.GATE, "quiet_s", 0.0)
    monkeypatch.setattr(interactive.GATE, "waits", 0)
    held = Held(interactive.GATE)
    seen: list[tuple[str, int, bool]] = []

    def on_progress(p):
        seen.append((p.phase, p.global_step, held.ended.is_set()))
        if p.phase == "train" and p.global_step == 1:
            held.start()
            if release_after_step:  # the request ends a little later, from its own thread
                threading.Timer(0.3, held.release).start()
            if cancel is not None:
                threading.Timer(0.3, cancel.set).start()

    cfg = TrainConfig(**TINY, data_dir=str(data_dir))
    thread, out = in_thread(lambda: train(cfg, runs_root=str(runs_root), on_progress=on_progress, cancel=cancel))
    return seen, held, thread, out


def test_training_pauses_while_a_request_is_served_and_resumes_after(data_dir, runs_root, monkeypatch):
    seen, held, thread, out = _train_holding_a_request(data_dir, runs_root, monkeypatch, max_wait_s=60,
                                                       release_after_step=True)
    thread.join(120)
    assert not thread.is_alive() and "error" not in out
    steps = [(step, ended) for phase, step, ended in seen if phase == "train"]
    assert steps[0] == (1, False)
    # the step after the request started was taken only once the request had ended, and training went on
    assert steps[1] == (2, True) and steps[-1][0] == 5
    assert open_run(out["value"].path).read_status()["status"] == "completed"


def test_training_progresses_within_the_bound_while_requests_never_stop(data_dir, runs_root, monkeypatch):
    seen, held, thread, out = _train_holding_a_request(data_dir, runs_root, monkeypatch, max_wait_s=0.1,
                                                       release_after_step=False)
    try:
        thread.join(120)
        assert not thread.is_alive() and "error" not in out
        assert not held.ended.is_set()  # the request was still being served the whole time
        assert [step for phase, step, _ in seen if phase == "train"] == [1, 2, 3, 4, 5]
        assert interactive.GATE.waits >= 4
    finally:
        held.release()


def test_a_cancel_stops_a_training_that_waits_for_requests(data_dir, runs_root, monkeypatch):
    cancel = threading.Event()
    seen, held, thread, out = _train_holding_a_request(data_dir, runs_root, monkeypatch, max_wait_s=60,
                                                       release_after_step=False, cancel=cancel)
    try:
        thread.join(60)  # well under the 60 s bound: the cancel ended the wait
        assert not thread.is_alive() and isinstance(out.get("error"), CancelledError)
        assert not held.ended.is_set()
        assert [step for phase, step, _ in seen if phase == "train"] == [1]
        (run_dir,) = runs_root.iterdir()
        assert open_run(run_dir).read_status()["status"] == "cancelled"
    finally:
        held.release()
