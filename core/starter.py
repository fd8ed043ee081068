"""Starter runs: one good run per task with the best weights this machine has, so every tab answers from the start.

For each task the plan takes, in this order:

1. a registry checkpoint already fine-tuned for the task (``ModelSpec.finetuned_head``, e.g. the PQuAD-fine-tuned
   XLM-R) whose weights and tokenizer this machine can load: the Hub answers, or its local cache holds them
   (``python -m core prefetch``). Nothing trains: :func:`record_pretrained` records it as a run, with its
   validation split tuning what the task tunes (QA: the no-answer threshold) and its test split scoring it;
2. else the task's packaged model with real weights offline (``STARTER_TRAINING``: EfficientNet-Lite0 frozen on
   CIFAR-10, MiniLM + BiGRU on the tweets, e5-small fine-tuned on PQuAD), with limits sized so that each run ends
   in a few minutes on a 2-core CPU.

Every part carries its estimate (core.estimate) before anything starts, and a run of the store that already
matches the part's settings is reused: completed, the part is done; cancelled, stopped or interrupted, the part
resumes it. :func:`submit` queues the parts on a JobQueue (the app's shared one, or the CLI's own), tagged
``group="starter"``, so they show progress, can be cancelled, and run again resumes them.

This module also says which registry models this machine can run at all (:func:`unavailable_reason`): a text
model whose tokenizer exists only on the Hub cannot be asked anything offline, whatever its weights.

>>> [(p.task, p.cfg.model, p.action) for p in plan()]                  # doctest: +SKIP
[('images', 'efficientnet_lite0', 'start'), ('tweets', 'minilm_bigru', 'start'), ('qa', 'e5_small', 'start')]
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from core import registry
from core.config import TrainConfig
from core.errors import CancelledError, TransferLabError, WeightsUnavailableError
from core.weights import head_is_trained, hub_available, weights_status

log = logging.getLogger(__name__)
GROUP = "starter"  # the JobQueue group of the starter's jobs

# What each task's starter trains when no fine-tuned checkpoint can be had, and the limits that keep it to a few
# minutes on two CPU cores (README "Starter runs" has the measured times and scores). Settings not named here
# come from the preset named (``preset``) and the model's recommended ones (core.presets.compose_settings), as for
# `python -m core train`.
STARTER_TRAINING: dict[str, dict] = {
    "images": dict(model="efficientnet_lite0", strategy="feature_extraction", train_limit=2000, eval_limit=1000,
                   epochs=5),
    "tweets": dict(model="minilm_bigru", strategy="feature_extraction", train_limit=1000, eval_limit=500,
                   epochs=2),
    # The qa-e5-small preset (AdamW 1e-4, batches of 16 with activation checkpointing, windows of 384) on 2,000
    # questions: 10-17 minutes here (README). Fewer questions do not pay: 600 for 1 epoch scored exactly the always-"no
    # answer" baseline (F1 0.240 on 200 test questions), a run that had learnt nothing to show.
    "qa": dict(model="e5_small", preset="qa-e5-small", train_limit=2000, eval_limit=500, epochs=1),
}
# Recording a fine-tuned checkpoint: how many questions tune its threshold (val_fraction of train_limit, the
# task's cap of 200) and score it. feature_extraction: the run saves only the head and buffers, and reopening
# rebuilds the rest from the same Hub checkpoint (checked against its fingerprint).
STARTER_EVALUATION = dict(strategy="feature_extraction", train_limit=2000, eval_limit=500, epochs=1, weights="hub")
# Settings that make a stored run the starter's own run of a part (so it is reused, not trained again).
MATCH_FIELDS = ("task", "model", "strategy", "epochs", "train_limit", "eval_limit", "seed", "max_length",
                "batch_size", "lr", "weights", "data_file")
EVALUATION_NOTE = ("Recorded without training: the checkpoint was already fine-tuned for this task; its validation "
                   "split tuned what the task tunes and its test split scored it.")


# -- what this machine can run --------------------------------------------------------------------------------
def _cached(repo_id: str, filename: str) -> bool:
    """True when the Hugging Face cache holds ``filename`` of ``repo_id`` (a file lookup: no network)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, filename), str)


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                 "pytorch_model.bin.index.json")
_PENDING = "checking"  # the value of a model in _checks while its check runs (compared by identity)
_checks: dict[str, str | None] = {}  # model name -> None (runs here), the sentence why not, or _PENDING
_checks_lock = threading.Lock()
_checker: threading.Thread | None = None


