"""Training jobs for the app: one queue, one worker thread per GPU (one on a CPU), many browser sessions.

Sessions submit a TrainConfig (or a run to resume) and poll :meth:`JobQueue.snapshot` for the job's status,
queue position, latest progress and per-epoch history. The worker runs ``core.engine.fit.train`` with callbacks that
only copy numbers into the job under a lock, so the UI never reaches into a training loop. Cancel sets the
job's event; the engine checkpoints and stops at the next step.

A job trains (``submit``), resumes a run (``submit_resume``), or records an already fine-tuned checkpoint as a run
without training (``submit_evaluation``, core.starter); a ``group`` tag ("starter") lets the app follow the jobs of
one request together. :func:`resume_interrupted` puts every run whose training process died (a restart, a crash)
back on the queue, so a Space that restarts continues its fine-tunes.

Jobs still waiting survive a restart too: each job is written, when it is queued, to ``<run store>/.queue/<job
id>.json`` (its settings or the run it resumes, its group and submission time; atomically), and the file goes as
soon as the job has a run folder of its own (from then on the run is what a restart resumes) or ends. On start,
:meth:`JobQueue.restore_queued` puts every such job back, under its old id (a browser that was following it goes
on polling the same id) and in its old order, after the interrupted runs.

On Hugging Face ZeroGPU (``spaces`` importable and a GPU granted per call) each call is limited in time, so a
job runs in slices of ``slice_minutes``: each slice is a ``spaces.GPU`` call of ``train(..., max_minutes)``, and
a slice that stops on the budget is resumed from its checkpoint by the next one.

Workers: one per GPU that CUDA sees (``torch.cuda.device_count()``), else one; ``workers=`` or the environment
variable ``TRANSFER_LAB_JOB_WORKERS`` (a whole number from 1 to the number of GPUs, or to the CPU cores on a
machine without one) overrides it. Worker ``i`` runs its job with GPU ``i`` as the current CUDA device of its
thread (``torch.cuda.device(i)``: the engine's ``cuda`` means that GPU), so two jobs train on two GPUs at once;
the snapshot says which (``worker``, ``device``). Jobs start strictly in the order they were submitted: a free
worker takes the first queued job, never a later one. On ZeroGPU each call is granted its own GPU by ``spaces``,
so no GPU is counted or pinned here and the default stays one worker. A job with ``devices`` > 1
is one data-parallel run of several processes, which this in-process queue does not launch: the engine refuses it
with a sentence that names the command (``python -m core train ... --devices N``), as with one worker.

>>> q = JobQueue(); job = q.submit(TrainConfig(task="images", model="mlp", strategy="scratch"))  # doctest: +SKIP
>>> q.snapshot(job.id)["status"]                                                                   # doctest: +SKIP
'running'
"""
from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.config import TrainConfig
from core.errors import BadSettingError, CancelledError, TransferLabError
from core.paths import runs_dir

FINAL = ("completed", "cancelled", "failed", "stopped", "interrupted")
WORKERS_ENV = "TRANSFER_LAB_JOB_WORKERS"
QUEUE_FOLDER = ".queue"  # under the run store: one JSON file per job that has no run folder yet
log = logging.getLogger(__name__)


@dataclass
class Job:
    id: str
    cfg: TrainConfig | None
    resume: str | None = None
    status: str = "queued"
    message: str = ""
    run_dir: str | None = None
    progress: dict | None = None
    history: list[dict] = field(default_factory=list)
    submitted: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    kind: str = "train"  # "train" (cfg, or resume) | "evaluate" (record a fine-tuned checkpoint, core.starter)
    group: str | None = None  # a tag shared by jobs submitted together (the starter runs: "starter")
    worker: int | None = None  # the queue's worker that runs it (0, 1, ...), from when it starts
    device: str | None = None  # where it trains, from when it starts: "cuda:1" (its worker's GPU), "cpu", "zerogpu"


def _saved_budget(run_dir: str | None, runs_root: str | None) -> float | None:
    """The ``max_minutes`` a saved run was configured with (None when it has none)."""
    if run_dir is None:
        return None
    from core.store.runs import open_run

    return open_run(run_dir, runs_root).read_config().get("train", {}).get("max_minutes")


def _saved_device(run_dir: str, runs_root: str | None) -> str | None:
    """The ``device`` setting (auto, cpu, cuda) a saved run was configured with; None when it cannot be read (the
    job itself then says why, in one sentence)."""
    from core.store.runs import open_run

    try:
        return open_run(run_dir, runs_root).read_config().get("train", {}).get("device")
    except (TransferLabError, AttributeError):  # no such run, or a config.json whose "train" is not an object
        return None


