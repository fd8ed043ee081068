"""Compare tab: two or more finished runs of one task side by side, and the examples where two of them differ.

Pick a task, runs A and B and, optionally, more runs (C, D, ...; finished runs only; the lists refresh on page
load, on a task change and with Refresh). Compare shows one metrics table for all of them, cost first
(core.store.compare.metrics_tables: parameters, wall time with the setup/feature-cache pass, training and
validation seconds per epoch, epochs, then the test metrics and the reference figures of their presets; the
per-class rows in a folded table of their own), all runs' curves overlaid with their per-step loss and, in a third
panel, where their time went (demo.plots.curves_figure with seconds=True), and the confusion matrices of A and B
as two plotly heatmaps: everything per example stays pairwise, between A and B. The examples behind a cell are
chosen with the run / true / predicted pickers below the heatmaps: Gradio 6's gr.Plot has only a ``change``
event and its plotly front end binds no click handler, so a click on a heatmap cell never reaches Python.
Images come back as a gallery (decoded from the run's own data folder, cached), tweets and questions as a table;
the disagreement view lists what A gets right and B wrong, or the reverse.

Every handler takes the runs' refs (folder or id) and reads them again (cached on the files' modification
times), so a run deleted while the tab is open gives one sentence, never a traceback. A task switch, Refresh or a
new pick clears every result below the pickers, so nothing of the previous task or runs stays on screen.
Endpoints, for gradio_client: /compare_list_runs, /compare_list_runs_on_load, /compare_many (A, B, more runs:
what the Compare button runs), /compare_runs (two runs, for scripts: status, the whole table, curves, both
heatmaps, the busiest error cell of A), /compare_cell, /compare_disagreements.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import gradio as gr
import pandas as pd
import plotly.graph_objects as go
from PIL import Image

from core import registry
from core.errors import BadInputError, TransferLabError
from core.store.report import split_sizes
from core.store.runs import resolve_run_ref
from core.store.compare import (COST_ROWS, WALL_TIME_NOTE, Comparison, ConfusionMatrix, RunRecord, cell_examples,
                                compare_runs, confusion, disagreements, letter, load_runs, metrics_table,
                                metrics_tables, table_headers)
from demo.explain_panel import common_method_choices, explain_ref, overlay_base
from demo.explain_views import message_html, render, value_range
from demo.pickers import INFERENCE_CONCURRENCY, fmt_value, md_escape, user_message
from demo.plots import RunCurves, curves_figure
from demo.state import model_choices

METRIC_HEADERS = table_headers(2)  # ["metric", "A", "B", "B − A"]
SECONDS_ROWS = {n for n in COST_ROWS if "(s)" in n or "seconds" in n}  # shown to 0.01 s, not 4 decimals
MAX_GALLERY = 48  # images shown per view; the note says how many there are in all
MAX_TABLE = 500  # rows shown per table
THUMBNAIL = 96  # CIFAR-10 is 32x32: shown enlarged (nearest neighbour) so it is not a blur
DISAGREEMENT_CHOICES = ("A right, B wrong", "B right, A wrong")


# -- reading runs ------------------------------------------------------------------------------------------------
def _stamp(ref: str) -> tuple | None:
    """Modification times of the files a comparison reads, or None when the run folder is not there."""
    path = Path(ref)
    if not path.is_dir():
        return None
    try:
        return tuple((path / f).stat().st_mtime_ns
                     for f in ("config.json", "status.json", "metrics.json", "predictions.jsonl"))
    except OSError:
        return None


@functools.lru_cache(maxsize=8)
def _cached_pair(ref_a: str, ref_b: str, stamp_a: tuple, stamp_b: tuple) -> Comparison:
    return compare_runs(ref_a, ref_b)


def load_pair(ref_a: str | None, ref_b: str | None) -> Comparison:
    """Both runs, compared; re-read only when their files changed. TransferLabError with one sentence else."""
    if not ref_a or not ref_b:
        raise BadInputError("Pick two runs to compare (run A and run B).")
    # Only runs of the run store: a client must not make the server read any folder it names.
    ref_a, ref_b = str(resolve_run_ref(ref_a)), str(resolve_run_ref(ref_b))
    stamp_a, stamp_b = _stamp(ref_a), _stamp(ref_b)
    if stamp_a is None or stamp_b is None:  # an id rather than a folder, or a vanished run: read without the cache
        return compare_runs(ref_a, ref_b)
    return _cached_pair(ref_a, ref_b, stamp_a, stamp_b)


def _more_refs(more) -> list[str]:
    """The "more runs" picker's value as a list of refs (an API caller may send one string)."""
    if more in (None, ""):
        return []
    if isinstance(more, str):
        return [more]
    if isinstance(more, (list, tuple)) and all(isinstance(m, str) for m in more):
        return [m for m in more if m]
    raise BadInputError("Pick the extra runs from the list of finished runs (their ids).")


