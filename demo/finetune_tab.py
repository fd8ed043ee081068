"""Fine-tune tab: pick a task, model, strategy and settings; train on the shared queue and watch it live.

Start only submits a TrainConfig to ``demo.state.jobs()`` and keeps the job id in the browser (gr.BrowserState); a
``gr.Timer`` then polls ``jobs().snapshot(job_id)`` about once a second, so no event is held open while a model
trains and every browser session sees its own job's place in the one queue. Handlers are module-level
functions that translate between widgets and core/; a user's mistake comes back as one sentence.

The browser also remembers which run its job trains (the run memory, ``{"job": id, "run": run id}``), written by
the poll once the run's folder exists. A job that was still waiting when the server stopped (no run folder yet)
is queued again under the same id at the next start (``JobQueue.restore_queued``), so the browser simply goes on
polling it. A job that had a run is not: after a restart its id is unknown and the poll looks for the run instead:
a job of this server working on it (``resume_interrupted`` resubmits interrupted runs as new jobs) is followed, else
the run's stored status is said in one sentence and Resume continues that run.
"""
from __future__ import annotations

import functools
import hashlib
import math
from pathlib import Path

import gradio as gr

from core import estimate, registry
from core.config import MAX_NAME, TrainConfig
from core.errors import BadSettingError, TransferLabError
from core.presets import compose_settings, get_preset, presets_by_report, reference_lines
from core.starter import unavailable_reason
from core.store.runs import Run, list_runs
from demo.pickers import md_escape
from demo.models_tab import weights_status
from demo.plots import curves_figure, monitor_metric, run_curves
from demo.runs_tab import ACTIVE, RESUMABLE, job_snapshot, stored_run, submit_resume
from demo.state import jobs, run_title

NO_PRESET = "(none)"
POLL_SECONDS = 1.0
# What the progress line calls each engine phase (core.engine.fit.Progress.phase).
PHASES = {"cache": "caching frozen features", "train": "training", "eval:val": "validating",
          "eval:test": "testing", "done": "done"}
# The settings form's fields that a preset may fill in (the rest of a preset applies when the run starts).
FORM_FIELDS = ("task", "model", "strategy", "epochs", "lr", "batch_size")


# -- choices --------------------------------------------------------------------------------------------------
def model_options(task: str) -> list[tuple[str, str]]:
    """(label, name) of the task's registry models this machine can run (core.starter.unavailable_reason: e.g. a
    Hub-only vocabulary offline); the label says whether weights here are real."""
    return [(f"{s.name} — {weights_status(s)}", s.name) for s in registry.list_models(task)
            if unavailable_reason(s.name) is None]


def strategy_options(model: str | None) -> list[str]:
    if not model:
        return []
    try:
        return list(registry.get(model).strategies)
    except TransferLabError:
        return []


def preset_options(task: str | None) -> list[tuple[str, str]]:
    """(label, name) of the task's presets, grouped by the report they come from (R0 .. R4, the papers, this
    project); the label names the report and the key settings, the value stays the preset's name."""
    return [(NO_PRESET, NO_PRESET), *((p.label(), p.name) for group in presets_by_report().values()
                                      for p in group if task is None or p.settings.get("task") == task)]


def _default_strategy(model: str, current: str | None) -> str | None:
    """Keep the current strategy when the model supports it, else the model's recommended one, else
    TrainConfig's default, else the first."""
    options = strategy_options(model)
    try:
        recommended = registry.get(model).recommended.get("strategy")
    except TransferLabError:
        recommended = None
    for choice in (current, recommended, TrainConfig.strategy):
        if choice in options:
            return choice
    return options[0] if options else None


@functools.lru_cache(maxsize=256)
def _counts(model: str, strategy: str) -> tuple[int, int]:
    """(trainable, total) from a meta-device build; cached because the app asks again on every change."""
    counts = registry.parameter_counts(model, strategy)
    return counts["trainable"], counts["total"]


def _counts_line(trainable: int, total: int) -> str:
    share = f" ({trainable / total:.1%})" if total else ""
    return f"**Trainable parameters:** {trainable:,} of {total:,}{share}"


def parameter_text(model: str | None, strategy: str | None) -> str:
    """Markdown: how many parameters the model would train under the strategy, before anything is built."""
    if not model or not strategy:
        return "Pick a model and a strategy to see how many parameters they train."
    try:
        return _counts_line(*_counts(model, strategy))
    except TransferLabError as err:
        return str(err)


def _first_model(models: list[tuple[str, str]]) -> str | None:
    """The first model with real weights here (Hub or package), so the default pick trains something useful."""
    usable = [name for label, name in models if not label.endswith("untrained")]
    return (usable or [name for _, name in models] or [None])[0]


