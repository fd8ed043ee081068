"""Per-step training loss history, train/validation seconds per epoch, and the precision setting."""
from __future__ import annotations

import torch

from core.config import TrainConfig
from core.engine.fit import _autocast, log_interval, train, use_bf16
from core.store.runs import open_run

TINY = dict(task="images", model="mlp", strategy="scratch", epochs=2, train_limit=40, eval_limit=20,
            batch_size=8, device="cpu")


def test_step_history_rows_and_epoch_seconds(data_dir, runs_root):
    run = train(TrainConfig(**TINY, log_every=2, data_dir=str(data_dir)), runs_root=str(runs_root))
    steps = open_run(run.path).read_steps()
    assert steps and set(steps[0]) == {"epoch", "step", "loss", "lr", "seconds"}
    assert [r["step"] for r in steps] == sorted(r["step"] for r in steps)
    assert {r["epoch"] for r in steps} == {0, 1}
    for row in run.read_history():
        assert row["seconds"] >= 0 and row["eval_seconds"] >= 0  # training and validation seconds of the epoch


def test_log_interval_and_precision():
    assert log_interval(0, 10) == 1 and log_interval(0, 500) == 10 and log_interval(3, 500) == 3
    cpu = torch.device("cpu")
    assert not use_bf16("auto", cpu) and not use_bf16("fp32", cpu) and use_bf16("bf16", cpu)
    with _autocast(cpu, "bf16"):
        assert torch.is_autocast_enabled("cpu")
    with _autocast(cpu, "fp32"):
        assert not torch.is_autocast_enabled("cpu")
