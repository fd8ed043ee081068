"""The batched tweet event: answers equal the one-request handler's, and a bad request in a batch gets its own
sentence while the others are answered."""
from __future__ import annotations

import shutil

import pytest

from core.weights import hub_available

gr = pytest.importorskip("gradio")
from demo import pickers, tweets_tab  # noqa: E402
from demo.state import predictors  # noqa: E402


@pytest.fixture(scope="module")
def tweet_run(tmp_path_factory, tiny_tweet_run) -> str:
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRANSFER_LAB_RUNS", str(root))
        mp.setenv("TRANSFER_LAB_OFFLINE", "1")
        hub_available.cache_clear()
        yield str(shutil.copytree(tiny_tweet_run, root / tiny_tweet_run.name))
    hub_available.cache_clear()


TEXTS = ["Wash your hands and wear a mask 😷 says the health ministry",
         "5G towers spread the virus, share before they delete this!!!",
         "ok",
         "New cases today: 1,204 confirmed, 17 deaths. " * 20]  # longer than max_length: truncated


def close(a: dict | None, b: dict | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-5 for k in a)


def test_predict_texts_equals_predict_text(tweet_run):
    task = predictors().get(tweet_run)
    batched = task.predict_texts(TEXTS)
    for text, got in zip(TEXTS, batched):
        want = task.predict_text(text)
        assert {k: v for k, v in got.items() if "probability" not in k} == \
            {k: v for k, v in want.items() if "probability" not in k}
        assert abs(got["probability_real"] - want["probability_real"]) < 1e-5
    assert batched[3]["truncated"] and not batched[0]["truncated"]


def test_batched_handler_equals_unbatched_and_isolates_bad_items(tweet_run):
    texts = [TEXTS[0], "   ", TEXTS[1], None, TEXTS[3], TEXTS[2]]
    ref1 = [tweet_run] * len(texts)
    ref1[5] = None  # this request picked no model at all
    ref2 = ["model:minilm", None, "model:nope", "model:minilm", {"x": 1}, None]
    ref3 = [None] * len(texts)
    out = tweets_tab.classify_tweets(texts, ref1, ref2, ref3)
    assert len(out) == 7 and all(len(col) == len(texts) for col in out)
    rows = list(zip(*out))
    for i, text in enumerate(texts):
        single = tweets_tab.classify_tweet(text, ref1[i], ref2[i], ref3[i])
        assert rows[i][0] == single[0]
        for j in range(1, 7, 2):
            assert rows[i][j] == single[j], (i, j)
            assert close(rows[i][j + 1], single[j + 1]), (i, j)
    assert rows[1] == ("**The tweet is empty: type some text to classify.**",) + (None,) * 6
    assert rows[5][0] == "**Pick at least one model.**"
    assert rows[0][0] == rows[2][0] == rows[4][0] == "" and rows[4][2] is not None and rows[4][4] is None
    assert "Unknown" in rows[2][3] or "nope" in rows[2][3]  # its own sentence; request 0's column 2 still answers
    assert rows[0][4] is not None and rows[2][2] is not None
    assert rows[0][5] == pickers.unpicked_heading("Model 3")


def test_empty_batch_gives_empty_columns():
    assert tweets_tab.classify_tweets([], [], [], []) == ([],) * 7
