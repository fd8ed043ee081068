"""One training engine for every task: fit(), checkpoints, resume, time budget, cancellation.

The engine knows nothing about images, tweets or questions: a TaskRun (core/tasks) gives it batches, a loss per
batch and an evaluation. It builds the optimizer from trainable parameters only (frozen layers never reach it),
uses bf16 autocast on a GPU, steps ReduceLROnPlateau on the validation monitor (or StepLR), and writes the run
store as it goes, so a crash, a cancel or the end of the time budget loses at most the current epoch's steps
since the last checkpoint — and a stop or cancel checkpoints first.

Determinism: the batch order of epoch e depends only on (seed, e); dropout draws from the global torch RNG,
whose state is saved in every checkpoint. So on CPU a run interrupted and resumed ends with the same weights
and metrics as one that never stopped.

Micro-batches and processes: each optimizer step's batch can be cut into micro-batches (``micro_batch``: forward
and backward per piece, each loss weighted by its share of the batch, one step) and shared by several processes
(``devices``, core/engine/distributed.py: each takes a contiguous slice, DistributedDataParallel sums the
gradients). Both give the update of the whole batch at once, up to float rounding, for a loss that is a mean of
per-example losses that do not depend on the other examples of the batch. Not covered: BatchNorm layers in
training mode (their statistics are the piece's), dropout (different draws of the same distribution) and the QA
loss over padded positions (a piece is trimmed to its own longest window).

Safety: a checkpoint is also written every ``checkpoint_minutes`` within an epoch, so a crash loses at most that;
a heartbeat thread keeps status.json's pid/heartbeat fresh, so a run whose process died reads as "interrupted";
a cancel is honoured in every phase (data, frozen-feature cache, training, validation, test) through the progress
callback; and a loss that turns non-finite or grows far above its start stops the run ("failed", one sentence
saying to lower the learning rate), keeping the last good checkpoint.

>>> run = train(TrainConfig(task="images", model="efficientnet_lite0", epochs=1, train_limit=200))  # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from core import registry
from core.config import TrainConfig
from core.engine import distributed
from core.engine.checkpoint import optimizer_from_safe, optimizer_to_safe
from core.engine.distributed import FollowerRun, Group
from core.engine.interactive import yield_to_requests
from core.engine.runtime import large_blocks_released, tune_cpu_allocator
from core.engine.task import TaskRun
from core.errors import BadSettingError, CancelledError, OutOfMemoryError, TransferLabError
from core.freezing import set_train_mode, trainable_parameters
from core.store.runs import HEARTBEAT_SECONDS, Run, create_run, open_run
from core.weights import WeightsSource

log = logging.getLogger(__name__)
DIVERGENCE_FACTOR = 1e3  # a training loss above factor x the run's first loss, plus the floor, is divergence
DIVERGENCE_FLOOR = 10.0


@dataclass
class Progress:
    """What a progress callback receives, after every step and phase change."""

    phase: str  # "cache", "train", "eval:val", "eval:test", "done"
    epoch: int  # 0-based
    epochs: int
    step: int  # steps done in this epoch (or items done in a cache/eval phase)
    steps: int  # steps in this epoch (or items in the phase)
    global_step: int
    total_steps: int
    loss: float | None
    elapsed: float  # seconds since this process started the run
    eta: float | None  # seconds left for training, from the mean step time so far
    message: str = ""
    run_dir: str = ""


ProgressCallback = Callable[[Progress], None]
EpochCallback = Callable[[dict], None]


@dataclass
class FitState:
    epoch: int = 0  # epoch in progress (0-based)
    step_in_epoch: int = 0  # batches of that epoch already done
    global_step: int = 0
    train_loss_sum: float = 0.0  # running sums of the epoch in progress
    train_correct: int = 0
    train_count: int = 0
    epoch_seconds: float = 0.0  # training seconds spent in the epoch in progress
    first_loss: float | None = None  # the run's first training loss: what the divergence guard compares with
    log_loss_sum: float = 0.0  # the step-history interval in progress: summed step losses, steps, seconds
    log_steps: int = 0
    log_seconds: float = 0.0
    history: list[dict] = field(default_factory=list)


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise BadSettingError("A GPU was asked for but none is available on this machine.")
    return torch.device(name)


def make_task(cfg: TrainConfig, device: torch.device | None = None) -> TaskRun:
    tune_cpu_allocator()
    return registry.get_task(cfg.task).adapter_class()(cfg, device or pick_device(cfg.device))


def make_optimizer(cfg: TrainConfig, params: list[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
    if not params:
        raise BadSettingError("This strategy leaves no parameter trainable.")
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":  # the course's MLP: SGD with (Nesterov) momentum
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=cfg.weight_decay)


def make_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer):
    if cfg.scheduler == "plateau":
        # mode max: the monitor is an accuracy/F1; factor 0.6 and floor 1e-7 as in the course's experiments.
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=cfg.plateau_factor,
                                                          patience=cfg.plateau_patience, min_lr=cfg.min_lr)
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.step_gamma)
    return None


def use_bf16(precision: str, device: torch.device) -> bool:
    """Whether training runs under bf16 autocast: always for "bf16", never for "fp32"; "auto" only on a GPU
    (on a CPU, bf16 autocast has not been measured against fp32 yet, so auto keeps fp32 there)."""
    if precision == "bf16":
        return True
    if precision == "fp32":
        return False
    return device.type == "cuda"


def _autocast(device: torch.device, precision: str = "auto"):
    if use_bf16(precision, device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def log_interval(log_every: int, steps_per_epoch: int) -> int:
    """Steps between step-history points: ``log_every``, or with 0 about 50 points per epoch (at least 1 step)."""
    return log_every if log_every > 0 else max(1, steps_per_epoch // 50)


def _is_oom(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


class Trainer:
    """Runs one TaskRun to completion (or to a cancel / the time budget), writing the run store."""

    def __init__(self, task: TaskRun, run: Run, on_progress: ProgressCallback | None = None,
                 on_epoch: EpochCallback | None = None, cancel: threading.Event | None = None,
                 group: Group | None = None):
        self.task, self.run, self.cfg = task, run, task.cfg
        self.group = group or Group()  # the processes of a data-parallel run; one by default
        self.step_fn = None  # task.train_step, or the same under DistributedDataParallel (built by fit)
        self.on_progress, self.on_epoch = on_progress, on_epoch
        self.cancel = cancel or threading.Event()
        self.state = FitState()
        self.started = time.monotonic()
        # this process's time budget: the run's own, unless the caller (a ZeroGPU slice) sets a shorter one
        self.budget_minutes = self.cfg.max_minutes
        self.lr = self.cfg.resolved_lr(task.spec.default_lr)
        self.optimizer = make_optimizer(self.cfg, trainable_parameters(task.model), self.lr)
        self.scheduler = make_scheduler(self.cfg, self.optimizer)
        self.last_checkpoint = time.monotonic()

    # -- checkpoints ----------------------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        if not self.group.main:  # rank 0 alone writes the run store
            self.last_checkpoint = time.monotonic()
            return
        opt_meta, opt_tensors = optimizer_to_safe(self.optimizer)
        opt_tensors["rng/cpu"] = torch.get_rng_state()
        if torch.cuda.is_available():
            opt_tensors["rng/cuda"] = torch.cuda.get_rng_state()
        s = self.state
        self.run.save_weights(self.task.state_to_save())
        self.run.save_checkpoint({
            "epoch": s.epoch, "step_in_epoch": s.step_in_epoch, "global_step": s.global_step,
            "train_loss_sum": s.train_loss_sum, "train_correct": s.train_correct, "train_count": s.train_count,
            "epoch_seconds": s.epoch_seconds, "first_loss": s.first_loss,
            "log_loss_sum": s.log_loss_sum, "log_steps": s.log_steps, "log_seconds": s.log_seconds,
            "optimizer": opt_meta,
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
        }, opt_tensors)
        self.last_checkpoint = time.monotonic()

    def restore_checkpoint(self) -> None:
        meta, tensors = self.run.load_checkpoint()
        self.task.load_state(self.run.load_weights())
        torch.set_rng_state(tensors.pop("rng/cpu"))
        cuda_rng = tensors.pop("rng/cuda", None)
        if cuda_rng is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state(cuda_rng)
        optimizer_from_safe(self.optimizer, meta["optimizer"], tensors)
        if self.scheduler is not None and meta.get("scheduler") is not None:
            self.scheduler.load_state_dict(meta["scheduler"])
        s = self.state
        s.epoch, s.step_in_epoch, s.global_step = meta["epoch"], meta["step_in_epoch"], meta["global_step"]
        s.train_loss_sum, s.train_correct = meta["train_loss_sum"], meta["train_correct"]
        s.train_count, s.epoch_seconds = meta["train_count"], meta["epoch_seconds"]
        s.first_loss = meta.get("first_loss")
        s.log_loss_sum, s.log_steps = meta.get("log_loss_sum", 0.0), meta.get("log_steps", 0)
        s.log_seconds = meta.get("log_seconds", 0.0)
        if not self.group.main:  # the files below are rank 0's to rewrite
            return
        # Steps done after the checkpoint are redone: keep the step history up to it.
        self.run.write_steps([row for row in self.run.read_steps() if row["step"] <= s.global_step])
        # Epochs finished after the checkpoint was written are redone: keep history up to the checkpoint.
        s.history = [row for row in self.run.read_history() if row["epoch"] < s.epoch]
        self.run.write_history(s.history)

    # -- progress -------------------------------------------------------------------------------------------
    def _emit(self, phase: str, step: int, steps: int, loss: float | None = None, message: str = "",
              total_steps: int = 0, train_seconds: float = 0.0, steps_this_process: int = 0) -> None:
        if self.on_progress is None:
            return
        eta = None
        if phase == "train" and steps_this_process > 0:
            eta = train_seconds / steps_this_process * max(0, total_steps - self.state.global_step)
        self.on_progress(Progress(phase, self.state.epoch, self.cfg.epochs, step, steps, self.state.global_step,
                                  total_steps, loss, time.monotonic() - self.started, eta, message,
                                  str(self.run.path)))

    def _phase_progress(self, phase: str, done: int, total: int) -> None:
        """The tasks' ``progress(phase, done, total)`` during data, cache and evaluation phases: reports it and
        honours a cancel within one batch."""
        yield_to_requests(self.cancel)  # the app's prediction requests first (core/engine/interactive.py)
        self.check_cancel(phase)
        self._emit(phase, done, total)

    def check_cancel(self, phase: str) -> None:
        """Raise CancelledError when a cancel was asked for, after keeping what can be reused: in validation the
        epoch's steps are done, so they are checkpointed; earlier checkpoints always stay."""
        if not self.cancel.is_set():
            return
        s = self.state
        if phase == "eval:val":
            self.save_checkpoint()
        if self.run.has_checkpoint():
            where = f"at epoch {min(s.epoch + 1, self.cfg.epochs)} ({PHASE_WORDS.get(phase, phase)})"
            msg = f"Cancelled {where}; the checkpoint is kept and the run can be resumed."
        else:
            msg = (f"Cancelled while {PHASE_WORDS.get(phase, phase)}, before the first checkpoint; resuming it "
                   "starts it again from the beginning with the same settings.")
        self.run.set_status("cancelled", msg)
        raise CancelledError(msg)

    def _check_divergence(self, loss: float, where: str = "") -> None:
        """Stop on a non-finite loss or one far above the run's first training loss (training, validation and
        test losses alike: one step is enough to blow the weights up), with a sentence on what to change."""
        s = self.state
        if s.first_loss is None and math.isfinite(loss) and not where:
            s.first_loss = loss
            return
        limit = DIVERGENCE_FACTOR * abs(s.first_loss or 0.0) + DIVERGENCE_FLOOR
        if math.isfinite(loss) and loss <= limit:
            return
        where = where or f"step {s.step_in_epoch + 1}"
        kept = " The last good checkpoint is kept." if self.run.has_checkpoint() else ""
        start = f", against {s.first_loss:.3g} at the start" if s.first_loss is not None else ""
        raise DivergedError(f"Training diverged at epoch {min(s.epoch + 1, self.cfg.epochs)}, {where} (loss "
                            f"{loss:.3g}{start}): lower the learning rate (it is {self.lr:g}), e.g. by 10x.{kept}")

    # -- one step -------------------------------------------------------------------------------------------
    def train_one_step(self, batch) -> tuple[float, int, int]:
        """One optimizer step on one (global) batch; returns its mean loss, correct and examples, over every
        process.

        This process takes its contiguous slice of the batch and cuts it into pieces of at most ``micro_batch``;
        each piece's mean loss is weighted by its share of the global batch (times the number of processes, as
        DDP averages the processes' gradients), so the summed gradient is that of the whole batch's mean loss.
        A process whose slice is empty (a last batch smaller than the group) runs one example with weight 0, so
        that it still joins the gradient all-reduce.
        """
        cfg, task, g = self.cfg, self.task, self.group
        if self.step_fn is None:
            self.step_fn = g.wrap(task)
        n = task.batch_length(batch)
        start, stop = g.shard(n)
        mine = stop - start
        if not mine:
            local = task.slice_batch(batch, 0, 1)  # a stand-in with weight 0
        elif g.parallel:
            local = task.slice_batch(batch, start, stop)
        else:
            local = batch
        m = mine or 1
        size = cfg.micro_batch or m
        pieces = [(a, min(a + size, m)) for a in range(0, m, size)]
        self.optimizer.zero_grad(set_to_none=True)
        mean_loss, correct, count = 0.0, 0, 0
        for i, (a, b) in enumerate(pieces):
            piece = local if len(pieces) == 1 else task.slice_batch(local, a, b)
            with g.no_sync(self.step_fn, last=i == len(pieces) - 1):
                with _autocast(task.device, cfg.precision):
                    loss, c, k = self.step_fn(piece)
                share = k * g.world / n if mine else 0.0
                (loss if share == 1.0 else loss * share).backward()
            if mine:
                mean_loss += loss.detach().item() * (k / n)  # k / n is 1.0 for a whole batch: its loss exactly
                correct += c
                count += k
        if g.parallel:
            mean_loss, correct, count = g.sum([mean_loss, correct, count])
            correct, count = int(correct), int(count)
        self._check_divergence(mean_loss)  # before the step: a diverged loss never reaches the weights
        self.optimizer.step()
        return mean_loss, correct, count

    # -- the loop -------------------------------------------------------------------------------------------
    def fit(self) -> Run:
        """Train to the configured number of epochs, then evaluate on the test split.

        Returns the run. Raises CancelledError on a cancel (after checkpointing); a time-budget stop returns
        normally with status "stopped".
        """
        cfg, task, s = self.cfg, self.task, self.state
        budget = self.budget_minutes * 60 if self.budget_minutes else None
        steps_per_epoch = len(task.train_batches(0))
        total_steps = steps_per_epoch * cfg.epochs
        every = log_interval(cfg.log_every, steps_per_epoch)
        self.run.set_status("running", f"Training {cfg.model} ({cfg.strategy}).")
        train_seconds, steps_this_process = 0.0, 0
        if self.step_fn is None:  # every process builds DDP together (it broadcasts rank 0's weights)
            self.step_fn = self.group.wrap(task)

        while s.epoch < cfg.epochs:
            batches = task.train_batches(s.epoch)
            set_train_mode(task.model, True)
            t_epoch = time.monotonic()
            for batch in batches[s.step_in_epoch:]:
                yield_to_requests(self.cancel)  # the app's prediction requests first (core/engine/interactive.py)
                if self.group.any(self.cancel.is_set()):  # rank 0's cancel stops every process at this step
                    s.epoch_seconds += time.monotonic() - t_epoch
                    self.save_checkpoint()
                    msg = (f"Cancelled at epoch {s.epoch + 1}, step {s.step_in_epoch}; the checkpoint is kept and the "
                           "run can be resumed.")
                    self.run.set_status("cancelled", msg)
                    raise CancelledError(msg)
                if time.monotonic() - self.last_checkpoint > cfg.checkpoint_minutes * 60 and s.step_in_epoch:
                    now = time.monotonic()  # a crash within a long epoch loses at most checkpoint_minutes
                    s.epoch_seconds += now - t_epoch
                    t_epoch = now
                    self.save_checkpoint()
                t0 = time.monotonic()
                loss, correct, count = self.train_one_step(batch)
                dt = time.monotonic() - t0
                train_seconds += dt
                steps_this_process += 1
                s.step_in_epoch += 1
                s.global_step += 1
                s.train_loss_sum += loss * count
                s.train_correct += correct
                s.train_count += count
                s.log_loss_sum += loss
                s.log_steps += 1
                s.log_seconds += dt
                if s.log_steps >= every or s.step_in_epoch == len(batches):
                    self._log_steps()
                self._emit("train", s.step_in_epoch, len(batches), loss, total_steps=total_steps,
                           train_seconds=train_seconds, steps_this_process=steps_this_process)
                if budget is not None and s.step_in_epoch < len(batches) and \
                        self.group.any(time.monotonic() - self.started > budget):
                    s.epoch_seconds += time.monotonic() - t_epoch
                    self.save_checkpoint()
                    msg = (f"Stopped by the {self.budget_minutes:g}-minute budget at epoch {s.epoch + 1}, step "
                           f"{s.step_in_epoch}; resume with: python -m core train --resume {self.run.path}")
                    self.run.set_status("stopped", msg)
                    return self.run
            s.epoch_seconds += time.monotonic() - t_epoch
            self._end_epoch(total_steps)
            last = s.epoch >= cfg.epochs
            over_budget = budget is not None and self.group.any(time.monotonic() - self.started > budget)
            if last or over_budget or s.epoch % cfg.checkpoint_every == 0:
                self.save_checkpoint()
            if over_budget and not last:
                msg = (f"Stopped by the {self.budget_minutes:g}-minute budget after epoch {s.epoch}; resume with: "
                       f"python -m core train --resume {self.run.path}")
                self.run.set_status("stopped", msg)
                return self.run
        self.group.agree(self._final_evaluation, everyone=False)  # rank 0 tests and writes; the others wait
        return self.run

    def _log_steps(self) -> None:
        """One step-history point: the mean loss of the steps since the last one (an epoch's last steps close
        a shorter interval, so no point spans two epochs)."""
        s = self.state
        self.run.append_step({"epoch": s.epoch, "step": s.global_step, "loss": s.log_loss_sum / s.log_steps,
                              "lr": self.optimizer.param_groups[0]["lr"], "seconds": s.log_seconds})
        s.log_loss_sum, s.log_steps, s.log_seconds = 0.0, 0, 0.0

    def _end_epoch(self, total_steps: int) -> None:
        s, task = self.state, self.task
        row = {
            "epoch": s.epoch,
            "train_loss": s.train_loss_sum / max(1, s.train_count),
            "train_accuracy": s.train_correct / max(1, s.train_count),
            "lr": self.optimizer.param_groups[0]["lr"],
            "seconds": s.epoch_seconds,  # training seconds of the epoch
        }
        if task.has_split("val"):
            t0 = time.monotonic()

            def validate() -> tuple:
                self.check_cancel("eval:val")
                val = task.evaluate("val", self._phase_progress)
                self._check_divergence(float(val.metrics["loss"]), "validation")
                return val.metrics["loss"], val.metrics[task.monitor]

            # rank 0 validates; every process gets its figures, so their schedulers step alike
            row["val_loss"], monitor = self.group.agree(validate, everyone=False)
            row[f"val_{task.monitor}"] = monitor
            row["eval_seconds"] = time.monotonic() - t0
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.scheduler.step(monitor)
        if self.scheduler is not None and not isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step()
        s.history.append(row)
        self.run.append_history(row)
        if self.on_epoch:
            self.on_epoch(row)
        s.epoch += 1
        s.step_in_epoch = 0
        s.train_loss_sum, s.train_correct, s.train_count, s.epoch_seconds = 0.0, 0, 0, 0.0

    def _final_evaluation(self) -> None:
        self.check_cancel("eval:test")
        t0 = time.monotonic()
        result = self.task.evaluate("test", self._phase_progress)
        test_seconds = time.monotonic() - t0
        self._check_divergence(float(result.metrics["loss"]), "test")
        counts = self.task.parameter_counts()
        epoch_secs = [r["seconds"] for r in self.state.history]
        metrics = dict(result.metrics)
        metrics["parameters"] = counts
        metrics["seconds_per_epoch"] = epoch_secs
        metrics["mean_seconds_per_epoch"] = sum(epoch_secs) / len(epoch_secs) if epoch_secs else None
        metrics["test_seconds"] = test_seconds
        self.run.write_metrics(metrics)
        self.run.write_predictions(result.predictions)
        self.run.set_status("completed", f"Finished: test {self.task.headline} "
                                         f"{metrics.get(self.task.headline, float('nan')):.4f}.")
        self._emit("done", 1, 1)