def _tokenizer_problem(spec) -> str | None:
    """Load the model's tokenizer the way a run does (Hub cache or offline package: never the network once the
    Hub counts as unreachable); None when it loads, else the loader's one sentence."""
    try:
        registry.get_task(spec.task).tokenizer_loader()(spec.name)
    except TransferLabError as err:
        return str(err)
    except Exception as err:  # a broken package or cache file: the model cannot run either
        return f"{spec.name} cannot load its tokenizer here ({type(err).__name__})."
    return None


def _check_pending() -> None:
    """The background checker: every text model not decided cheaply, one after the other, once per process."""
    while True:
        with _checks_lock:
            pending = [name for name, reason in _checks.items() if reason is _PENDING]
        if not pending:
            return
        spec = registry.get(pending[0])
        reason = _tokenizer_problem(spec)
        with _checks_lock:
            _checks[spec.name] = reason



def unavailable_reason(name: str, wait: bool = False) -> str | None:
    """None when this machine can run the registry model ``name``; otherwise one sentence saying why not.

    Weights never stop a model (without pretrained ones it is built untrained, and labelled so); a tokenizer can:
    a text model whose vocabulary only the Hub holds cannot read a word offline. Decided without the network:
    the Hub reachable (core.weights.hub_available, cached per process), or its tokenizer in the Hub cache, means
    it runs; a packaged model brings its own. The rest are checked by loading their tokenizer from the cache or
    an offline package, in one background thread (a 250k-piece vocabulary takes seconds): until that check ends a
    model counts as runnable (``wait=True`` waits for it).

    >>> unavailable_reason("parsbert", wait=True)                       # doctest: +SKIP
    'parsbert needs its Persian vocabulary from the Hugging Face Hub (...); use e5_small or xlmr_base offline.'
    """
    global _checker
    spec = registry.get(name)
    if registry.get_task(spec.task).tokenizer_loader() is None or hub_available():
        return None
    if spec.offline == "packaged" or (spec.hub_id and any(_cached(spec.hub_id, f) for f in _TOKENIZER_FILES)):
        return None
    with _checks_lock:
        if spec.name not in _checks:
            _checks[spec.name] = _PENDING
        if _checker is None or not _checker.is_alive():
            _checker = threading.Thread(target=_check_pending, name="transfer-lab-model-check", daemon=True)
            _checker.start()
        checker = _checker
    if wait:
        checker.join()
    with _checks_lock:
        reason = _checks.get(spec.name)
    return None if reason is _PENDING else reason


def check_models(task: str | None = None) -> dict[str, str | None]:
    """Run unavailable_reason for every registry model (of ``task``), waiting for the background checks: name ->
    None (runs here) or why not."""
    names = [s.name for s in registry.list_models(task)]
    for name in names:
        unavailable_reason(name)
    return {name: unavailable_reason(name, wait=True) for name in names}


def checking(name: str) -> bool:
    """True while the background check of ``name`` (see unavailable_reason) has not ended."""
    with _checks_lock:
        return _checks.get(name) is _PENDING


def hub_checkpoint_here(spec) -> bool:
    """True when the model's Hub checkpoint (weights and, for a text model, its tokenizer) can be loaded here:
    the Hub answers, or the local Hub cache holds it (looked up as files: no network)."""
    if not spec.hub_id:
        return False
    if hub_available():
        return True
    if not _cached(spec.hub_id, "config.json") or not any(_cached(spec.hub_id, f) for f in _WEIGHT_FILES):
        return False
    return unavailable_reason(spec.name, wait=True) is None


# -- the plan ---------------------------------------------------------------------------------------------------
@dataclass
class Part:
    """One task's starter run: what it runs, why, how long it should take here, and what the store already has.

    action: "start" (a new run), "resume" (``existing`` is a cancelled, stopped or interrupted run of the same
    settings), "done" (``existing`` completed) or "running" (``existing`` is being trained right now).
    """

    task: str
    cfg: TrainConfig
    evaluate_only: bool
    why: str
    action: str
    existing: dict | None = None  # the run summary (core.store.runs.Run.summary) the action refers to
    seconds: float | None = None
    estimate_text: str = ""

    def to_json(self) -> dict:
        return {"task": self.task, "model": self.cfg.model, "strategy": self.cfg.strategy,
                "evaluate_only": self.evaluate_only, "why": self.why, "action": self.action,
                "run": self.existing["id"] if self.existing else None, "estimated_seconds": self.seconds,
                "estimate": self.estimate_text, "settings": self.cfg.to_json()}

    def line(self) -> str:
        """'images: efficientnet_lite0 (feature_extraction): start; about 2 min (...): ... . <why>'"""
        how = "evaluated, no training" if self.evaluate_only else self.cfg.strategy
        what = f"{self.task}: {self.cfg.model} ({how})"
        if self.action == "done":
            return f"{what}: done, run {self.existing['id']}."
        if self.action == "running":
            return f"{what}: run {self.existing['id']} is being trained now."
        verb = f"resume run {self.existing['id']}" if self.action == "resume" else "start"
        return f"{what}: {verb}; {self.estimate_text or 'no estimate'}. {self.why}"


