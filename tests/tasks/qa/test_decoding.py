"""n-best span decoding on made-up offsets and logits, and null-threshold tuning, with hand-computed values."""
import math

import numpy as np
import pytest

from core.tasks.qa.metrics import f1_score
from core.tasks.qa.decoding import (
    QAPrediction,
    answer_at_threshold,
    best_threshold,
    cut_answer,
    decode_example,
    decode_predictions,
    window_span_scores,
)

# Character spans: alpha 0-5, beta 6-10, gamma 11-16, delta 17-22, epsilon 23-30.
CONTEXT = "alpha beta gamma delta epsilon"
# Two windows laid out as [CLS] q q [SEP] three passage words [SEP]; they overlap on "gamma".
OFFSETS = [
    [None, None, None, None, (0, 5), (6, 10), (11, 16), None],
    [None, None, None, None, (11, 16), (17, 22), (23, 30), None],
]


def _logits(values: dict[int, float], length: int = 8) -> np.ndarray:
    out = np.zeros(length)
    for i, v in values.items():
        out[i] = v
    return out


def _two_window_prediction(threshold: float = 0.0) -> QAPrediction:
    # Question tokens (1, 2) get the highest logits of all: decoding must still never pick them.
    start = np.stack([_logits({0: 3.0, 1: 100.0, 4: 2.0}), _logits({5: 5.0})])
    end = np.stack([_logits({0: 3.0, 2: 100.0, 5: 2.0}), _logits({6: 5.0})])
    return decode_predictions(start, end, OFFSETS, [0, 0], [CONTEXT], threshold=threshold)[0]


def test_best_span_in_second_window():
    pred = _two_window_prediction()
    # Window 1: start "delta" (5.0) + end "epsilon" (5.0) = 10; window 0's best is alpha..beta = 4.
    assert pred.answer == "delta epsilon"
    assert pred.start_char == 17
    assert pred.best_span_score == 10.0
    # Null score = min(3 + 3, 0 + 0) = 0: the window that saw the answer speaks for the passage.
    assert pred.null_score == 0.0
    assert pred.score_diff == 10.0
    assert pred.has_answer
    assert "q" not in {a.text for a in pred.alternatives}


def test_a_span_seen_by_two_windows_keeps_its_best_score():
    # "gamma" is token 6 of window 0 and token 4 of window 1: scores 3 + 3 and 0.5 + 0.5.
    start = np.stack([_logits({6: 3.0}), _logits({4: 0.5})])
    end = np.stack([_logits({6: 3.0}), _logits({4: 0.5})])
    pred = decode_predictions(start, end, OFFSETS, [0, 0], [CONTEXT])[0]
    assert (pred.answer, pred.start_char, pred.best_span_score) == ("gamma", 11, 6.0)
    assert [a.text for a in pred.alternatives].count("gamma") == 1


def test_null_wins_when_difference_is_below_threshold():
    pred = _two_window_prediction(threshold=10.0)  # diff 10 is not > 10
    assert pred.answer == "" and pred.start_char == -1 and not pred.has_answer
    assert pred.probability == pred.no_answer_probability
    assert pred.alternatives[0].text == "delta epsilon"  # still offered as an alternative
    assert answer_at_threshold(pred, 9.5) == "delta epsilon"
    assert answer_at_threshold(pred, 10.0) == ""


def test_null_wins_on_its_own_score():
    # One window: null = 9 + 9 = 18, best span "cd" = 5 + 6 = 11 -> diff -7, no answer at threshold 0.
    pred = decode_example([0], [np.array([9.0, 1.0, 5.0])], [np.array([9.0, 1.0, 6.0])],
                          [[None, (0, 2), (3, 5)]], "ab cd", cls_index=[0])
    assert pred.answer == ""
    assert pred.score_diff == pytest.approx(-7.0)
    assert pred.alternatives[0].text == "cd"


def test_probabilities_are_softmax_over_candidates_and_null():
    # Spans: "ab" = 2 + 0, "ab cd" = 2 + 2, "cd" = 0 + 2; null = 0 + 0.
    pred = decode_example([0], [np.array([0.0, 2.0, 0.0])], [np.array([0.0, 0.0, 2.0])],
                          [[None, (0, 2), (3, 5)]], "ab cd", cls_index=[0])
    z = math.exp(4) + 2 * math.exp(2) + 1
    assert pred.answer == "ab cd" and pred.start_char == 0
    assert pred.probability == pytest.approx(math.exp(4) / z)
    assert pred.no_answer_probability == pytest.approx(1 / z)
    # Equal scores resolve by position: "ab" before "cd".
    assert [(a.text, a.start_char, a.score) for a in pred.alternatives] == [
        ("ab cd", 0, 4.0), ("ab", 0, 2.0), ("cd", 3, 2.0)]
    assert sum(a.probability for a in pred.alternatives) + pred.no_answer_probability == pytest.approx(1.0)


