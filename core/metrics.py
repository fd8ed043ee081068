"""Classification metrics through scikit-learn (``sklearn.metrics``): accuracy, per-class and macro/weighted
P/R/F1, confusion matrix, ROC-AUC, returned as plain JSON types.

Labels are class indices ``0 .. len(classes) - 1``; every class appears in the output even when it is absent
from both ``y_true`` and ``y_pred``, an undefined ratio (zero division) is 0.0, and an empty input gives n=0 with
every number 0.

>>> m = classification_metrics([0, 1, 1], [0, 1, 0], ["a", "b"])
>>> m["accuracy"], m["confusion_matrix"]
(0.6666666666666666, [[1, 0], [1, 1]])
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def _skm():
    """``sklearn.metrics``, imported on the first metric (scikit-learn takes seconds to import, and importing this
    module is on the way of everything that evaluates)."""
    from sklearn import metrics

    return metrics


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """(n, n) counts, rows = true class, columns = predicted class (all zeros for an empty input)."""
    if len(y_true) == 0:
        return np.zeros((n_classes, n_classes), dtype=np.int64)
    return _skm().confusion_matrix(y_true, y_pred, labels=list(range(n_classes))).astype(np.int64)


def roc_auc(y_true: Sequence[int], scores: Sequence[float]) -> float | None:
    """Area under the ROC curve for binary labels (1 = positive), ties counted half; None if one class only."""
    y = np.asarray(y_true, dtype=np.int64)
    if not ((y == 1).any() and (y == 0).any()):
        return None  # sklearn would warn and return nan
    return float(_skm().roc_auc_score(y == 1, np.asarray(scores, dtype=np.float64)))


def _prf(y_true, y_pred, labels: list[int], average: str | None):
    return _skm().precision_recall_fscore_support(y_true, y_pred, labels=labels, average=average, zero_division=0.0)


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str],
                           positive_scores: Sequence[float] | None = None) -> dict:
    """Accuracy, per-class and macro/weighted precision/recall/F1, confusion matrix (and ROC-AUC when binary
    scores for class 1 are given). Plain JSON types only."""
    n = len(classes)
    labels = list(range(n))
    cm = confusion_matrix(y_true, y_pred, n)
    total = len(y_true)
    if total:
        precision, recall, f1, support = _prf(y_true, y_pred, labels, None)
        averages = {avg: dict(zip(("precision", "recall", "f1"), map(float, _prf(y_true, y_pred, labels, avg)[:3])))
                    for avg in ("macro", "weighted")}
        accuracy = float(_skm().accuracy_score(y_true, y_pred))
    else:  # sklearn rejects empty inputs
        precision = recall = f1 = np.zeros(n)
        support = np.zeros(n, dtype=np.int64)
        averages = {avg: {"precision": 0.0, "recall": 0.0, "f1": 0.0} for avg in ("macro", "weighted")}
        accuracy = 0.0
    out = {
        "accuracy": accuracy,
        "n": int(total),
        "per_class": {
            c: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                "support": int(support[i])}
            for i, c in enumerate(classes)
        },
        "macro": averages["macro"],
        "weighted": averages["weighted"],
        "confusion_matrix": cm.tolist(),
        "classes": list(classes),
    }
    if positive_scores is not None and n == 2:
        out["roc_auc"] = roc_auc(y_true, positive_scores)
    return out


def classification_report(metrics: dict) -> str:
    """The metrics as the text table sklearn prints (precision, recall, f1-score, support)."""
    width = max(12, *(len(c) for c in metrics["classes"]))
    lines = [f"{'':>{width}} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>9}", ""]
    for c, v in metrics["per_class"].items():
        lines.append(f"{c:>{width}} {v['precision']:9.4f} {v['recall']:9.4f} {v['f1']:9.4f} {v['support']:9d}")
    lines.append("")
    lines.append(f"{'accuracy':>{width}} {'':>9} {'':>9} {metrics['accuracy']:9.4f} {metrics['n']:9d}")
    for avg in ("macro", "weighted"):
        v = metrics[avg]
        lines.append(f"{avg + ' avg':>{width}} {v['precision']:9.4f} {v['recall']:9.4f} {v['f1']:9.4f} "
                     f"{metrics['n']:9d}")
    return "\n".join(lines)