def _compose(model: str, settings: dict, data_dir: str | None) -> TrainConfig:
    from core.presets import compose_settings

    settings = dict(settings)
    preset = settings.pop("preset", None)
    values = compose_settings(model, preset, {**settings, "model": model, "task": registry.get(model).task,
                                              "data_dir": data_dir})
    return TrainConfig(**values).validate()


def _finetuned_checkpoint(task: str):
    """The largest registry checkpoint already fine-tuned for ``task`` that loads here, or None."""
    found = [s for s in registry.list_models(task) if s.finetuned_head and hub_checkpoint_here(s)]
    if not found:
        return None
    return max(found, key=lambda s: registry.parameter_counts(s.name, "full")["total"])


def starter_config(task: str, data_dir: str | None = None) -> tuple[TrainConfig, bool, str]:
    """(settings, evaluate only, why) of the task's starter run on this machine."""
    registry.get_task(task)  # one sentence for an unknown task
    spec = _finetuned_checkpoint(task)
    if spec is not None:
        cfg = _compose(spec.name, dict(STARTER_EVALUATION), data_dir)
        return cfg, True, (f"{spec.name} is a checkpoint already fine-tuned for this task ({spec.hub_id}), so it "
                           "needs no training: it is evaluated and recorded as a run.")
    settings = dict(STARTER_TRAINING[task])
    model = settings.pop("model")
    spec = registry.get(model)
    if weights_status(spec) == "untrained":  # e.g. a test's own tiny starter: nothing pretrained to start from
        return _compose(model, settings, data_dir), False, f"{model} trains from random initial weights here."
    where = "from the Hub" if hub_available() else f"offline ({spec.offline_source})"
    return _compose(model, settings, data_dir), False, f"{model} has real pretrained weights here, {where}."


def _matching_runs(cfg: TrainConfig, evaluate_only: bool, runs_root: str | None) -> list[dict]:
    """Runs of the store with the part's settings, newest first."""
    from core.store.runs import list_runs, open_run

    wanted = cfg.to_json()
    found = []
    for row in list_runs(runs_root, cfg.task):
        try:
            saved = open_run(row["path"], runs_root).read_config()
        except TransferLabError:
            continue
        train = saved.get("train") or {}
        if bool(saved.get("evaluation_only")) == evaluate_only and \
                all(train.get(k) == wanted.get(k) for k in MATCH_FIELDS):
            found.append(row)
    return found


def _action(matches: list[dict]) -> tuple[str, dict | None]:
    from core.store.runs import RESUMABLE

    # "queued" is not in the list: a job's run folder is created when it starts, so a queued folder is stale
    for status, action in (("completed", "done"), ("running", "running")):
        for row in matches:
            if row["status"] == status:
                return action, row
    for row in matches:
        if row["status"] in RESUMABLE:
            return "resume", row
    return "start", None


def _estimate(cfg: TrainConfig, evaluate_only: bool) -> tuple[float | None, str]:
    """(seconds, sentence) from core.estimate: a measured probe (images) or the model's FLOPs (text)."""
    from core import estimate

    try:
        if not evaluate_only:
            est = estimate.estimate_run(cfg)
            return est.seconds, est.text()
        p, n = estimate.probe(cfg), estimate.split_counts(cfg)
        seconds = estimate.SETUP_SECONDS + p.build + (n["val"] + n["test"]) * p.evaluate
        low, high = (estimate.MEASURED_RANGE if p.source == "measured" else estimate.FLOPS_RANGE)
        rough = "" if p.source == "measured" else " (rough: from the model's size)"
        return seconds, (f"about {estimate.duration(seconds, rounded=True)} ({estimate.duration(seconds * low)} – "
                         f"{estimate.duration(seconds * high)}){rough}: no training, {n['val']:,} validation and "
                         f"{n['test']:,} test examples")
    except TransferLabError as err:  # e.g. no data folder: the run itself will say so
        return None, f"no estimate ({err})"


