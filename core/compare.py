"""Two finished runs of one task side by side: metrics, confusion-matrix cells and disagreements.

Pure functions over the run store's files (config.json, metrics.json, history.jsonl, predictions.jsonl); nothing
here imports gradio or loads a model. :func:`compare_runs` reads both runs once, checks they can be compared
(both finished, same task, same label set) and finds the test examples both have; the other functions take its
:class:`Comparison`.

Test ids. An image or tweet run's test subset is drawn with its own seed and eval limit, so two runs trained with
different seeds or limits may hold different examples. Everything per example (confusion matrices, cells,
disagreements) is then computed on the ids both runs have, in run A's order, and ``Comparison.note`` says how
many were dropped; :func:`metrics_table` shows each run's own metrics.json, i.e. its whole test set.

Classification (images, tweets): a confusion cell is (true class, predicted class) and an example is *right* when
its prediction equals its label. Question answering (SQuAD 2.0 style) has no classes, so its confusion matrix is
2 x 2: true ``answerable``/``unanswerable`` against predicted ``answered``/``abstained``; an answerable question
is *right* when the answer's token F1 is at least :data:`QA_RIGHT_F1` (0.5), an unanswerable one when the model
abstained (exact match 1).

>>> pair = compare_runs("runs/20261123-101500-mlp-scratch-ab12", "runs/20261123-102000-mlp-sc-cd34")  # doctest: +SKIP
>>> [row[0] for row in metrics_table(pair.a, pair.b)][:3]                             # doctest: +SKIP
['run', 'model', 'strategy']
>>> len(cell_examples(pair, "cat", "dog")) == confusion(pair, "a").count("cat", "dog")  # doctest: +SKIP
True
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Literal

from core.errors import BadInputError, RunNotFoundError, TransferLabError
from core.runs import Run, open_run

QA_TASK = "qa"
QA_TRUE = ("answerable", "unanswerable")  # rows of a QA confusion matrix
QA_PREDICTED = ("answered", "abstained")  # its columns
QA_RIGHT_F1 = 0.5  # an answer with at least this token F1 counts as right

Side = Literal["a", "b"]


class NotComparableError(TransferLabError, ValueError):
    """Two runs cannot be compared (different tasks or labels), or a run has nothing to compare yet."""


# ---------------------------------------------------------------------------------------------------------------
# One run, read once
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunRecord:
    """What a comparison needs of one finished run, read from its folder in one go."""

    id: str
    path: str
    task: str
    config: dict
    metrics: dict
    history: list[dict]
    predictions: list[dict]
    by_id: dict[str, dict] = field(repr=False)  # test id -> its predictions.jsonl row

    @property
    def label(self) -> str:
        """Short name for legends and headers: "mlp scratch · 20261123-101500-mlp-scratch-ab12"."""
        train = self.config.get("train", {})
        return f"{train.get('model', '?')} {train.get('strategy', '?')} · {self.id}"

    @property
    def classes(self) -> tuple[str, ...]:
        """The label vocabulary of a classification run (empty for QA)."""
        return tuple(self.metrics.get("classes") or self.config.get("labels") or ())

    @property
    def true_labels(self) -> tuple[str, ...]:
        """Row names of this run's confusion matrix."""
        return QA_TRUE if self.task == QA_TASK else self.classes

    @property
    def predicted_labels(self) -> tuple[str, ...]:
        """Column names of this run's confusion matrix."""
        return QA_PREDICTED if self.task == QA_TASK else self.classes

    @property
    def monitor(self) -> str:
        """The headline metric (accuracy, or f1 for QA); the curves' metric panel shows ``val_<monitor>``."""
        return self.config.get("headline_metric") or ("f1" if self.task == QA_TASK else "accuracy")

    # -- one prediction row ----------------------------------------------------------------------------------
    def true_name(self, row: dict) -> str:
        if self.task == QA_TASK:
            return QA_TRUE[1] if row.get("is_impossible") else QA_TRUE[0]
        return row["label_name"]

    def predicted_name(self, row: dict) -> str:
        if self.task == QA_TASK:
            return QA_PREDICTED[0] if row.get("prediction") else QA_PREDICTED[1]
        return row["prediction_name"]

    def is_right(self, row: dict) -> bool:
        """Classification: prediction == label. QA: exact for unanswerable questions, F1 >= 0.5 otherwise."""
        if self.task == QA_TASK:
            if row.get("is_impossible"):
                return float(row.get("exact", 0.0)) == 1.0
            return float(row.get("f1", 0.0)) >= QA_RIGHT_F1
        return int(row["prediction"]) == int(row["label"])

    def confidence(self, row: dict) -> float | None:
        """The model's probability for what it predicted (QA: of its span, or of "no answer" when it abstained)."""
        if self.task == QA_TASK:
            key = "probability" if row.get("prediction") else "no_answer_probability"
            return row.get(key)
        if "probabilities" in row:  # images: one probability per class
            return row["probabilities"][int(row["prediction"])]
        if "probability_real" in row:  # tweets: binary, the probability of "real"
            p_real = float(row["probability_real"])
            return p_real if row["prediction_name"] == "real" else 1.0 - p_real
        return None

    def predicted_text(self, row: dict) -> str:
        if self.task == QA_TASK:
            return row.get("prediction") or "(no answer)"
        return row["prediction_name"]

    def gold_text(self, row: dict) -> str:
        if self.task == QA_TASK:
            answers = [a for a in row.get("answers") or [] if a]
            return " | ".join(answers) if answers and not row.get("is_impossible") else "(no answer)"
        return row["label_name"]