def _zerogpu_call(fn, minutes: float):
    """Run ``fn`` inside a ZeroGPU allocation when the ``spaces`` package is present, else directly."""
    try:
        import spaces  # only on Hugging Face Spaces
    except ImportError:
        return fn()
    return spaces.GPU(duration=int(minutes * 60) + 30)(fn)()


def _on_zerogpu() -> bool:
    """Whether the ``spaces`` package is present (Hugging Face ZeroGPU), the test :func:`_zerogpu_call` makes."""
    try:
        import spaces  # noqa: F401 (only on Hugging Face Spaces)
    except ImportError:
        return False
    return True


def visible_gpus() -> int:
    """How many GPUs this process can train on: ``torch.cuda.device_count()`` where CUDA is available, else 0."""
    import torch  # heavy: only when a queue is made

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def worker_count(workers: int | None = None, gpus: int = 0) -> int:
    """The number of job workers: ``workers`` if given, else ``$TRANSFER_LAB_JOB_WORKERS`` if set, else one per GPU
    (one without a GPU); a whole number from 1 to the GPUs (to the CPU cores without a GPU), one sentence otherwise.

    >>> worker_count(None, gpus=4), worker_count(2, gpus=4)
    (4, 2)
    """
    most, what = (gpus, "GPUs") if gpus else (os.cpu_count() or 1, "CPU cores")
    bounds = f"a whole number from 1 to {most} (the {what} of this machine)"
    if workers is None:
        text = os.environ.get(WORKERS_ENV, "").strip()
        if not text:
            return max(gpus, 1)
        if not (text.isascii() and text.isdigit() and 1 <= int(text) <= most):
            raise BadSettingError(f"{WORKERS_ENV} must be {bounds}; got '{text}'.")
        return int(text)
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= most:
        raise BadSettingError(f"The number of job workers must be {bounds}; got {workers!r}.")
    return workers


