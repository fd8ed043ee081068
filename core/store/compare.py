"""Finished runs of one task side by side: metrics and cost for two or more, and for a pair of them
confusion-matrix cells and disagreements.

Pure functions over the run store's files (config.json, metrics.json, history.jsonl, steps.jsonl,
predictions.jsonl); nothing here imports gradio or loads a model. :func:`load_runs` reads two or more runs and
checks they can be compared (all finished, same task, same label set); :func:`metrics_tables` puts them in one
table, cost first. :func:`compare_runs` does the same for a pair and finds the test examples both have; the
per-example functions take its :class:`Comparison`.

Test ids. An image or tweet run's test subset is drawn with its own seed and eval limit, so two runs trained with
different seeds or limits may hold different examples. Everything per example (confusion matrices, cells,
disagreements) is then computed on the ids both runs have, in run A's order, and ``Comparison.note`` says how
many were dropped; :func:`metrics_table` shows each run's own metrics.json, i.e. its whole test set.

What a row's true and predicted names are, whether it is right and how confident the model was are the task's
own answers (its PredictionRow class, ``TaskSpec.row``): classification rows use the classes, extractive QA
a 2 x 2 answerable/unanswerable by answered/abstained matrix (see core/tasks/qa/rows.py).

>>> pair = compare_runs("runs/20261123-101500-mlp-scratch-ab12", "runs/20261123-102000-mlp-sc-cd34")  # doctest: +SKIP
>>> [row[0] for row in metrics_table(pair.a, pair.b)][:5]                             # doctest: +SKIP
['run', 'model', 'strategy', 'weights', 'trainable parameters']
>>> len(cell_examples(pair, "cat", "dog")) == confusion(pair, "a").count("cat", "dog")  # doctest: +SKIP
True
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Literal

from core import registry
from core.engine.rows import PredictionRow, dig
from core.errors import BadInputError, RunNotFoundError, TransferLabError
from core.presets import references_for
from core.registry import TaskSpec
from core.store.report import run_cost, split_sizes
from core.store.runs import Run, open_run, weights_label

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
    predictions: list[PredictionRow]
    by_id: dict[str, PredictionRow] = field(repr=False)  # test id -> its row
    steps: list[dict] = field(default_factory=list, repr=False)  # steps.jsonl: the per-step training loss

    @property
    def label(self) -> str:
        """Short name for legends and headers: "mlp scratch · 20261123-101500-mlp-scratch-ab12"."""
        train = self.config.get("train", {})
        return f"{train.get('model', '?')} {train.get('strategy', '?')} · {self.id}"

    @property
    def spec(self) -> TaskSpec:
        return registry.get_task(self.task)

    @property
    def classes(self) -> tuple[str, ...]:
        """The label vocabulary of a classification run (empty when the task predicts spans)."""
        return tuple(self.metrics.get("classes") or self.config.get("labels") or ())

    @property
    def row_type(self) -> type[PredictionRow]:
        return self.spec.row_class()

    @property
    def true_labels(self) -> tuple[str, ...]:
        """Row names of this run's confusion matrix."""
        return self.row_type.true_axis(self.classes)

    @property
    def predicted_labels(self) -> tuple[str, ...]:
        """Column names of this run's confusion matrix."""
        return self.row_type.predicted_axis(self.classes)

    @property
    def monitor(self) -> str:
        """The headline metric (accuracy, or f1 for QA); the curves' metric panel shows ``val_<monitor>``."""
        return self.config.get("headline_metric") or self.spec.headline


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
        steps = run.read_steps()
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
    row_type = registry.get_task(task).row_class()
    rows = [row_type.from_json(r) for r in predictions]
    return RunRecord(id=run.id, path=str(run.path), task=task, config=config, metrics=metrics, history=history,
                     predictions=rows, by_id={r.id: r for r in rows}, steps=steps)


# ---------------------------------------------------------------------------------------------------------------
# Two or more runs
# ---------------------------------------------------------------------------------------------------------------
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_RUNS = len(LETTERS)  # runs are named A, B, C, ... in tables and legends