PHASE_WORDS = {"data": "loading the data", "cache": "caching frozen features", "train": "training",
               "eval:val": "validating", "eval:test": "testing"}


class DivergedError(BadSettingError):
    """The training loss became non-finite or exploded: the learning rate (usually) is too high."""


@contextlib.contextmanager
def heartbeat(run: Run, seconds: float = HEARTBEAT_SECONDS):
    """While the block runs, a daemon thread refreshes the run's heartbeat; it dies with the process, which is
    what lets a restarted app see the run as interrupted."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(seconds):
            try:
                run.heartbeat()
            except OSError:  # the folder was deleted under us: nothing to keep fresh
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{run.id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def run_config(task: TaskRun, prepared: dict, lr: float) -> dict:
    cfg = task.cfg
    return {
        "train": cfg.to_json(),
        "lr": lr,
        "model_spec": task.spec.to_json(),
        "weights": task.model.weights.to_json(),  # a WeightsSource: what reopening rebuilds the frozen part from
        "parameters": task.parameter_counts(),
        "frozen_fingerprint": task.frozen_fingerprint(),
        "headline_metric": task.headline,
        "device": str(task.device),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **task.describe(),
        **prepared,
    }


def train(cfg: TrainConfig | None = None, *, resume: str | None = None, runs_root: str | None = None,
          on_progress: ProgressCallback | None = None, on_epoch: EpochCallback | None = None,
          cancel: threading.Event | None = None, max_minutes: float | None = None) -> Run:
    """Train a new run from ``cfg``, or continue the run at ``resume`` from its last checkpoint.

    ``max_minutes``: a time budget for this call only (it stops at a checkpoint with status "stopped"), e.g. one
    ZeroGPU slice; the run's own ``max_minutes`` (its config) is left as the user set it.

    Typed errors (TransferLabError) leave the run folder with status "failed" and a one-sentence message; what
    was already checkpointed stays on disk.

    Inside torch.distributed.run (``devices`` > 1, core/engine/distributed.py) every process calls this: rank 0
    creates and writes the run, the others follow it; a resumed run continues with however many processes this
    launch has (its checkpoint holds plain weights).
    """
    from_checkpoint = False
    if resume is not None:
        run = open_run(resume, runs_root)
        saved = run.read_config()
        cfg = run.train_config()  # one sentence when config.json lacks or garbles its settings
        group = distributed.setup(cfg.device)
        from_checkpoint = run.has_checkpoint()
        if not from_checkpoint:  # cancelled or interrupted before its first checkpoint: start it again, same config
            if run.read_status().get("status") == "completed":
                raise BadSettingError(f"Run {run.id} is completed and has no checkpoint to continue from.")
            if group.main:
                run.write_history([])
                run.write_steps([])
    else:
        if cfg is None:
            raise BadSettingError("Give a training configuration or a run to resume.")
        cfg.validate()  # the task, model and strategy fit together, and every setting is in range
        group = distributed.setup(cfg.device)
        _check_processes(cfg, group)
        run = group.agree(lambda: create_run(cfg.model, cfg.strategy, runs_root), everyone=False)
    if not group.main:
        run = FollowerRun(run)
        on_progress = on_epoch = None  # the console and the app hear from rank 0
    cancel = cancel or threading.Event()
    run.set_status("running", f"Preparing {cfg.model} ({cfg.strategy}): loading the data.")
    together = False  # every process ended at the same point: they leave the group together
    try:
        with heartbeat(run) if group.main else contextlib.nullcontext(), \
                large_blocks_released(cfg.activation_checkpointing):  # runtime.py: recomputed layers fragment the heap
            done = _train_in(run, cfg, saved if resume is not None else None, from_checkpoint, on_progress,
                             on_epoch, cancel, max_minutes, group)
        together = True
        return done
    except CancelledError as err:
        together = True  # a cancel is heard by every process at the same step (Group.any)
        if run.read_raw_status().get("status") != "cancelled":
            run.set_status("cancelled", str(err))
        raise
    except TransferLabError as err:
        run.set_status("failed", str(err))
        raise
    except (RuntimeError, torch.OutOfMemoryError) as err:
        if _is_oom(err):
            msg = (f"Out of memory at batch size {cfg.batch_size}; the last checkpoint is kept: try a smaller batch "
                   "size.")
            run.set_status("failed", msg)
            raise OutOfMemoryError(msg) from err
        log.exception("run %s failed", run.id)
        run.set_status("failed", "Training failed unexpectedly; the details are in the log and the last "
                                 "checkpoint is kept.")
        raise
    except KeyboardInterrupt:
        run.set_status("interrupted", "Interrupted (Ctrl-C); resume it to continue from its last checkpoint.")
        raise
    except BaseException:  # a bug: never leave "running" behind for this live process
        run.set_status("failed", "Training stopped unexpectedly; the last checkpoint is kept and the run can be "
                                 "resumed.")
        raise
    finally:
        group.close(together)


def _check_processes(cfg: TrainConfig, group: Group) -> None:
    """A new run's ``devices`` is the number of processes this machine runs it with: one sentence otherwise."""
    if cfg.devices == group.local_world:
        return
    if not group.parallel:
        raise BadSettingError(f"Training on {cfg.devices} devices runs {cfg.devices} processes: start it with "
                              f"`python -m core train ... --devices {cfg.devices}`, which launches them.")
    raise BadSettingError(f"This run was launched as {group.local_world} processes on this machine but asks for "
                          f"{cfg.devices} devices; give --devices {group.local_world}.")