class JobQueue:
    """FIFO of training jobs run by one worker thread per GPU (one on a CPU): each worker runs one job at a time on
    its own device, and jobs start in the order they were submitted.

    ``workers``: how many (default: ``$TRANSFER_LAB_JOB_WORKERS``, else one per GPU; see :func:`worker_count`).
    ``persist``: keep each job that has no run folder yet in the run store's ``.queue/`` (see the module's text).

    >>> JobQueue(workers=2).workers                                                    # doctest: +SKIP
    2
    """

    def __init__(self, runs_root: str | None = None, slice_minutes: float | None = None,
                 workers: int | None = None, persist: bool = True):
        self.runs_root = runs_root
        self.persist = persist  # write waiting jobs to <run store>/.queue/ so that a restart can restore them
        self._files: dict[str, Path] = {}  # job id -> its file in .queue/ (the store as it was when queued)
        self.slice_minutes = slice_minutes  # ZeroGPU: longest single GPU call; None = no slicing
        # ZeroGPU grants each call a GPU of its own (_zerogpu_call): what this process sees is not the queue's to pin
        self.gpus = 0 if _on_zerogpu() else visible_gpus()
        self.workers = worker_count(workers, self.gpus)
        self._jobs: dict[str, Job] = {}
        self._order: list[str] = []
        self._lock = threading.Lock()
        self._queued = threading.Condition(self._lock)  # notified when a job is queued
        self._threads = [threading.Thread(target=self._work, args=(i,), daemon=True,
                                          name="transfer-lab-trainer" + (f"-{i}" if i else ""))
                         for i in range(self.workers)]
        self._worker = self._threads[0]
        for thread in self._threads:
            thread.start()

    # -- submitting and reading ---------------------------------------------------------------------------------
    def submit(self, cfg: TrainConfig, group: str | None = None) -> Job:
        """Validate and enqueue a new run; bad settings fail here, before the job is queued."""
        cfg.validate()
        return self._enqueue(Job(id=secrets.token_hex(4), cfg=cfg, group=group))

    def submit_resume(self, run_dir: str, group: str | None = None) -> Job:
        """Continue a run from its checkpoint (or, without one, from the start with its saved settings); a run
        that records a fine-tuned checkpoint (core.starter) is evaluated again instead."""
        return self._enqueue(Job(id=secrets.token_hex(4), cfg=None, resume=str(run_dir), group=group))

    def submit_evaluation(self, cfg: TrainConfig, group: str | None = None) -> Job:
        """Record a registry checkpoint already fine-tuned for its task as a run, without training: its
        validation split tunes what needs tuning and its test split scores it (core.starter.record_pretrained)."""
        cfg.validate()
        return self._enqueue(Job(id=secrets.token_hex(4), cfg=cfg, kind="evaluate", group=group))

    def resume_interrupted(self) -> list[Job]:
        """Resubmit every run of this queue's store whose training process is gone (see resume_interrupted)."""
        return resume_interrupted(self.runs_root, self)

    def _enqueue(self, job: Job) -> Job:
        with self._queued:
            self._jobs[job.id] = job
            self._order.append(job.id)
            self._remember(job)  # before a worker can take it: its file is written before it could be removed
            self._queued.notify()  # one job: one idle worker is enough
        return job

    # -- jobs that survive a restart ----------------------------------------------------------------------------
    def _queue_file(self, job_id: str):
        return runs_dir(self.runs_root) / QUEUE_FOLDER / f"{job_id}.json"

    def _remember(self, job: Job) -> None:
        if not self.persist:
            return
        from core.store.runs import _write_json_atomic

        entry = {"id": job.id, "kind": job.kind, "config": job.cfg.to_json() if job.cfg is not None else None,
                 "resume": job.resume, "group": job.group, "submitted": job.submitted}
        try:
            path = self._queue_file(job.id)
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_json_atomic(path, entry)
            self._files[job.id] = path
        except OSError as err:  # a full or read-only disk: the job still runs, it just would not survive a restart
            log.warning("job %s is not saved for a restart: %s", job.id, err)

    def _forget(self, job: Job) -> None:
        """Remove the job's file (call with the lock held), and the folder once it is empty, so that a run store
        with nothing waiting holds run folders only."""
        path = self._files.pop(job.id, None)
        if path is not None:
            try:
                path.unlink(missing_ok=True)
            except OSError as err:
                log.warning("job %s: its queue file could not be removed: %s", job.id, err)
            try:
                path.parent.rmdir()  # only when empty (else OSError: another job still waits)
            except OSError:
                pass

    def restore_queued(self) -> list[Job]:
        """Put back the jobs that were waiting (or had not made a run folder yet) when the previous server
        stopped, under their old ids and in their old order; a job already on this queue is not added twice, a
        resume of a run that is gone or already queued is dropped, and an unreadable entry is logged and removed.
        Returns the jobs queued."""
        import json

        folder = runs_dir(self.runs_root) / QUEUE_FOLDER
        if not folder.is_dir():
            return []
        entries = []
        for path in folder.glob("*.json"):
            try:
                entry = json.loads(path.read_text(encoding="utf-8"))
                job = self._job_from_entry(entry)
            except (OSError, ValueError, TypeError, KeyError, AttributeError, TransferLabError) as err:
                log.warning("queued job %s cannot be restored (%s); dropped", path.stem, err)
                path.unlink(missing_ok=True)
                continue
            if job is None:
                path.unlink(missing_ok=True)
                continue
            entries.append((job, path))
        restored = []
        with self._lock:
            known = set(self._jobs)
            active = {j.resume for j in self._jobs.values() if j.status in ("queued", "running") and j.resume}
        for job, path in sorted(entries, key=lambda e: e[0].submitted):
            if job.id in known:
                continue  # this queue has it already (its file is its own)
            if job.resume is not None and job.resume in active:
                path.unlink(missing_ok=True)  # the run is on the queue already (resume_interrupted found it)
                continue
            log.info("restoring queued job %s", job.id)
            restored.append(self._enqueue(job))
        try:
            folder.rmdir()  # every entry was dropped: a store with nothing waiting holds run folders only
        except OSError:
            pass  # jobs wait in it
        return restored

    def _job_from_entry(self, entry: dict) -> Job | None:
        """The Job an entry of ``.queue/`` describes (None when there is nothing left to do: its run is gone, or
        the run it resumes has completed); bad settings raise their one sentence."""
        job_id, kind = entry["id"], entry.get("kind", "train")
        if not (isinstance(job_id, str) and job_id.isalnum() and len(job_id) <= 32) or kind not in ("train", "evaluate"):
            raise ValueError("not a job entry")
        submitted = float(entry.get("submitted") or time.time())
        group = entry.get("group") if isinstance(entry.get("group"), str) else None
        if entry.get("resume"):
            from core.store.runs import open_run

            try:
                run = open_run(entry["resume"], self.runs_root, confined=True)
            except TransferLabError:
                return None  # deleted since (or outside this store): nothing to resume
            if run.read_status().get("status") == "completed":
                return None
            return Job(id=job_id, cfg=None, resume=str(run.path), kind=kind, group=group, submitted=submitted)
        cfg = TrainConfig.from_json(entry["config"]).validate()
        return Job(id=job_id, cfg=cfg, kind=kind, group=group, submitted=submitted)

    def _job(self, job_id) -> Job:
        """The job with this id (call with the lock held); one sentence for an unknown id or one that is not a
        string (an API client can send anything)."""
        job = self._jobs.get(job_id) if isinstance(job_id, str) else None
        if job is None:
            raise BadSettingError("That training job is not known to this server (it may have restarted).")
        return job

    def position(self, job_id: str) -> int:
        """0 while running or finished, else how many jobs are ahead of it (1 = next)."""
        with self._lock:
            job = self._job(job_id)
            if job.status != "queued":
                return 0
            waiting = [j for j in self._order if self._jobs[j].status in ("queued", "running")]
            return waiting.index(job_id)

    def snapshot(self, job_id: str) -> dict:
        """A copy of the job's state that is safe to hand to the UI."""
        with self._lock:
            job = self._job(job_id)
            data = {f.name: getattr(job, f.name) for f in dataclasses.fields(job) if f.name not in ("cancel", "cfg")}
            data["history"] = list(job.history)
            data["config"] = job.cfg.to_json() if job.cfg else None
            data["cancelling"] = job.cancel.is_set() and job.status == "running"
        data["position"] = self.position(job_id)
        return data

    def jobs(self) -> list[dict]:
        with self._lock:
            ids = list(self._order)
        return [self.snapshot(j) for j in ids]

    def cancel(self, job_id: str) -> None:
        """Ask a job to stop: a queued one never starts; a running one checkpoints and stops within one batch, in
        any phase, and says "Cancelling" at once."""
        with self._lock:
            job = self._job(job_id)
            job.cancel.set()
            if job.status == "queued":
                job.status, job.message, job.finished = "cancelled", "Cancelled before it started.", time.time()
                self._forget(job)
            elif job.status == "running":
                job.message = "Cancelling: the job stops at its next batch and keeps its checkpoint."

    def wait(self, job_id: str, timeout: float | None = None) -> dict:
        """Block until the job ends (for scripts and tests)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            snap = self.snapshot(job_id)
            if snap["status"] in FINAL:
                return snap
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {snap['status']} after {timeout} s")
            time.sleep(0.1)

    # -- the worker -----------------------------------------------------------------------------------------
    def _update(self, job: Job, **changes) -> None:
        with self._lock:
            had_run = job.run_dir is not None
            for k, v in changes.items():
                setattr(job, k, v)
            if job.run_dir is not None and not had_run:
                self._forget(job)  # the run folder is what a restart resumes from now on

    def _next_job(self, worker: int) -> Job:
        """Block until a job is queued, then mark the oldest queued one as running on this (idle) worker: jobs
        start in the order they were submitted, each on whichever worker comes free first."""
        with self._queued:
            while True:
                job = next((self._jobs[j] for j in self._order if self._jobs[j].status == "queued"), None)
                if job is not None:  # a job cancelled while queued is "cancelled" and never starts
                    job.status, job.started, job.message, job.worker = "running", time.time(), "Starting.", worker
                    return job
                self._queued.wait()

    def _job_device(self, job: Job, worker: int) -> int | None:
        """The GPU this worker trains the job on, or None for a CPU job (or a machine without one)."""
        if not self.gpus:
            return None
        choice = job.cfg.device if job.cfg is not None else _saved_device(job.resume, self.runs_root)
        return None if choice == "cpu" else worker

    def _work(self, worker: int) -> None:
        from contextlib import nullcontext

        while True:
            job = self._next_job(worker)
            try:
                gpu = self._job_device(job, worker)
                self._update(job, device=f"cuda:{gpu}" if gpu is not None else "zerogpu" if _on_zerogpu() else "cpu")
                with nullcontext() if gpu is None else _on_gpu(gpu):
                    self._run(job)
            except CancelledError as err:
                self._update(job, status="cancelled", message=str(err))
            except TransferLabError as err:
                self._update(job, status="failed", message=str(err))
            except Exception:  # never let one job kill the worker
                log.exception("training job %s failed", job.id)
                self._update(job, status="failed", message="Training failed unexpectedly; the details are in the "
                                                           "server log and the last checkpoint is kept.")
            finally:
                self._update(job, finished=time.time())
                with self._lock:
                    self._forget(job)

    def _run(self, job: Job) -> None:
        from core.engine.fit import train
        from core.starter import is_evaluation_only, record_pretrained

        def on_progress(p) -> None:
            self._update(job, progress=dataclasses.asdict(p), run_dir=p.run_dir or job.run_dir)

        def on_epoch(row: dict) -> None:
            with self._lock:
                job.history.append(row)

        kwargs = dict(runs_root=self.runs_root, on_progress=on_progress, on_epoch=on_epoch, cancel=job.cancel)
        if job.kind == "evaluate" or (job.resume is not None and is_evaluation_only(job.resume, self.runs_root)):
            # nothing trains, so there is nothing to slice or budget: one evaluation (on ZeroGPU, one GPU call)
            run = _zerogpu_call(lambda: record_pretrained(job.cfg, resume=job.resume, runs_root=self.runs_root,
                                                          on_progress=on_progress, cancel=job.cancel),
                                self.slice_minutes or 10)
            status = run.read_status()
            self._update(job, run_dir=str(run.path), status=status["status"], message=status["message"])
            return
        if job.resume is not None:  # curves continue from what the run already has
            from core.store.runs import open_run

            self._update(job, run_dir=job.resume, history=open_run(job.resume, self.runs_root).read_history())
        user_minutes = (job.cfg.max_minutes if job.cfg is not None else
                        _saved_budget(job.resume, self.runs_root))  # the user's own budget for the whole job
        t0 = time.monotonic()

        def this_slice() -> float | None:
            """Minutes for the next call: the slice, cut to what is left of the user's budget."""
            left = None if not user_minutes else max(user_minutes - (time.monotonic() - t0) / 60, 0.0)
            if not self.slice_minutes:
                return left
            return self.slice_minutes if left is None else min(self.slice_minutes, left)

        first = this_slice()
        run = _zerogpu_call(lambda: train(job.cfg, resume=job.resume, max_minutes=first, **kwargs),
                            first or 60)
        self._update(job, run_dir=str(run.path))
        # ZeroGPU slices: keep resuming while the run stops on a slice's budget and the user's has time left.
        while self.slice_minutes and run.read_status()["status"] == "stopped" and not job.cancel.is_set():
            minutes = this_slice()
            if minutes is not None and minutes <= 0:
                run.set_status("stopped", f"Stopped by the {user_minutes:g}-minute budget; resume it from the Runs "
                                          f"tab or with: python -m core train --resume {run.path}")
                break
            run = _zerogpu_call(lambda: train(resume=str(run.path), max_minutes=minutes, **kwargs), minutes)
        status = run.read_status()
        self._update(job, status=status["status"], message=status["message"])


