"""The prediction row a QA run writes for each test question (predictions.jsonl), and what "right" means.

Extractive QA (SQuAD 2.0 style) has no classes, so its confusion matrix is 2 x 2: true ``answerable`` /
``unanswerable`` against predicted ``answered`` / ``abstained``. An answerable question is *right* when the
answer's token F1 is at least :data:`RIGHT_F1` (0.5), an unanswerable one when the model abstained.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from core.engine.rows import PredictionRow

TRUE_AXIS = ("answerable", "unanswerable")  # rows of a QA confusion matrix
PREDICTED_AXIS = ("answered", "abstained")  # its columns
RIGHT_F1 = 0.5  # an answer with at least this token F1 counts as right
# SQuAD-v2 metrics for comparison tables: display name -> metrics.json key
# Persian-normalised scores first (metrics.json's exact/f1, the runs' headline), then the standard SQuAD-v2 ones
_P = "Persian-normalised"
_METRICS = (("test questions", "total"), (f"exact match ({_P})", "exact"), (f"F1 ({_P})", "f1"),
            (f"HasAns exact match ({_P})", "HasAns_exact"), (f"HasAns F1 ({_P})", "HasAns_f1"),
            ("HasAns questions", "HasAns_total"), (f"NoAns exact match ({_P})", "NoAns_exact"),
            (f"NoAns F1 ({_P})", "NoAns_f1"), ("NoAns questions", "NoAns_total"),
            ("exact match, standard SQuAD-v2", "squad_exact"), ("F1, standard SQuAD-v2", "squad_f1"),
            ("HasAns F1, standard SQuAD-v2", "squad_HasAns_f1"),
            ("questions answered", "answered"), ("null threshold", "null_threshold"), ("test loss", "loss"))


@dataclass
class QARow(PredictionRow):
    question: str = ""
    context: str = ""  # the passage, cut to CONTEXT_CHARS characters in predictions.jsonl
    context_truncated: bool = False
    answers: list[str] = field(default_factory=list)  # the gold answers (empty when unanswerable)
    prediction: str = ""  # "" when the model abstains
    start_char: int = -1
    probability: float | None = None  # of the predicted span
    no_answer_probability: float | None = None
    is_impossible: bool = False
    exact: float = 0.0
    f1: float = 0.0

    @classmethod
    def true_axis(cls, classes=()) -> tuple[str, ...]:
        return TRUE_AXIS

    @classmethod
    def predicted_axis(cls, classes=()) -> tuple[str, ...]:
        return PREDICTED_AXIS

    @classmethod
    def metric_facts(cls, metrics: dict, classes=()) -> dict[str, object]:
        """Exact match and F1 overall, on answerable (HasAns) and unanswerable (NoAns) questions with their
        counts, questions answered, the null threshold, test loss."""
        return {name: metrics.get(key) for name, key in _METRICS}

    @classmethod
    def table_columns(cls) -> tuple[tuple[str, str], ...]:
        return (("question", "question"),)  # passages are too long for a table cell

    @classmethod
    def right_rule(cls) -> str:
        return "right = F1 ≥ 0.5, or abstaining on an unanswerable question"

    def true_name(self) -> str:
        return TRUE_AXIS[1] if self.is_impossible else TRUE_AXIS[0]

    def predicted_name(self) -> str:
        return PREDICTED_AXIS[0] if self.prediction else PREDICTED_AXIS[1]

    def is_right(self) -> bool:
        """Exact for unanswerable questions (the model abstained), F1 >= 0.5 otherwise."""
        if self.is_impossible:
            return float(self.exact) == 1.0
        return float(self.f1) >= RIGHT_F1

    def confidence(self) -> float | None:
        """The probability of its span, or of "no answer" when it abstained."""
        return self.probability if self.prediction else self.no_answer_probability

    def predicted_text(self) -> str:
        return self.prediction or "(no answer)"

    def gold_text(self) -> str:
        answers = [a for a in self.answers if a]
        return " | ".join(answers) if answers and not self.is_impossible else "(no answer)"

    def inputs(self) -> dict[str, str]:
        return {"question": self.question, "context": self.context}

    def side_facts(self) -> dict[str, float | None]:
        return {"f1": self.f1}