def on_task(task: str) -> tuple[dict, dict, dict, str]:
    """A new task: its models (the first one with real weights picked), that model's strategies, the task's
    presets and the parameter count."""
    models = model_options(task)
    model = _first_model(models)
    strategy = _default_strategy(model, None) if model else None
    return (gr.update(choices=models, value=model), gr.update(choices=strategy_options(model), value=strategy),
            gr.update(choices=preset_options(task), value=NO_PRESET), parameter_text(model, strategy))


def on_model(model: str | None, strategy: str | None) -> tuple[dict, str]:
    """A new model: only the strategies its spec supports (keeping the current one if it can)."""
    strategy = _default_strategy(model, strategy) if model else None
    return gr.update(choices=strategy_options(model), value=strategy), parameter_text(model, strategy)


def apply_preset(preset: str | None) -> tuple:
    """Fill the form from a preset: (task, model, strategy, epochs, lr text, batch size, parameter text).

    Settings the form does not show (optimizer, scheduler, weight decay, sequence length) come from the preset
    when the run starts.
    """
    if not preset or preset == NO_PRESET:
        return (gr.skip(),) * 7
    try:
        values = get_preset(preset)
        spec = registry.get(values["model"])
    except TransferLabError as err:
        return (*(gr.skip(),) * 6, str(err))
    strategy = values.get("strategy", _default_strategy(spec.name, None))
    return (values.get("task", spec.task),
            gr.update(choices=model_options(spec.task), value=spec.name),
            gr.update(choices=list(spec.strategies), value=strategy),
            values.get("epochs", TrainConfig.epochs),
            "" if values.get("lr") is None else f"{values['lr']:g}",
            values.get("batch_size", TrainConfig.batch_size),
            parameter_text(spec.name, strategy))


