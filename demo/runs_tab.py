"""Runs tab: every saved run; open one to see its config, curves and metrics; rename, resume, delete or download it.

Handlers are module-level functions that translate between widgets and ``core.store.runs`` / ``demo.state.jobs()``.
A user's mistake (a deleted run, a run still training, a missing confirmation) comes back as one sentence in
the status line, never as a traceback.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import gradio as gr

from core.config import MAX_NAME
from core.errors import BadSettingError, RunNotFoundError, TransferLabError
from core.presets import reference_lines
from core.store.runs import RESUMABLE as STORE_RESUMABLE
from core.store.runs import Run, delete_run, list_runs, open_run, weights_label
from demo.pickers import fmt_value, md_escape
from demo.plots import curves_figure, monitor_metric, run_curves
from demo.state import jobs, predictors

COLUMNS = ["id", "task", "model", "strategy", "status", "metric", "value", "created", "name"]
# Fixed widths in pixels (1200 in all, the table's box at 1280 px), each at least its one-line header: a narrower
# screen (a phone) scrolls the table sideways inside its own box instead of squeezing the columns until their
# headers are cut (percentages shrink with the screen). The id column wraps a long run id at its hyphens (the
# model pickers show short labels; this table is where the full id is).
COLUMN_WIDTHS = ["230px", "80px", "120px", "150px", "110px", "100px", "80px", "180px", "150px"]
RESUMABLE = STORE_RESUMABLE  # cancelled, stopped, interrupted (a restart or a crash)
ACTIVE = ("queued", "running")
# What a download holds, in this order; a file the run has not written yet is left out and named.
DOWNLOAD_FILES = ("config.json", "metrics.json", "predictions.jsonl", "history.jsonl", "weights.safetensors")
# Per-example or per-class parts of metrics.json that do not fit a one-line-per-metric table.
_BULKY_METRICS = ("confusion_matrix", "per_class", "seconds_per_epoch", "parameters", "labels")
DOWNLOAD_KEEP_SECONDS = 3600  # zips older than this, made by this process, are removed on the next download
_download_root: Path | None = None


def run_rows() -> list[list]:
    """One table row per run, newest first: id, task, model, strategy, status, metric name, value, created, name
    (the friendly one, blank when none)."""
    rows = []
    for r in list_runs():
        value = r["headline"]
        rows.append([r["id"], r["task"], r["model"], r["strategy"], r["status"], r["headline_metric"],
                     round(value, 4) if isinstance(value, (int, float)) else None, r["created"], r.get("name") or ""])
    return rows


def run_ids() -> list[str]:
    return [r["id"] for r in list_runs()]


def stored_run(run_id: str | None) -> Run:
    """A run of the run store by its id (its folder name). Paths are refused: the app's endpoints must not
    read, zip or delete folders outside the store."""
    name = str(run_id or "").strip() if isinstance(run_id, str) or run_id is None else ""
    if not name or name != Path(name).name or name in (".", ".."):
        raise RunNotFoundError(f"No run named '{str(run_id)[:80]}' in the run store.")
    return open_run(name, confined=True)  # symlinks resolved: the folder must be inside the store


def job_snapshot(job_id: str | None) -> dict | None:
    """The shared queue's snapshot of a session's job; None when there is none or the server forgot it."""
    if not job_id:
        return None
    try:
        return jobs().snapshot(job_id)
    except TransferLabError:
        return None


def run_choices() -> dict:
    """An update of the run picker's choices, read from the run store now."""
    return gr.update(choices=run_ids())


def select_run_row(evt: gr.SelectData) -> tuple:
    """A click on any cell of a table row opens that row's run: (picker value, *open_run_view)."""
    row = evt.row_value
    run_id = str(row[0]) if row else None
    return (run_id, *open_run_view(run_id))


# -- reading one run ----------------------------------------------------------------------------------------
_fmt = fmt_value