def letter(i: int) -> str:
    """The name of the ``i``-th run of a comparison (0 -> "A")."""
    return LETTERS[i]


def check_comparable(records: list[RunRecord] | tuple[RunRecord, ...]) -> None:
    """NotComparableError (one sentence) unless every run has run A's task and labels."""
    a = records[0]
    pick = "two runs" if len(records) == 2 else "runs"
    for i, r in enumerate(records[1:], start=1):
        if r.task != a.task:
            raise NotComparableError(f"Run A ({a.id}) is for the {a.task} task and run {letter(i)} ({r.id}) for "
                                     f"the {r.task} task: pick {pick} of the same task.")
        if r.classes != a.classes:
            raise NotComparableError(f"Run A predicts the classes {', '.join(a.classes)} and run {letter(i)} "
                                     f"{', '.join(r.classes)}: pick {pick} with the same labels.")


def load_runs(refs, runs_root: str | os.PathLike | None = None) -> tuple[RunRecord, ...]:
    """Two or more finished runs of one task with the same labels, read once, in the order given (A, B, C, ...).

    BadInputError with fewer than two or more than MAX_RUNS; NotComparableError / RunNotFoundError as for a pair.

    >>> [r.id for r in load_runs([run_a.path, run_b.path, run_c.path])]   # doctest: +SKIP
    """
    refs = [r for r in refs if r not in (None, "")]
    if len(refs) < 2:
        raise BadInputError("Pick at least two runs to compare.")
    if len(refs) > MAX_RUNS:
        raise BadInputError(f"Compare at most {MAX_RUNS} runs at once; {len(refs)} were picked.")
    records = tuple(load_run(ref, runs_root) for ref in refs)
    check_comparable(records)
    return records


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
    check_comparable((a, b))
    ids = tuple(i for i in a.by_id if i in b.by_id)
    return Comparison(a=a, b=b, ids=ids, only_a=len(a.by_id) - len(ids), only_b=len(b.by_id) - len(ids))


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# The cost rows every table opens with, before the metrics (names as shown).
COST_ROWS = ("trainable parameters", "total parameters", "wall time (s)", "setup / feature cache (s)",
             "train seconds per epoch", "validation seconds per epoch", "epochs", "train examples",
             "validation examples")
# What "wall time" adds up, for the UI's note (see core.store.report.run_cost).
WALL_TIME_NOTE = ("Wall time = loading the data and the model + setup (the frozen-feature cache pass of a cached "
                  "run) + every epoch's training and validation + the final test pass.")


def run_facts(r: RunRecord) -> dict[str, object]:
    """One run's column of :func:`metrics_table`, name -> value, in table order: what the run is, what it cost
    (COST_ROWS), its overall test metrics with the reference figures of its preset, then the per-class metrics."""
    cfg, m = r.config, r.metrics
    cost = run_cost(cfg, m, r.history)
    sizes = split_sizes(cfg)
    facts = {"run": r.id, "model": dig(cfg, "train", "model"), "strategy": dig(cfg, "train", "strategy"),
             "weights": weights_label(cfg.get("weights"))}
    facts.update(zip(COST_ROWS, (cost["trainable"], cost["total"], cost["wall_seconds"], cost["setup_seconds"],
                                 cost["train_seconds_per_epoch"], cost["val_seconds_per_epoch"], cost["epochs"],
                                 sizes.get("train"), sizes.get("val"))))
    overall = r.row_type.metric_facts(m, ())  # the task's own test metrics, in its order, without per-class ones
    facts.update(overall)
    for ref in references_for(dig(cfg, "train", "preset")):  # what the course report / paper behind its preset got
        facts[f"{ref['source']} reference: {ref['metric']}"] = ref["value"]
    facts.update((k, v) for k, v in r.row_type.metric_facts(m, r.classes).items() if k not in overall)
    return facts


def per_class_names(r: RunRecord) -> set[str]:
    """The names of :func:`run_facts` that are per-class metrics (the classes' precision, recall, F1)."""
    overall = r.row_type.metric_facts(r.metrics, ())
    return {k for k in r.row_type.metric_facts(r.metrics, r.classes) if k not in overall}


