"""Plotly figure builders shared by the tabs: learning curves of one run or several overlaid, and where the time
went (training and validation seconds per epoch, the setup pass).

History rows are the run store's ``history.jsonl`` rows (or a live job's ``history``): ``epoch`` (0-based),
``train_loss``, ``train_accuracy``, ``val_loss``, ``val_<monitor>`` (``val_accuracy``, or ``val_f1`` for QA),
``seconds`` (training) and ``eval_seconds`` (validation). Step rows are ``steps.jsonl``'s: ``epoch``, ``step``
(the global step at the end of the logged interval), ``loss`` (its mean), ``lr``, ``seconds``.

Epoch ``e`` (0-based) is drawn at x = e + 1, the end of that epoch; a step point at x = step / steps per epoch,
i.e. in fractional epochs on the same axis. One run: train and validation in two colours (and dashes); several:
one colour per run, train dashed with open markers, validation solid.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from core.errors import TransferLabError
from core.store.report import split_sizes

# One colour per run (D3's ten); a single run's splits take the first two, told apart by dash as well.
_COLOURS = tuple(qualitative.D3)
SPLIT_COLOURS = {"train": _COLOURS[0], "val": _COLOURS[1]}
SETUP_COLOUR = _COLOURS[7]  # grey: the one-time pass before the first epoch
LABELLED_POINTS = 2  # series this short (one- or two-epoch runs) get their values written beside the markers


@dataclass(frozen=True)
class RunCurves:
    """What one run's curves are drawn from: its epoch rows, and where it recorded them its step rows, the sizes
    of its splits and its setup seconds. ``steps_per_epoch`` places step points while the first epoch is still
    running (afterwards it is read off the rows)."""

    history: list[dict]
    steps: list[dict] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)
    setup_seconds: float | None = None
    steps_per_epoch: int | None = None


def run_curves(run, history: list[dict] | None = None, steps_per_epoch: int | None = None) -> RunCurves:
    """A stored run's RunCurves (a core.store.runs.Run): history.jsonl (or ``history``, e.g. a live job's),
    steps.jsonl and, from config.json, the split sizes and the setup (``prepare_seconds``)."""
    try:
        config = run.read_config()
    except (TransferLabError, OSError):  # not written yet (a queued job): the curves need none of it
        config = {}
    setup = config.get("prepare_seconds")
    return RunCurves(history=run.read_history() if history is None else history, steps=run.read_steps(),
                     sizes=split_sizes(config), setup_seconds=setup if isinstance(setup, (int, float)) else None,
                     steps_per_epoch=steps_per_epoch)


def _as_curves(value) -> RunCurves:
    return value if isinstance(value, RunCurves) else RunCurves(history=list(value or []))


def monitor_metric(rows: list[dict], default: str = "accuracy") -> str:
    """The validation metric the rows carry (``val_f1`` -> ``"f1"``), else ``default``."""
    for row in rows:
        for key in row:
            if key.startswith("val_") and key != "val_loss":
                return key[len("val_"):]
    return default


def _epoch(row: dict, i: int) -> int:
    return int(row.get("epoch", i)) + 1


def _series(rows: list[dict], key: str) -> tuple[list[int], list[float], list[dict]]:
    """Epochs (1-based), values of ``key`` and the rows, for the rows that have it."""
    picked = [(_epoch(r, i), r[key], r) for i, r in enumerate(rows) if r.get(key) is not None]
    return [p[0] for p in picked], [p[1] for p in picked], [p[2] for p in picked]


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


def steps_per_epoch(curves: RunCurves) -> float | None:
    """Optimizer steps per epoch: given, or read off an epoch that finished (its last step row closes it, at
    global step (epoch + 1) x steps per epoch); None while the first epoch runs without it."""
    if curves.steps_per_epoch:
        return float(curves.steps_per_epoch)
    finished = {_epoch(r, i) - 1 for i, r in enumerate(curves.history)}
    for e in sorted(finished):
        ends = [s["step"] for s in curves.steps if s.get("epoch") == e and isinstance(s.get("step"), (int, float))]
        if ends:
            return max(ends) / (e + 1)
    return None


def step_points(curves: RunCurves) -> tuple[list[float], list[float], list[dict]]:
    """(x in fractional epochs, mean loss, rows) of the run's step history; empty when it has none or the steps
    per epoch are not known yet."""
    per_epoch = steps_per_epoch(curves)
    rows = [s for s in curves.steps if isinstance(s.get("step"), (int, float)) and s.get("loss") is not None
            and math.isfinite(s["loss"])]
    if not per_epoch or not rows:
        return [], [], []
    return [s["step"] / per_epoch for s in rows], [s["loss"] for s in rows], rows


def sizes_text(sizes: dict[str, int]) -> str:
    """"train 60 · val 20 · test 20 examples" (the splits a run recorded), or ""."""
    order = [s for s in ("train", "val", "test") if s in sizes] + [s for s in sizes if s not in ("train", "val",
                                                                                                "test")]
    return " · ".join(f"{s} {sizes[s]:,}" for s in order) + " examples" if sizes else ""


def _secs(value) -> str:
    return f"{value:.1f} s" if isinstance(value, (int, float)) else "not recorded"


def _value(y: float) -> str:
    return f"{y:.3f}" if abs(y) < 100 else f"{y:.0f}"


def curves_figure(history_rows_by_label: dict[str, list[dict] | RunCurves], metric: str = "accuracy",
                  title: str | None = None, seconds: bool = False) -> go.Figure:
    """Loss (left) and ``metric`` (right) per epoch for each labelled run, plus its per-step training loss where
    it has one (a RunCurves value; a plain list is the epoch rows alone).

    One run: train blue and dashed, validation orange and solid, step points pale blue; legend names are plain
    ("train loss") and the split sizes go under the title. Several: one colour per run, train dashed with open
    markers, names prefixed by the label ("resnet50 full · val accuracy"), each run's legend group titled with
    its split sizes. A point's hover gives that epoch's training and validation seconds. Series of one or two
    epochs have their values written beside the markers. ``seconds=True`` adds a third panel: the bars of
    :func:`seconds_figure` (setup, training and validation seconds per epoch).

    >>> fig = curves_figure({"mlp": [{"epoch": 0, "train_loss": 2.1, "val_loss": 2.0, "val_accuracy": 0.3}]})
    >>> [t.name for t in fig.data]
    ['train loss', 'val loss', 'val accuracy']
    """
    runs = {label: _as_curves(value) for label, value in history_rows_by_label.items()}
    panels = ["Loss", metric.replace("_", " ").capitalize()] + (["Seconds: setup, training, validation"]
                                                                 if seconds else [])
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=panels,
                        column_widths=[0.36, 0.36, 0.28] if seconds else None)
    several = len(runs) > 1
    any_steps = False
    for i, (label, curves) in enumerate(runs.items()):
        run_colour = _COLOURS[i % len(_COLOURS)]
        group_title = f"{label} ({sizes_text(curves.sizes)})" if several and curves.sizes else (label if several
                                                                                              else None)
        for key, name, panel in curve_traces(curves.history, metric):
            x, y, rows = _series(curves.history, key)
            split = "train" if key.startswith("train_") else "val"
            colour = run_colour if several else SPLIT_COLOURS[split]
            short = len(x) <= LABELLED_POINTS
            fig.add_trace(go.Scatter(
                x=x, y=y, name=f"{label} · {name}" if several else name, legendgroup=label,
                legendgrouptitle_text=group_title,
                mode="lines+markers+text" if short else "lines+markers",
                text=[_value(v) for v in y] if short else None,
                textposition="top center" if split == "val" else "bottom center",
                textfont=dict(color=colour),
                marker=dict(color=colour, size=10 if short else 6,
                            symbol="circle-open" if several and split == "train" else "circle"),
                line=dict(color=colour, dash="dash" if split == "train" else "solid"),
                customdata=[[_secs(r.get("seconds")), _secs(r.get("eval_seconds"))] for r in rows],
                hovertemplate=(f"{label} · {name}<br>epoch %{{x}}: %{{y:.4f}}<br>training %{{customdata[0]}}, "
                               "validation %{customdata[1]}<extra></extra>")),
                row=1, col=panel)
        x, y, rows = step_points(curves)
        if x:
            any_steps = True
            colour = run_colour if several else SPLIT_COLOURS["train"]
            fig.add_trace(go.Scatter(
                x=x, y=y, name=f"{label} · train loss per step" if several else "train loss per step",
                legendgroup=label, legendgrouptitle_text=group_title, mode="markers", opacity=0.45,
                marker=dict(color=colour, size=4, symbol="circle"),
                customdata=[[r["step"], r.get("lr") if r.get("lr") is not None else float("nan")] for r in rows],
                hovertemplate=(f"{label} · train loss per step<br>epoch %{{x:.2f}} (step %{{customdata[0]}}): "
                               "%{y:.4f}<br>lr %{customdata[1]:.3g}<extra></extra>")),
                row=1, col=1)
    if not fig.data:
        fig.add_annotation(text="No finished epochs yet.", showarrow=False, xref="paper", yref="paper",
                           x=0.5, y=0.5)
    elif seconds:
        for bar in _seconds_traces(runs):
            fig.add_trace(bar, row=1, col=3)
    last = max([_epoch(r, i) for c in runs.values() for i, r in enumerate(c.history)] or [1])
    every = max(1, -(-last // 10))  # whole epochs only, at most ~10 ticks, numbered from 1
    for col in (1, 2):
        fig.update_xaxes(title_text="epoch", tickmode="array", tickvals=list(range(1, last + 1, every)),
                         range=[0 if any_steps else 0.5, last + (0.25 if any_steps else 0.5)], row=1, col=col)
    if seconds:
        fig.update_xaxes(**_seconds_axis(runs), row=1, col=3)
        fig.update_yaxes(rangemode="tozero", row=1, col=3)
        fig.update_layout(barmode="group")
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(range=[0, 1.08], row=1, col=2)  # accuracy and F1 are fractions; room for the value labels
    if not several and runs:
        sizes = sizes_text(next(iter(runs.values())).sizes)
        if sizes:
            title = f"{title}<br><sup>{sizes}</sup>" if title else sizes
    shown = sum(1 for t in fig.data if t.showlegend is not False)
    legend_rows = -(-shown // (2 if several else 4)) + (len(runs) if several else 0)  # under the plot
    fig.update_layout(title=title, height=340 + 22 * legend_rows,
                      margin=dict(l=40, r=20, t=70 if title else 60, b=60 + 22 * legend_rows),
                      legend=dict(orientation="h", yanchor="top", y=-0.16 - 0.02 * legend_rows, xanchor="left",
                                  x=0, groupclick="toggleitem"))
    return fig


def _seconds_traces(runs: dict[str, RunCurves]) -> list[go.Bar]:
    """Bars of each run's setup (x = 0), training and validation seconds per epoch (x from 1)."""
    several = len(runs) > 1
    bars = []
    for i, (label, curves) in enumerate(runs.items()):
        run_colour = _COLOURS[i % len(_COLOURS)]
        prefix = f"{label} · " if several else ""
        parts = [("setup", [0], [curves.setup_seconds])] if curves.setup_seconds is not None else []
        for split, key in (("training", "seconds"), ("validation", "eval_seconds")):
            x, y, _ = _series(curves.history, key)
            parts.append((split, x, y))
        for name, x, y in parts:
            if not x:
                continue
            colour = run_colour if several else {"setup": SETUP_COLOUR, "training": SPLIT_COLOURS["train"],
                                                 "validation": SPLIT_COLOURS["val"]}[name]
            hatch = dict(shape={"setup": "x", "validation": "/"}.get(name, "") if several else "")
            # setup (x = 0) and training bars share a slot, so a group holds two bars per run, not three
            bars.append(go.Bar(x=x, y=y, name=f"{prefix}{name} s", legendgroup=label,
                               offsetgroup=f"{i}-{'training' if name == 'setup' else name}",
                               marker=dict(color=colour, pattern=hatch), text=[f"{v:.1f}" for v in y],
                               textposition="outside",
                               hovertemplate=f"{prefix}{name}<br>%{{x}}: %{{y:.2f}} s<extra></extra>"))
    return bars