def config_summary(run) -> str:
    """Markdown: what was trained, on which weights, with how many parameters, and where it stands now."""
    cfg = run.read_config()
    train = cfg.get("train", {})
    status = run.read_status()
    params = cfg.get("parameters") or {}
    trainable, total = params.get("trainable"), params.get("total")
    share = f" ({trainable / total:.1%})" if trainable is not None and total else ""
    weights = weights_label(cfg.get("weights")) or "not recorded"
    if weights == "untrained":
        weights = "untrained (random initial weights)"
    name = train.get("name") if isinstance(train.get("name"), str) else None
    lines = [
        f"**{md_escape(name)}** — run `{run.id}`" if name else f"**{run.id}**",
        f"- status: **{status.get('status')}**" + (f" — {status['message']}" if status.get("message") else ""),
        f"- task `{train.get('task')}`, model `{train.get('model')}`, strategy `{train.get('strategy')}`"
        + (f", preset `{train['preset']}`" if train.get("preset") else ""),
        f"- weights: {weights}",
        f"- parameters: {_fmt(trainable)} trainable of {_fmt(total)}{share}",
        f"- epochs {train.get('epochs')}, learning rate {cfg.get('lr', train.get('lr'))}, "
        f"batch size {train.get('batch_size')}, optimizer {train.get('optimizer')}, "
        f"scheduler {train.get('scheduler')}",
        f"- examples: train limit {train.get('train_limit') or 'all'}, eval limit {train.get('eval_limit') or 'all'}"
        + (f", time budget {train['max_minutes']:g} min" if train.get("max_minutes") else ""),
        f"- device {cfg.get('device', '?')}, created {cfg.get('created', '?')}",
        f"- checkpoint to resume from: {'yes' if run.has_checkpoint() else 'no'}",
    ]
    return "\n".join(lines)


def metrics_markdown(metrics: dict | None) -> str:
    """The scalar test metrics as a two-column table (per-class and per-example parts are in the download)."""
    if not metrics:
        return "_No test metrics yet (the run has not finished)._"
    rows = [(k, v) for k, v in metrics.items()
            if k not in _BULKY_METRICS and (v is None or isinstance(v, (int, float, str, bool)))]
    return "\n".join(["| metric | value |", "|---|---|"] + [f"| {k} | {_fmt(v)} |" for k, v in rows])


def open_run_view(run_id: str | None) -> tuple[str, object, str, str]:
    """(config summary, curves figure, metrics table, status sentence) of the picked run."""
    empty = curves_figure({}, "accuracy")
    if not run_id:
        return "", empty, "", "Pick a run in the table or the list to open it."
    try:
        run = stored_run(run_id)
        summary = config_summary(run)
        history, cfg, measured = run.read_history(), run.read_config(), run.read_metrics()
        metric = cfg.get("headline_metric") or monitor_metric(history)
        figure = curves_figure({run.id: run_curves(run, history)}, metric, title=run.id, seconds=True)
        refs = reference_lines((cfg.get("train") or {}).get("preset"), measured, cfg.get("weights"))
        metrics = "\n\n".join([metrics_markdown(measured), *refs])  # the course's figures beside the run's
    except TransferLabError as err:
        return "", empty, "", str(err)
    except (OSError, json.JSONDecodeError):  # deleted or half-written between the checks and the reads
        return "", empty, "", f"Run {run_id} could not be read; it may have been deleted. Press Refresh."
    return summary, figure, metrics, f"Opened run {run_id}."


# -- acting on a run ----------------------------------------------------------------------------------------
def active_job_for_run(run_path: str | Path) -> dict | None:
    """The queued or running job of the shared queue that trains this run folder, if any."""
    target = Path(run_path).resolve()
    for snap in jobs().jobs():
        if snap["status"] not in ACTIVE:
            continue
        for ref in (snap.get("run_dir"), snap.get("resume")):
            if ref and Path(ref).resolve() == target:
                return snap
    return None


def submit_resume(run_id: str) -> str:
    """Queue a resume of a cancelled, stopped or interrupted run; returns the new job's id. A run without a
    checkpoint (cancelled or interrupted before its first) starts again from the beginning with its saved config.

    Raises TransferLabError (one sentence) when the run cannot be resumed.
    """
    run = stored_run(run_id)
    status = run.read_status().get("status")
    if status not in RESUMABLE:
        raise BadSettingError(f"Run {run.id} is {status}; only cancelled, stopped or interrupted runs can be "
                              "resumed.")
    if active_job_for_run(run.path) is not None:
        raise BadSettingError(f"Run {run.id} is already queued or training.")
    return jobs().submit_resume(str(run.path)).id