@functools.lru_cache(maxsize=8)
def _cached_group(refs: tuple[str, ...], stamps: tuple) -> tuple[RunRecord, ...]:
    return load_runs(refs)


def load_group(ref_a: str | None, ref_b: str | None, more=None) -> tuple[RunRecord, ...]:
    """Runs A, B and the extra ones (a run picked twice counts once; A may equal B), read and checked together;
    re-read only when their files changed. TransferLabError with one sentence else."""
    if not ref_a or not ref_b:
        raise BadInputError("Pick two runs to compare (run A and run B).")
    refs = [str(resolve_run_ref(r)) for r in (ref_a, ref_b, *_more_refs(more))]
    refs = refs[:2] + [r for i, r in enumerate(refs[2:], start=2) if r not in refs[:i]]
    stamps = tuple(_stamp(r) for r in refs)
    if any(st is None for st in stamps):
        return load_runs(refs)
    return _cached_group(tuple(refs), stamps)


def _sentence(err: Exception) -> str:
    if isinstance(err, TransferLabError):
        return str(err)
    return "A run could not be read; it may have been deleted or still be writing. Press Refresh."


# -- figures and tables --------------------------------------------------------------------------------------------
def confusion_figure(cm: ConfusionMatrix, title: str) -> go.Figure:
    """A heatmap of counts, rows = true label (top to bottom), columns = predicted label, each cell annotated."""
    fig = go.Figure(go.Heatmap(
        z=cm.counts, x=list(cm.predicted_labels), y=list(cm.true_labels), text=cm.counts, texttemplate="%{text}",
        colorscale="Blues", showscale=False,
        hovertemplate="true %{y}<br>predicted %{x}<br>%{z} examples<extra></extra>"))
    fig.update_xaxes(title_text="predicted", type="category", tickangle=-45)
    fig.update_yaxes(title_text="true", type="category", autorange="reversed")
    fig.update_layout(title=title, height=460, margin=dict(l=60, r=20, t=60, b=60))
    return fig


MATRIX_CORNER = "true \\ predicted"


def confusion_table(cm: ConfusionMatrix):
    """The counts as a styled table for a gr.Dataframe (whose ``select`` event, unlike gr.Plot, reaches Python):
    first column the true label, then one column per predicted label, cells shaded by count, diagonal bold."""
    frame = pd.DataFrame([[t, *row] for t, row in zip(cm.true_labels, cm.counts)],
                         columns=[MATRIX_CORNER, *cm.predicted_labels])
    top = max((c for row in cm.counts for c in row), default=0) or 1

    def shade(column: pd.Series) -> list[str]:
        if column.name == MATRIX_CORNER:
            return ["font-weight:600"] * len(column)
        j = list(cm.predicted_labels).index(column.name)
        out = []
        for i, count in enumerate(column):
            alpha = 0.08 + 0.72 * float(count) / top if count else 0.0
            ink = "#ffffff" if alpha > 0.5 else "#111827"
            out.append(f"background-color: rgba(31,119,180,{alpha:.2f}); color: {ink}"
                       + ("; font-weight:700" if i == j else ""))
        return out

    return frame.style.apply(shade, axis=0)


def cell_at(cm: ConfusionMatrix, index) -> tuple[str, str] | None:
    """(true, predicted) of the confusion table's cell at ``index`` = [row, column]; None for the label column."""
    try:
        row, col = int(index[0]), int(index[1])
    except (TypeError, ValueError, IndexError):
        return None
    if col < 1 or not 0 <= row < len(cm.true_labels) or col > len(cm.predicted_labels):
        return None
    return cm.true_labels[row], cm.predicted_labels[col - 1]


_fmt = fmt_value


def _p(value) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "?"


