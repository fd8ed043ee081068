"""Extractive question answering data (SQuAD 2.0 format, PQuAD): load, subsample, describe, cut into windows.

Everything here is model-independent: a loader gives :class:`QAExample` records, and :func:`prepare_windows`
turns them into fixed-length token windows with answer labels for any Hugging Face *fast* tokenizer. Decoding the
model's logits back into answers lives in :mod:`core.tasks.qa.decoding`; scoring in :mod:`core.tasks.qa.metrics`.

>>> examples = load_pquad("validation")                      # doctest: +SKIP
>>> qa_statistics(limit_examples(examples, 100, seed=0))["unanswerable"]   # doctest: +SKIP
25
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any, Iterable, Sequence

from core.errors import BadInputError, BadSettingError, DataNotFoundError
from core.paths import data_dir as resolve_data_dir

# Local files of PQuAD, by split (the original repository's names).
PQUAD_FILES = {"train": "Train.json", "validation": "Validation.json", "test": "Test.json"}
PQUAD_HUB_ID = "Gholamreza/pquad"  # unofficial Hub copy of github.com/AUT-NLP/PQuAD


@dataclass(frozen=True)
class QAExample:
    """One question about one passage. ``answers`` holds ``(text, start_char)`` pairs; empty when unanswerable."""

    id: str
    title: str
    context: str
    question: str
    answers: tuple[tuple[str, int], ...]
    is_impossible: bool


# ----------------------------------------------------------------------------------------------------- loading


def load_squad_json(path: str | os.PathLike) -> list[QAExample]:
    """Read a SQuAD-2.0 JSON file into a flat list of examples, in file order.

    Raises DataNotFoundError for a missing file and BadInputError for one that is not SQuAD 2.0 (bad JSON, a
    missing field, an empty question or passage, an answer whose ``answer_start`` does not point at its text,
    a repeated question id).

    >>> load_squad_json("../shared/datasets/pquad/Test.json")[0].id     # doctest: +SKIP
    '1601001'
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"No SQuAD file at {path}.")
    try:
        with path.open(encoding="utf-8") as f:
            raw = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadInputError(f"{path.name} is not valid UTF-8 JSON ({err}).") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("data"), list):
        raise BadInputError(f"{path.name} is not in SQuAD 2.0 format: it has no 'data' list at the top.")
    try:
        examples = [
            _example_from_record(qa, paragraph["context"], article.get("title", ""))
            for article in raw["data"]
            for paragraph in article["paragraphs"]
            for qa in paragraph["qas"]
        ]
    except BadInputError as err:
        raise BadInputError(f"{path.name}: {err}") from None
    except KeyError as err:
        raise BadInputError(f"{path.name} is not in SQuAD 2.0 format: a record lacks the field {err}.") from None
    except (TypeError, AttributeError, ValueError) as err:
        raise BadInputError(f"{path.name} is not in SQuAD 2.0 format: a field has the wrong type ({err}).") from None
    _check_unique_ids(examples, path.name)
    return examples


def _example_from_record(qa: dict[str, Any], context: str, title: str) -> QAExample:
    """One ``qas`` record of a paragraph as a QAExample, validated (unanswerable ones keep no answers)."""
    qid = str(qa["id"])
    answers = tuple((str(a["text"]), int(a["answer_start"])) for a in qa["answers"])
    is_impossible = bool(qa.get("is_impossible", not answers))
    if is_impossible:
        answers = ()  # SQuAD 2.0: an unanswerable question's gold answer is "", whatever a file lists
    elif not answers:
        raise BadInputError(f"question {qid} is marked answerable but lists no answer.")
    example = QAExample(qid, str(title), str(context), str(qa["question"]), answers, is_impossible)
    _check_texts(example)
    for text, start in answers:
        if not text or context[start : start + len(text)] != text or start < 0:
            raise BadInputError(f"question {qid}: the answer {text!r} is not found at character {start}.")
    return example


def _check_texts(example: QAExample) -> None:
    """An empty or whitespace-only question or passage cannot be answered: say which one."""
    if not example.question.strip():
        raise BadInputError(f"Question {example.id} is empty; write a question.")
    if not example.context.strip():
        raise BadInputError(f"The passage of question {example.id} is empty; give a passage to search.")


def _check_unique_ids(examples: Sequence[QAExample], source: str) -> None:
    seen: set[str] = set()
    for ex in examples:
        if ex.id in seen:
            raise BadInputError(f"{source}: question id {ex.id} appears twice; ids must be unique.")
        seen.add(ex.id)