def resume_selected(run_id: str | None, job_id: str | None = None) -> tuple[str | None, str]:
    """(the session's job id, status sentence): the resumed job's id, or the unchanged one on a refusal.

    A session follows one job at a time, so a resume waits until the session's current job has ended.
    """
    current = job_snapshot(job_id)
    if current is not None and current["status"] in ACTIVE:
        return job_id, f"Your job {job_id} is still {current['status']}; cancel it before resuming another run."
    if not run_id:
        return job_id, "Pick a cancelled or stopped run to resume."
    try:
        new_id = submit_resume(run_id)
    except TransferLabError as err:
        return job_id, str(err)
    except OSError:
        return job_id, f"Run {run_id} could not be read; it may have been deleted. Press Refresh."
    position = jobs().position(new_id)
    ahead = f"; {position} job{'s' if position != 1 else ''} ahead of it" if position else ""
    return new_id, (f"Resuming run {run_id} as job {new_id}{ahead}. "
                    "Follow it in the Fine-tune tab; its curves continue from the checkpoint.")


def rename_selected(run_id: str | None, name: str | None) -> tuple:
    """(status, table rows, summary) after giving the picked run a new friendly name (blank: none). A run still
    queued or training is not renamed: its training process writes its config.json again."""
    if not run_id:
        return "Pick a run to rename.", gr.skip(), gr.skip()
    try:
        run = stored_run(run_id)
        if active_job_for_run(run.path) is not None:
            return (f"Run {run.id} is still queued or training; rename it once it has ended.", gr.skip(),
                    gr.skip())
        stored = run.rename(name)
        summary = config_summary(run)
    except TransferLabError as err:
        return str(err), gr.skip(), gr.skip()
    except OSError:
        return f"Run {run_id} could not be renamed; it may have been deleted. Press Refresh.", gr.skip(), gr.skip()
    said = f"Run {run.id} is now named “{md_escape(stored)}”." if stored else f"Run {run.id} has no name now."
    return said, run_rows(), summary


def delete_selected(run_id: str | None, sure: bool) -> tuple:
    """(status, table rows, picker update, confirmation reset, summary, curves, metrics) after a delete.

    Without ``sure`` nothing is deleted and the open run stays on screen (the first of the two steps).
    """
    keep = (gr.skip(), gr.skip(), gr.skip())  # a refusal leaves the open run's view as it is
    if not run_id:
        return ("Pick a run to delete.", run_rows(), run_choices(), False, *keep)
    if not sure:
        return (f"Tick “I am sure” and press Delete again to delete run {run_id}; this cannot be undone.",
                run_rows(), run_choices(), False, *keep)
    try:
        run = stored_run(run_id)
        if active_job_for_run(run.path) is not None:
            return (f"Run {run_id} is still queued or training; cancel it before deleting it.",
                    run_rows(), run_choices(), False, *keep)
        path = str(run.path)
        delete_run(run.path)
    except TransferLabError as err:
        return (str(err), run_rows(), run_choices(), False, *keep)
    except OSError as err:
        return (f"Run {run_id} could not be deleted: {err.strerror or err}.", run_rows(), run_choices(), False,
                *keep)
    predictors().forget_run(path)  # the QA, tweet and image tabs must not answer from a deleted run
    return (f"Deleted run {run_id}.", run_rows(), gr.update(choices=run_ids(), value=None), False,
            "", curves_figure({}, "accuracy"), "")


def _download_folder() -> Path:
    """A fresh folder for one zip, under this process's download root; zips older than an hour are pruned
    (Gradio keeps its own copy of what it served, so ours are only needed until the response is sent)."""
    global _download_root
    if _download_root is None or not _download_root.is_dir():
        _download_root = Path(tempfile.mkdtemp(prefix="transfer-lab-downloads-"))
    for old in _download_root.iterdir():
        try:
            stale = time.time() - old.stat().st_mtime > DOWNLOAD_KEEP_SECONDS
        except FileNotFoundError:  # another session's download pruned it first
            continue
        if stale:
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=_download_root))


