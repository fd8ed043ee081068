"""core/tasks/qa/task.py: QATask.answer's progress callback. It reports (ANSWER_PHASE, windows read, windows) once
before the first batch and after every batch of eval_batch_size windows, ends at (n, n) with n the answer's
``windows``, and changes nothing in the answer; progress=None is the plain answer. On the tiny random QA task of
test_models_task.py, built once for the module (no weights to load); each test sets its own eval_batch_size."""
from __future__ import annotations

import math

import pytest

from core.tasks.qa.task import ANSWER_PHASE
from tests.tasks.qa.test_models_task import PASSAGE, QUESTION, tiny_task

pytestmark = pytest.mark.usefixtures("offline")  # tests/conftest.py: the Hub counts as unreachable

LONG_PASSAGE = " ".join([PASSAGE] * 12)  # about 40 tokens per copy: many 64-token windows at stride 16


@pytest.fixture(scope="module")
def built():
    """The tiny task (max_length 64, doc_stride 16), built once: building it is what takes seconds."""
    return tiny_task()


@pytest.fixture
def task(built, monkeypatch):
    """``task(batch_size)``: the module's tiny task reading ``batch_size`` windows a batch (restored after)."""
    def with_batch_size(batch_size: int):
        monkeypatch.setattr(built.cfg, "eval_batch_size", batch_size)
        return built
    return with_batch_size


class Recorder:
    """A progress callback that keeps every call's arguments."""

    def __init__(self):
        self.calls: list[tuple] = []

    def __call__(self, *args, **kwargs):
        assert not kwargs, f"progress is called positionally; got {kwargs}"
        self.calls.append(args)


def check_calls(calls: list[tuple], windows: int, batch_size: int) -> None:
    """The calls a reading of ``windows`` windows in batches of ``batch_size`` must make, exactly."""
    assert windows >= 1
    assert len(calls) == 1 + math.ceil(windows / batch_size)
    assert all(len(c) == 3 and c[0] == ANSWER_PHASE and c[2] == windows for c in calls)
    done = [c[1] for c in calls]
    assert done[0] == 0 and done[-1] == windows
    assert all(b > a for a, b in zip(done, done[1:]))  # strictly increasing: every batch reads windows
    assert done == [min(i * batch_size, windows) for i in range(len(calls))]  # one batch per step, the last short
    assert all(isinstance(d, int) and isinstance(c[2], int) for d, c in zip(done, calls))


def test_a_short_passage_reports_zero_then_its_one_window(task):
    """One window: (phase, 0, 1) before the batch and (phase, 1, 1) after it, and n equals result['windows']."""
    task = task(8)
    record = Recorder()
    result = task.answer(QUESTION, PASSAGE, progress=record)
    assert result["windows"] == 1
    assert record.calls == [(ANSWER_PHASE, 0, 1), (ANSWER_PHASE, 1, 1)]


@pytest.mark.parametrize("batch_size", [1, 3, 8, 1000])
def test_a_long_passage_reports_every_batch_of_its_windows(task, batch_size):
    """A passage of many windows: 1 + ceil(n / eval_batch_size) calls, from (phase, 0, n) up to (phase, n, n) by
    eval_batch_size windows a step; a batch larger than the passage reads it in one step."""
    task = task(batch_size)
    record = Recorder()
    result = task.answer(QUESTION, LONG_PASSAGE, progress=record)
    n = result["windows"]
    assert n > 8  # several windows, so the batch sizes above make 1 to n steps
    check_calls(record.calls, n, batch_size)
    if batch_size == 1:
        assert len(record.calls) == n + 1
    if batch_size == 1000:
        assert record.calls == [(ANSWER_PHASE, 0, n), (ANSWER_PHASE, n, n)]


@pytest.mark.parametrize("passage", [PASSAGE, LONG_PASSAGE], ids=["one window", "many windows"])
def test_progress_does_not_change_the_answer(task, passage):
    """The same dict, float for float, with a progress callback, with progress=None and with no argument."""
    task = task(3)
    record = Recorder()
    with_progress = task.answer(QUESTION, passage, top_k=4, progress=record)
    assert record.calls  # the callback was used, so the comparison below is about a reading that reported
    assert task.answer(QUESTION, passage, top_k=4, progress=None) == with_progress
    assert task.answer(QUESTION, passage, top_k=4) == with_progress
    assert task.answer(QUESTION, passage, 4, None) == with_progress  # positional, as the signature orders them


def test_a_failing_input_reports_nothing(task):
    """An empty question is refused before any window is read: the callback is never called."""
    from core.errors import BadInputError

    task = task(8)
    record = Recorder()
    with pytest.raises(BadInputError):
        task.answer("  ", PASSAGE, progress=record)
    assert record.calls == []


def test_window_logits_reports_the_same_steps_as_answer(task):
    """_window_logits alone: logits for every window over its real tokens, reported like answer()."""
    from core.tasks.qa.task import make_split
    from core.tasks.qa.data import QAExample

    task = task(5)
    data = make_split([QAExample("q", "", LONG_PASSAGE, QUESTION, (), True)], task.tokenizer(), task.max_length,
                      task.cfg.doc_stride, "test")
    record = Recorder()
    starts, ends = task._window_logits(data, record)
    check_calls(record.calls, len(data), 5)
    assert [len(s) for s in starts] == [len(e) for e in ends] == [int(n) for n in data.lengths]
    plain_starts, plain_ends = task._window_logits(data)
    assert all((a == b).all() for a, b in zip(starts, plain_starts))
    assert all((a == b).all() for a, b in zip(ends, plain_ends))


class FalsyRecorder(Recorder):
    """A recorder that is falsy, as a gr.Progress is while it tracks nothing (it has ``__len__``, 0 then)."""

    def __len__(self):
        return 0


def test_a_falsy_callback_is_still_called(task):
    """The callback is called because it was given, not because it is truthy: a gr.Progress (bool() False outside
    a tracked iterable) passed as progress gets every step."""
    task = task(4)
    record = FalsyRecorder()
    assert not record
    result = task.answer(QUESTION, LONG_PASSAGE, progress=record)
    check_calls(record.calls, result["windows"], 4)