def metrics_table(*runs: RunRecord) -> list[list]:
    """Rows ``[name, value A, value B, ..., B - A, C - A, ...]`` for two or more runs (the differences only where
    both are numbers); with two runs ``[name, A, B, B - A]``.

    What each run is (run id, model, strategy, weights pretrained/untrained and their source); what it cost
    (COST_ROWS: trainable and total parameters, wall time, setup, training and validation seconds per epoch,
    epochs, train and validation examples); its test metrics as stored in its metrics.json, i.e. on its own test
    set (classification: test examples, accuracy, macro precision/recall/F1, weighted F1, ROC-AUC when binary,
    test loss; QA: exact match and F1 overall, on answerable (HasAns) and unanswerable (NoAns) questions with
    their counts, questions answered, null threshold, test loss), the "<source> reference" figures of its preset,
    then precision/recall/F1 per class. A name only some runs have shows None for the others.

    >>> metrics_table(pair.a, pair.b)[4]   # doctest: +SKIP
    ['trainable parameters', 855050, 855050, 0]
    """
    if len(runs) < 2:
        raise BadInputError("Pick at least two runs to compare.")
    columns = [run_facts(r) for r in runs]
    names = list(columns[0])
    for facts in columns[1:]:
        names += [n for n in facts if n not in names]
    rows = []
    for name in names:
        values = [facts.get(name) for facts in columns]
        first = values[0]
        rows.append([name, *values, *(v - first if _number(first) and _number(v) else None for v in values[1:])])
    return rows


def metrics_tables(runs) -> tuple[list[list], list[list]]:
    """:func:`metrics_table` split in two: (identity, cost, overall metrics and references; per-class rows)."""
    rows = metrics_table(*runs)
    per_class = set().union(*(per_class_names(r) for r in runs))
    return [r for r in rows if r[0] not in per_class], [r for r in rows if r[0] in per_class]


def table_headers(n: int) -> list[str]:
    """Column names of :func:`metrics_table` for ``n`` runs: metric, A, B, ..., B − A, C − A, ..."""
    return ["metric", *(letter(i) for i in range(n)), *(f"{letter(i)} − A" for i in range(1, n))]


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
        counts[rows.index(p.true_name())][cols.index(p.predicted_name())] += 1
    return ConfusionMatrix(rows, cols, counts)


def example(pair: Comparison, test_id: str) -> dict:
    """One test example with both runs' predictions: id, true, a_/b_ prediction, confidence, right, index
    (the row in each run's predictions.jsonl), the task's per-model facts (QA: a_/b_ ``f1``) and the example's
    inputs as text (tweets: ``text``; QA: ``question``, ``context``)."""
    ra, rb = pair.a.by_id[test_id], pair.b.by_id[test_id]
    out = {"id": test_id, "true": ra.gold_text()}
    for prefix, row in (("a", ra), ("b", rb)):
        out[f"{prefix}_prediction"] = row.predicted_text()
        out[f"{prefix}_confidence"] = row.confidence()
        out[f"{prefix}_right"] = row.is_right()
        out[f"{prefix}_index"] = row.index
        out.update((f"{prefix}_{k}", v) for k, v in row.side_facts().items())
    out.update(ra.inputs())
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
            if r.by_id[i].true_name() == true_label and r.by_id[i].predicted_name() == predicted_label]


@dataclass(frozen=True)
class Disagreements:
    a_right_b_wrong: list[dict]
    b_right_a_wrong: list[dict]


def disagreements(pair: Comparison) -> Disagreements:
    """The shared examples run A gets right and B wrong, and the reverse (see the module doc for "right")."""
    a_only, b_only = [], []
    for i in pair.ids:
        a_right, b_right = pair.a.by_id[i].is_right(), pair.b.by_id[i].is_right()
        if a_right and not b_right:
            a_only.append(example(pair, i))
        elif b_right and not a_right:
            b_only.append(example(pair, i))
    return Disagreements(a_only, b_only)