def load_pquad(split: str, data_dir: str | os.PathLike | None = None, hub_id: str = PQUAD_HUB_ID) -> list[QAExample]:
    """PQuAD's ``split`` ("train", "validation" or "test") from the local folder, or from the Hub without one.

    The local folder is ``<data_dir>/pquad``; ``data_dir`` defaults to :func:`core.paths.data_dir`. The Hub
    (through ``datasets``) is used only when no ``data_dir`` was given and the default folder is absent.
    Locally only Validation.json and Test.json exist: asking for "train" there raises DataNotFoundError.

    >>> len(load_pquad("test"))                                  # doctest: +SKIP
    8002
    """
    if split not in PQUAD_FILES:
        raise BadSettingError(f"Unknown PQuAD split '{split}'. Choose one of: {', '.join(PQUAD_FILES)}.")
    folder = resolve_data_dir(data_dir) / "pquad"
    if folder.is_dir():
        return _load_local_pquad(folder, split)
    if data_dir is not None:
        raise DataNotFoundError(f"No PQuAD folder at {folder}.")
    return _load_hub_pquad(split, hub_id, folder.parent)


def _load_local_pquad(folder: Path, split: str) -> list[QAExample]:
    path = folder / PQUAD_FILES[split]
    if not path.is_file() and split == "train":
        raise DataNotFoundError(
            f"The PQuAD train split is not available locally ({folder} has no {path.name}); "
            "train on part of the validation split (limit_examples) and evaluate on test."
        )
    return load_squad_json(path)


def _load_hub_pquad(split: str, hub_id: str, local: Path) -> list[QAExample]:
    """PQuAD from the Hugging Face Hub through ``datasets``; any failure becomes one DataNotFoundError sentence."""
    try:
        import datasets  # optional: only machines with internet take this path
    except ImportError:
        raise DataNotFoundError(
            f"No local PQuAD folder under {local} and the 'datasets' package is not installed."
        ) from None
    try:
        rows = datasets.load_dataset(hub_id, split=split)
    except Exception as err:  # network, missing split, changed schema: all mean "no data"
        raise DataNotFoundError(
            f"No local PQuAD folder under {local} and the Hub copy {hub_id} could not be loaded "
            f"({type(err).__name__})."
        ) from None
    examples = [_example_from_hub_row(row) for row in rows]
    _check_unique_ids(examples, hub_id)
    return examples


def _example_from_hub_row(row: dict[str, Any]) -> QAExample:
    """A ``datasets`` SQuAD row (answers as ``{"text": [...], "answer_start": [...]}``) as a QAExample."""
    qid = row["id"]
    if isinstance(qid, float) and qid.is_integer():  # the Hub copy stores ids as float64
        qid = int(qid)
    answers = row.get("answers") or {"text": [], "answer_start": []}
    record = {
        "id": qid,
        "question": row["question"],
        "answers": [{"text": t, "answer_start": s} for t, s in zip(answers["text"], answers["answer_start"])],
    }
    if "is_impossible" in row:
        record["is_impossible"] = row["is_impossible"]
    return _example_from_record(record, row["context"], row.get("title", ""))


# ------------------------------------------------------------------------------------------ subsets and figures


def limit_examples(examples: Sequence[QAExample], n: int, seed: int = 0) -> list[QAExample]:
    """A deterministic subset of ``n`` examples with the answerable/unanswerable ratio kept, in original order.

    The unanswerable share is rounded to the nearest whole question. ``n`` at or above the size returns all.

    >>> [e.id for e in limit_examples(load_pquad("validation")[:8], 2, seed=0)]     # doctest: +SKIP
    ['1801004', '1801058']
    """
    if n <= 0:
        raise BadSettingError(f"The number of examples must be positive, not {n}.")
    if n >= len(examples):
        return list(examples)
    unanswerable = [i for i, ex in enumerate(examples) if ex.is_impossible]
    answerable = [i for i, ex in enumerate(examples) if not ex.is_impossible]
    n_unanswerable = round(n * len(unanswerable) / len(examples))
    rng = random.Random(seed)
    chosen = rng.sample(unanswerable, n_unanswerable) + rng.sample(answerable, n - n_unanswerable)
    return [examples[i] for i in sorted(chosen)]


def _word_counts(texts: Iterable[str]) -> dict[str, float | None]:
    """min/max/mean whitespace-separated words (a ZWNJ joins the parts of one Persian word)."""
    counts = [len(t.split()) for t in texts]
    if not counts:
        return {"min": None, "max": None, "mean": None}
    return {"min": min(counts), "max": max(counts), "mean": fmean(counts)}


