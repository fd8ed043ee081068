"""Data tab: the statistics the course reports open with, per split of the picked task's data set.

Each task's ``data.py::statistics()`` computes them (``python -m core data TASK`` prints the same); this tab lays
them out as one table (a row per statistic, a column per split) and plotly figures read from the shape of the
statistics, never from the task's name: a dict of counts is the class balance (bars), a length summary with
percentiles becomes a box per split, one with only min/mean/max a mean with its range. Reading a full data set
takes seconds, so the result is cached per (task, data folder) for the life of the process; nothing is read
before the tab is used.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core import registry
from core.errors import DataNotFoundError, TransferLabError
from core.paths import data_dir as resolve_data_dir

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")  # one per split, the same in every figure
_NAMES = {"n": "examples"}  # the few statistic keys whose own name does not read as a row label
_LENGTH_KEYS = ("min", "max", "mean")  # a dict with these is a length summary

_cache: dict[tuple[str, str], dict[str, dict]] = {}
_cache_lock = threading.Lock()  # two sessions asking for the same task read it once


@dataclass
class DataView:
    """What the tab shows for one task: a status sentence, the table and the figures (None: nothing to draw)."""

    message: str
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    counts: go.Figure | None = None
    lengths: go.Figure | None = None


def task_choices() -> list[tuple[str, str]]:
    """(title, name) of every registered task, in the tasks' order."""
    return [(t.title, t.name) for t in registry.list_tasks()]


def split_statistics(task: str, data_dir=None, progress=None) -> dict[str, dict]:
    """``{split: statistics}`` of every split of ``task``'s data set, read once per (task, data folder).

    A missing folder or split raises the loader's TransferLabError (one sentence); nothing is cached then.
    ``progress`` (a gr.Progress) hears about each split before it is read.
    """
    spec = registry.get_task(task)
    root = resolve_data_dir(data_dir)
    key = (spec.name, str(root))
    with _cache_lock:
        if key not in _cache:
            if not root.is_dir():
                _raise_missing(root)
            splits = spec.splits()
            out = {}
            for i, split in enumerate(splits):
                if progress is not None:
                    progress((i, len(splits)), desc=f"Reading the {split} split of {spec.title}")
                out[split] = spec.statistics(split, data_dir=root)
            _cache[key] = out
        return _cache[key]


def _raise_missing(root: Path) -> None:
    raise DataNotFoundError(f"The data folder {root} does not exist; set TRANSFER_LAB_DATA to the folder that "
                            f"holds the data sets.")


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


# ---------------------------------------------------------------------------------------------------------------
# Reading the statistics by their shape
# ---------------------------------------------------------------------------------------------------------------
def _label(key: str) -> str:
    return _NAMES.get(key, key.replace("_", " "))


def _is_histogram(value) -> bool:
    return isinstance(value, dict) and "edges" in value and "counts" in value


def _is_length_summary(value) -> bool:
    return isinstance(value, dict) and all(k in value for k in _LENGTH_KEYS)


def _is_counts(value) -> bool:
    """A dict of whole numbers by name (examples per class)."""
    return (isinstance(value, dict) and bool(value) and not _is_length_summary(value)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value.values()))


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.2f}"
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
        return " × ".join(_fmt(v) for v in value)  # a shape, e.g. an image size 32 × 32
    return str(value)


def _flatten(stats: dict, prefix: str = "") -> dict[str, str]:
    """Row label -> formatted value; nested dicts become "words · mean", percentiles "words · p50"; histograms
    are left out (a row per bin would bury the table)."""
    out: dict[str, str] = {}
    for key, value in stats.items():
        name = _label(str(key))
        if _is_histogram(value):
            continue
        if key == "percentiles" and isinstance(value, dict):
            out.update({f"{prefix}p{p}": _fmt(v) for p, v in value.items()})
        elif isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{name} · "))
        else:
            out[f"{prefix}{name}"] = _fmt(value)
    return out


