"""Turn an extractive-QA model's start/end logits over token windows into answers: n-best span decoding.

Pure numpy functions, no model and no tokenizer. The inputs are what :func:`core.tasks.qa.data.prepare_windows`
returns plus the model's logits:

- ``start_logits``, ``end_logits``: per window, one score per token, shape (W, L) or a list of (L,) arrays;
- ``offset_mapping``: per window and token, the ``(start_char, end_char)`` span in the passage, or None (or a
  negative pair such as (-1, -1)) for tokens that are not passage tokens: question, special tokens, padding;
- ``example_index``: per window, which example (which passage) it was cut from;
- ``contexts``: the passage of every example, so answers are cut from the original text by character offsets.

How one example is decoded:

1. In every window of the example, take the ``n_best`` highest start logits and the ``n_best`` highest end
   logits among passage tokens, and pair them: a pair is a candidate when start <= end and the span has at most
   ``max_answer_tokens`` tokens. Its score is ``start_logit[start] + end_logit[end]``.
2. Candidates of all windows are pooled; overlapping windows see the same span twice, so spans are keyed by
   character offsets and keep their best score. The ``n_best`` best survive.
3. The null ("no answer") score of a window is ``start_logit[cls] + end_logit[cls]``. The example's null score is
   the *minimum* over its windows: a window that does not contain the answer rightly says "no answer here", so
   only the window least convinced that there is no answer speaks for the whole passage (the choice of the
   transformers QA example and of the original BERT SQuAD 2.0 code). With one window this is just its score.
4. ``score_diff = best_span_score - null_score``; the answer is the best span when ``score_diff > threshold``
   and "" otherwise. ``threshold`` (default 0.0) is tuned on validation data with :func:`best_threshold`.
5. Probabilities are a softmax over the pooled candidates' scores together with the null score, so the best
   span's probability and ``no_answer_probability`` are comparable numbers that add up with the alternatives'
   to 1.

>>> preds = decode_predictions(start, end, w["offset_mapping"], w["example_index"], contexts)  # doctest: +SKIP
>>> preds[0].answer, round(preds[0].probability, 2)                                      # doctest: +SKIP
('ریو دو ژانیرو', 0.83)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

# Characters trimmed from a decoded span: some tokenizers (SentencePiece) put the preceding space or half-space
# (ZWNJ, U+200C) into a token's offsets.
_TRIM = " \t\n\r\f\v\u00a0\u200b\u200c\u200d\u200e\u200f\ufeff"

Offsets = Sequence[Sequence[int] | None]  # per token: (start_char, end_char) or None


@dataclass(frozen=True)
class SpanCandidate:
    """A possible answer: its text cut from the passage, where it starts, its score and softmax probability."""

    text: str
    start_char: int
    score: float
    probability: float


@dataclass(frozen=True)
class QAPrediction:
    """The decoded answer of one example.

    ``answer`` is "" and ``start_char`` is -1 when the model abstains. ``probability`` is the probability of what
    was returned: the best span's, or ``no_answer_probability`` when it abstains. ``alternatives`` are the best
    spans (the chosen one first), whether or not an answer was given, so a UI can show them.
    """

    answer: str
    start_char: int
    probability: float
    no_answer_probability: float
    score_diff: float  # best span score - null score; -inf when no valid span exists
    best_span_score: float
    null_score: float
    alternatives: tuple[SpanCandidate, ...]

    @property
    def has_answer(self) -> bool:
        return self.start_char >= 0


def context_token_mask(offsets: Offsets | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mask, starts, ends)`` over a window's tokens: which are passage tokens, and their character spans.

    A token is a passage token when its offsets are present, non-negative and not empty.

    >>> context_token_mask([None, (0, 3), (4, 7), (-1, -1)])[0].tolist()
    [False, True, True, False]
    """
    n = len(offsets)
    starts = np.full(n, -1, dtype=np.int64)
    ends = np.full(n, -1, dtype=np.int64)
    for i, o in enumerate(offsets):
        if o is not None:
            starts[i], ends[i] = int(o[0]), int(o[1])
    mask = (starts >= 0) & (ends > starts)
    return mask, starts, ends


