"""Data-parallel training over several processes with torch.distributed (``devices`` > 1).

``python -m core train ... --devices N`` re-executes itself under ``torch.distributed.run`` (:func:`launch`), which
starts N processes (ranks) and gives each its rank in the environment; ``train()`` then joins them in one process
group (:func:`setup`: gloo on CPU, nccl on CUDA with one GPU per process). Several machines: run
``torch.distributed.run`` on each with ``--nnodes/--node-rank/--master-addr/--master-port`` and ``--devices`` =
processes per machine; ``launch`` sees it is already inside and does nothing.

What each process does (core.engine.fit uses a :class:`Group` for every collective step):
  - every rank builds the same task and model and takes a contiguous ``1/world`` slice of every global batch
    (``batch_size`` stays the global batch, so the sample order and the update are those of one process with
    the same batch); DistributedDataParallel all-reduces the gradients;
  - rank 0 alone writes the run store; the others see it through :class:`FollowerRun`, which reads and never
    writes;
  - evaluation runs on rank 0 alone while the others wait for its outcome (:meth:`Group.agree`): validation
    decodes whole questions and tunes a threshold over the whole split, so sharding it would mean gathering
    every task's own per-example outputs; it is a small share of a run (per-epoch validation is capped);
  - a stop (cancel, time budget), a diverged loss and a typed error on any rank reach every rank the same way,
    so all of them stop at the same step with the same sentence.
"""
from __future__ import annotations

import datetime
import gc
import logging
import os
import subprocess
import sys
from contextlib import nullcontext
from typing import Any, Callable

import torch
from torch import nn

from core.errors import BadSettingError, TransferLabError

# Rank 0 may evaluate a long test split (or build a feature cache) while the others wait in a collective; the
# default 30-minute timeout would kill a CPU run's final QA evaluation. A rank that dies ends the job anyway:
# torch.distributed.run stops the other processes when one fails.
COLLECTIVE_TIMEOUT = datetime.timedelta(hours=12)
# How long the processes that ended a run together wait for each other before leaving the group.
CLOSE_TIMEOUT = datetime.timedelta(minutes=2)
log = logging.getLogger(__name__)


def inside_launcher() -> bool:
    """True in a process started by torch.distributed.run (it sets LOCAL_RANK and WORLD_SIZE)."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def main_process() -> bool:
    """False in the processes of a torch.distributed.run job other than rank 0: what prints a command's result
    asks this, so that the result is printed once."""
    return int(os.environ.get("RANK", "0")) == 0


def launch_command(argv: list[str], devices: int) -> list[str]:
    """The command that runs ``python -m core <argv>`` as ``devices`` processes on this machine; only rank 0's
    output reaches the console, so the CLI prints its lines (and its final JSON line) once."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(devices),
            "--local-ranks-filter", "0", "-m", "core", *argv]


def launch(argv: list[str], devices: int | None) -> int | None:
    """Re-execute the current CLI command under torch.distributed.run when ``devices`` > 1 and this process was
    not started by it; returns its exit status, or None when this process should run the command itself."""
    if devices is None or devices <= 1 or inside_launcher():
        return None
    try:
        return subprocess.call(launch_command(list(argv), devices))
    except KeyboardInterrupt:  # the processes got the same Ctrl-C and mark the run interrupted themselves
        return 130


class FollowerRun:
    """The run store as a process other than rank 0 sees it: reads go to the run, writes do nothing."""

    WRITES = frozenset({"write_config", "set_status", "heartbeat", "append_history", "write_history",
                        "append_step", "write_steps", "write_metrics", "write_predictions", "save_weights",
                        "save_checkpoint"})

    def __init__(self, run):
        self._run = run

    def __getattr__(self, name: str):
        if name in FollowerRun.WRITES:
            return _ignore
        return getattr(self._run, name)


def _ignore(*args, **kwargs) -> None:
    return None


def _error_classes() -> dict[str, type]:
    found, todo = {}, [TransferLabError]
    while todo:
        cls = todo.pop()
        found[cls.__name__] = cls
        todo.extend(cls.__subclasses__())
    return found


class _TrainStep(nn.Module):
    """``forward(batch)`` is the task's ``train_step``, so DistributedDataParallel sees the step as one forward
    of the task's model (the tasks call its parts: preprocess, encoder, head) and syncs its gradients."""

    def __init__(self, task):
        super().__init__()
        self.model = task.model  # registered: DDP reduces the gradients of these parameters
        self.task = task

    def forward(self, batch):
        return self.task.train_step(batch)