def _table(pair: Comparison, examples: list[dict]) -> dict:
    """Rows for a gr.Dataframe: both runs' predictions per example, with the input columns and the per-model
    facts the task's rows declare (tweets: the tweet; QA: the question, and each answer's F1)."""
    row_type = pair.a.row_type
    inputs = row_type.table_columns()
    facts = sorted({k.removeprefix("a_") for e in examples[:1] for k in e
                    if k.startswith("a_") and k not in ("a_prediction", "a_confidence", "a_right", "a_index")})
    headers = (["id"] + [h for _, h in inputs] + ["true"]
               + [f"{side}{suffix}" for side in "AB" for suffix in ("", " p", *(f" {f}" for f in facts))])
    data = [[e["id"]] + [e.get(k, "") for k, _ in inputs] + [e["true"]]
            + [v for side in "ab" for v in (e[f"{side}_prediction"], _p(e[f"{side}_confidence"]),
                                             *(_p(e.get(f"{side}_{f}")) for f in facts))]
            for e in examples[:MAX_TABLE]]
    return {"headers": headers, "data": data}


def _gallery(pair: Comparison, examples: list[dict]) -> list[tuple[Image.Image, str]]:
    """(image, "true / A: pred (p) / B: pred (p)") for the first MAX_GALLERY examples of an image comparison."""
    shown = examples[:MAX_GALLERY]
    arrays = pair.a.spec.test_images([e["id"] for e in shown], pair.a.config.get("train", {}).get("data_dir"))
    items = []
    for e, array in zip(shown, arrays):
        image = Image.fromarray(array)
        small = image.width < THUMBNAIL  # enlarge pixel art as blocks, shrink photos smoothly
        image = image.resize((THUMBNAIL, THUMBNAIL), Image.NEAREST if small else Image.BILINEAR)
        caption = (f"{e['true']} / A: {e['a_prediction']} ({_p(e['a_confidence'])}) / "
                   f"B: {e['b_prediction']} ({_p(e['b_confidence'])})")
        items.append((image, caption))
    return items


def _examples_view(pair: Comparison, examples: list[dict], what: str) -> tuple[str, dict, dict]:
    """(note, gallery update, table rows) for a list of examples; the gallery shown only for images."""
    pictures = pair.a.spec.image_inputs
    limit = MAX_GALLERY if pictures else MAX_TABLE
    shown = f" (showing the first {limit})" if len(examples) > limit else ""
    note = f"{what}: {len(examples)} example{'s' if len(examples) != 1 else ''}{shown}."
    gallery = gr.update(value=None, visible=False)
    if pictures:
        try:
            gallery = gr.update(value=_gallery(pair, examples), visible=True)
        except TransferLabError as err:  # data moved or missing: the table still shows the predictions
            note += f" The images cannot be shown: {err}"
    return note, gallery, _table(pair, examples)


# The examples tables' headings before anything is listed (an image comparison's; _table sets each task's own).
EMPTY_HEADERS = ["id", "true", "A", "A p", "B", "B p"]


def _empty_examples(message: str) -> tuple[str, dict, dict]:
    return message, gr.update(value=None, visible=False), {"headers": EMPTY_HEADERS, "data": []}


# -- handlers ------------------------------------------------------------------------------------------------------
def list_runs_for_task(task: str) -> tuple[dict, dict, str]:
    """The two run pickers' choices (finished runs of ``task``, newest first; A = newest, B = the one before)."""
    choices = model_choices(task, include_registry=False)
    values = [ref for _, ref in choices]
    a = values[0] if values else None
    b = values[1] if len(values) > 1 else None
    if len(values) < 2:
        have = "no finished" if not values else "only one finished"
        status = (f"There is {have} {task} run yet: train two (Fine-tune tab or `python -m core train --task {task} "
                  "...`) and press Refresh.")
    else:
        more = " (and more under More runs)" if len(values) > 2 else ""
        status = f"{len(values)} finished {task} runs; pick two{more} and press Compare."
    return gr.update(choices=choices, value=a), gr.update(choices=choices, value=b), status


def _busiest_error_cell(cm: ConfusionMatrix) -> tuple[str, str]:
    """The off-diagonal cell with the most examples (the first cell when there are no errors). The diagonal is by
    position: for QA it pairs answerable with answered and unanswerable with abstained."""
    best, cell = 0, (cm.true_labels[0], cm.predicted_labels[0])
    for i, t in enumerate(cm.true_labels):
        for j, p in enumerate(cm.predicted_labels):
            if i != j and cm.counts[i][j] > best:
                best, cell = cm.counts[i][j], (t, p)
    return cell