def window_span_scores(
    start_logits: np.ndarray, end_logits: np.ndarray, mask: np.ndarray, n_best: int = 20, max_answer_tokens: int = 30
) -> list[tuple[float, int, int]]:
    """Valid ``(score, start_token, end_token)`` pairs of one window from its top-``n_best`` starts and ends.

    Only passage tokens (``mask``) are considered; a pair needs start <= end and end - start + 1 <=
    ``max_answer_tokens``. Sorted best first.

    >>> window_span_scores(np.array([0., 3., 1.]), np.array([0., 1., 4.]), np.array([False, True, True]))
    [(7.0, 1, 2), (5.0, 2, 2), (4.0, 1, 1)]
    """
    candidates = np.flatnonzero(mask)
    if candidates.size == 0:
        return []
    k = min(n_best, candidates.size)
    # Stable sorts so that equal logits resolve to the earlier token, reproducibly.
    starts = candidates[np.argsort(-start_logits[candidates], kind="stable")[:k]]  # (k,)
    ends = candidates[np.argsort(-end_logits[candidates], kind="stable")[:k]]  # (k,)
    scores = start_logits[starts][:, None] + end_logits[ends][None, :]  # (k, k)
    length = ends[None, :] - starts[:, None] + 1  # (k, k) tokens in the span
    valid = (length >= 1) & (length <= max_answer_tokens)
    rows, cols = np.nonzero(valid)
    pairs = [(float(scores[r, c]), int(starts[r]), int(ends[c])) for r, c in zip(rows, cols)]
    return sorted(pairs, key=lambda p: (-p[0], p[1], p[2]))


def cut_answer(context: str, start_char: int, end_char: int) -> tuple[str, int]:
    """The passage text ``context[start_char:end_char]`` without surrounding (half-)spaces, and where it starts.

    >>> cut_answer("ab  cd ef", 2, 6)
    ('cd', 4)
    """
    raw = context[start_char:end_char]
    text = raw.lstrip(_TRIM)
    start = start_char + len(raw) - len(text)
    return text.rstrip(_TRIM), start


def softmax(scores: np.ndarray) -> np.ndarray:
    """Numerically stable softmax of a 1-D array.

    >>> softmax(np.array([0.0, np.log(3.0)])).round(2).tolist()
    [0.25, 0.75]
    """
    shifted = np.exp(scores - scores.max())
    return shifted / shifted.sum()


def _pool_example_spans(
    windows: Sequence[int],
    start_logits: Sequence[np.ndarray],
    end_logits: Sequence[np.ndarray],
    offset_mapping: Sequence[Offsets],
    context: str,
    n_best: int,
    max_answer_tokens: int,
) -> dict[tuple[int, int], tuple[float, str]]:
    """Best score and text per distinct character span, over all windows of one example."""
    pooled: dict[tuple[int, int], tuple[float, str]] = {}
    for w in windows:
        start, end = np.asarray(start_logits[w], dtype=np.float64), np.asarray(end_logits[w], dtype=np.float64)
        mask, char_starts, char_ends = context_token_mask(offset_mapping[w])
        if not (len(start) == len(end) == len(mask)):
            raise ValueError(f"window {w}: logits and offsets have different lengths")
        for score, s, e in window_span_scores(start, end, mask, n_best, max_answer_tokens):
            text, text_start = cut_answer(context, int(char_starts[s]), int(char_ends[e]))
            if not text:  # a span of spaces only
                continue
            key = (text_start, text_start + len(text))
            if key not in pooled or score > pooled[key][0]:
                pooled[key] = (score, text)
    return pooled


def decode_example(
    windows: Sequence[int],
    start_logits: Sequence[np.ndarray],
    end_logits: Sequence[np.ndarray],
    offset_mapping: Sequence[Offsets],
    context: str,
    cls_index: Sequence[int],
    n_best: int = 20,
    max_answer_tokens: int = 30,
    threshold: float = 0.0,
    top_k: int = 5,
) -> QAPrediction:
    """Decode one example from the windows cut from its passage (steps 1-5 of the module docstring).

    >>> decode_example([0], [np.array([9., 1., 5.])], [np.array([9., 1., 6.])], [[None, (0, 2), (3, 5)]],
    ...                "ab cd", cls_index=[0]).answer
    ''
    """
    pooled = _pool_example_spans(windows, start_logits, end_logits, offset_mapping, context, n_best, max_answer_tokens)
    # Step 3: the window least sure that there is no answer sets the example's null score.
    null_score = min(float(start_logits[w][cls_index[w]]) + float(end_logits[w][cls_index[w]]) for w in windows)
    ranked = sorted(pooled.items(), key=lambda item: (-item[1][0], item[0]))[:n_best]
    scores = np.array([score for _, (score, _) in ranked] + [null_score])
    probs = softmax(scores)  # the last entry is the null answer's
    alternatives = tuple(
        SpanCandidate(text, span[0], score, float(p)) for (span, (score, text)), p in zip(ranked[:top_k], probs)
    )
    best_score = ranked[0][1][0] if ranked else float("-inf")
    score_diff = best_score - null_score
    answered = bool(ranked) and score_diff > threshold
    return QAPrediction(
        answer=alternatives[0].text if answered else "",
        start_char=alternatives[0].start_char if answered else -1,
        probability=float(probs[0]) if answered else float(probs[-1]),
        no_answer_probability=float(probs[-1]),
        score_diff=score_diff,
        best_span_score=best_score,
        null_score=null_score,
        alternatives=alternatives,
    )