def load_run(ref: str | os.PathLike | Run | RunRecord, runs_root: str | os.PathLike | None = None) -> RunRecord:
    """A finished run's config, metrics, history and predictions; a RunRecord is returned as it is.

    Raises RunNotFoundError for a missing or vanished run, NotComparableError for one that has not finished or
    has no test predictions.

    >>> load_run("runs/20261123-101500-mlp-scratch-ab12").task   # doctest: +SKIP
    'images'
    """
    if isinstance(ref, RunRecord):
        return ref
    run = ref if isinstance(ref, Run) else open_run(ref, runs_root)
    try:
        config = run.read_config()
        status = run.read_status()
        metrics = run.read_metrics()
        predictions = run.read_predictions()
        history = run.read_history()
    except (OSError, json.JSONDecodeError):  # deleted or half-written between open_run and the reads
        raise RunNotFoundError(f"Run {run.id} could not be read; it may have been deleted.") from None
    if status.get("status") != "completed":
        raise NotComparableError(f"Run {run.id} is {status.get('status')}, not finished: only finished runs "
                                 "can be compared.")
    if not predictions or metrics is None:
        raise NotComparableError(f"Run {run.id} has no test predictions to compare.")
    task = config.get("train", {}).get("task")
    if task is None:
        raise NotComparableError(f"Run {run.id} does not say which task it is for.")
    return RunRecord(id=run.id, path=str(run.path), task=task, config=config, metrics=metrics, history=history,
                     predictions=predictions, by_id={str(r["id"]): r for r in predictions})


# ---------------------------------------------------------------------------------------------------------------
# Two runs
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    a: RunRecord
    b: RunRecord
    ids: tuple[str, ...]  # test ids both runs have, in run A's order
    only_a: int  # test ids of A that B lacks
    only_b: int

    @property
    def task(self) -> str:
        return self.a.task

    @property
    def note(self) -> str:
        """One sentence on which examples are compared ("" when both runs have the same test set)."""
        if not self.ids:
            return (f"The two runs share no test examples (A has {len(self.a.by_id)}, B {len(self.b.by_id)}), so "
                    "only their metrics and curves can be compared; train both with the same seed and eval limit "
                    "to compare their predictions.")
        if self.only_a or self.only_b:
            return (f"The runs' test sets differ (different seed or eval limit): {self.only_a} examples of A and "
                    f"{self.only_b} of B were dropped, and confusion matrices, cells and disagreements use the "
                    f"{len(self.ids)} examples both have; the metrics table shows each run's whole test set.")
        return ""

    def run(self, side: Side) -> RunRecord:
        if side not in ("a", "b"):
            raise BadInputError(f"Pick run 'a' or 'b', not {side!r}.")
        return self.a if side == "a" else self.b