def _cell(name: str, value) -> str:
    if name in SECONDS_ROWS and isinstance(value, float):
        return f"{value:.2f}"
    return _fmt(value)


def _rows(rows: list[list]) -> list[list[str]]:
    return [[name] + [_cell(name, v) for v in values] for name, *values in rows]


def _short_label(run: RunRecord, i: int) -> str:
    """"A mlp scratch": the run's letter, model and strategy (legends; the table's "run" row has the ids)."""
    return f"{letter(i)} {run.label.split(' · ')[0]}"


def _curves(runs) -> go.Figure:
    """The runs' learning curves and seconds per epoch, labelled by letter."""
    by_label = {}
    for i, r in enumerate(runs):
        setup = r.config.get("prepare_seconds")
        by_label[_short_label(r, i)] = RunCurves(history=r.history, steps=r.steps, sizes=split_sizes(r.config),
                                                 setup_seconds=setup if isinstance(setup, (int, float)) else None)
    names = " and ".join([", ".join(letter(i) for i in range(len(runs) - 1)), letter(len(runs) - 1)])
    return curves_figure(by_label, runs[0].monitor, title=f"Learning curves: {names}", seconds=True)


def _pairwise(pair: Comparison) -> tuple:
    """(heatmap A, heatmap B, true-label picker, predicted-label picker) preset on A's busiest error cell."""
    a, b = pair.a, pair.b
    cm_a, cm_b = confusion(pair, "a"), confusion(pair, "b")
    n = len(pair.ids)
    heat_a = confusion_figure(cm_a, f"A: {a.label}<br><sup>{n} shared test examples</sup>")
    heat_b = confusion_figure(cm_b, f"B: {b.label}<br><sup>{n} shared test examples</sup>")
    true_cell, pred_cell = _busiest_error_cell(cm_a)
    return (heat_a, heat_b, gr.update(choices=list(cm_a.true_labels), value=true_cell),
            gr.update(choices=list(cm_a.predicted_labels), value=pred_cell))


def _status(runs, pair: Comparison) -> str:
    named = [f"{letter(i)} ({r.id}, {r.monitor} {_fmt(r.metrics.get(r.monitor))})" for i, r in enumerate(runs)]
    listed = " and ".join([", ".join(named[:-1]), named[-1]])
    same = " A and B are the same run." if pair.a.path == pair.b.path else ""
    pairwise = " Confusion matrices, cells and disagreements below compare A and B." if len(runs) > 2 else ""
    return f"Comparing {pair.a.task} runs {listed}.{same}{pairwise} {pair.note}".strip()


def compare_many(ref_a: str | None, ref_b: str | None, more=None):
    """What the Compare button shows: (status, table of identity, cost and metrics, per-class table, curves with
    the seconds per epoch, heatmap A, heatmap B, true-label picker, predicted-label picker) for runs A, B and
    ``more``."""
    try:
        runs = load_group(ref_a, ref_b, more)
        pair = load_pair(ref_a, ref_b)
        head, per_class = metrics_tables(runs)
        curves = _curves(runs)
        heat_a, heat_b, true_pick, pred_pick = _pairwise(pair)
    except (TransferLabError, OSError, json.JSONDecodeError) as err:
        empty = gr.update(choices=[], value=None)
        return (_sentence(err), {"headers": METRIC_HEADERS, "data": []}, {"headers": METRIC_HEADERS, "data": []},
                curves_figure({}), None, None, empty, empty)
    headers = table_headers(len(runs))
    return (_status(runs, pair) + f" {WALL_TIME_NOTE}", {"headers": headers, "data": _rows(head)},
            {"headers": headers, "data": _rows(per_class)}, curves, heat_a, heat_b, true_pick, pred_pick)


def compare(ref_a: str | None, ref_b: str | None):
    """Two runs, for scripts (/compare_runs): (status, the whole metrics table, cost first and per-class rows
    last, curves, heatmap A, heatmap B, true-label picker, predicted-label picker)."""
    try:
        pair = load_pair(ref_a, ref_b)
        rows = _rows(metrics_table(pair.a, pair.b))
        curves = _curves((pair.a, pair.b))
        heat_a, heat_b, true_pick, pred_pick = _pairwise(pair)
    except (TransferLabError, OSError, json.JSONDecodeError) as err:
        empty = gr.update(choices=[], value=None)
        return (_sentence(err), {"headers": METRIC_HEADERS, "data": []}, curves_figure({}), None, None, empty, empty)
    return (_status((pair.a, pair.b), pair), {"headers": METRIC_HEADERS, "data": rows}, curves, heat_a, heat_b,
            true_pick, pred_pick)