def _cancel_point(trainer_or_none, cancel: threading.Event, run: Run, phase: str) -> None:
    if trainer_or_none is not None:
        trainer_or_none.check_cancel(phase)
    elif cancel.is_set():
        msg = ("Cancelled while loading the data, before the first checkpoint; resuming it starts it again from "
               "the beginning with the same settings.")
        run.set_status("cancelled", msg)
        raise CancelledError(msg)


def _train_in(run: Run, cfg: TrainConfig, saved: dict | None, from_checkpoint: bool, on_progress, on_epoch,
              cancel: threading.Event, max_minutes: float | None, group: Group) -> Run:
    """train()'s body, inside its heartbeat and error handling; cancel points between every phase (rank 0's
    cancel, heard by every process)."""
    t_load = time.monotonic()
    task = make_task(cfg, group.device)
    task.load_data()
    group.agree(lambda: _cancel_point(None, cancel, run, "data"), everyone=False)
    task.build_model(saved.get("labels") if saved is not None else None)
    if cfg.activation_checkpointing:
        task.set_activation_checkpointing(True)  # one sentence where the task's models cannot
    load_seconds = time.monotonic() - t_load  # reading the data and building the model, part of the wall time
    trainer = Trainer(task, run, on_progress, on_epoch, cancel, group)
    if max_minutes is not None:
        trainer.budget_minutes = max_minutes
    if from_checkpoint:
        trainer.restore_checkpoint()  # restores the RNG state saved with the checkpoint
    else:
        torch.manual_seed(cfg.seed)  # dropout draws depend on the seed only, whatever the builder consumed
        run.write_config(run_config(task, {}, trainer.lr))
    if group.rank > 0:  # the other processes draw their own dropout masks, deterministically
        torch.manual_seed(cfg.seed * 1_000_003 + group.rank * 7_919 + trainer.state.global_step)
    t0 = time.monotonic()
    # every process builds its own frozen-feature cache (any example may fall in its slice of a batch)
    prepared = group.agree(lambda: task.prepare_training(trainer._phase_progress))
    prepared["prepare_seconds"] = time.monotonic() - t0
    prepared["load_seconds"] = load_seconds
    if not from_checkpoint:
        run.write_config(run_config(task, prepared, trainer.lr))
    group.agree(lambda: trainer.check_cancel("cache"), everyone=False)
    return trainer.fit()