def test_answer_longer_than_max_tokens_is_rejected():
    offsets = [[None, (0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]]
    context = "a b c d e"
    start = [np.array([0.0, 5.0, 0.0, 0.0, 0.0, 0.0])]
    end = [np.array([0.0, 0.0, 0.0, 1.0, 0.0, 5.0])]
    # Five tokens "a..e" score 10 but exceed 3 tokens; the best allowed is "a b c" = 5 + 1.
    short = decode_example([0], start, end, offsets, context, cls_index=[0], max_answer_tokens=3)
    assert (short.answer, short.best_span_score) == ("a b c", 6.0)
    full = decode_example([0], start, end, offsets, context, cls_index=[0], max_answer_tokens=5)
    assert (full.answer, full.best_span_score) == ("a b c d e", 10.0)


def test_end_before_start_is_never_a_span():
    pairs = window_span_scores(np.array([0.0, 0.0, 9.0]), np.array([0.0, 9.0, 0.0]), np.array([False, True, True]))
    assert (9.0 + 9.0, 2, 1) not in pairs
    assert pairs[0] == (9.0, 1, 1)  # ties at 9: (1,1) and (2,2); the earlier start first


def test_negative_offsets_and_arrays_work_like_none():
    offsets = np.array([[[-1, -1], [0, 2], [3, 5]]])
    pred = decode_predictions(np.array([[0.0, 2.0, 0.0]]), np.array([[0.0, 0.0, 2.0]]), offsets, [0], ["ab cd"])[0]
    assert pred.answer == "ab cd"


def test_cls_at_another_position_sets_the_null_score():
    # XLNet-style window: passage first, CLS last. Null = 4 + 4 = 8 > span "ab" = 1 + 1.
    pred = decode_predictions([np.array([1.0, 0.0, 4.0])], [np.array([1.0, 0.0, 4.0])],
                              [[(0, 2), None, None]], [0], ["ab"], cls_index=[2])[0]
    assert pred.null_score == 8.0 and pred.answer == ""


def test_span_is_trimmed_of_spaces_and_zwnj():
    # SentencePiece offsets may include the space before a word: the answer must not.
    assert cut_answer("کتاب‌ها در خانه", 10, 15) == ("خانه", 11)
    assert cut_answer("کتاب‌ها", 4, 7) == ("ها", 5)


def test_examples_are_decoded_separately_and_need_windows():
    start = [np.array([0.0, 3.0]), np.array([0.0, 3.0])]
    end = [np.array([0.0, 3.0]), np.array([0.0, 3.0])]
    preds = decode_predictions(start, end, [[None, (0, 2)], [None, (3, 8)]], [0, 1], ["ab", "xyz wxyz"])
    assert [(p.answer, p.start_char) for p in preds] == [("ab", 0), ("wxyz", 4)]  # leading space trimmed
    with pytest.raises(ValueError, match="example 1 has no window"):
        decode_predictions(start, end, [[None, (0, 2)], [None, (0, 2)]], [0, 0], ["ab", "cd"])


def test_best_threshold_hand_computed():
    # Base (answer nothing): the two unanswerable questions score 1 each -> total 2.
    # Answering in diff order: +1 (5.0) -> 3, -1 (2.0) -> 2, +0.5 (-1.0) -> 2.5, -1 (-3.0) -> 1.5.
    choice = best_threshold([2.0, 5.0, -1.0, -3.0], [True, False, False, True], [0.0, 1.0, 0.5, 0.0])
    assert choice.threshold == pytest.approx(3.5)  # halfway between 5.0 and 2.0
    assert choice.f1 == pytest.approx(3 / 4)
    assert choice.answered == 1


def test_best_threshold_edges():
    # Equal diffs answer together: +1 - 1 = no gain, so answer nothing (threshold = highest diff).
    tie = best_threshold([1.0, 1.0], [False, True], [1.0, 0.0])
    assert (tie.threshold, tie.f1, tie.answered) == (1.0, 0.5, 0)
    # Everything answerable and right: answer all; threshold 1.0 below the lowest diff.
    every = best_threshold([2.0, 1.0], [False, False], [1.0, 1.0])
    assert (every.threshold, every.f1, every.answered) == (0.0, 1.0, 2)
    # A question with no valid span (-inf) never answers.
    nan_free = best_threshold([float("-inf"), 1.0], [False, False], [1.0, 1.0])
    assert (nan_free.f1, nan_free.answered) == (0.5, 1)


def test_tuned_threshold_reproduces_its_f1():
    # Three one-window examples; gold: answerable "ab", unanswerable, answerable "cd".
    offsets = [[None, (0, 2), (3, 5)]] * 3
    logits = np.array([[1.0, 4.0, 0.0], [2.0, 0.5, 0.0], [3.0, 0.0, 3.5]])  # same for start and end
    golds = [["ab"], [], ["cd"]]
    preds = decode_predictions(logits, logits, offsets, [0, 1, 2], ["ab cd"] * 3)
    diffs = [p.score_diff for p in preds]  # "ab" 8 - 2, "ab" 1 - 4, "cd" 7 - 6
    assert diffs == [6.0, -3.0, 1.0]
    f1s = [f1_score(p.alternatives[0].text, g) for p, g in zip(preds, golds)]
    assert f1s == [1.0, 0.0, 1.0]
    choice = best_threshold(diffs, [False, True, False], f1s)
    assert choice.threshold == pytest.approx(-1.0)  # halfway between 1.0 and -3.0
    answers = [answer_at_threshold(p, choice.threshold) for p in preds]
    assert answers == ["ab", "", "cd"]
    assert choice.f1 == pytest.approx(sum(f1_score(a, g) for a, g in zip(answers, golds)) / 3) == 1.0
