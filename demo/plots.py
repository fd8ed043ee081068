"""Plotly figure builders shared by the tabs: learning curves of one run or several overlaid.

History rows are the run store's ``history.jsonl`` rows (or a live job's ``history``): ``epoch`` (0-based),
``train_loss``, ``train_accuracy``, ``val_loss``, ``val_<monitor>`` (``val_accuracy``, or ``val_f1`` for QA).
"""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

# One colour per run, so a run's train (dashed) and val (solid) lines read as a pair in both panels.
_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")


def monitor_metric(rows: list[dict], default: str = "accuracy") -> str:
    """The validation metric the rows carry (``val_f1`` -> ``"f1"``), else ``default``."""
    for row in rows:
        for key in row:
            if key.startswith("val_") and key != "val_loss":
                return key[len("val_"):]
    return default


def _series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    """Epochs (1-based) and values of ``key`` in the rows that have it."""
    pairs = [(int(r.get("epoch", i)) + 1, r[key]) for i, r in enumerate(rows) if r.get(key) is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def curve_traces(rows: list[dict], metric: str) -> list[tuple[str, str, int]]:
    """(history key, legend name, panel) for the curves the rows can draw; panel 1 = loss, 2 = the metric.

    The metric panel shows ``train_<metric>`` when the rows have it; otherwise (QA: F1 is only measured on
    validation) the training accuracy, named as such so it is never mistaken for F1.
    """
    present = {k for r in rows for k, v in r.items() if v is not None}
    wanted = [("train_loss", "train loss", 1), ("val_loss", "val loss", 1)]
    if f"train_{metric}" in present:
        wanted.append((f"train_{metric}", f"train {metric}", 2))
    elif "train_accuracy" in present:
        wanted.append(("train_accuracy", "train accuracy", 2))
    wanted.append((f"val_{metric}", f"val {metric}", 2))
    return [w for w in wanted if w[0] in present]


def curves_figure(history_rows_by_label: dict[str, list[dict]], metric: str = "accuracy",
                  title: str | None = None) -> go.Figure:
    """Loss (left) and ``metric`` (right) per epoch for each labelled run; train dashed, validation solid.

    With one run the legend names are plain ("train loss"); with several they are prefixed by the label
    ("resnet50 full · val accuracy").

    >>> fig = curves_figure({"mlp": [{"epoch": 0, "train_loss": 2.1, "val_loss": 2.0, "val_accuracy": 0.3}]})
    >>> [t.name for t in fig.data]
    ['train loss', 'val loss', 'val accuracy']
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss", metric.replace("_", " ").capitalize()))
    several = len(history_rows_by_label) > 1
    for i, (label, rows) in enumerate(history_rows_by_label.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        for key, name, panel in curve_traces(rows, metric):
            x, y = _series(rows, key)
            fig.add_trace(go.Scatter(x=x, y=y, name=f"{label} · {name}" if several else name,
                                     mode="lines+markers", legendgroup=label,
                                     line=dict(color=colour, dash="dash" if key.startswith("train_") else "solid")),
                          row=1, col=panel)
    if not fig.data:
        fig.add_annotation(text="No finished epochs yet.", showarrow=False, xref="paper", yref="paper",
                           x=0.5, y=0.5)
    last = max((int(r.get("epoch", i)) + 1 for rows in history_rows_by_label.values() for i, r in enumerate(rows)),
               default=1)
    # whole epochs only, at most ~10 ticks; the legend sits under the axes, clear of the "epoch" titles
    fig.update_xaxes(title_text="epoch", rangemode="tozero", tick0=0, dtick=max(1, -(-last // 10)))
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)  # accuracy and F1 are fractions
    rows = -(-len(fig.data) // (2 if several else 4))  # legend lines under the plot
    fig.update_layout(title=title, height=340 + 22 * rows, margin=dict(l=40, r=20, t=60, b=60 + 22 * rows),
                      legend=dict(orientation="h", yanchor="top", y=-0.16 - 0.02 * rows, xanchor="left", x=0))
    return fig