def _on_gpu(index: int):
    """Make GPU ``index`` the current CUDA device of the calling thread while the block runs (cudaSetDevice is
    per host thread), so the engine's ``cuda`` device is that GPU for this worker's job only."""
    import torch

    return torch.cuda.device(index)


def auto_resume_enabled() -> bool:
    """Whether the app resumes interrupted runs when it starts: yes unless ``TRANSFER_LAB_AUTO_RESUME`` is 0 (or
    false, no, off)."""
    return os.environ.get("TRANSFER_LAB_AUTO_RESUME", "1").strip().lower() not in ("0", "false", "no", "off")


def resume_interrupted(runs_root: str | None = None, queue: JobQueue | None = None) -> list[Job]:
    """Put every interrupted run back on the queue: each run whose status.json still says "running" but whose
    training process is gone (core.store.runs.process_gone: a dead pid on this host, or a stale heartbeat), as
    after a restart of the app or a crash. Runs stopped on purpose (cancelled, Ctrl-C, a time budget) are left for
    their owner to resume. Returns the jobs submitted (``queue``: the app's shared one; None makes one).

    >>> resume_interrupted(None, jobs())   # app.py at start                           # doctest: +SKIP
    [Job(id='3fa2...', resume='runs/20261202-...-mlp-scratch-1a2b', ...)]
    """
    from core.store.runs import list_runs, open_run, process_gone

    queue = queue if queue is not None else JobQueue(runs_root=runs_root)
    active = {snap["resume"] for snap in queue.jobs() if snap["status"] in ("queued", "running") and snap["resume"]}
    submitted = []
    for row in reversed(list_runs(runs_root)):  # oldest first: they were started first
        if row["status"] != "interrupted" or row["path"] in active:
            continue
        if not process_gone(open_run(row["path"], runs_root).read_raw_status()):
            continue  # "interrupted" written by the run itself (Ctrl-C): its owner stopped it
        log.info("resuming interrupted run %s", row["id"])
        submitted.append(queue.submit_resume(row["path"]))
    return submitted