def cleared_views(status: str) -> tuple:
    """Every result of the tab emptied (the order of ``build``'s ``results``), with ``status``: what a task
    switch, Refresh or a new pick shows, so no previous runs' table, gallery or disagreements stay on screen."""
    empty_table = {"headers": METRIC_HEADERS, "data": []}
    note, gallery, table = _empty_examples("")
    return (status, empty_table, empty_table, curves_figure({}), None, None, None, None,
            gr.update(choices=[], value=None), gr.update(choices=[], value=None),
            note, gallery, table, note, gallery, table,
            "", gr.update(choices=[], value=None), "", None, None, None, None)


def reset_for_task(task: str) -> tuple:
    """A task switch or Refresh: (the more-runs picker with the task's finished runs, none picked, then every
    result emptied). The status line is list_runs_for_task's."""
    choices = model_choices(task, include_registry=False) if task in registry.task_names() else []
    return (gr.update(choices=choices, value=[]), *cleared_views(gr.skip())[1:])


EXAMPLES_START = 10  # where the cell examples start in cleared_views (and build's results)


def examples_cleared() -> tuple:
    """Compare pressed: the previous comparison's cell examples, disagreements and explanations emptied (the
    Compare handler refreshes the rest)."""
    return cleared_views(gr.skip())[EXAMPLES_START:]


def runs_picked() -> tuple:
    """A new pick of run A, B or the extra runs: the previous comparison's results emptied."""
    return cleared_views("Press Compare to compare the runs picked.")


def show_cell(ref_a: str | None, ref_b: str | None, side: str, true_label: str | None,
              predicted_label: str | None) -> tuple[str, dict, dict]:
    """(note, gallery, table): the examples behind one confusion-matrix cell of run A or B, both predictions."""
    try:
        pair = load_pair(ref_a, ref_b)
        if not true_label or not predicted_label:
            raise BadInputError("Pick a true and a predicted label to list the examples of that cell.")
        which = (side or "A").strip().lower()
        examples = cell_examples(pair, true_label, predicted_label, which)
    except (TransferLabError, OSError, json.JSONDecodeError) as err:
        return _empty_examples(_sentence(err))
    return _examples_view(pair, examples, f"Run {which.upper()}, true {true_label}, predicted {predicted_label}")


def show_disagreements(ref_a: str | None, ref_b: str | None, which: str) -> tuple[str, dict, dict]:
    """(note, gallery, table): the shared examples A gets right and B wrong, or (``which``) the reverse."""
    try:
        pair = load_pair(ref_a, ref_b)
        if which not in DISAGREEMENT_CHOICES:
            raise BadInputError(f"Choose '{DISAGREEMENT_CHOICES[0]}' or '{DISAGREEMENT_CHOICES[1]}'.")
        d = disagreements(pair)
    except (TransferLabError, OSError, json.JSONDecodeError) as err:
        return _empty_examples(_sentence(err))
    examples = d.a_right_b_wrong if which == DISAGREEMENT_CHOICES[0] else d.b_right_a_wrong
    rule = pair.a.row_type.right_rule()
    rule = f" ({rule})" if rule else ""
    note, gallery, table = _examples_view(pair, examples, which)
    note += (f" Of {len(pair.ids)} shared examples, A alone is right on {len(d.a_right_b_wrong)}, B alone on "
             f"{len(d.b_right_a_wrong)}{rule}.")
    return note, gallery, table


def confusion_tables(ref_a: str | None, ref_b: str | None):
    """(table A, table B): both confusion matrices as clickable styled tables; empty when the runs cannot be read."""
    try:
        pair = load_pair(ref_a, ref_b)
        return confusion_table(confusion(pair, "a")), confusion_table(confusion(pair, "b"))
    except (TransferLabError, OSError, json.JSONDecodeError):
        return None, None


