"""Classification metrics in numpy: accuracy, per-class and macro/weighted P/R/F1, confusion matrix, ROC-AUC.

>>> m = classification_metrics([0, 1, 1], [0, 1, 0], ["a", "b"])
>>> m["accuracy"], m["confusion_matrix"]
(0.6666666666666666, [[1, 0], [1, 1]])
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """(n, n) counts, rows = true class, columns = predicted class."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)


def roc_auc(y_true: Sequence[int], scores: Sequence[float]) -> float | None:
    """Area under the ROC curve for binary labels (1 = positive), ties counted half; None if one class only."""
    y = np.asarray(y_true, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    # Mann-Whitney U: average ranks handle ties.
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    u = ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str],
                           positive_scores: Sequence[float] | None = None) -> dict:
    """Accuracy, per-class and macro/weighted precision/recall/F1, confusion matrix (and ROC-AUC when binary
    scores for class 1 are given). Plain JSON types only."""
    n = len(classes)
    cm = confusion_matrix(y_true, y_pred, n)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    total = support.sum()
    weights = support / total if total else np.zeros(n)
    out = {
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "n": int(total),
        "per_class": {
            c: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                "support": int(support[i])}
            for i, c in enumerate(classes)
        },
        "macro": {"precision": float(precision.mean()), "recall": float(recall.mean()), "f1": float(f1.mean())},
        "weighted": {"precision": float((precision * weights).sum()), "recall": float((recall * weights).sum()),
                     "f1": float((f1 * weights).sum())},
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