def statistics_table(by_split: dict[str, dict]) -> tuple[list[str], list[list[str]]]:
    """(headers, rows): one row per statistic in first-seen order, one column per split."""
    flat = {split: _flatten(stats) for split, stats in by_split.items()}
    labels = list(dict.fromkeys(label for f in flat.values() for label in f))
    return ["statistic", *by_split], [[label, *(flat[s].get(label, "-") for s in by_split)] for label in labels]


def counts_figure(by_split: dict[str, dict]) -> go.Figure | None:
    """Bars per split: of the first dict of counts the statistics carry (the class balance), else of their
    top-level whole numbers (e.g. questions, answerable, unanswerable); hover shows each bar's share of its split."""
    first = next(iter(by_split.values()))
    key = next((k for k, v in first.items() if _is_counts(v)), None)
    fig = go.Figure()
    for i, (split, stats) in enumerate(by_split.items()):
        if key is not None:
            counts = stats.get(key) or {}
        else:
            counts = {_label(k): v for k, v in stats.items() if isinstance(v, int) and not isinstance(v, bool)}
        if not counts:
            continue
        total = sum(counts.values()) if key is not None else None
        share = [f"{100 * v / total:.1f}% of {split}" if total else "" for v in counts.values()]
        fig.add_bar(x=list(counts), y=list(counts.values()), name=split, marker_color=_COLOURS[i % len(_COLOURS)],
                    customdata=share, hovertemplate="%{x}: %{y:,} %{customdata}<extra>" + split + "</extra>")
    if not fig.data:
        return None
    title = f"{_label(key).capitalize()} per split" if key is not None else "Counts per split"
    fig.update_layout(title=title, barmode="group", height=380, yaxis_title="count", yaxis_rangemode="tozero",
                      margin=dict(l=50, r=20, t=60, b=60), legend_title_text="split")
    return fig


def _whiskers(summary: dict) -> tuple[float, float, str]:
    """(low, high, what they are): the 5th and 95th percentiles when given, else the min and max."""
    pct = summary.get("percentiles") or {}
    if "5" in pct and "95" in pct:
        return pct["5"], pct["95"], "5th and 95th percentiles"
    return summary["min"], summary["max"], "min and max"


def lengths_figure(by_split: dict[str, dict]) -> go.Figure | None:
    """One panel per length summary the statistics carry (tweet words; passage, question and answer words), one
    trace per split. With quartiles: a box (25th-75th percentile, line at the median, dashed mean). With only
    min/mean/max: the mean with a bar over the whole range, said so in the title rather than drawn as a box.

    The tweet statistics' histogram is not drawn: its 20 equal bins span min to max, and a handful of 1,400-word
    tweets put 99.8% of the train split into the first bin; the percentiles show the distribution instead."""
    first = next(iter(by_split.values()))
    keys = [k for k, v in first.items() if _is_length_summary(v)]
    if not keys:
        return None
    fig = make_subplots(rows=1, cols=len(keys), subplot_titles=[_label(k) for k in keys])
    described = set()
    for col, key in enumerate(keys, start=1):
        for i, (split, stats) in enumerate(by_split.items()):
            s = stats.get(key)
            if not _is_length_summary(s) or s["mean"] is None:
                continue  # e.g. a split without answers has no answer lengths
            colour = _COLOURS[i % len(_COLOURS)]
            pct = s.get("percentiles") or {}
            if all(p in pct for p in ("25", "50", "75")):
                low, high, what = _whiskers(s)
                described.add(f"boxes from the 25th to the 75th percentile, whiskers at the {what}")
                fig.add_trace(go.Box(x=[split], q1=[pct["25"]], median=[pct["50"]], q3=[pct["75"]],
                                     lowerfence=[low], upperfence=[high], mean=[s["mean"]], name=split,
                                     marker_color=colour, legendgroup=split, showlegend=col == 1),
                              row=1, col=col)
            else:
                described.add("the mean, with a bar from the min to the max (no percentiles are computed)")
                fig.add_trace(go.Scatter(x=[split], y=[s["mean"]], mode="markers", name=split,
                                         marker=dict(color=colour, size=10), legendgroup=split, showlegend=col == 1,
                                         error_y=dict(type="data", symmetric=False, array=[s["max"] - s["mean"]],
                                                      arrayminus=[s["mean"] - s["min"]]),
                                         customdata=[[s["min"], s["max"]]],
                                         hovertemplate="mean %{y:.1f}, min %{customdata[0]}, max %{customdata[1]}"
                                                       "<extra>" + split + "</extra>"),
                              row=1, col=col)
    if not fig.data:
        return None
    unit = "words" if all("words" in k for k in keys) else "length"
    fig.update_yaxes(title_text=unit, rangemode="tozero", col=1)
    fig.update_yaxes(rangemode="tozero")
    fig.update_layout(title="Lengths per split: " + "; ".join(sorted(described)), height=400,
                      margin=dict(l=50, r=20, t=80, b=40), legend_title_text="split", title_font_size=14)
    return fig