def select_matrix_cell(ref_a: str | None, ref_b: str | None, side: str, index):
    """A click on cell ``index`` of run ``side``'s confusion table: (side, true picker, predicted picker, and the
    cell's note, gallery and table), so the pickers (kept for scripts) say which cell is listed."""
    try:
        pair = load_pair(ref_a, ref_b)
        cm = confusion(pair, side.lower())
    except (TransferLabError, OSError, json.JSONDecodeError) as err:
        return (gr.update(), gr.update(), gr.update(), *_empty_examples(_sentence(err)))
    cell = cell_at(cm, index)
    if cell is None:
        return (gr.update(), gr.update(), gr.update(), "Click a count (not a label) to list that cell's examples.",
                gr.update(), gr.update())
    true_label, predicted_label = cell
    return (side, gr.update(choices=list(cm.true_labels), value=true_label),
            gr.update(choices=list(cm.predicted_labels), value=predicted_label),
            *show_cell(ref_a, ref_b, side, true_label, predicted_label))


def select_matrix_cell_a(ref_a: str | None, ref_b: str | None, evt: gr.SelectData):
    return select_matrix_cell(ref_a, ref_b, "A", evt.index)


def select_matrix_cell_b(ref_a: str | None, ref_b: str | None, evt: gr.SelectData):
    return select_matrix_cell(ref_a, ref_b, "B", evt.index)


def model_spec(run):
    """The ModelSpec a run was trained from (its config names the model)."""
    return registry.get(run.config.get("train", {}).get("model", ""))


def _example_key(pair: Comparison, example_id):
    """The id as the runs store it (the table may hand it back as text)."""
    keys = {str(k): k for k in pair.a.by_id}
    key = keys.get(str(example_id).strip()) if example_id not in (None, "") else None
    if key is None or key not in pair.b.by_id:
        raise BadInputError("Click an example row (or give the id of an example both runs predicted).")
    return key


def example_inputs(pair: Comparison, key) -> dict:
    """The example's inputs by name: the stored text (tweet; QA question and passage excerpt), or the test image."""
    if pair.a.spec.image_inputs:
        data_dir = pair.a.config.get("train", {}).get("data_dir")
        return {"image": pair.a.spec.test_images([key], data_dir)[0]}
    return dict(pair.a.by_id[key].inputs())


def select_example(ref_a: str | None, ref_b: str | None, method: str | None, evt: gr.SelectData):
    """A click on a row of the cell or disagreement table: (example id, method picker offering what both runs
    support, note)."""
    row = evt.row_value or []
    example_id = row[0] if row else None
    try:
        pair = load_pair(ref_a, ref_b)
        _example_key(pair, example_id)
        choices = common_method_choices(model_spec(pair.a), model_spec(pair.b))
    except (TransferLabError, OSError, json.JSONDecodeError) as err:
        return gr.update(), gr.update(), _sentence(err)
    values = [v for _, v in choices]
    note = "" if choices else (f"No explanation method applies to both {model_spec(pair.a).name} and "
                               f"{model_spec(pair.b).name}.")
    return (str(example_id), gr.update(choices=choices, value=method if method in values else
                                       (values[0] if values else None)), note)


def compare_explain(ref_a: str | None, ref_b: str | None, example_id: str | None, method: str | None,
                    progress=gr.Progress()):
    """(note, HTML A, figure A, HTML B, figure B): both runs' explanations of one example, side by side (image
    maps on one colour scale)."""
    empty = (None, None, None, None)
    try:
        pair = load_pair(ref_a, ref_b)
        key = _example_key(pair, example_id)
        offered = [m for _, m in common_method_choices(model_spec(pair.a), model_spec(pair.b))]
        if not offered:
            raise BadInputError(f"No explanation method applies to both {model_spec(pair.a).name} and "
                                  f"{model_spec(pair.b).name}.")
        if method not in offered:
            raise BadInputError(f"Pick a method both runs support: {', '.join(offered)}.")
        inputs = example_inputs(pair, key)
    except Exception as err:  # the UI boundary
        return (f"**{md_escape(user_message(err))}**", *empty)
    results = []
    for n, run in enumerate((pair.a, pair.b)):
        progress(n / 2, desc=f"Explaining with run {'AB'[n]}")
        try:
            results.append(explain_ref(str(run.path), pair.a.task, method, inputs))
        except Exception as err:
            results.append(user_message(err))
    found = [r for r in results if not isinstance(r, str)]
    zrange = value_range(found) if len(found) > 1 else None
    out = []
    for r in results:
        if isinstance(r, str):
            out += [message_html(r), None]
            continue
        base = overlay_base(inputs["image"], int(r.grid[-1])) if "image" in inputs and r.array().ndim == 2 else None
        out += list(render(r, rtl=pair.a.spec.rtl, image=base, zrange=zrange))
    progress(1.0, desc="Done")
    return (f"Example {md_escape(key)}, explained by A ({pair.a.id}) and B ({pair.b.id}).", *out)


