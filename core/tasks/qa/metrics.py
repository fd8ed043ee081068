"""SQuAD 2.0 exact match and token F1, two ways: after Persian-aware normalisation, and as the standard SQuAD-v2
script computes them (what the course reports and the PQuAD paper quote).

Scores are fractions between 0 and 1 (not percentages). An unanswerable question's gold answer is "": the empty
prediction scores 1 on it and anything else 0. Normalisation (:func:`normalize_persian`) makes spellings that a
reader sees as the same text compare equal: Arabic yeh/kaf against Persian ones, with or without diacritics,
ZWNJ (half-space) against space, Persian/Arabic digits against ASCII ones, with or without punctuation.
Unlike the English SQuAD script, no articles are removed (Persian has none to drop). The standard normalisation
(:func:`normalize_squad`) is the official script's: lowercase, ASCII punctuation removed, the English articles
a/an/the removed, whitespace collapsed; on Persian text it leaves yeh/kaf variants, diacritics, ZWNJ and Persian
punctuation as they are, so it scores lower. :func:`squad_v2_scores` reports the Persian ones as ``exact``/``f1``
(the runs' headline) and the standard ones with a ``squad_`` prefix.

>>> f1_score("۱۲ کتاب", ["12 كتاب"])
1.0
"""
from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from typing import Iterable, Mapping, Protocol, Sequence

from core.errors import BadInputError

_ARABIC_TO_PERSIAN = {"\u064a": "\u06cc", "\u0649": "\u06cc", "\u0643": "\u06a9"}  # ي ى -> ی, ك -> ک
# harakat (U+064B-U+0652), madda and hamza above/below (U+0653-U+0655), superscript alef, tatweel
_DIACRITICS = [chr(c) for c in range(0x064B, 0x0656)] + ["\u0670", "\u0640"]
_DIGITS = {chr(0x06F0 + d): str(d) for d in range(10)} | {chr(0x0660 + d): str(d) for d in range(10)}
# ASCII punctuation plus the Persian/Arabic marks; any other Unicode punctuation (category P*) goes too.
_PUNCTUATION = set(string.punctuation) | set("،؛؟«»٪٫٬۔…")
_TABLE = str.maketrans(
    _ARABIC_TO_PERSIAN | _DIGITS | {"\u200c": " "} | {ch: None for ch in _DIACRITICS}
)


class GoldExample(Protocol):
    """What scoring needs of an example (:class:`core.tasks.qa.data.QAExample` has it)."""

    @property
    def id(self) -> str: ...

    @property
    def answers(self) -> tuple[tuple[str, int], ...]: ...

    @property
    def is_impossible(self) -> bool: ...


def _is_punctuation(ch: str) -> bool:
    return ch in _PUNCTUATION or unicodedata.category(ch).startswith("P")


def normalize_persian(text: str) -> str:
    """Text in a canonical form for comparing answers: unified letters and digits, no marks, single spaces.

    Steps: Arabic yeh (ي, ى) -> Persian yeh ی and Arabic kaf ك -> ک; diacritics (U+064B-U+0655, U+0670) and
    tatweel (U+0640) removed; ZWNJ (U+200C) -> space; Persian (U+06F0-U+06F9) and Arabic-Indic (U+0660-U+0669)
    digits -> ASCII; punctuation (ASCII, ، ؛ ؟ « » and every Unicode punctuation mark) removed; lowercase;
    runs of whitespace -> one space, trimmed.

    >>> normalize_persian("«كتاب‌هاي   ۱۲ تايي»!")
    'کتاب های 12 تایی'
    """
    text = text.translate(_TABLE)
    text = "".join(ch for ch in text if not _is_punctuation(ch))
    return " ".join(text.lower().split())


_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_ASCII_PUNCTUATION = set(string.punctuation)