# ---------------------------------------------------------------------------------------------------------------
# Handlers
# ---------------------------------------------------------------------------------------------------------------
def _summary(title: str, by_split: dict[str, dict], root: Path) -> str:
    sizes = []
    for split, stats in by_split.items():
        n = next((v for v in stats.values() if isinstance(v, int) and not isinstance(v, bool)), None)
        sizes.append(f"{split} {n:,}" if n is not None else split)
    return f"**{title}**: {', '.join(sizes)} (from `{root}`; the same as `python -m core data`)."


def data_view(task: str | None, data_dir=None, progress=None) -> DataView:
    """Everything the tab shows for ``task``; a user error (no task, a missing folder) is the one sentence of a
    DataView without a table or figures."""
    if not task:
        return DataView("Pick a task to see its data set.")
    try:
        spec = registry.get_task(task)
        by_split = split_statistics(task, data_dir, progress)
    except TransferLabError as err:
        return DataView(str(err))
    headers, rows = statistics_table(by_split)
    return DataView(_summary(spec.title, by_split, resolve_data_dir(data_dir)), headers, rows,
                    counts_figure(by_split), lengths_figure(by_split))


def data_stats(task: str | None, progress=gr.Progress()):
    """The tab's handler (api_name ``/data_stats``): status, table, counts plot, lengths plot."""
    view = data_view(task, progress=progress)
    table = gr.update(value=pd.DataFrame(view.rows, columns=view.headers) if view.rows else None,
                      visible=bool(view.rows))
    return (view.message, table,
            gr.update(value=view.counts, visible=view.counts is not None),
            gr.update(value=view.lengths, visible=view.lengths is not None))


def build(tab: gr.Tab | None = None) -> None:
    """The Data tab's widgets, inside an open ``gr.Tab``; pass that tab so that opening it fills the view."""
    choices = task_choices()
    gr.Markdown("The statistics each course report opens with, per split of the task's data set: counts, "
                "class balance and lengths. Reading a whole data set takes a few seconds the first time.")
    with gr.Row():
        task = gr.Radio(choices, value=choices[0][1] if choices else None, label="Task", scale=3)
        show = gr.Button("Show statistics", variant="primary", scale=1)
    status = gr.Markdown()
    table = gr.Dataframe(headers=["statistic"], interactive=False, wrap=True, label="Statistics per split",
                         visible=False)
    counts = gr.Plot(label="Counts", visible=False)
    lengths = gr.Plot(label="Lengths", visible=False)
    outputs = [status, table, counts, lengths]
    task.change(data_stats, task, outputs, api_name="data_stats")
    show.click(data_stats, task, outputs, api_name="data_stats_show")
    if tab is not None:
        tab.select(data_stats, task, outputs, api_name="data_stats_open")