def plan(tasks=None, runs_root: str | None = None, data_dir: str | None = None,
         with_estimates: bool = True) -> list[Part]:
    """The starter's parts for ``tasks`` (default: every task), with what the run store already has."""
    parts = []
    for task in tasks or registry.task_names():
        cfg, evaluate_only, why = starter_config(task, data_dir)
        action, existing = _action(_matching_runs(cfg, evaluate_only, runs_root))
        seconds, text = _estimate(cfg, evaluate_only) if with_estimates and action in ("start", "resume") \
            else (None, "")
        parts.append(Part(task, cfg, evaluate_only, why, action, existing, seconds, text))
    return parts


def tasks_without_a_completed_run(runs_root: str | None = None) -> list[str]:
    """The tasks of which the run store holds no completed run (what the app's starter button offers to fill)."""
    from core.store.runs import list_runs

    done = {r["task"] for r in list_runs(runs_root) if r["status"] == "completed"}
    return [t for t in registry.task_names() if t not in done]


def total_seconds(parts: list[Part]) -> float | None:
    """Estimated seconds of the parts still to run (None when one has no estimate)."""
    todo = [p for p in parts if p.action in ("start", "resume")]
    if any(p.seconds is None for p in todo):
        return None
    return sum(p.seconds for p in todo)


def submit(parts: list[Part], queue) -> list:
    """Queue the parts still to run on ``queue`` (a core.store.jobs.JobQueue), in order; the jobs, tagged
    ``group="starter"``."""
    jobs = []
    for p in parts:
        if p.action == "resume":
            jobs.append(queue.submit_resume(p.existing["path"], group=GROUP))
        elif p.action == "start":
            submit_new = queue.submit_evaluation if p.evaluate_only else queue.submit
            jobs.append(submit_new(p.cfg, group=GROUP))
    return jobs


# -- recording a fine-tuned checkpoint as a run -----------------------------------------------------------------
def is_evaluation_only(ref, runs_root: str | None = None) -> bool:
    """True when the run at ``ref`` records a fine-tuned checkpoint (its resume evaluates it again)."""
    from core.store.runs import open_run

    try:
        return bool(open_run(ref, runs_root).read_config().get("evaluation_only"))
    except TransferLabError:
        return False


def record_pretrained(cfg: TrainConfig | None = None, *, resume: str | None = None, runs_root: str | None = None,
                      on_progress=None, cancel: threading.Event | None = None):
    """Record a registry checkpoint already fine-tuned for its task as a completed run, without training.

    The validation split tunes what the task tunes after an epoch (QA: the no-answer threshold, saved with the
    weights), the test split gives metrics.json and predictions.jsonl, and config.json says
    ``"evaluation_only"``. ``resume``: a run recorded this way that was cancelled or interrupted is evaluated
    again in its own folder. Progress and cancel work as in core.engine.fit.train (one batch at a time).
    WeightsUnavailableError (one sentence) when the checkpoint did not come from the Hub or its cache.
    """
    from core.engine.fit import Progress, heartbeat, make_task, run_config
    from core.store.runs import create_run, open_run

    cancel = cancel or threading.Event()
    if resume is not None:
        run = open_run(resume, runs_root)
        cfg = run.train_config()
        for name in ("metrics.json", "predictions.jsonl"):
            (run.path / name).unlink(missing_ok=True)
    else:
        if cfg is None:
            raise WeightsUnavailableError("Name the fine-tuned checkpoint to record (a training configuration).")
        cfg.validate()
        run = create_run(cfg.model, cfg.strategy, runs_root)
    task_spec = registry.get_task(cfg.task)
    # config.json at once: a run cancelled while its data loads is still listed, and resumable
    run.write_config({"train": cfg.to_json(), "evaluation_only": EVALUATION_NOTE, "headline_metric":
                      task_spec.headline, "created": time.strftime("%Y-%m-%dT%H:%M:%S")})
    started = time.monotonic()

    def progress(phase: str, done: int, total: int) -> None:
        if cancel.is_set():
            raise CancelledError(f"Cancelled while evaluating {cfg.model}; run the starter again (or resume the "
                                 "run) to evaluate it again.")
        if on_progress is not None:
            on_progress(Progress(phase, 0, 1, done, total, 0, 0, None, time.monotonic() - started, None,
                                 run_dir=str(run.path)))

    run.set_status("running", f"Evaluating {cfg.model} (already fine-tuned): loading the data.")
    try:
        with heartbeat(run):
            task = make_task(cfg)
            task.load_data(("val", "test"))
            progress("data", 1, 1)
            task.build_model()
            if not head_is_trained(task.spec, task.model.weights):
                raise WeightsUnavailableError(f"{cfg.model} was not loaded from its fine-tuned Hub checkpoint "
                                              f"({task.model.weights.label()}), so it would need training first.")
            run.write_config({**run_config(task, {}, None), "evaluation_only": EVALUATION_NOTE})
            val = task.evaluate("val", progress).metrics if task.has_split("val") else None
            progress("eval:test", 0, 1)
            result = task.evaluate("test", progress)
            run.save_weights(task.state_to_save())
            metrics = {**result.metrics, "parameters": task.parameter_counts(), "seconds_per_epoch": [],
                       "mean_seconds_per_epoch": None, "evaluation_only": True,
                       "evaluation_seconds": time.monotonic() - started}
            if val is not None:
                metrics["val"] = {k: v for k, v in val.items() if isinstance(v, (int, float))}
            run.write_metrics(metrics)
            run.write_predictions(result.predictions)
            headline = metrics.get(task.headline)
            run.set_status("completed", f"Recorded without training: test {task.headline} {headline:.4f}."
                           if isinstance(headline, (int, float)) else "Recorded without training.")
    except CancelledError as err:
        run.set_status("cancelled", str(err))
        raise
    except TransferLabError as err:
        run.set_status("failed", str(err))
        raise
    except BaseException:
        log.exception("recording %s failed", cfg.model)
        run.set_status("failed", "Evaluating the checkpoint failed unexpectedly; the details are in the log.")
        raise
    if on_progress is not None:
        on_progress(Progress("done", 1, 1, 1, 1, 0, 0, None, time.monotonic() - started, None,
                             run_dir=str(run.path)))
    return run


