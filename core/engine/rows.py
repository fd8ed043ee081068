"""Prediction rows: what ``evaluate()`` writes for every test example and what compare and the UI read back.

Each task declares one dataclass (``TaskSpec.row``), a subclass of :class:`PredictionRow`, and answers the
same questions about a row: its true and predicted names on the task's confusion-matrix axes, whether it is
right, the model's confidence, the texts to show. Readers never sniff keys to tell tasks apart.
Rows are stored as JSON lines (``predictions.jsonl``); :meth:`PredictionRow.from_json` ignores keys it does not
know, so a row written by a newer version still reads.

>>> from core.tasks.tweets.rows import TweetRow
>>> row = TweetRow.from_json({"id": "7", "index": 0, "label": 1, "label_name": "real", "prediction": 0,
...                           "prediction_name": "fake", "text": "5G!", "probability_real": 0.2})
>>> row.is_right(), round(row.confidence(), 2), row.predicted_name()
(False, 0.8, 'fake')
"""
from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, fields


@dataclass
class PredictionRow(abc.ABC):
    id: str
    index: int  # the row's position in predictions.jsonl (and in the run's test split)

    @classmethod
    def from_json(cls, data: dict) -> "PredictionRow":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["id"] = str(values.get("id", ""))
        values.setdefault("index", -1)
        return cls(**values)

    def to_json(self) -> dict:
        return asdict(self)

    # -- the task's confusion-matrix axes -------------------------------------------------------------------
    @classmethod
    def true_axis(cls, classes: tuple[str, ...]) -> tuple[str, ...]:
        """Row names of a confusion matrix (classification: the classes)."""
        return classes

    @classmethod
    def predicted_axis(cls, classes: tuple[str, ...]) -> tuple[str, ...]:
        """Column names of a confusion matrix."""
        return classes

    @classmethod
    def table_columns(cls) -> tuple[tuple[str, str], ...]:
        """(key of :meth:`inputs`, column heading) of the inputs an examples table shows (images: none, they are
        shown as pictures)."""
        return ()

    @classmethod
    def right_rule(cls) -> str:
        """What "right" means for this task, when it is not "the prediction equals the label"."""
        return ""

    @classmethod
    def metric_facts(cls, metrics: dict, classes: tuple[str, ...]) -> dict[str, object]:
        """The task's test metrics for a comparison table, display name -> value, in the order shown."""
        return {"test loss": metrics.get("loss")}

    # -- one row --------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def true_name(self) -> str:
        """See the subclasses."""

    @abc.abstractmethod
    def predicted_name(self) -> str:
        """See the subclasses."""

    @abc.abstractmethod
    def is_right(self) -> bool:
        """See the subclasses."""

    def confidence(self) -> float | None:
        """The model's probability for what it predicted."""
        return None

    def predicted_text(self) -> str:
        return self.predicted_name()

    def gold_text(self) -> str:
        return self.true_name()

    def inputs(self) -> dict[str, str]:
        """The example's input as text, for tables and explanations (tweets: ``text``; QA: question, context)."""
        return {}

    def side_facts(self) -> dict[str, float | None]:
        """Extra per-model numbers shown beside each prediction (QA: the answer's F1)."""
        return {}


def dig(d, *keys):
    """``d[k1][k2]...``, or None where a level is missing."""
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


_CLASSIFICATION_METRICS = (("test examples", ("n",)), ("accuracy", ("accuracy",)),
                           ("macro precision", ("macro", "precision")), ("macro recall", ("macro", "recall")),
                           ("macro F1", ("macro", "f1")), ("weighted F1", ("weighted", "f1")))


@dataclass
class ClassificationRow(PredictionRow):
    label: int = -1
    label_name: str = ""
    prediction: int = -1
    prediction_name: str = ""
    correct: bool | None = None

    def true_name(self) -> str:
        return self.label_name

    def predicted_name(self) -> str:
        return self.prediction_name

    def is_right(self) -> bool:
        return int(self.prediction) == int(self.label)

    @classmethod
    def metric_facts(cls, metrics: dict, classes: tuple[str, ...]) -> dict[str, object]:
        """Test examples, accuracy, macro precision/recall/F1, weighted F1, ROC-AUC when binary, test loss, then
        precision/recall/F1 per class."""
        facts = {name: dig(metrics, *path) for name, path in _CLASSIFICATION_METRICS}
        if "roc_auc" in metrics:
            facts["ROC-AUC"] = metrics["roc_auc"]
        facts["test loss"] = metrics.get("loss")
        for c in classes:
            for key, name in (("precision", "precision"), ("recall", "recall"), ("f1", "F1")):
                facts[f"{c} {name}"] = dig(metrics, "per_class", c, key)
        return facts