def qa_statistics(examples: Sequence[QAExample]) -> dict[str, Any]:
    """Counts and word lengths: questions, unanswerable, answerability %, contexts (unique), questions, answers.

    Answers are every gold answer of the answerable questions; contexts are counted once per distinct text.

    >>> qa_statistics(load_pquad("validation"))["unanswerable"]   # doctest: +SKIP
    1981
    """
    contexts = list(dict.fromkeys(ex.context for ex in examples))
    answers = [text for ex in examples for text, _ in ex.answers]
    unanswerable = sum(ex.is_impossible for ex in examples)
    return {
        "questions": len(examples),
        "unanswerable": unanswerable,
        "answerable": len(examples) - unanswerable,
        "answerable_percent": 100.0 * (len(examples) - unanswerable) / len(examples) if examples else None,
        "contexts": len(contexts),
        "answers": len(answers),
        "context_words": _word_counts(contexts),
        "question_words": _word_counts(ex.question for ex in examples),
        "answer_words": _word_counts(answers),
    }


# --------------------------------------------------------------------------------------------------- windows


def _check_window_settings(tokenizer: Any, max_length: int, stride: int) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise BadSettingError("Question answering needs a fast tokenizer (one that reports character offsets).")
    if tokenizer.pad_token is None:
        raise BadSettingError("The tokenizer has no padding token; set tokenizer.pad_token before making windows.")
    if max_length <= tokenizer.num_special_tokens_to_add(pair=True) + 1:
        raise BadSettingError(f"max_length={max_length} leaves no room for a question and a passage.")
    if stride < 0 or stride >= max_length:
        raise BadSettingError(f"The stride must be between 0 and max_length - 1, not {stride}.")


def _check_question_lengths(
    questions: Sequence[str], examples: Sequence[QAExample], tokenizer: Any, max_length: int, stride: int
) -> None:
    """Each window must hold the question and more passage tokens than the stride re-reads, or none is made.

    (The Rust tokenizer aborts the whole batch, uncatchably, when a question leaves room <= stride.)
    """
    room = max_length - tokenizer.num_special_tokens_to_add(pair=True)
    lengths = [len(ids) for ids in tokenizer(list(questions), add_special_tokens=False)["input_ids"]]
    for ex, length in zip(examples, lengths):
        if room - length <= stride:
            raise BadInputError(
                f"Question {ex.id} is too long: it has {length} tokens, and with max_length={max_length} and "
                f"stride={stride} a question may have at most {room - stride - 1}; shorten it."
            )


def _answer_span(example: QAExample) -> tuple[int, int] | None:
    """Character span ``[start, end)`` of the first gold answer, or None when unanswerable."""
    if example.is_impossible or not example.answers:
        return None
    text, start = example.answers[0]
    return start, start + len(text)


def _cls_position(input_ids: Sequence[int], attention_mask: Sequence[int], cls_token_id: int | None) -> int:
    """Where the CLS-like token of a window sits: the tokenizer's CLS token, else the first non-padding token."""
    if cls_token_id is not None and cls_token_id in input_ids:
        return list(input_ids).index(cls_token_id)
    return list(attention_mask).index(1)


def _window_label(
    offsets: Sequence[tuple[int, int] | None], answer: tuple[int, int] | None, cls_index: int
) -> tuple[int, int]:
    """Token span (start, end), both inclusive, of the answer when it lies wholly in this window's context part.

    Otherwise (no answer, or the answer cut by the window's edge) the label is ``(cls_index, cls_index)``.
    """
    context_tokens = [i for i, o in enumerate(offsets) if o is not None]
    if answer is None or not context_tokens:
        return cls_index, cls_index
    start_char, end_char = answer
    first, last = context_tokens[0], context_tokens[-1]
    if offsets[first][0] > start_char or offsets[last][1] < end_char:  # type: ignore[index]
        return cls_index, cls_index
    # First context token ending after the answer starts; last one starting before it ends.
    start = next(i for i in context_tokens if offsets[i][1] > start_char)  # type: ignore[index]
    end = next(i for i in reversed(context_tokens) if offsets[i][0] < end_char)  # type: ignore[index]
    return start, end