# -- following the jobs -----------------------------------------------------------------------------------------
def job_line(snap: dict) -> str:
    """One line for a starter job: task, model, status, and where it is ('images · efficientnet_lite0: running,
    caching frozen features 640/2400, elapsed 31 s')."""
    cfg = snap.get("config") or {}
    if not cfg and snap.get("run_dir"):
        try:
            from core.store.runs import open_run

            cfg = open_run(snap["run_dir"]).read_config().get("train", {})
        except TransferLabError:
            cfg = {}
    name = " · ".join(str(cfg[k]) for k in ("task", "model") if cfg.get(k)) or f"job {snap['id']}"
    status = snap["status"]
    if status == "queued":
        return f"{name}: queued ({snap['position']} ahead)." if snap.get("position") else f"{name}: next."
    if status != "running":
        return f"{name}: {status}. {snap.get('message') or ''}".strip()
    p = snap.get("progress") or {}
    if not p:
        return f"{name}: starting."
    from core.estimate import duration

    phase = {"data": "loading the data", "cache": "caching frozen features", "train": "training",
             "eval:val": "validating", "eval:test": "testing", "done": "done"}.get(p.get("phase"), p.get("phase"))
    where = f"{phase} {p['step']:,}/{p['steps']:,}" if p.get("steps") else phase
    if p.get("phase") == "train":
        where = f"epoch {min(p['epoch'] + 1, p['epochs'])}/{p['epochs']}, {where}"
    eta = f", ETA {duration(p['eta'])}" if p.get("eta") is not None else ""
    return f"{name}: {where}{eta}, elapsed {duration(p.get('elapsed') or 0)}."


def run_in_process(parts: list[Part], runs_root: str | None = None, echo=print, poll: float = 1.0,
                   every: float = 15.0) -> list[dict]:
    """Run the parts on a JobQueue of this process, echoing a job's line when its status or phase changes (and at
    most every ``every`` seconds in between); Ctrl-C cancels (each run keeps its checkpoint, and planning again
    resumes it). Returns the jobs' final snapshots."""
    from core.store.jobs import FINAL, JobQueue

    queue = JobQueue(runs_root=runs_root)
    jobs = submit(parts, queue)
    said: dict[str, tuple] = {}  # job id -> (status, phase, epoch, time echoed)
    try:
        while True:
            snaps = [queue.snapshot(j.id) for j in jobs]
            for s in snaps:
                p = s.get("progress") or {}
                key = (s["status"], p.get("phase"), p.get("epoch"))
                before = said.get(s["id"])
                if before is None or before[:3] != key or (s["status"] == "running" and
                                                           time.monotonic() - before[3] > every):
                    echo(job_line(s))
                    said[s["id"]] = (*key, time.monotonic())
            if all(s["status"] in FINAL for s in snaps):
                return snaps
            time.sleep(poll)
    except KeyboardInterrupt:
        for j in jobs:
            queue.cancel(j.id)
        for j in jobs:
            queue.wait(j.id, timeout=120)
        raise CancelledError("Cancelled; every run keeps what it has done: run `python -m core starter` again to "
                             "resume.") from None