def normalize_squad(text: str) -> str:
    """The official SQuAD-v2 script's normalisation: lowercase, ASCII punctuation and English articles removed,
    whitespace collapsed.

    >>> normalize_squad("The  Cat's «كتاب»!")
    'cats «كتاب»'
    """
    text = "".join(ch for ch in text.lower() if ch not in _ASCII_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


NORMALISERS = {"persian": normalize_persian, "squad": normalize_squad}


def answer_tokens(text: str) -> list[str]:
    """The normalised words of an answer, the units of token F1.

    >>> answer_tokens("بازی‌های المپیک")
    ['بازی', 'های', 'المپیک']
    """
    return normalize_persian(text).split()


def _gold_texts(golds: Iterable[str], normalize=normalize_persian) -> list[str]:
    """Gold answers that survive normalisation; [""] when there are none (the unanswerable gold)."""
    kept = [g for g in golds if normalize(g)]
    return kept or [""]


def _exact_one(prediction: str, gold: str, normalize=normalize_persian) -> float:
    return float(normalize(prediction) == normalize(gold))


def _f1_one(prediction: str, gold: str, normalize=normalize_persian) -> float:
    pred, ref = normalize(prediction).split(), normalize(gold).split()
    if not pred or not ref:  # "no answer" on either side: right only if both abstain
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, golds: Sequence[str], normalize=normalize_persian) -> float:
    """1.0 when the normalised prediction equals a normalised gold answer, else 0.0 (golds [] means [""]).

    >>> exact_match("ي", ["ی"]), exact_match("", []), exact_match("x", []), exact_match("ي", ["ی"], normalize_squad)
    (1.0, 1.0, 0.0, 0.0)
    """
    return max(_exact_one(prediction, g, normalize) for g in _gold_texts(golds, normalize))


def f1_score(prediction: str, golds: Sequence[str], normalize=normalize_persian) -> float:
    """Best token F1 of the prediction against any gold answer (golds [] means [""], the unanswerable gold).

    >>> round(f1_score("شهر ریو", ["ریو دو ژانیرو"]), 3)
    0.4
    """
    return max(_f1_one(prediction, g, normalize) for g in _gold_texts(golds, normalize))


def gold_answers(example: GoldExample) -> list[str]:
    """The gold texts of an example; [] for an unanswerable one."""
    return [] if example.is_impossible else [text for text, _ in example.answers]


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def squad_v2_scores(predictions: Mapping[str, str], examples: Sequence[GoldExample]) -> dict[str, float | int | None]:
    """Exact match and F1 (fractions 0-1) overall, on answerable (HasAns) and unanswerable (NoAns) questions.

    ``predictions`` maps every example id to the predicted text ("" for "no answer"); ids not in ``examples``
    are ignored. Also reports the always-"no answer" baseline (predicting "" everywhere), whose EM and F1
    equal the unanswerable share. Averages over an empty group are None.

    >>> squad_v2_scores({"1": "ریو", "2": ""}, examples)["f1"]   # doctest: +SKIP
    1.0
    """
    if not examples:
        raise BadInputError("There are no questions to score.")
    missing = [ex.id for ex in examples if ex.id not in predictions]
    if missing:
        raise BadInputError(f"{len(missing)} of {len(examples)} questions have no prediction (first: {missing[0]}).")
    has_ans = [ex.id for ex in examples if not ex.is_impossible]
    no_ans = [ex.id for ex in examples if ex.is_impossible]
    scores = _scores(predictions, examples, has_ans, no_ans, normalize_persian)
    standard = _scores(predictions, examples, has_ans, no_ans, normalize_squad)
    scores.update((f"squad_{k}", v) for k, v in standard.items() if not k.endswith("_total") and k != "total")
    return scores


def _scores(predictions, examples, has_ans, no_ans, normalize) -> dict:
    exact = {ex.id: exact_match(predictions[ex.id], gold_answers(ex), normalize) for ex in examples}
    f1 = {ex.id: f1_score(predictions[ex.id], gold_answers(ex), normalize) for ex in examples}
    return {
        "exact": _mean(list(exact.values())),
        "f1": _mean(list(f1.values())),
        "total": len(examples),
        "HasAns_exact": _mean([exact[i] for i in has_ans]),
        "HasAns_f1": _mean([f1[i] for i in has_ans]),
        "HasAns_total": len(has_ans),
        "NoAns_exact": _mean([exact[i] for i in no_ans]),
        "NoAns_f1": _mean([f1[i] for i in no_ans]),
        "NoAns_total": len(no_ans),
        "no_answer_baseline_exact": _mean([exact_match("", gold_answers(ex), normalize) for ex in examples]),
        "no_answer_baseline_f1": _mean([f1_score("", gold_answers(ex), normalize) for ex in examples]),
    }