def load_run_task(ref: str, runs_root: str | None = None, device: torch.device | None = None,
                  data_dir: str | None = None) -> tuple[Run, TaskRun]:
    """Rebuild a saved run's model with its weights, ready to evaluate or predict (no data loaded)."""
    run = open_run(ref, runs_root)
    saved = run.read_config()
    cfg = run.train_config()  # one sentence when config.json lacks or garbles its settings
    if data_dir is not None:
        cfg.data_dir = data_dir
    # Rebuild the frozen part from the same kind of source it was trained with.
    cfg.weights = WeightsSource.from_json(saved.get("weights")).choice()
    task = make_task(cfg, device)
    task.build_model(saved.get("labels"))
    task.load_state(run.load_weights(), saved.get("frozen_fingerprint"))
    task.model.eval()
    return run, task


def evaluate_run(ref: str, runs_root: str | None = None, data_dir: str | None = None, data_file: str | None = None,
                 write: bool = False) -> dict:
    """Re-evaluate a saved run on its test split (or another data folder/file); returns the metrics."""
    run, task = load_run_task(ref, runs_root, data_dir=data_dir)
    if data_file is not None:
        task.cfg.data_file = data_file
        task.cfg.eval_limit = None  # a file the user names is scored whole, not cut to the run's eval limit
    task.load_data(("test",))
    result = task.evaluate("test")
    if write:
        run.write_metrics({**(run.read_metrics() or {}), **result.metrics})
        run.write_predictions(result.predictions)
    return result.metrics