class Group:
    """The processes of one run: ``rank`` of ``world`` (``local_world`` on this machine), and the device this
    process trains on (None: the config decides, as in a one-process run). ``world == 1`` is the ordinary
    one-process run, where every method is a no-op or calls straight through."""

    def __init__(self, rank: int = 0, world: int = 1, local_world: int = 1, device: torch.device | None = None,
                 owned: bool = False):
        self.rank, self.world, self.local_world, self.device, self.owned = rank, world, local_world, device, owned

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world > 1

    # -- collectives ----------------------------------------------------------------------------------------
    def _tensor(self, values: list[float]) -> torch.Tensor:
        device = self.device if self.device is not None and self.device.type == "cuda" else "cpu"
        return torch.tensor(values, dtype=torch.float64, device=device)

    def sum(self, values: list[float]) -> list[float]:
        """Each value summed over the processes (float64)."""
        if not self.parallel:
            return list(values)
        t = self._tensor(values)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
        return t.tolist()

    def any(self, flag: bool) -> bool:
        """True on every process when it is true on any: how a stop decided by one clock or one cancel button
        (rank 0's) stops all of them at the same step."""
        if not self.parallel:
            return bool(flag)
        t = self._tensor([1.0 if flag else 0.0])
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return bool(t.item())

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every process."""
        if not self.parallel:
            return obj
        box = [obj if self.main else None]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def agree(self, fn: Callable[[], Any], everyone: bool = True) -> Any:
        """Run ``fn`` on every process (or on rank 0 alone, ``everyone=False``, the others waiting) and end the
        same way everywhere: when it raised on any process, every process raises (the failing one its own
        exception, the others the same typed error with the same sentence); else each returns its own result
        (rank 0's with ``everyone=False``)."""
        result, error = None, None
        if everyone or self.main:
            try:
                result = fn()
            except Exception as err:  # noqa: BLE001 - re-raised below, after the others have heard of it
                error = err
        if not self.parallel:
            if error is not None:
                raise error
            return result
        report = None if error is None else (type(error).__name__, str(error))
        reports: list = [None] * self.world
        torch.distributed.all_gather_object(reports, (report, None if everyone else result))
        failed = next(((rank, r[0]) for rank, r in enumerate(reports) if r[0] is not None), None)
        if failed is not None:
            if error is not None:
                raise error
            rank, (name, message) = failed
            cls = _error_classes().get(name)
            if cls is not None:
                raise cls(message)
            raise RuntimeError(f"Process {rank} of this run failed ({name}: {message}).")
        return result if everyone else reports[0][1]

    # -- the training step ----------------------------------------------------------------------------------
    def wrap(self, task) -> Callable[[Any], tuple]:
        """The step function: ``task.train_step``, or, with several processes, the same step under
        DistributedDataParallel. DDP reduces only trainable parameters; find_unused_parameters because some
        trainable parameters may get no gradient in a step (the pooler of a BiGRU tweet model, which the head
        never reads); device_ids None so that DDP leaves the batch (index tensors on the CPU) where it is."""
        if not self.parallel:
            return task.train_step
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(_TrainStep(task), device_ids=None, find_unused_parameters=True,
                                       broadcast_buffers=True)

    def shard(self, n: int) -> tuple[int, int]:
        """This process's contiguous slice ``start:stop`` of a global batch of ``n`` examples; the slices of the
        processes differ in size by one at most (a global batch smaller than the group leaves some empty)."""
        return n * self.rank // self.world, n * (self.rank + 1) // self.world

    @staticmethod
    def no_sync(step, last: bool):
        """DDP's no_sync for every micro-batch but the last one: their gradients accumulate locally and the last
        backward all-reduces the sum once."""
        if last or not hasattr(step, "no_sync"):
            return nullcontext()
        return step.no_sync()

    def close(self, together: bool = False) -> None:
        """Leave the process group (the one this Group joined). ``together``: every process ended the run at the
        same point (it returned, or a cancel or an agreed error stopped all of them), so they meet first: a
        process that tore the group down and exited while another was still writing its checkpoint could abort
        in gloo's teardown ("terminate called without an active exception", seen about once in 25 runs). The
        DDP wrapper that still holds the group is collected before it goes. After a failure on one process
        they do not meet (the others may never arrive); torch.distributed.run stops them."""
        if not (self.owned and torch.distributed.is_initialized()):
            return
        if together and self.parallel:
            try:
                if torch.distributed.get_backend() == "gloo":
                    torch.distributed.monitored_barrier(timeout=CLOSE_TIMEOUT)
                else:
                    torch.distributed.barrier(device_ids=[self.device.index] if self.device is not None and
                                              self.device.type == "cuda" else None)
            except RuntimeError as err:  # a process that never came: leave anyway, the run is already saved
                log.warning("the processes did not all reach the end of the run together: %s", err)
        gc.collect()
        torch.distributed.destroy_process_group()
        self.owned = False


def setup(device_choice: str) -> Group:
    """The group this process belongs to: a one-process Group outside torch.distributed.run, else (the first
    time) the process group joined with gloo on CPU or nccl on CUDA, one GPU per process on CUDA."""
    if not inside_launcher() or int(os.environ["WORLD_SIZE"]) <= 1:
        return Group()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    cuda = device_choice == "cuda" or (device_choice == "auto" and torch.cuda.is_available())
    if cuda:
        if torch.cuda.device_count() < local_world:
            raise BadSettingError(f"Training on {local_world} devices needs {local_world} GPUs; this machine has "
                                  f"{torch.cuda.device_count()}.")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    owned = not torch.distributed.is_initialized()
    if owned:
        torch.distributed.init_process_group("nccl" if cuda else "gloo", timeout=COLLECTIVE_TIMEOUT,
                                             **({"device_id": device} if cuda else {}))
    return Group(rank, world, local_world, device, owned)