def compare_runs(ref_a, ref_b, runs_root: str | os.PathLike | None = None) -> Comparison:
    """Read two finished runs and check they can be compared: same task, same labels; ids intersected.

    Raises NotComparableError with one sentence otherwise (and RunNotFoundError for a missing run).

    >>> pair = compare_runs(run_a.path, run_b.path); pair.note   # doctest: +SKIP
    ''
    """
    a, b = load_run(ref_a, runs_root), load_run(ref_b, runs_root)
    if a.task != b.task:
        raise NotComparableError(f"Run A ({a.id}) is for the {a.task} task and run B ({b.id}) for the {b.task} "
                                 "task: pick two runs of the same task.")
    if a.classes != b.classes:
        raise NotComparableError(f"Run A predicts the classes {', '.join(a.classes)} and run B "
                                 f"{', '.join(b.classes)}: pick two runs with the same labels.")
    ids = tuple(i for i in a.by_id if i in b.by_id)
    return Comparison(a=a, b=b, ids=ids, only_a=len(a.by_id) - len(ids), only_b=len(b.by_id) - len(ids))


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _dig(d, *keys):
    """``d[k1][k2]...``, or None where a level is missing."""
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d


_QA_METRICS = (("test questions", "total"), ("exact match", "exact"), ("F1", "f1"),
               ("HasAns exact match", "HasAns_exact"), ("HasAns F1", "HasAns_f1"), ("HasAns questions", "HasAns_total"),
               ("NoAns exact match", "NoAns_exact"), ("NoAns F1", "NoAns_f1"), ("NoAns questions", "NoAns_total"),
               ("questions answered", "answered"), ("null threshold", "null_threshold"), ("test loss", "loss"))
_CLS_METRICS = (("test examples", ("n",)), ("accuracy", ("accuracy",)),
                ("macro precision", ("macro", "precision")), ("macro recall", ("macro", "recall")),
                ("macro F1", ("macro", "f1")), ("weighted F1", ("weighted", "f1")))


def run_facts(r: RunRecord) -> dict[str, object]:
    """One run's column of :func:`metrics_table`, name -> value, in table order."""
    cfg, m = r.config, r.metrics
    params = m.get("parameters") or cfg.get("parameters") or {}
    facts = {"run": r.id, "model": _dig(cfg, "train", "model"), "strategy": _dig(cfg, "train", "strategy"),
             "weights": "pretrained" if cfg.get("pretrained") else "untrained",
             "weights source": cfg.get("weights_source")}
    if r.task == QA_TASK:
        facts.update((name, m.get(key)) for name, key in _QA_METRICS)
    else:
        facts.update((name, _dig(m, *path)) for name, path in _CLS_METRICS)
        if "roc_auc" in m:
            facts["ROC-AUC"] = m["roc_auc"]
        facts["test loss"] = m.get("loss")
        for c in r.classes:
            for key, name in (("precision", "precision"), ("recall", "recall"), ("f1", "F1")):
                facts[f"{c} {name}"] = _dig(m, "per_class", c, key)
    facts.update({"trainable parameters": params.get("trainable"), "total parameters": params.get("total"),
                  "epochs": len(r.history) or None, "mean seconds per epoch": m.get("mean_seconds_per_epoch")})
    return facts


