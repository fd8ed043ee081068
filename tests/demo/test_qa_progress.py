"""demo/qa_tab.py: the progress the QA tab shows while it answers. ``window_progress`` turns QATask.answer's
(phase, windows read, windows) into Gradio progress lines; ``answer_question`` says a model is loading before its
first prediction only, then reports the windows read; a gr.Progress() outside an event does nothing, so the
handler still works when called as the API calls it (four positional values, no progress). The model is the
registry's e5_small (real encoder weights from an offline package, random span head), loaded once into a predictor
cache of this module's own, so that "not loaded yet" does not depend on what other tests loaded."""
from __future__ import annotations

import math

import pytest

from core.store.predictors import PredictorCache
from core.tasks.qa.task import ANSWER_PHASE
from tests.tasks.qa.test_models_task import PASSAGE, QUESTION

gr = pytest.importorskip("gradio")
from demo import pickers, qa_tab  # noqa: E402

REF = "model:e5_small"


def _qa_unavailable() -> str:
    """Why e5_small cannot be built here ("" when it can)."""
    try:
        from core.tasks.qa.models import load_qa_tokenizer

        load_qa_tokenizer("e5_small")
    except Exception as err:  # package missing: say which
        return f"e5_small cannot be built here ({err})"
    return ""


needs_e5 = pytest.mark.skipif(bool(_qa_unavailable()), reason=_qa_unavailable() or "e5_small available")


class Recorder:
    """A fake gr.Progress: callable, keeps (args, kwargs) of every call."""

    def __init__(self):
        self.calls: list[tuple[tuple, dict]] = []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))

    def descs(self) -> list[str]:
        return [kwargs.get("desc") for _, kwargs in self.calls]


def window_calls(title: str, n: int, batch_size: int) -> list[tuple[tuple, dict]]:
    """The progress calls ``window_progress`` must make while ``n`` windows are read ``batch_size`` at a time."""
    steps = [0] + [min(i * batch_size, n) for i in range(1, math.ceil(n / batch_size) + 1)]
    first = f"{title}: reading {n} window{'s' if n != 1 else ''}"
    return [(((d, n),), {"desc": f"{title}: window {d} of {n}" if d else first, "unit": "windows"}) for d in steps]


def windows_read(heading: str) -> int:
    """The windows a result heading says the passage was read in ("... read in 3 windows.")."""
    return int(heading.split("read in ")[1].split(" ")[0])


@pytest.fixture(scope="module")
def cache():
    """An empty predictor cache in place of the app's for this module (restored after)."""
    fresh = PredictorCache()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pickers, "predictors", lambda: fresh)
        yield fresh


# ---------------------------------------------------------------------------------------------------------------
# window_progress
# ---------------------------------------------------------------------------------------------------------------
def test_window_progress_says_reading_then_window_i_of_n():
    """done 0 gives "reading n windows", later steps "window i of n"; the bar gets (done, total) in windows."""
    record = Recorder()
    report = qa_tab.window_progress(record, "Model A")
    for done in (0, 2, 4, 5):
        report(ANSWER_PHASE, done, 5)
    assert record.calls == [
        (((0, 5),), {"desc": "Model A: reading 5 windows", "unit": "windows"}),
        (((2, 5),), {"desc": "Model A: window 2 of 5", "unit": "windows"}),
        (((4, 5),), {"desc": "Model A: window 4 of 5", "unit": "windows"}),
        (((5, 5),), {"desc": "Model A: window 5 of 5", "unit": "windows"}),
    ]


def test_window_progress_singular_and_title():
    """One window is "1 window" (no plural s), and the title is the one given."""
    record = Recorder()
    report = qa_tab.window_progress(record, "Model B")
    report(ANSWER_PHASE, 0, 1)
    report(ANSWER_PHASE, 1, 1)
    assert record.descs() == ["Model B: reading 1 window", "Model B: window 1 of 1"]
    assert record.calls == window_calls("Model B", 1, 64)


# ---------------------------------------------------------------------------------------------------------------
# gr.Progress outside an event
# ---------------------------------------------------------------------------------------------------------------
def test_a_gradio_progress_outside_an_event_does_nothing():
    """gr.Progress() called with no event running returns its value and raises nothing, in both forms the tab
    uses (a fraction for the load line, (done, total) for windows); so answer_question's default is safe."""
    progress = gr.Progress()
    assert progress(0.0, desc="Model A: loading e5_small") == 0.0
    assert progress((2, 5), desc="Model A: window 2 of 5", unit="windows") == (2, 5)
    report = qa_tab.window_progress(progress, "Model A")
    assert report(ANSWER_PHASE, 0, 3) is None and report(ANSWER_PHASE, 3, 3) is None
    assert not progress.iterables  # nothing was tracked