def decode_predictions(
    start_logits: np.ndarray | Sequence[np.ndarray],
    end_logits: np.ndarray | Sequence[np.ndarray],
    offset_mapping: Sequence[Offsets],
    example_index: Sequence[int],
    contexts: Sequence[str],
    cls_index: Sequence[int] | None = None,
    n_best: int = 20,
    max_answer_tokens: int = 30,
    threshold: float = 0.0,
    top_k: int = 5,
) -> list[QAPrediction]:
    """One :class:`QAPrediction` per passage in ``contexts``, decoded from all windows that came from it.

    ``cls_index`` gives each window's CLS position (``prepare_windows`` returns it); default 0 for every window.
    Every example needs at least one window.

    >>> [p.answer for p in decode_predictions(start, end, offsets, [0, 0, 1], ["...", "..."])]  # doctest: +SKIP
    ['ریو دو ژانیرو', '']
    """
    n_windows = len(example_index)
    if not (len(start_logits) == len(end_logits) == len(offset_mapping) == n_windows):
        raise ValueError("start_logits, end_logits, offset_mapping and example_index need one entry per window")
    if n_best < 1 or max_answer_tokens < 1:
        raise ValueError("n_best and max_answer_tokens must be at least 1")
    cls = list(cls_index) if cls_index is not None else [0] * n_windows
    by_example: list[list[int]] = [[] for _ in contexts]
    for w, ex in enumerate(example_index):
        by_example[int(ex)].append(w)
    missing = [i for i, ws in enumerate(by_example) if not ws]
    if missing:
        raise ValueError(f"example {missing[0]} has no window ({len(missing)} examples have none)")
    return [
        decode_example(ws, start_logits, end_logits, offset_mapping, contexts[i], cls,
                       n_best, max_answer_tokens, threshold, top_k)
        for i, ws in enumerate(by_example)
    ]


def answer_at_threshold(prediction: QAPrediction, threshold: float) -> str:
    """The answer this prediction gives under another null threshold, without decoding again.

    >>> answer_at_threshold(prediction, 2.5)                   # doctest: +SKIP
    ''
    """
    if prediction.alternatives and prediction.score_diff > threshold:
        return prediction.alternatives[0].text
    return ""


@dataclass(frozen=True)
class ThresholdChoice:
    """The tuned null threshold, the F1 (fraction 0-1) it gives on the tuning data, and how many it answers."""

    threshold: float
    f1: float
    answered: int


def best_threshold(
    score_diffs: Sequence[float], is_impossible: Sequence[bool], f1_if_answered: Sequence[float]
) -> ThresholdChoice:
    """The null threshold that maximises mean F1 on tuning data (the idea of the SQuAD v2 evaluation script).

    Each question is answered when its ``score_diff > threshold``. If it abstains it scores 1 when it is
    unanswerable and 0 otherwise; if it answers it scores ``f1_if_answered`` (F1 of its best span against the
    gold answers, which is 0 for an unanswerable question). Starting from "answer nothing", the questions are
    answered one by one from the highest ``score_diff`` down, keeping a running total; the best total wins,
    and on ties the highest threshold (fewest answers). The threshold returned lies halfway between the last
    answered and the first unanswered ``score_diff`` (1.0 below the last one when all are answered; equal to the
    highest one when none is). Questions with a non-finite diff (no valid span) never answer.

    >>> best_threshold([3.0, 1.0, -2.0], [False, True, False], [1.0, 0.0, 0.5])
    ThresholdChoice(threshold=2.0, f1=0.6666666666666666, answered=1)
    """
    diffs = np.asarray(score_diffs, dtype=np.float64)
    impossible = np.asarray(is_impossible, dtype=bool)
    f1 = np.asarray(f1_if_answered, dtype=np.float64)
    if not (len(diffs) == len(impossible) == len(f1)) or len(diffs) == 0:
        raise ValueError("best_threshold needs the same, non-zero number of diffs, flags and F1 scores")
    finite = np.flatnonzero(np.isfinite(diffs))
    order = finite[np.argsort(-diffs[finite], kind="stable")]  # most confident answers first
    gains = f1[order] - impossible[order]  # change in total when that question starts answering
    total = best_total = float(impossible.sum())
    best_threshold_value = float(diffs[order[0]]) if len(order) else 0.0
    best_answered = 0
    for i in range(len(order)):
        total += float(gains[i])
        if i + 1 < len(order) and diffs[order[i + 1]] == diffs[order[i]]:
            continue  # equal diffs are answered together: no threshold separates them
        if total > best_total:
            next_diff = diffs[order[i + 1]] if i + 1 < len(order) else diffs[order[i]] - 2.0
            best_total, best_answered = total, i + 1
            best_threshold_value = float((diffs[order[i]] + next_diff) / 2.0)
    return ThresholdChoice(best_threshold_value, best_total / len(diffs), best_answered)
