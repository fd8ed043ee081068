"""The run store: one folder per run, plain files only.

``runs/<id>/``
  config.json        the TrainConfig, the model spec, where the weights came from, parameter counts
  status.json        queued | running | completed | cancelled | stopped | failed | interrupted, a one-sentence
                     message, and while running the pid, host and heartbeat time of the training process
  history.jsonl      one JSON object per epoch (losses, metrics, learning rate, train and validation seconds)
  steps.jsonl        one JSON object every ``log_every`` steps (epoch, global step, mean loss, lr, seconds)
  metrics.json       final test metrics
  predictions.jsonl  one JSON object per test example (id, label, prediction, probabilities, ...)
  weights.safetensors            trainable parameters and all buffers (frozen pretrained weights are rebuilt)
  checkpoint/state.json          progress, scheduler and RNG state (JSON), for --resume
  checkpoint/optimizer.safetensors

Nothing is ever unpickled: tensors go through safetensors, everything else through JSON. Every file is written
atomically (a temporary name, fsync, rename), so a crash leaves the old file or the new one, never half of one.

A run whose status says ``running`` but whose process is gone (its pid is not alive on this host, or its
heartbeat is older than ``STALE_SECONDS``) is read as ``interrupted``: resumable, from its checkpoint or, without
one, from the start.

Run references: ``open_run(ref)`` accepts any folder (the CLI: the user's own machine); the app's handlers go
through ``resolve_run_ref`` / ``open_run(ref, confined=True)``, which accept only runs inside the run store, with
symlinks and ``..`` resolved, so a client cannot make the server read folders elsewhere.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.engine.rows import PredictionRow
from core.errors import RunNotFoundError
from core.paths import runs_dir
from core.weights import WeightsSource

if TYPE_CHECKING:  # torch and safetensors load when tensors are read or written: the first page needs neither
    import torch

STATUSES = ("queued", "running", "completed", "cancelled", "stopped", "failed", "interrupted")
RESUMABLE = ("cancelled", "stopped", "interrupted")  # statuses a run can be resumed from
HEARTBEAT_SECONDS = 10.0  # a training process rewrites status.json at least this often
STALE_SECONDS = 120.0  # a "running" heartbeat older than this means the process is gone (e.g. another host)
HOST = socket.gethostname()
_STATUS_LOCK = threading.Lock()  # the heartbeat thread's read-modify-write must not undo a status change


def _tmp_name(path: Path) -> Path:
    # unique per writer: two threads writing the same file never share a temporary
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}.tmp")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary name, fsync, rename over ``path``: readers see the old file or the new one."""
    tmp = _tmp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _write_json_atomic(path: Path, obj) -> None:
    _write_bytes_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False).encode("utf-8"))


def _write_jsonl_atomic(path: Path, rows) -> None:
    _write_bytes_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8"))