def _seconds_axis(runs: dict[str, RunCurves]) -> dict:
    """x-axis settings of a seconds panel: "setup" at 0 (where a run recorded one), then the epochs."""
    last = max([_epoch(r, i) for c in runs.values() for i, r in enumerate(c.history)] or [1])
    ticks = list(range(1, last + 1, max(1, -(-last // 10))))
    setup = any(c.setup_seconds is not None for c in runs.values())
    return dict(title_text="epoch", tickmode="array", tickvals=([0] if setup else []) + ticks,
                ticktext=(["setup"] if setup else []) + [str(t) for t in ticks],
                range=[-0.5 if setup else 0.5, last + 0.5])


def seconds_figure(curves_by_label: dict[str, list[dict] | RunCurves], title: str | None = None) -> go.Figure:
    """Where each run's time went: training and validation seconds of every epoch (x from 1) and, at x = 0
    ("setup"), the one-time pass before the first epoch (the frozen-feature cache of a cached run), grouped bars.

    One run: setup grey, training blue, validation orange; several: one colour per run, setup cross-hatched and
    validation hatched. (``curves_figure(..., seconds=True)`` draws the same bars as its third panel.)
    """
    runs = {label: _as_curves(value) for label, value in curves_by_label.items()}
    fig = go.Figure(_seconds_traces(runs))
    if not fig.data:
        fig.add_annotation(text="No time recorded yet.", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_xaxes(**_seconds_axis(runs))
    fig.update_yaxes(title_text="seconds", rangemode="tozero")
    fig.update_layout(title=title, barmode="group", height=320, margin=dict(l=50, r=20, t=50 if title else 20, b=50),
                      legend=dict(orientation="h", yanchor="top", y=-0.2, xanchor="left", x=0))
    return fig
