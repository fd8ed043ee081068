"""SQuAD 2.0 EM/F1 with Persian normalisation: hand-computed scores on Persian answer pairs."""
import pytest

from core.tasks.qa.data import QAExample
from core.errors import BadInputError
from core.tasks.qa.metrics import answer_tokens, exact_match, f1_score, normalize_persian, squad_v2_scores


@pytest.mark.parametrize(
    "prediction, gold",
    [
        ("علي", "علی"),  # Arabic yeh U+064A
        ("موسى", "موسی"),  # Arabic alef maksura U+0649
        ("كتاب", "کتاب"),  # Arabic kaf U+0643
        ("۱۲", "12"),  # Persian digits
        ("١٢", "12"),  # Arabic-Indic digits
        ("كِتَابٌ", "کتاب"),  # harakat
        ("رحمٰن", "رحمن"),  # superscript alef U+0670
        ("کـــتاب", "کتاب"),  # tatweel
        ("می‌روم", "می روم"),  # ZWNJ is a word break
        ("«تهران»،", "تهران"),  # Persian quotes and comma
        ("چرا؟", "چرا"),  # Persian question mark
        ("سال ۱۳۹۵؛", "سال 1395"),  # Persian semicolon and digits
        ("NASA", "nasa"),  # Latin is lower-cased
        ("  ریو   دو\tژانیرو ", "ریو دو ژانیرو"),  # whitespace collapsed
    ],
)
def test_normalisation_makes_spellings_match(prediction, gold):
    assert exact_match(prediction, [gold]) == 1.0
    assert f1_score(prediction, [gold]) == 1.0


def test_normalize_persian_output():
    assert normalize_persian("«كتاب‌هاي   ۱۲ تايي»!") == "کتاب های 12 تایی"
    assert normalize_persian("٣٫٥ درصد") == "35 درصد"  # Arabic decimal separator is punctuation, removed
    assert answer_tokens("بازی‌های المپیک") == ["بازی", "های", "المپیک"]


def test_zwnj_is_a_space_not_a_deletion():
    # "می‌روم" -> tokens ["می", "روم"]; "میروم" is one different token: nothing in common.
    assert exact_match("می‌روم", ["میروم"]) == 0.0
    assert f1_score("می‌روم", ["میروم"]) == 0.0


def test_f1_hand_computed():
    # 3 common tokens; precision 3/4, recall 3/3 -> F1 = 2 * 0.75 * 1 / 1.75 = 6/7.
    assert f1_score("ریو دو ژانیرو برزیل", ["ریو دو ژانیرو"]) == pytest.approx(6 / 7)
    # 1 common token; precision 1/2, recall 1/3 -> F1 = 0.4.
    assert f1_score("شهر ریو", ["ریو دو ژانیرو"]) == pytest.approx(0.4)
    # Repeated words count once per gold occurrence: precision 1/3, recall 1 -> 0.5.
    assert f1_score("و و و", ["و"]) == pytest.approx(0.5)
    # Normalisation before counting: ۲۰۱۶ == 2016 and ي == ی, so 2 common of 3 predicted and 2 gold -> 0.8.
    assert f1_score("سال ۲۰۱۶ ميلادي", ["2016 میلادی"]) == pytest.approx(0.8)
    assert exact_match("سال ۲۰۱۶ ميلادي", ["2016 میلادی"]) == 0.0


def test_max_over_gold_answers():
    golds = ["«بازی‌های المپیاد سی و یکم» و «المپیک ریو»", "«المپیک ریو»"]
    assert exact_match("المپیک ريو", golds) == 1.0
    # Against gold 1 (9 tokens): 1 common, P 1/2, R 1/9 -> F1 = 2/11;
    # against gold 2 (after punctuation removal "المپیک ریو"): 1 common, P 1/2, R 1/2 -> 0.5. Max is 0.5.
    assert f1_score("المپیک تابستانی", golds) == pytest.approx(0.5)