def _save_tensors_atomic(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    tmp = _tmp_name(path)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _load_tensors(path: Path, what: str, run_id: str) -> dict[str, torch.Tensor]:
    """load_file with one sentence for a truncated or corrupt file (safetensors raises its own error types)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError, EOFError):
        raise RunNotFoundError(f"The {what} of run {run_id} ({path.name}) is truncated or corrupt; resume from an "
                               "earlier copy or train the run again.") from None


def pid_alive(pid) -> bool:
    """True when a process with this id exists on this machine."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def process_gone(status: dict, now: float | None = None) -> bool:
    """True when a "running" status.json belongs to a process that no longer runs: its pid is dead on this host,
    or its heartbeat is older than STALE_SECONDS (also the rule for a run written on another host)."""
    if status.get("status") != "running":
        return False
    now = time.time() if now is None else now
    beat = status.get("heartbeat", status.get("updated"))
    if isinstance(beat, (int, float)) and now - beat > STALE_SECONDS:
        return True
    if status.get("host") == HOST and "pid" in status:
        return not pid_alive(status["pid"])
    return False


@dataclass
class Run:
    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    # -- config and status -----------------------------------------------------------------------------------
    def read_config(self) -> dict:
        try:
            data = json.loads((self.path / "config.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            raise RunNotFoundError(f"The config.json of run {self.id} is missing or unreadable.") from None
        if not isinstance(data, dict):
            raise RunNotFoundError(f"The config.json of run {self.id} is not a JSON object.")
        return data

    def train_config(self):
        """The run's TrainConfig, validated; one sentence when config.json lacks its settings or they are bad."""
        from core.config import TrainConfig  # core.config imports the registry, which is heavy at import time

        train = self.read_config().get("train")
        if not isinstance(train, dict) or not train.get("task") or not train.get("model"):
            raise RunNotFoundError(f"The config.json of run {self.id} has no training settings (its \"train\" "
                                   "entry with a task and a model), so the run cannot be reopened.")
        try:
            return TrainConfig.from_json(train).validate()
        except TypeError:
            raise RunNotFoundError(f"The training settings in the config.json of run {self.id} are malformed.") \
                from None

    def write_config(self, config: dict) -> None:
        _write_json_atomic(self.path / "config.json", config)

    def name(self) -> str | None:
        """The run's friendly name (its TrainConfig ``name``), None when it has none."""
        train = self.read_config().get("train")
        name = train.get("name") if isinstance(train, dict) else None
        return name if isinstance(name, str) and name.strip() else None

    def rename(self, name: str | None) -> str | None:
        """Set (or, with a blank name, clear) the run's friendly name in its config.json, written atomically;
        returns the name as stored. One sentence for a bad name (core.config.clean_run_name) or a config without
        training settings.

        >>> open_run("20261202-184012-mlp-scratch-1a2b").rename("  my first run ")      # doctest: +SKIP
        'my first run'
        """
        from core.config import clean_run_name  # core.config imports the registry, which is heavy at import time

        cleaned = clean_run_name(name)
        config = self.read_config()
        if not isinstance(config.get("train"), dict):
            raise RunNotFoundError(f"The config.json of run {self.id} has no training settings to name.")
        config["train"] = {**config["train"], "name": cleaned}
        self.write_config(config)
        return cleaned

    def set_status(self, status: str, message: str = "", **extra) -> None:
        """Write status.json; a "running" status also records this process (pid, host) and a heartbeat time."""
        if status not in STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        now = time.time()
        record = {"status": status, "message": message, "updated": now}
        if status == "running":
            record.update(pid=os.getpid(), host=HOST, heartbeat=now)
        with _STATUS_LOCK:
            _write_json_atomic(self.path / "status.json", {**record, **extra})

    def heartbeat(self) -> None:
        """Refresh a running status's heartbeat time (a thread of the training process, every
        HEARTBEAT_SECONDS); a status that is no longer "running" is left alone."""
        with _STATUS_LOCK:
            current = self.read_raw_status()
            if current.get("status") == "running" and current.get("pid") == os.getpid():
                _write_json_atomic(self.path / "status.json", {**current, "heartbeat": time.time()})

    def read_raw_status(self) -> dict:
        p = self.path / "status.json"
        try:
            return json.loads(p.read_text()) if p.is_file() else {"status": "queued", "message": ""}
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return {"status": "failed", "message": "The run's status file is unreadable."}

    def read_status(self) -> dict:
        """status.json, with a "running" run whose process is gone read as "interrupted" (resumable)."""
        status = self.read_raw_status()
        if process_gone(status):
            where = "its last checkpoint" if self.has_checkpoint() else "the start (no checkpoint was written yet)"
            status = {**status, "status": "interrupted",
                      "message": f"Interrupted: the training process stopped (a restart or a crash); resume it to "
                                 f"continue from {where}."}
        return status

    # -- history, metrics, predictions -----------------------------------------------------------------------
    def append_history(self, row: dict) -> None:
        """Rewrite history.jsonl with one more row (atomically: an epoch's row is there whole or not at all)."""
        self.write_history([*self.read_history(), row])

    def write_history(self, rows: list[dict]) -> None:
        _write_jsonl_atomic(self.path / "history.jsonl", rows)

    def read_history(self) -> list[dict]:
        return _read_jsonl(self.path / "history.jsonl")

    def append_step(self, row: dict) -> None:
        """Append one step-history row to steps.jsonl as a single line write; a line torn by a crash is skipped
        when reading, and a resume rewrites the file (atomically) up to its checkpoint."""
        with open(self.path / "steps.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def write_steps(self, rows: list[dict]) -> None:
        _write_jsonl_atomic(self.path / "steps.jsonl", rows)

    def read_steps(self) -> list[dict]:
        """The per-step training loss history: [{"epoch", "step", "loss", "lr", "seconds"}, ...]."""
        return _read_jsonl(self.path / "steps.jsonl", skip_torn=True)

    def write_metrics(self, metrics: dict) -> None:
        _write_json_atomic(self.path / "metrics.json", metrics)

    def read_metrics(self) -> dict | None:
        p = self.path / "metrics.json"
        return json.loads(p.read_text()) if p.is_file() else None

    def write_predictions(self, rows: list) -> None:
        """One JSON line per test example: the task's PredictionRow dataclasses (or plain dicts)."""
        _write_jsonl_atomic(self.path / "predictions.jsonl",
                            (r.to_json() if isinstance(r, PredictionRow) else dict(r) for r in rows))

    def read_predictions(self) -> list[dict]:
        return _read_jsonl(self.path / "predictions.jsonl")

    # -- weights and checkpoints -----------------------------------------------------------------------------
    def save_weights(self, tensors: dict[str, torch.Tensor]) -> None:
        _save_tensors_atomic(self.path / "weights.safetensors", tensors)

    def load_weights(self) -> dict[str, torch.Tensor]:
        p = self.path / "weights.safetensors"
        if not p.is_file():
            raise RunNotFoundError(f"Run {self.id} has no saved weights yet.")
        return _load_tensors(p, "weights file", self.id)

    def has_checkpoint(self) -> bool:
        return (self.path / "checkpoint" / "state.json").is_file()

    def save_checkpoint(self, state: dict, optimizer_tensors: dict[str, torch.Tensor]) -> None:
        """Optimizer tensors first, state.json last: a state.json on disk always has its tensors."""
        ck = self.path / "checkpoint"
        ck.mkdir(exist_ok=True)
        _save_tensors_atomic(ck / "optimizer.safetensors", optimizer_tensors)
        _write_json_atomic(ck / "state.json", state)

    def load_checkpoint(self) -> tuple[dict, dict[str, torch.Tensor]]:
        ck = self.path / "checkpoint"
        if not (ck / "state.json").is_file():
            raise RunNotFoundError(f"Run {self.id} has no checkpoint to resume from.")
        try:
            state = json.loads((ck / "state.json").read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            raise RunNotFoundError(f"The checkpoint of run {self.id} (state.json) is truncated or corrupt; train "
                                   "the run again.") from None
        return state, _load_tensors(ck / "optimizer.safetensors", "checkpoint", self.id)

    def summary(self) -> dict:
        """One row for run lists: id, task, model, strategy, status, headline metric, date."""
        try:
            cfg = self.read_config()
        except (OSError, json.JSONDecodeError):
            cfg = {}
        train = cfg.get("train", {})
        metrics = self.read_metrics() or {}
        status = self.read_status()
        headline_name = cfg.get("headline_metric", "accuracy")
        return {
            "id": self.id,
            "name": train.get("name") if isinstance(train.get("name"), str) else None,
            "path": str(self.path),
            "task": train.get("task"),
            "model": train.get("model"),
            "strategy": train.get("strategy"),
            "status": status.get("status"),
            "message": status.get("message", ""),
            "headline_metric": headline_name,
            "headline": metrics.get(headline_name),
            "created": cfg.get("created"),
            "weights": weights_label(cfg.get("weights")),
        }


def weights_label(record) -> str | None:
    """"pretrained (<where from>)" or "untrained" for a config.json ``weights`` record; None when absent."""
    try:
        source = WeightsSource.from_json(record)
    except RunNotFoundError:
        return None
    return f"pretrained ({source.label()})" if source.pretrained else "untrained"


def _read_jsonl(path: Path, skip_torn: bool = False) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                if not skip_torn:
                    raise
    return rows


RUN_ID_TIME = "%Y%m%d-%H%M%S"  # how a run id begins: when the run was created, local time


def new_run_id(model: str, strategy: str) -> str:
    return f"{time.strftime(RUN_ID_TIME)}-{model}-{strategy}-{secrets.token_hex(2)}"


def run_id_time(run_id: str) -> time.struct_time | None:
    """When a run was created, read from the start of its id; None for an id that does not begin with one.

    >>> time.strftime("%m-%d %H:%M", run_id_time("20261202-184012-mlp-scratch-1a2b"))
    '12-02 18:40'
    """
    try:
        return time.strptime(str(run_id)[:15], RUN_ID_TIME)
    except ValueError:
        return None


def create_run(model: str, strategy: str, root: str | os.PathLike | None = None) -> Run:
    base = runs_dir(root)
    base.mkdir(parents=True, exist_ok=True)
    path = base / new_run_id(model, strategy)
    path.mkdir()
    run = Run(path)
    run.set_status("queued")
    return run


def resolve_run_ref(ref, root: str | os.PathLike | None = None) -> Path:
    """The folder of a run inside the run store, for a run id or a path; RunNotFoundError (one sentence) for
    anything else: a folder outside the store (after resolving symlinks and ``..``), the store itself, a
    non-string, or a run that does not exist. What the app's handlers use for every run a client names.

    >>> resolve_run_ref("/etc")                                    # doctest: +SKIP
    RunNotFoundError: '/etc' is not a run of the run store.
    """
    if not isinstance(ref, (str, os.PathLike)) or not str(ref).strip() or "\x00" in str(ref):
        raise RunNotFoundError("Name a run of the run store (its id).")
    text = str(ref).strip()
    base = runs_dir(root).resolve()
    given = Path(text).expanduser()
    by_id = not given.is_absolute() and len(given.parts) == 1
    candidate = base / text if by_id else given
    try:
        resolved = candidate.resolve()
    except (OSError, RuntimeError):
        raise RunNotFoundError(f"'{_short(text)}' is not a run of the run store.") from None
    if resolved.parent != base:  # exactly one level below the store: runs/<id>
        raise RunNotFoundError(f"'{_short(text)}' is not a run of the run store.")
    if not (resolved / "config.json").is_file():
        if by_id:
            raise RunNotFoundError(f"No run '{_short(text)}' in the run store (it may have been deleted).")
        raise RunNotFoundError(f"No run at '{_short(text)}' (it may have been deleted).")
    return resolved


def _short(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[:n] + "…"


def open_run(ref: str | os.PathLike, root: str | os.PathLike | None = None, confined: bool = False) -> Run:
    """A run by folder path or by id inside the run store.

    ``confined=True`` (every app handler): only runs inside the store, see resolve_run_ref. The CLI leaves it
    off: a folder the user types on their own machine is theirs to open.
    """
    if confined:
        return Run(resolve_run_ref(ref, root))
    if not isinstance(ref, (str, os.PathLike)):
        raise RunNotFoundError("Name a run by its folder or id.")
    p = Path(ref)
    if not p.is_dir():
        p = runs_dir(root) / str(ref)
    if not (p / "config.json").is_file():
        raise RunNotFoundError(f"No run at '{_short(str(ref))}' (it may have been deleted).")
    return Run(p)


def list_runs(root: str | os.PathLike | None = None, task: str | None = None) -> list[dict]:
    """Summaries of every run, newest first."""
    base = runs_dir(root)
    if not base.is_dir():
        return []
    rows = [Run(p).summary() for p in base.iterdir() if (p / "config.json").is_file()]
    rows = [r for r in rows if task is None or r["task"] == task]
    return sorted(rows, key=lambda r: r["id"], reverse=True)


def delete_run(ref: str | os.PathLike, root: str | os.PathLike | None = None, confined: bool = False) -> None:
    run = open_run(ref, root, confined)
    shutil.rmtree(run.path)