def test_gradio_fills_in_progress_and_the_api_takes_four_values():
    """Gradio's own argument filler finds the gr.Progress default at position 4 and inserts it after the four
    widget values, so the API's inputs stay passage, question, model A, model B."""
    from gradio.helpers import special_args

    inputs, progress_index, _, _ = special_args(qa_tab.answer_question, ["p", "q", REF, None])
    assert progress_index == 4
    assert inputs[:4] == ["p", "q", REF, None] and isinstance(inputs[4], gr.Progress) and len(inputs) == 5


def test_an_unloadable_model_with_the_default_progress_gives_its_sentence():
    """A ref that is never loaded takes the "loading" path with the default gr.Progress outside an event (a no-op)
    and the heading says why there is no answer; a recording progress shows that path was taken."""
    status, heading, highlight, table, *_ = qa_tab.answer_question(PASSAGE, QUESTION, "model:no_such_model")
    assert status == "" and "Unknown model" in heading and highlight is None and table is None
    record = Recorder()
    assert qa_tab.answer_question(PASSAGE, QUESTION, "model:no_such_model", None, record)[1] == heading
    assert record.descs() == [pickers.first_load_words("Model A", "model:no_such_model")]


# ---------------------------------------------------------------------------------------------------------------
# answer_question with e5_small
# ---------------------------------------------------------------------------------------------------------------
@needs_e5
def test_the_first_answer_says_loading_and_the_second_does_not(cache, monkeypatch):
    """Not loaded: the first line is first_load_words for model A, then the window lines; once loaded, a second
    question gets the window lines only."""
    if cache.keys():  # another test of this module loaded it first: use a cache of this test's own
        cache = PredictorCache()
        monkeypatch.setattr(pickers, "predictors", lambda: cache)
    assert not pickers.is_loaded(REF)
    record = Recorder()
    status, heading, *_ = qa_tab.answer_question(PASSAGE, QUESTION, REF, None, record)
    assert status == "" and "read in 1 window." in heading
    batch_size = cache.get(REF).cfg.eval_batch_size
    assert record.calls == [((0.0,), {"desc": pickers.first_load_words("Model A", REF)}),
                            *window_calls("Model A", 1, batch_size)]
    assert "loading e5_small for its first prediction" in record.descs()[0]
    assert pickers.is_loaded(REF)

    again = Recorder()
    assert qa_tab.answer_question(PASSAGE, QUESTION, REF, None, again)[0] == ""
    assert again.calls == window_calls("Model A", 1, batch_size)
    assert not any("loading" in d for d in again.descs())


@needs_e5
def test_a_long_passage_reports_every_batch_for_both_models(cache, monkeypatch):
    """Several windows read two at a time, for model A then model B (the same loaded model: no load line): each
    reports "reading n windows" then every batch up to "window n of n", and n is the n its heading shows. The
    answers equal those of a call without progress."""
    monkeypatch.setattr(cache.get(REF).cfg, "eval_batch_size", 2)
    passage = " ".join(p["passage"] for p in qa_tab.load_examples())
    question = qa_tab.load_examples()[4]["questions"][1]["question"]
    record = Recorder()
    out = qa_tab.answer_question(passage, question, REF, REF, record)
    n = windows_read(out[1])
    assert n >= 3 and windows_read(out[4]) == n
    assert record.calls == window_calls("Model A", n, 2) + window_calls("Model B", n, 2)
    assert len(record.calls) == 2 * (1 + math.ceil(n / 2))
    assert qa_tab.answer_question(passage, question, REF, REF) == out


@needs_e5
def test_positional_call_as_the_api_makes_it(cache):
    """Four positional values and no progress (how gradio_client's /qa_answer arrives at the function, and how
    scripts call it): the default gr.Progress does nothing and the answer comes back; None works the same."""
    cache.get(REF)  # loaded or not, the call must work; loading here keeps this test's cost to one answer
    out = qa_tab.answer_question(PASSAGE, QUESTION, REF, None)
    assert out[0] == "" and "read in 1 window." in out[1]
    assert out[4:] == (pickers.unpicked_heading("Model B"), None, None)
    assert qa_tab.answer_question(PASSAGE, QUESTION, REF, None, None) == out