# -- reading the form -----------------------------------------------------------------------------------------
def _number(value, what: str) -> float | None:
    """A form value as a float; blank is None; text that is not a number is one sentence."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadSettingError(f"The {what} must be a number; got '{value}'.") from None
    return number


def _whole(value, what: str, required: bool, zero_is_none: bool = False) -> int | None:
    number = _number(value, what)
    if zero_is_none and number == 0:  # a gr.Number cannot show a blank: 0 means "no limit"
        number = None
    if number is None:
        if required:
            raise BadSettingError(f"Fill in the {what}.")
        return None
    if not math.isfinite(number) or number != int(number) or number < 1:
        if zero_is_none:
            raise BadSettingError(f"The {what} must be a whole number of examples, or 0 for all of them; got "
                                  f"{value}.")
        raise BadSettingError(f"The {what} must be a whole number of at least 1; got {value}.")
    return int(number)


def config_from_form(task, model, strategy, epochs, lr, batch_size, train_limit=None, eval_limit=None,
                     minutes=None, preset=None, name=None) -> TrainConfig:
    """A validated TrainConfig from the form's values (raises TransferLabError with one sentence).

    The model's recommended settings come first, then the preset's, then the form's fields (blank ones left out),
    as with ``python -m core train`` (core.presets.compose_settings).
    """
    if not task:
        raise BadSettingError("Pick a task.")
    if not model:
        raise BadSettingError("Pick a model.")
    if not strategy:
        raise BadSettingError("Pick a strategy.")
    registry.check(task, model, strategy)  # one sentence when they do not fit together
    given = dict(task=task, model=model, strategy=strategy,
                 epochs=_whole(epochs, "number of epochs", required=True),
                 lr=_number(lr, "learning rate"),  # blank: the model's default; NaN or <= 0: validate() says so
                 batch_size=_whole(batch_size, "batch size", required=True),
                 train_limit=_whole(train_limit, "train limit", required=False, zero_is_none=True),
                 eval_limit=_whole(eval_limit, "eval limit", required=False, zero_is_none=True),
                 max_minutes=_number(minutes, "time budget in minutes") or None)  # 0: no budget
    values = compose_settings(model, preset if preset and preset != NO_PRESET else None, given)
    if name is not None:  # blank is no name; TrainConfig.validate checks and strips it
        values["name"] = name
    return TrainConfig(**values).validate()


# -- the job ----------------------------------------------------------------------------------------------------
def _ahead(position: int) -> str:
    return f"{position} job{'s' if position != 1 else ''} ahead of yours"


def estimate_text(task, model, strategy, epochs, lr, batch_size, train_limit=None, eval_limit=None,
                  minutes=None, preset=None) -> str:
    """Markdown: how long the form's run takes on this machine (a measured probe, cached per model, strategy and
    batch), or the sentence saying what is wrong with the settings."""
    try:
        cfg = config_from_form(task, model, strategy, epochs, lr, batch_size, train_limit, eval_limit, minutes,
                               preset)
        return f"**Estimated time here:** {estimate.estimate_run(cfg).text()}."
    except TransferLabError as err:
        return f"**Estimated time here:** none yet. {err}"


def _confirmation(cfg: TrainConfig) -> str | None:
    try:
        est = estimate.estimate_run(cfg)
    except TransferLabError:
        est = None  # no data to size the run by: the run itself will say so
    return estimate.confirmation_reason(cfg, est)


def request_start(job_id, task, model, strategy, epochs, lr, batch_size, train_limit=None, eval_limit=None,
                  minutes=None, preset=None, name=None) -> tuple:
    """The Start button's first step: whether the run may start without asking (status, Start-anyway button,
    confirmed). A run long here or of an untrained model is not started: the status says why and "Start anyway"
    appears; otherwise the status is left to :func:`start_training`, which runs next with ``confirmed``."""
    current = job_snapshot(job_id)
    if current is None or current["status"] not in ACTIVE:  # an active job: start_training refuses in one sentence
        try:
            cfg = config_from_form(task, model, strategy, epochs, lr, batch_size, train_limit, eval_limit, minutes,
                                   preset, name)
        except TransferLabError:
            cfg = None  # start_training says what is wrong
        reason = _confirmation(cfg) if cfg is not None else None
        if reason:
            return reason, gr.update(visible=True), False
    return gr.skip(), gr.update(visible=False), True


def start_training(job_id, task, model, strategy, epochs, lr, batch_size, train_limit=None, eval_limit=None,
                   minutes=None, preset=None, confirmed: bool = True, name=None) -> tuple:
    """Submit the form as a new job: (the session's job id, status sentence).

    ``confirmed`` False (the Start button found the run needs confirming, :func:`request_start`) changes nothing.
    Scripts (``/start_training``: ``confirmed`` is a session State, True unless the page's Start button set it) and
    the "Start anyway" button are never asked. A session runs one job at a time; on any mistake the session keeps
    its previous job id. ``name``: the run's friendly name (blank: none).
    """
    if confirmed is False:
        return gr.skip(), gr.skip()
    current = job_snapshot(job_id)
    if current is not None and current["status"] in ACTIVE:
        return job_id, (f"Your job {job_id} is still {current['status']}; cancel it or let it finish before "
                        "starting another.")
    try:
        cfg = config_from_form(task, model, strategy, epochs, lr, batch_size, train_limit, eval_limit, minutes,
                               preset, name)
        job = jobs().submit(cfg)
    except TransferLabError as err:
        return job_id, str(err)
    position = jobs().position(job.id)
    where = f"queued, {_ahead(position)}" if position else "starting"
    called = f" “{md_escape(cfg.name)}”" if cfg.name else ""
    return job.id, f"Job {job.id}{called} submitted ({cfg.model}, {cfg.strategy}): {where}."


def start_anyway(job_id, task, model, strategy, epochs, lr, batch_size, train_limit=None, eval_limit=None,
                 minutes=None, preset=None, name=None) -> tuple:
    """The "Start anyway" button: :func:`start_training`, confirmed."""
    return start_training(job_id, task, model, strategy, epochs, lr, batch_size, train_limit, eval_limit, minutes,
                          preset, True, name)


def job_config(snap: dict) -> dict | None:
    """The job's TrainConfig fields: its own, or (a resume) the run's saved ones."""
    if snap.get("config"):
        return snap["config"]
    if snap.get("run_dir") or snap.get("resume"):
        try:
            return stored_run(Path(snap["run_dir"] or snap["resume"]).name).train_config().to_json()
        except (TransferLabError, OSError, ValueError):
            return None
    return None


def job_title(snap: dict) -> str:
    """'Job 3fa2 — images · efficientnet_lite0 · feature_extraction · run 20261202-…': which run this is (a named
    run: 'run “my first run” (20261202-…)'; before its folder exists, only its name)."""
    cfg = job_config(snap) or {}
    parts = [cfg[k] for k in ("task", "model", "strategy") if cfg.get(k)]
    name = cfg.get("name") if isinstance(cfg.get("name"), str) else None
    folder = snap.get("run_dir") or snap.get("resume")
    if folder:
        parts.append(f"run {run_title(Path(folder).name, name, md_escape)}")
    elif name:
        parts.append(f"“{md_escape(name)}”")
    return f"Job {snap['id']}" + (f" — {' · '.join(parts)}" if parts else "")


def status_text(snap: dict) -> str:
    """One sentence on where the job stands, naming it (task, model, strategy, run): its queue position, its
    epoch, or how it ended and why."""
    title, status, message = job_title(snap), snap["status"], snap.get("message") or ""
    if status == "queued":
        return f"{title}: queued, {_ahead(snap['position'])}." if snap["position"] else f"{title}: next in the queue."
    if status == "running":
        if snap.get("cancelling"):
            return f"{title}: {message}"
        progress = snap.get("progress") or {}
        if progress.get("epochs"):
            epoch = min(progress.get("epoch", 0) + 1, progress["epochs"])
            return f"{title}: epoch {epoch}/{progress['epochs']}, {PHASES.get(progress.get('phase'), 'running')}."
        return f"{title}: starting."
    if status == "completed":
        return f"{title}: completed. {message}".strip()
    if status in RESUMABLE:
        again = " Press Resume to continue from its checkpoint." if snap.get("run_dir") else ""
        ended = {"cancelled": "was cancelled", "interrupted": "was interrupted"}.get(status, "stopped")
        return f"{title}: {ended}. {message}{again}".strip()
    return f"{title}: failed. {message}".strip()


def _secs(seconds: float) -> str:
    """Seconds with one decimal, or three significant digits below 1 s (a cached epoch takes 0.06 s, not 0.0)."""
    return f"{seconds:.1f}" if seconds >= 1 else f"{seconds:.3g}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def progress_text(progress: dict | None) -> str:
    """Epoch, step/steps, phase and ETA from the engine's latest Progress (as a dict)."""
    if not progress:
        return ""
    phase = progress.get("phase", "")
    name = PHASES.get(phase, phase)
    if phase == "done":
        return f"Done after {_duration(progress.get('elapsed'))}."
    # The final test pass runs after the last epoch, where the engine's epoch counter already equals epochs.
    epoch = min(progress["epoch"] + 1, progress["epochs"])
    parts = [f"epoch {epoch}/{progress['epochs']}", f"{name} {progress['step']}/{progress['steps']}"]
    if phase == "train" and progress.get("loss") is not None:
        parts.append(f"loss {progress['loss']:.4f}")
    if progress.get("eta") is not None:
        parts.append(f"ETA {_duration(progress['eta'])}")
    parts.append(f"elapsed {_duration(progress.get('elapsed'))}")
    return " · ".join(parts)


def _parameters_of(snap: dict) -> tuple[int, int] | None:
    """The job's (trainable, total): the run's config.json once written, else a meta-device count."""
    if snap.get("run_dir"):
        try:
            params = stored_run(Path(snap["run_dir"]).name).read_config().get("parameters") or {}
            if "trainable" in params:
                return params["trainable"], params["total"]
        except (TransferLabError, OSError, ValueError):
            pass  # not written yet, or being rewritten: fall back to the count below
    cfg = snap.get("config")
    if cfg:
        try:
            return _counts(cfg["model"], cfg["strategy"])
        except TransferLabError:
            return None
    return None


def stats_text(snap: dict) -> str:
    """Seconds per finished epoch and the trainable parameters of the job's model."""
    seconds = [row["seconds"] for row in snap["history"] if row.get("seconds") is not None]
    lines = []
    if seconds:
        listed = ", ".join(_secs(s) for s in seconds[-10:])
        more = "…, " if len(seconds) > 10 else ""
        lines.append(f"**Seconds per epoch:** {more}{listed} (mean {_secs(sum(seconds) / len(seconds))})")
    counts = _parameters_of(snap)
    if counts:
        lines.append(_counts_line(*counts))
    if snap.get("status") == "completed" and snap.get("run_dir"):  # the course's figures beside the run's own
        try:
            run = stored_run(Path(snap["run_dir"]).name)
            cfg = run.read_config()
            lines += reference_lines((cfg.get("train") or {}).get("preset"), run.read_metrics(), cfg.get("weights"))
        except (TransferLabError, OSError, ValueError):
            pass  # deleted meanwhile: the status line says what happened
    return "  \n".join(lines)


def _job_label(snap: dict) -> str:
    cfg = snap.get("config")
    if cfg:
        return f"{cfg['model']} {cfg['strategy']}"
    return Path(snap["run_dir"]).name if snap.get("run_dir") else snap["id"]


def job_figure(snap: dict, curves=None):
    """Live curves of the job: train/val loss and accuracy (F1 for QA) per finished epoch, and the per-step
    training loss (``curves``: job_curves(snap), when the caller has it already)."""
    task = (snap.get("config") or {}).get("task")
    try:
        headline = registry.get_task(task).headline
    except TransferLabError:
        headline = "accuracy"
    metric = monitor_metric(snap["history"], headline)
    return curves_figure({_job_label(snap): curves if curves is not None else job_curves(snap)}, metric)


def job_curves(snap: dict):
    """The job's epoch rows, with the run's per-step training loss and split sizes once its folder exists."""
    if not snap.get("run_dir"):
        return snap["history"]
    p = snap.get("progress") or {}
    return run_curves(Run(Path(snap["run_dir"])), history=snap["history"],
                      steps_per_epoch=p.get("steps") if p.get("phase") == "train" else None)


def _run_of(snap: dict) -> str | None:
    """The id of the run a job trains: its folder once the engine made it, or the run it resumes."""
    folder = snap.get("run_dir") or snap.get("resume")
    return Path(folder).name if folder else None


def remembered_run(memory, job_id) -> str | None:
    """The run id the browser remembers for ``job_id`` (its run memory, ``{"job": id, "run": run id}``); None
    when it remembers none for this job, or the memory is not what the poll writes (an API client sends
    anything)."""
    if not isinstance(memory, dict) or not isinstance(job_id, str) or memory.get("job") != job_id:
        return None
    run_id = memory.get("run")
    if not isinstance(run_id, str) or not run_id or run_id != Path(run_id).name or run_id in (".", ".."):
        return None
    return run_id


def job_for_run(run_id: str) -> dict | None:
    """The snapshot of this server's latest job on the run (training it, or resuming it: after a restart
    ``resume_interrupted`` resubmits an interrupted run as a new job); None when no job of this server has it."""
    found = None
    for snap in jobs().jobs():  # oldest first: the last match is the newest job
        if _run_of(snap) == run_id:
            found = snap
    return found


def _stored_title(run: Run) -> str:
    try:
        name = run.name()
    except TransferLabError:
        name = None
    return run_title(run.id, name, md_escape)


def restarted_text(run_id: str) -> str:
    """One sentence for a run the server no longer has a job for (it restarted): where the run stands in the run
    store and what to press.

    >>> restarted_text("20261202-184012-mlp-scratch-1a2b")                 # doctest: +SKIP
    'The server restarted; run 20261202-184012-mlp-scratch-1a2b was interrupted after epoch 2 of 5: press Resume …'
    """
    try:
        run = stored_run(run_id)
        status, train = run.read_status(), run.read_config().get("train") or {}
        done = len(run.read_history())
    except TransferLabError:
        return (f"The server restarted and run {md_escape(run_id)} is no longer in the run store (it was deleted); "
                "press Start to train again.")
    except (OSError, ValueError):
        return f"The server restarted and run {md_escape(run_id)} could not be read; open it in the Runs tab."
    title, state, message = _stored_title(run), status.get("status"), (status.get("message") or "").strip()
    epochs = train.get("epochs") if isinstance(train, dict) else None
    if not isinstance(epochs, int):
        at = ""
    elif done:
        at = f" after epoch {min(done, epochs)} of {epochs}"
    else:
        at = f" before its first epoch (of {epochs}) ended"
    if state in RESUMABLE:
        ended = {"cancelled": "was cancelled", "interrupted": "was interrupted"}.get(state, "stopped")
        where = "its checkpoint" if run.has_checkpoint() else "the start (it had no checkpoint yet)"
        return f"The server restarted; run {title} {ended}{at}: press Resume to continue from {where}."
    if state == "completed":
        return f"The server restarted; run {title} completed. {message}".strip()
    if state == "failed":
        return f"The server restarted; run {title} failed. {message}".strip()
    if state == "running":  # a live process elsewhere (the CLI, another server) is training it
        return (f"The server restarted; run {title} is training in another process{at}. Follow it in the Runs "
                "tab.")
    return f"The server restarted before run {title} began training; press Start to train it again."


def poll_job(job_id: str | None, shown: str | None = None, said: str | None = None, memory=None) -> tuple:
    """One timer tick: (status, progress, curves, stats, shown key, status said, timer update).

    ``shown`` names the job and epoch count already drawn; the figure is only rebuilt and sent when a new epoch
    finished. ``said`` is the status line this poll last wrote: an unchanged one is not sent again, so a sentence
    a button wrote since (a refusal, a mistake in the form) stays until the job's status really changes. The timer
    switches itself off once the job has ended.

    ``memory`` is the browser's run memory (:func:`remember_run` writes it). When the server does not know
    ``job_id`` (it restarted), the remembered run is looked for instead: a job of this server on that run is named
    and the timer keeps going while :func:`remember_run` makes it the browser's job; else the run's stored status
    is said (:func:`restarted_text`) and Resume continues it.
    """
    stop = gr.Timer(active=False)
    if not job_id:
        line = "No job in this session yet: pick the settings and press Start."
        return (line if line != said else gr.skip()), "", gr.skip(), gr.skip(), shown, line, stop
    try:
        snap = jobs().snapshot(job_id)
    except TransferLabError as err:
        run_id = remembered_run(memory, job_id)
        found = job_for_run(run_id) if run_id else None
        if found is not None:
            title = _stored_title(Run(Path(found["run_dir"] or found["resume"])))  # the queue's own folder
            line = f"The server restarted; following run {title} again as job {found['id']}."
            return (line if line != said else gr.skip()), "", gr.skip(), gr.skip(), shown, line, gr.Timer(active=True)
        line = restarted_text(run_id) if run_id else str(err)
        return (line if line != said else gr.skip()), "", gr.skip(), gr.skip(), shown, line, stop
    curves = job_curves(snap)
    steps = len(curves.steps) if hasattr(curves, "steps") else 0
    key = f"{job_id}:{len(snap['history'])}:{steps}"  # redrawn when an epoch ends or a step point is logged
    figure = job_figure(snap, curves) if key != shown else gr.skip()
    active = snap["status"] in ACTIVE
    timer = gr.Timer(active=True) if active else stop
    line = status_text(snap)
    # a cancelled or failed job has no ETA left to show; a completed one says how long it took
    progress = progress_text(snap["progress"]) if active or snap["status"] == "completed" else ""
    return (line if line != said else gr.skip()), progress, figure, stats_text(snap), key, line, timer


def remember_run(job_id: str | None, memory=None) -> tuple:
    """(job id update, run memory update), run whenever the status line changes (it does when the job's run
    becomes known, and when a restarted server is found working on the remembered run).

    The browser's job known here: its run is written into the memory once known (nothing is sent when the memory
    already has it). The job unknown (a restart) and a job of this server on the remembered run: that job becomes
    the browser's, so the timer polls it from then on.
    """
    keep = gr.skip()
    if not job_id or not isinstance(job_id, str):
        return keep, keep
    try:
        snap = jobs().snapshot(job_id)
    except TransferLabError:
        run_id = remembered_run(memory, job_id)
        found = job_for_run(run_id) if run_id else None
        if found is None:
            return keep, keep
        return found["id"], {"job": found["id"], "run": run_id}
    run_id = _run_of(snap)
    wanted = {"job": job_id, "run": run_id}
    return keep, (wanted if run_id and memory != wanted else keep)


def restore_form(job_id: str | None, memory=None) -> tuple:
    """Page load: the form shows the settings of the browser's queued or running job (after a reload; after a
    restart, of the job now on the browser's remembered run), else is left as it is. (task, model, strategy,
    epochs, lr, batch size, train limit, eval limit, minutes, preset, parameter text, run name)."""
    snap = job_snapshot(job_id)
    if snap is None and remembered_run(memory, job_id):
        snap = job_for_run(remembered_run(memory, job_id))
    cfg = job_config(snap) if snap is not None and snap["status"] in ACTIVE else None
    if not cfg:
        return (gr.skip(),) * 12
    preset = cfg.get("preset") or NO_PRESET
    return (cfg["task"], gr.update(choices=model_options(cfg["task"]), value=cfg["model"]),
            gr.update(choices=strategy_options(cfg["model"]), value=cfg["strategy"]), cfg["epochs"],
            "" if cfg.get("lr") is None else f"{cfg['lr']:g}", cfg["batch_size"], cfg.get("train_limit") or 0,
            cfg.get("eval_limit") or 0, cfg.get("max_minutes") or 0,
            gr.update(choices=preset_options(cfg["task"]), value=preset), parameter_text(cfg["model"], cfg["strategy"]),
            cfg.get("name") or "")


def follow_job(job_id: str | None) -> dict:
    """The session got a new job (Start, Resume here or in the Runs tab): start polling it."""
    return gr.Timer(active=bool(job_id))


def cancel_job(job_id: str | None) -> str:
    """Cancel the session's job; a running one checkpoints first, so the run can be resumed."""
    snap = job_snapshot(job_id)
    if snap is None:
        return "There is no job of this session to cancel."
    if snap["status"] not in ACTIVE:
        return f"Job {job_id} has already ended ({snap['status']})."
    jobs().cancel(job_id)
    if snap["status"] == "queued":
        return f"Job {job_id} is cancelled; it had not started."
    return f"Cancelling job {job_id}: it stops at the next step and keeps its checkpoint."


def resumable_runs() -> dict:
    """Choices for the resume picker: cancelled, stopped or interrupted runs, newest first."""
    return gr.update(choices=[r["id"] for r in list_runs() if r["status"] in RESUMABLE])


def resume_training(job_id: str | None, picked_run: str | None = None, memory=None) -> tuple[str | None, str]:
    """Resume the picked run, else the session's last cancelled or stopped run, else (the server restarted and
    forgot the job) the run the browser remembers for its job: (job id, status sentence)."""
    current = job_snapshot(job_id)
    if current is not None and current["status"] in ACTIVE:
        return job_id, f"Your job {job_id} is still {current['status']}; cancel it before resuming another run."
    ref = picked_run or None
    if ref is None and current is None:
        ref = remembered_run(memory, job_id)
    if ref is None:
        if current is None or current["status"] not in RESUMABLE:
            return job_id, ("Pick a cancelled, stopped or interrupted run to resume (this session has none of its "
                            "own).")
        if not current.get("run_dir"):
            return job_id, f"Job {job_id} was cancelled before it started; there is nothing to resume, press Start."
        ref = Path(current["run_dir"]).name  # runs are named by id within the store
    try:
        new_id = submit_resume(ref)
    except TransferLabError as err:
        return job_id, str(err)
    except OSError:
        return job_id, "That run could not be read; it may have been deleted."
    position = jobs().position(new_id)
    where = f"queued, {_ahead(position)}" if position else "starting"
    return new_id, f"Resuming as job {new_id}: {where}."


# -- layout -------------------------------------------------------------------------------------------------------
JOB_STORAGE_KEY = "transfer_lab_job"
RUN_STORAGE_KEY = "transfer_lab_run"


def _storage_secret(key: str) -> str:
    """A fixed key for a BrowserState's localStorage encryption. Gradio draws a random one each time the app is
    built, so after a restart the browser could no longer read what it stored and silently forgot its job; the
    key is sent to the page in the app's config either way, so a fixed one hides nothing that a random one did."""
    return hashlib.sha256(f"transfer-lab:{key}".encode()).hexdigest()[:32]


def new_job_state() -> gr.BrowserState:
    """The browser's training job id, kept in its localStorage: a page reload finds the job again (the job runs
    on in the server's worker either way), and so does a page of a restarted server. Over the API it is an
    explicit argument: ``/start_training`` returns the id, and ``/poll_job`` and ``/cancel_job`` take it."""
    return gr.BrowserState(None, storage_key=JOB_STORAGE_KEY, secret=_storage_secret(JOB_STORAGE_KEY))


def new_run_memory() -> gr.BrowserState:
    """The run the browser's job trains, ``{"job": id, "run": run id}``, in its localStorage: what lets a page of
    a restarted server find the run again (:func:`poll_job`)."""
    return gr.BrowserState(None, storage_key=RUN_STORAGE_KEY, secret=_storage_secret(RUN_STORAGE_KEY))


def build(job_state: gr.State | None = None) -> None:
    """The Fine-tune tab, inside the caller's Blocks/Tab context.

    ``job_state``: the job id state (:func:`new_job_state`) shared with the Runs tab so that a resume started
    there is followed here; without it this tab makes its own.
    """
    job_state = job_state if job_state is not None else new_job_state()
    memory = new_run_memory()
    shown = gr.State(None)
    timer = gr.Timer(POLL_SECONDS, active=False)
    task0 = registry.task_names()[0]
    models0 = model_options(task0)
    model0 = _first_model(models0)
    strategy0 = _default_strategy(model0, None) if model0 else None
    sized = estimate.default_settings()  # a run of about a minute on this machine (core/estimate.py)
    said = gr.State(None)  # the status line the poll last wrote
    start_gate = gr.State(True)  # False while a Start waits for "Start anyway"

    with gr.Row():
        task = gr.Radio(list(registry.task_names()), value=task0, label="Task")
        # allow_custom_value on the model and preset pickers: their choices follow the task in the browser, but a
        # gradio_client script sends any task's model directly; config_from_form checks every value.
        preset = gr.Dropdown(preset_options(task0), value=NO_PRESET, label="Preset (optional)",
                             info="Fills the form; its optimizer and scheduler apply when the run starts.",
                             allow_custom_value=True)
    with gr.Row():
        model = gr.Dropdown(models0, value=model0, label="Model",
                            info="untrained = random weights on this machine (no Hub access).",
                            allow_custom_value=True)
        # allow_custom_value: one model pick fires .input twice and the second carries the strategy the first
        # removed from the choices; on_model then falls back to a supported one (config_from_form checks it).
        strategy = gr.Dropdown(strategy_options(model0), value=strategy0, label="Strategy", allow_custom_value=True)
    # Counted on page load, not here: counting builds the model on the meta device, which imports torch and timm,
    # and the first page should not wait for them (bench/bench_cold_start.py).
    params = gr.Markdown("Counting the parameters this model and strategy train…")
    # No minimum on the numbers: Gradio's own pop-up would pre-empt the form's one-sentence status
    # (config_from_form checks every value).
    with gr.Row():
        epochs = gr.Number(sized["epochs"], label="Epochs", precision=0)
        lr = gr.Textbox("", label="Learning rate", placeholder="blank = the model's default")
        batch_size = gr.Number(TrainConfig.batch_size, label="Batch size", precision=0)
    with gr.Row():
        train_limit = gr.Number(sized["train_limit"], label="Train limit (examples, 0 = all)", precision=0)
        eval_limit = gr.Number(sized["eval_limit"], label="Eval limit (examples, 0 = all)", precision=0)
        minutes = gr.Number(0, label="Time budget (minutes, 0 = none)")
    run_name = gr.Textbox("", label="Run name", max_lines=1,
                          info=f"Optional, at most {MAX_NAME} characters: shown in the Runs tab and the model "
                               "pickers; rename it in the Runs tab.")
    estimate_md = gr.Markdown("**Estimated time here:** measuring…")
    with gr.Row():
        start = gr.Button("Start", variant="primary")
        start_anyway_button = gr.Button("Start anyway", variant="stop", visible=False)
        cancel = gr.Button("Cancel", variant="stop")
        resume = gr.Button("Resume")
        resume_pick = gr.Dropdown([], value=None, label="Run to resume (blank = this browser's last job)",
                                  allow_custom_value=True)
    status = gr.Markdown()
    progress = gr.Markdown()
    curves = gr.Plot(label="Learning curves")
    stats = gr.Markdown()

    settings = [task, model, strategy, epochs, lr, batch_size, train_limit, eval_limit, minutes, preset]
    form = [*settings, run_name]  # the run's name changes no timing, so the estimate reads only the settings
    # .input (user edits) rather than .change: a preset that sets task and model must not be undone by the
    # task's own cascade resetting the model.
    task.input(on_task, task, [model, strategy, preset, params], api_name="choose_task")
    model.input(on_model, [model, strategy], [strategy, params], api_name="choose_model")
    strategy.input(parameter_text, [model, strategy], params, api_name="parameter_counts")
    preset.input(apply_preset, preset, [task, model, strategy, epochs, lr, batch_size, params],
                 api_name="apply_preset")
    # Start: request_start asks for confirmation when it should, then start_training runs unless it did. The gate
    # is a State, so /start_training keeps its parameters and a script never needs to confirm.
    start.click(request_start, [job_state, *form], [status, start_anyway_button, start_gate],
                api_name="request_start").then(
        start_training, [job_state, *settings, start_gate, run_name], [job_state, status], api_name="start_training")
    start_anyway_button.click(start_anyway, [job_state, *form], [job_state, status], api_name="start_anyway").then(
        lambda: (gr.update(visible=False), True), None, [start_anyway_button, start_gate],
        api_name="hide_start_anyway", show_progress="hidden")
    gr.on(triggers=[c.change for c in settings], fn=estimate_text, inputs=settings, outputs=estimate_md,
          api_name="estimate_run", trigger_mode="always_last", show_progress="hidden")
    gr.on(triggers=[c.input for c in settings], fn=lambda: gr.update(visible=False), outputs=start_anyway_button,
          api_name="form_edited", show_progress="hidden")
    cancel.click(cancel_job, job_state, status, api_name="cancel_job")
    resume.click(resume_training, [job_state, resume_pick, memory], [job_state, status], api_name="resume_training")
    resume_pick.focus(resumable_runs, None, resume_pick, api_name="resumable_runs", show_progress="hidden")
    job_state.change(follow_job, job_state, timer, api_name="follow_job", show_progress="hidden")
    # page load: a job id restored from the browser (gr.BrowserState) is polled again, so a reload loses nothing
    gr.on(triggers=None, fn=follow_job, inputs=job_state, outputs=timer, api_name="follow_job_on_load",
          show_progress="hidden")
    gr.on(triggers=None, fn=restore_form, inputs=[job_state, memory], outputs=[*settings, params, run_name],
          api_name="restore_form", show_progress="hidden").then(
        parameter_text, [model, strategy], params, api_visibility="private", show_progress="hidden").then(
        estimate_text, settings, estimate_md, api_name="estimate_on_load", show_progress="hidden")
    # Polling reads a snapshot under a lock: cheap, so every session may poll at once.
    timer.tick(poll_job, [job_state, shown, said, memory], [status, progress, curves, stats, shown, said, timer],
               api_name="poll_job", show_progress="hidden", concurrency_limit=None)
    # The status line changes when the job's run becomes known, and when a restarted server is found on the
    # remembered run: only then is the browser's memory (or its job id) written, not on every tick.
    said.change(remember_run, [job_state, memory], [job_state, memory], api_name="remember_run",
                show_progress="hidden", concurrency_limit=None)