def metrics_table(run_a: RunRecord, run_b: RunRecord) -> list[list]:
    """Rows ``[name, value A, value B, B - A]`` (the difference only where both are numbers).

    What each run is (run id, model, strategy, weights pretrained/untrained and their source); its test metrics
    as stored in its metrics.json, i.e. on its own test set (classification: test examples, accuracy, macro
    precision/recall/F1, weighted F1, ROC-AUC when binary, test loss, then precision/recall/F1 per class; QA:
    exact match and F1 overall, on answerable (HasAns) and unanswerable (NoAns) questions with their counts,
    questions answered, null threshold, test loss); what it cost (trainable and total parameters, epochs, mean
    training seconds per epoch). A name only one run has shows None for the other.

    >>> metrics_table(pair.a, pair.b)[5]   # doctest: +SKIP
    ['test examples', 30, 30, 0]
    """
    fa, fb = run_facts(run_a), run_facts(run_b)
    names = list(fa) + [n for n in fb if n not in fa]
    rows = []
    for name in names:
        a, b = fa.get(name), fb.get(name)
        rows.append([name, a, b, b - a if _number(a) and _number(b) else None])
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Per example: confusion cells and disagreements
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConfusionMatrix:
    true_labels: tuple[str, ...]  # rows
    predicted_labels: tuple[str, ...]  # columns
    counts: list[list[int]]  # (rows, columns)

    def count(self, true_label: str, predicted_label: str) -> int:
        return self.counts[self.true_labels.index(true_label)][self.predicted_labels.index(predicted_label)]


def confusion(pair: Comparison, side: Side = "a") -> ConfusionMatrix:
    """Run ``side``'s confusion matrix (rows true, columns predicted) on the examples both runs have.

    With identical test sets this is the run's metrics.json ``confusion_matrix`` (for classification).
    """
    r = pair.run(side)
    rows, cols = r.true_labels, r.predicted_labels
    counts = [[0] * len(cols) for _ in rows]
    for i in pair.ids:
        p = r.by_id[i]
        counts[rows.index(r.true_name(p))][cols.index(r.predicted_name(p))] += 1
    return ConfusionMatrix(rows, cols, counts)


def example(pair: Comparison, test_id: str) -> dict:
    """One test example with both runs' predictions: id, true, a_/b_ prediction, confidence, right, index
    (the row in each run's predictions.jsonl); tweets add ``text``, QA ``question``, ``context``, a_/b_ ``f1``."""
    ra, rb = pair.a.by_id[test_id], pair.b.by_id[test_id]
    out = {"id": test_id, "true": pair.a.gold_text(ra)}
    for prefix, r, row in (("a", pair.a, ra), ("b", pair.b, rb)):
        out[f"{prefix}_prediction"] = r.predicted_text(row)
        out[f"{prefix}_confidence"] = r.confidence(row)
        out[f"{prefix}_right"] = r.is_right(row)
        out[f"{prefix}_index"] = row.get("index")
        if pair.task == QA_TASK:
            out[f"{prefix}_f1"] = row.get("f1")
    for key in ("text", "question", "context"):
        if key in ra:
            out[key] = ra[key]
    return out


def cell_examples(pair: Comparison, true_label: str, predicted_label: str, side: Side = "a") -> list[dict]:
    """The examples behind cell (``true_label``, ``predicted_label``) of run ``side``'s confusion matrix, each
    with both runs' predictions (see :func:`example`), in run A's order. Their number is that cell's count.

    >>> [(e["a_prediction"], e["b_prediction"]) for e in cell_examples(pair, "cat", "dog")][:1]   # doctest: +SKIP
    [('dog', 'cat')]
    """
    r = pair.run(side)
    if true_label not in r.true_labels:
        raise BadInputError(f"'{true_label}' is not a true label of these runs; choose one of "
                            f"{', '.join(r.true_labels)}.")
    if predicted_label not in r.predicted_labels:
        raise BadInputError(f"'{predicted_label}' is not a predicted label of these runs; choose one of "
                            f"{', '.join(r.predicted_labels)}.")
    return [example(pair, i) for i in pair.ids
            if r.true_name(r.by_id[i]) == true_label and r.predicted_name(r.by_id[i]) == predicted_label]


@dataclass(frozen=True)
class Disagreements:
    a_right_b_wrong: list[dict]
    b_right_a_wrong: list[dict]


def disagreements(pair: Comparison) -> Disagreements:
    """The shared examples run A gets right and B wrong, and the reverse (see the module doc for "right")."""
    a_only, b_only = [], []
    for i in pair.ids:
        a_right, b_right = pair.a.is_right(pair.a.by_id[i]), pair.b.is_right(pair.b.by_id[i])
        if a_right and not b_right:
            a_only.append(example(pair, i))
        elif b_right and not a_right:
            b_only.append(example(pair, i))
    return Disagreements(a_only, b_only)