def test_unanswerable_gold_is_empty_string():
    assert exact_match("", []) == 1.0
    assert f1_score("", []) == 1.0
    assert exact_match("تهران", []) == 0.0
    assert f1_score("تهران", []) == 0.0
    # Abstaining on an answerable question scores 0; a prediction of punctuation only is an abstention.
    assert f1_score("", ["تهران"]) == 0.0
    assert f1_score("؟!", []) == 1.0
    # A gold answer that normalises to nothing is the unanswerable gold: "" matches it, text does not.
    assert exact_match("", ["«»"]) == 1.0 and f1_score("تهران", ["«»"]) == 0.0
    # ... but only when no real gold remains (as in the official script): here "" is wrong.
    assert exact_match("", ["تهران", "«»"]) == 0.0 and f1_score("", ["تهران", "«»"]) == 0.0


def _example(qid: str, answer: str | None) -> QAExample:
    context = "پایتخت ایران تهران است و ریو دو ژانیرو در برزیل است."
    if answer is None:
        return QAExample(qid, "t", context, "پرسش؟", (), True)
    return QAExample(qid, "t", context, "پرسش؟", ((answer, context.index(answer)),), False)


def test_squad_v2_scores_hand_computed():
    examples = [_example("a", "تهران"), _example("b", "ریو دو ژانیرو"), _example("c", None), _example("d", None)]
    predictions = {"a": "تهران", "b": "شهر ریو", "c": "", "d": "برزیل", "extra": "ignored"}
    scores = squad_v2_scores(predictions, examples)
    assert scores["total"] == 4 and scores["HasAns_total"] == 2 and scores["NoAns_total"] == 2
    assert scores["exact"] == pytest.approx(2 / 4)  # a and c
    assert scores["f1"] == pytest.approx((1 + 0.4 + 1 + 0) / 4)
    assert scores["HasAns_exact"] == pytest.approx(0.5)
    assert scores["HasAns_f1"] == pytest.approx(0.7)
    assert scores["NoAns_exact"] == pytest.approx(0.5)
    assert scores["NoAns_f1"] == pytest.approx(0.5)
    assert scores["no_answer_baseline_exact"] == pytest.approx(0.5)
    assert scores["no_answer_baseline_f1"] == pytest.approx(0.5)


def test_squad_v2_scores_without_unanswerable_questions():
    scores = squad_v2_scores({"a": ""}, [_example("a", "تهران")])
    assert scores["NoAns_total"] == 0 and scores["NoAns_f1"] is None
    assert scores["f1"] == 0.0 and scores["no_answer_baseline_f1"] == 0.0


def test_missing_prediction_or_no_examples_is_a_clear_error():
    with pytest.raises(BadInputError, match="1 of 2 questions have no prediction"):
        squad_v2_scores({"a": "تهران"}, [_example("a", "تهران"), _example("b", None)])
    with pytest.raises(BadInputError, match="no questions"):
        squad_v2_scores({}, [])


def test_scores_come_both_ways_persian_normalised_and_standard_squad():
    from core.tasks.qa.metrics import normalize_persian, normalize_squad, squad_v2_scores
    from core.tasks.qa.data import QAExample

    # Arabic yeh/kaf and a hamza mark against the Persian spelling: equal for the Persian normalisation only.
    examples = [QAExample("1", "", "کتاب‌های ایرانی", "?", (("کتاب", 0),), False),
                QAExample("2", "", "x", "?", (), True)]
    scores = squad_v2_scores({"1": "كتاب", "2": ""}, examples)
    assert scores["exact"] == 1.0 and scores["f1"] == 1.0  # Persian-normalised: ك == ک
    assert scores["squad_exact"] == 0.5 and scores["squad_f1"] == 0.5  # standard: only the abstention matches
    assert scores["squad_NoAns_exact"] == 1.0 and scores["squad_HasAns_exact"] == 0.0
    assert normalize_persian("مسئله\u0654") == normalize_persian("مسئله")  # U+0654 (hamza above) is dropped
    assert normalize_persian("آ\u0653") == "آ" and normalize_squad("The answer.") == "answer"