def prepare_windows(
    examples: Sequence[QAExample], tokenizer: Any, max_length: int = 384, stride: int = 128
) -> dict[str, list]:
    """Tokenise question + passage into overlapping windows of ``max_length`` tokens, with answer labels.

    A long passage gives several windows that overlap by ``stride`` tokens. Per window the result holds
    ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the tokenizer makes them), ``start_positions``
    and ``end_positions`` (inclusive token span of the first gold answer when the whole answer lies in that
    window's passage part, else the CLS position, also for unanswerable questions), ``cls_index``,
    ``example_index`` (position of the window's example in ``examples``) and ``offset_mapping``: character
    spans into the passage for passage tokens and None for every other token (question, special, padding), so
    decoding can only pick passage text.

    Tokenizers that pad on the left (XLNet-style) get the passage first, as the transformers QA example does;
    the CLS position is found per window rather than assumed to be 0.

    >>> w = prepare_windows(load_pquad("test")[:2], bert_tokenizer, max_length=256, stride=64)   # doctest: +SKIP
    >>> w["example_index"], w["start_positions"], w["end_positions"]                        # doctest: +SKIP
    ([0, 0, 1, 1], [23, 0, 114, 0], [25, 0, 119, 0])
    """
    _check_window_settings(tokenizer, max_length, stride)
    if not examples:
        raise BadInputError("There are no questions to prepare.")
    for ex in examples:
        _check_texts(ex)
    # Leading spaces in a question only waste window room (and confuse some tokenizers); contexts are kept
    # exactly, since answer offsets point into them.
    questions = [ex.question.lstrip() for ex in examples]
    contexts = [ex.context for ex in examples]
    _check_question_lengths(questions, examples, tokenizer, max_length, stride)
    question_first = tokenizer.padding_side == "right"
    encoded = tokenizer(
        questions if question_first else contexts,
        contexts if question_first else questions,
        truncation="only_second" if question_first else "only_first",
        max_length=max_length,
        stride=stride,
        padding="max_length",
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    return _label_windows(encoded, examples, context_sequence=1 if question_first else 0, tokenizer=tokenizer)


def _label_windows(encoded: Any, examples: Sequence[QAExample], context_sequence: int, tokenizer: Any) -> dict:
    """Per-window labels, CLS positions and context-only offsets from a BatchEncoding with overflowing windows."""
    out: dict[str, list] = {key: [] for key in ("input_ids", "attention_mask")}
    if "token_type_ids" in encoded:
        out["token_type_ids"] = []
    out.update(start_positions=[], end_positions=[], cls_index=[], example_index=[], offset_mapping=[])
    for w, example_index in enumerate(encoded["overflow_to_sample_mapping"]):
        for key in ("input_ids", "attention_mask", "token_type_ids"):
            if key in out:
                out[key].append(list(encoded[key][w]))
        offsets = [
            tuple(o) if seq == context_sequence else None
            for o, seq in zip(encoded["offset_mapping"][w], encoded.sequence_ids(w))
        ]
        cls_index = _cls_position(encoded["input_ids"][w], encoded["attention_mask"][w], tokenizer.cls_token_id)
        start, end = _window_label(offsets, _answer_span(examples[example_index]), cls_index)
        out["start_positions"].append(start)
        out["end_positions"].append(end)
        out["cls_index"].append(cls_index)
        out["example_index"].append(example_index)
        out["offset_mapping"].append(offsets)
    return out


SPLITS = ("validation", "test")  # PQuAD's train split is not distributed with the shared data


def statistics(examples: Sequence[QAExample]) -> dict:
    """Questions, the answerable share and word counts of passages, questions and answers (:func:`qa_statistics`)."""
    return qa_statistics(examples)


def load_examples(split: str, data_dir: str | os.PathLike | None = None,
                  data_file: str | os.PathLike | None = None) -> list[QAExample]:
    """One split as the task registry asks for it (``TaskSpec.load_examples``): a SQuAD-2.0 JSON file given as
    ``data_file``, else PQuAD from the data folder (or the Hub)."""
    if data_file is not None:
        return load_squad_json(data_file)
    return load_pquad(split, data_dir)


def hub_dataset() -> dict:
    """PQuAD's Hub copy for ``python -m core prefetch`` (see core/tasks/tweets/data.py). ``load_pquad`` reads a
    local pquad/ folder when there is one, so prefetching calls its Hub branch directly."""
    splits = tuple(PQUAD_FILES)
    return {"hub_id": PQUAD_HUB_ID, "hub_splits": splits, "loader_splits": splits,
            "load": lambda split: _load_hub_pquad(split, PQUAD_HUB_ID, resolve_data_dir())}