def build_download(run_id: str | None) -> tuple[str | None, str]:
    """(path of a zip of the run's files in a fresh temp folder, status sentence)."""
    if not run_id:
        return None, "Pick a run to download."
    try:
        run = stored_run(run_id)
        target = _download_folder() / f"{run.id}.zip"
        missing = []
        with zipfile.ZipFile(target, "w") as zf:
            for name in DOWNLOAD_FILES:
                source = run.path / name
                if not source.is_file():
                    missing.append(name)
                    continue
                # safetensors do not shrink under deflate; storing them saves minutes on large models.
                kind = zipfile.ZIP_STORED if name.endswith(".safetensors") else zipfile.ZIP_DEFLATED
                zf.write(source, arcname=f"{run.id}/{name}", compress_type=kind)
    except TransferLabError as err:
        return None, str(err)
    except OSError:
        return None, f"Run {run_id} could not be read; it may have been deleted. Press Refresh."
    note = f" (without {', '.join(missing)}: not written yet)" if missing else ""
    return str(target), f"Zip of run {run_id} ready{note}."


# -- layout -------------------------------------------------------------------------------------------------
def build(job_state: gr.State | None = None) -> None:
    """The Runs tab, inside the caller's Blocks/Tab context.

    ``job_state``: pass the Fine-tune tab's job State so that Resume here is followed live there; without it
    this tab keeps its own.
    """
    job_state = job_state if job_state is not None else gr.State(None)
    with gr.Row():
        refresh = gr.Button("Refresh", scale=0)
        picker = gr.Dropdown(choices=run_ids(), value=None, label="Run", allow_custom_value=True, scale=4,
                             info="Or click a row of the table.")
    table = gr.Dataframe(value=run_rows, headers=COLUMNS, interactive=False, wrap=True, label="Runs",
                         column_widths=COLUMN_WIDTHS)
    status = gr.Markdown()
    with gr.Row():
        new_name = gr.Textbox("", label="New name", max_lines=1, scale=3,
                              info=f"A friendly name for the picked run (blank: none), at most {MAX_NAME} characters.")
        rename = gr.Button("Rename", scale=0)
        resume = gr.Button("Resume")
        download = gr.Button("Download (zip)")
        sure = gr.Checkbox(False, label="I am sure", scale=0)
        delete = gr.Button("Delete", variant="stop")
    zip_file = gr.File(label="Download", interactive=False)
    with gr.Row():
        summary = gr.Markdown()
        metrics = gr.Markdown()
    curves = gr.Plot(label="Curves")

    view = [summary, curves, metrics, status]
    refresh.click(run_rows, None, table, api_name="list_runs").then(run_choices, None, picker,
                                                                      api_name="run_choices")
    picker.focus(run_choices, None, picker, api_name="refresh_run_choices", show_progress="hidden")
    # .input, not .change: a delete that clears the picker must not reopen "nothing" over its own message.
    picker.input(open_run_view, picker, view, api_name="open_run")
    table.select(select_run_row, None, [picker, *view], api_name="select_run_row")
    resume.click(resume_selected, [picker, job_state], [job_state, status], api_name="resume_run")
    rename.click(rename_selected, [picker, new_name], [status, table, summary], api_name="rename_run")
    download.click(build_download, picker, [zip_file, status], api_name="download_run")
    # The zip belongs to the run it was made for: picking another run (or deleting this one) empties the box.
    picker.change(lambda: None, None, zip_file, show_progress="hidden", queue=False, api_visibility="private")
    delete.click(delete_selected, [picker, sure], [status, table, picker, sure, summary, curves, metrics],
                 api_name="delete_run")
    gr.Markdown("_Runs are folders under the run store. Resume works for cancelled, stopped or interrupted runs "
                "(from their checkpoint, or from the start when they had none yet); Delete asks for “I am sure” first._")