# -- layout --------------------------------------------------------------------------------------------------------
def build() -> None:
    """The tab's components, created in the caller's Blocks context."""
    gr.Markdown("Compare two or more finished runs of one task: what they cost, their metrics and curves, and for "
                "runs A and B the confusion matrices and the examples where they differ.")
    with gr.Row():
        tasks = registry.task_names()
        task = gr.Radio(list(tasks), value=tasks[0], label="Task")
        refresh = gr.Button("Refresh", scale=0)
    with gr.Row():
        # allow_custom_value: API callers may pass a run id or a folder of the run store (resolve_run_ref refuses
        # anything else).
        run_a = gr.Dropdown(label="Run A", choices=[], allow_custom_value=True)
        run_b = gr.Dropdown(label="Run B", choices=[], allow_custom_value=True)
        go_button = gr.Button("Compare", variant="primary", scale=0)
    more = gr.Dropdown(label="More runs (C, D, …: in the table, curves and times; matrices and examples stay A "
                             "and B)", choices=[], value=[], multiselect=True, allow_custom_value=True)
    status = gr.Markdown()
    # tall enough for the identity, cost, overall-metric and reference rows without a scroll box
    metrics = gr.Dataframe(headers=METRIC_HEADERS, interactive=False, wrap=True, max_height=900,
                           label="Cost and test metrics (each run's own test set)")
    with gr.Accordion("Per-class precision, recall and F1", open=False):
        per_class = gr.Dataframe(headers=METRIC_HEADERS, interactive=False, wrap=True, label="Per class")
    curves = gr.Plot(label="Curves, and where the time went: setup (feature cache), training and validation "
                           "seconds per epoch")
    gr.Markdown("### Runs A and B, example by example")
    with gr.Row():
        heat_a = gr.Plot(label="Confusion matrix A")
        heat_b = gr.Plot(label="Confusion matrix B")
    gr.Markdown("Click a count below to list that cell's examples (rows true, columns predicted).")
    with gr.Row():
        matrix_a = gr.Dataframe(interactive=False, label="Confusion matrix A (click a cell)", wrap=True)
        matrix_b = gr.Dataframe(interactive=False, label="Confusion matrix B (click a cell)", wrap=True)

    gr.Markdown("### Examples behind a cell\nClick a cell of a confusion table above, or pick it here (the "
                "busiest error cell of A is preselected).")
    with gr.Row():
        side = gr.Radio(["A", "B"], value="A", label="Confusion matrix of run")
        true_label = gr.Dropdown(label="True", choices=[], allow_custom_value=True)
        predicted_label = gr.Dropdown(label="Predicted", choices=[], allow_custom_value=True)
        show = gr.Button("Show examples", scale=0)
    cell_note = gr.Markdown()
    # fit_columns=False: one example stays one thumbnail wide instead of filling the row
    cell_gallery = gr.Gallery(label="Examples: true / A: prediction (p) / B: prediction (p)", columns=8,
                              height=300, object_fit="contain", preview=False, fit_columns=False, format="png",
                              interactive=False, visible=False)
    cell_table = gr.Dataframe(headers=EMPTY_HEADERS, interactive=False, wrap=True, label="Examples")

    gr.Markdown("### Disagreements of A and B")
    with gr.Row():
        which = gr.Radio(list(DISAGREEMENT_CHOICES), value=DISAGREEMENT_CHOICES[0], label="Show")
        show_dis = gr.Button("Show disagreements", scale=0)
    dis_note = gr.Markdown()
    dis_gallery = gr.Gallery(label="true / A: prediction (p) / B: prediction (p)", columns=8, height=300,
                             object_fit="contain", preview=False, fit_columns=False, format="png",
                             interactive=False, visible=False)
    dis_table = gr.Dataframe(headers=EMPTY_HEADERS, interactive=False, wrap=True, label="Disagreements")

    gr.Markdown("### Why? Both runs' explanations of one example\nClick a row of the examples or disagreements "
                "table.")
    with gr.Row():
        example_id = gr.Textbox(label="Example id", interactive=True, max_lines=1)
        method = gr.Dropdown(label="Explain with (methods both runs support)", choices=[], value=None)
        explain_button = gr.Button("Explain", scale=0)
    explain_note = gr.Markdown()
    with gr.Row():
        with gr.Column():
            view_a = gr.HTML(label="Run A: explanation")
            plot_a = gr.Plot(label="Run A: explanation plot", show_label=False)
        with gr.Column():
            view_b = gr.HTML(label="Run B: explanation")
            plot_b = gr.Plot(label="Run B: explanation plot", show_label=False)
    # /compare_runs for scripts that compare two runs (its outputs as before this tab took more): a trigger the
    # page never shows.
    two_runs = gr.Button("Compare two runs", visible=False)

    # Every result, in cleared_views' order: emptied on a task switch, Refresh or a new pick.
    results = [status, metrics, per_class, curves, heat_a, heat_b, matrix_a, matrix_b, true_label,
               predicted_label, cell_note, cell_gallery, cell_table, dis_note, dis_gallery, dis_table, example_id,
               method, explain_note, view_a, view_b, plot_a, plot_b]
    pickers = [run_a, run_b, status]
    gr.on(triggers=None, fn=list_runs_for_task, inputs=task, outputs=pickers,  # page load and task changes
          api_name="compare_list_runs_on_load")
    gr.on(triggers=None, fn=reset_for_task, inputs=task, outputs=[more, *results[1:]],
          api_name="compare_reset_on_load")
    refresh.click(list_runs_for_task, task, pickers, api_name="compare_list_runs")
    refresh.click(reset_for_task, task, [more, *results[1:]], api_name="compare_reset")
    gr.on([run_a.input, run_b.input, more.input], runs_picked, None, results, api_name="compare_picked")
    go_button.click(compare_many, [run_a, run_b, more],
                    [status, metrics, per_class, curves, heat_a, heat_b, true_label, predicted_label],
                    api_name="compare_many", concurrency_limit=INFERENCE_CONCURRENCY
                    ).then(confusion_tables, [run_a, run_b], [matrix_a, matrix_b], api_name="compare_matrices")
    go_button.click(examples_cleared, None, results[EXAMPLES_START:], api_visibility="private")  # the previous pair's examples
    two_runs.click(compare, [run_a, run_b],
                   [status, metrics, curves, heat_a, heat_b, true_label, predicted_label], api_name="compare_runs",
                   concurrency_limit=INFERENCE_CONCURRENCY)
    cell_outputs = [side, true_label, predicted_label, cell_note, cell_gallery, cell_table]
    matrix_a.select(select_matrix_cell_a, [run_a, run_b], cell_outputs, api_name="compare_matrix_select",
                    concurrency_limit=INFERENCE_CONCURRENCY)
    matrix_b.select(select_matrix_cell_b, [run_a, run_b], cell_outputs, api_name="compare_matrix_select_b",
                    concurrency_limit=INFERENCE_CONCURRENCY)
    explain_outputs = [explain_note, view_a, plot_a, view_b, plot_b]
    for table, name in ((cell_table, "compare_example_select"), (dis_table, "compare_disagreement_select")):
        table.select(select_example, [run_a, run_b, method], [example_id, method, explain_note], api_name=name
                     ).then(compare_explain, [run_a, run_b, example_id, method], explain_outputs,
                            api_name=f"{name}_explain", concurrency_limit=INFERENCE_CONCURRENCY)
    gr.on([explain_button.click, method.input], compare_explain, [run_a, run_b, example_id, method], explain_outputs,
          api_name="compare_explain", concurrency_limit=INFERENCE_CONCURRENCY)
    gr.on(triggers=[show.click, side.input, true_label.input, predicted_label.input], fn=show_cell,
          inputs=[run_a, run_b, side, true_label, predicted_label], outputs=[cell_note, cell_gallery, cell_table],
          api_name="compare_cell", concurrency_limit=INFERENCE_CONCURRENCY)
    gr.on(triggers=[show_dis.click, which.input], fn=show_disagreements, inputs=[run_a, run_b, which],
          outputs=[dis_note, dis_gallery, dis_table], api_name="compare_disagreements",
          concurrency_limit=INFERENCE_CONCURRENCY)
