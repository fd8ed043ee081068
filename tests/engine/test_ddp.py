"""devices > 1: real 2-process runs with torch.distributed.run (gloo on CPU) against a 1-process run with the same
global batch: the same final weights, one copy of every run file, and a 2-process checkpoint resumed by one
process.

The data is a generated image folder (4 classes of 12 training PNGs, a few KB), so that each process starts in seconds;
the model is the MLP from scratch with SGD and momentum (no dropout or BatchNorm, whose draws and batch
statistics differ by process; SGD is linear in the gradient, where Adam could turn rounding noise in a near-zero
gradient into a full step). The batch size is the training split's size minus one, so each epoch has one batch
the processes share unevenly (18 and 19 examples) and one of a single example (one process runs it with weight
0); the 2-process run also cuts its slices into micro-batches of 5.

Tolerance: 1e-5 relative, 1e-6 absolute. The processes differ from one process only by float32 summation order
(two partial gradients summed by the all-reduce, pieces summed by autograd, and matmuls run with one thread per
process against two), a few ulps per step, compounded over the 4 steps and momentum.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.config import TrainConfig
from core.engine import distributed
from core.engine.fit import train
from core.errors import BadSettingError
from core.store.runs import Run, open_run

REPO = Path(__file__).resolve().parents[2]
SETTINGS = dict(task="images", model="mlp", strategy="scratch", epochs=2, val_fraction=0.2, optimizer="sgd",
                momentum=0.9, lr=0.05, log_every=1, eval_batch_size=8, device="cpu", seed=0)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """<root>/{train,test}/<class>/*.png: 4 classes of 12 training and 3 test images, 32x32 noise with a
    per-class tint, so the classes can be learnt a little."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 3)):
        for c in range(4):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 160, (32, 32, 3)) + np.eye(3, dtype=int)[c % 3] * 90
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.png")
    return root


def _train_size(folder: Path) -> int:
    from core.tasks.images.data import load_images, split_train_val

    train_idx, _ = split_train_val(load_images("train", folder).labels, SETTINGS["val_fraction"], SETTINGS["seed"])
    return len(train_idx)


def _flags(settings: dict) -> list[str]:
    out = []
    for key, value in settings.items():
        out += [f"--{key.replace('_', '-')}", str(value)]
    return out


def _torchrun(command: list[str]) -> dict:
    env = {**os.environ, "TRANSFER_LAB_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(lines[-1])


def _weights(run_dir) -> dict[str, torch.Tensor]:
    return open_run(run_dir).load_weights()


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.fixture(scope="module")
def settings(image_folder) -> dict:
    n_train = _train_size(image_folder)
    assert n_train % 2 == 0  # so the first batch (n - 1 examples) is shared unevenly
    return {**SETTINGS, "batch_size": n_train - 1, "data_dir": str(image_folder)}


@pytest.fixture(scope="module")
def one_process(settings, tmp_path_factory) -> Run:
    root = tmp_path_factory.mktemp("one")
    return train(TrainConfig(**settings), runs_root=str(root))


def test_two_processes_end_with_the_weights_of_one_and_write_each_file_once(settings, one_process, tmp_path):
    root = tmp_path / "runs"
    argv = ["--runs-dir", str(root), "train", *_flags({**settings, "devices": 2, "micro_batch": 5})]
    out = _torchrun([sys.executable, "-m", "core", *argv])  # the CLI re-runs itself under torch.distributed.run
    assert out["status"] == "completed"
    runs = list(root.iterdir())
    assert [p.name for p in runs] == [Path(out["run_dir"]).name]  # rank 0 alone created a run
    two = open_run(runs[0])
    _assert_same_weights(_weights(two.path), _weights(one_process.path))

    steps, base_steps = two.read_steps(), one_process.read_steps()
    assert [r["step"] for r in steps] == [1, 2, 3, 4]  # each step logged once, with the global batch's loss
    assert [r["loss"] for r in steps] == pytest.approx([r["loss"] for r in base_steps], rel=1e-5)
    history = two.read_history()
    assert [r["epoch"] for r in history] == [0, 1]
    for row, base in zip(history, one_process.read_history()):
        assert row["train_loss"] == pytest.approx(base["train_loss"], rel=1e-5)
        assert row["train_accuracy"] == base["train_accuracy"] and row["val_loss"] == pytest.approx(base["val_loss"])
    assert len(two.read_predictions()) == 12  # the test split, written once
    assert two.read_metrics()["accuracy"] == one_process.read_metrics()["accuracy"]
    assert two.read_config()["train"]["devices"] == 2
    assert not [p for p in two.path.rglob("*") if ".tmp" in p.name]


def test_a_two_process_checkpoint_resumes_in_one_process(settings, one_process, tmp_path, free_port):
    root = tmp_path / "runs"
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
               "--master-addr", "127.0.0.1", "--master-port", str(free_port()), "-m", "core", "--runs-dir", str(root),
               "train", *_flags({**settings, "devices": 2, "max_minutes": 1e-6})]
    out = _torchrun(command)
    assert out["status"] == "stopped"  # by the budget, after the first step, at a checkpoint
    run = open_run(out["run_dir"])
    assert run.has_checkpoint() and [r["step"] for r in run.read_steps()] == [1]
    resumed = train(resume=str(run.path), runs_root=str(root), max_minutes=60)  # one process
    assert resumed.read_status()["status"] == "completed"
    assert [r["step"] for r in resumed.read_steps()] == [1, 2, 3, 4]
    _assert_same_weights(_weights(resumed.path), _weights(one_process.path))


def test_devices_without_the_processes_is_one_sentence(settings, runs_root):
    with pytest.raises(BadSettingError, match="--devices 2") as err:
        train(TrainConfig(**{**settings, "devices": 2}), runs_root=str(runs_root))
    assert str(err.value).endswith(".") and "\n" not in str(err.value)
    assert not list(runs_root.iterdir())  # refused before a run was created


def test_launch_runs_the_command_under_torch_distributed_run_only_when_needed(monkeypatch):
    assert distributed.launch(["train"], None) is None and distributed.launch(["train"], 1) is None
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert distributed.launch(["train", "--devices", "2"], 2) is None  # already one of the processes
    monkeypatch.setenv("RANK", "1")
    assert not distributed.main_process()
    command = distributed.launch_command(["train", "--devices", "2"], 2)
    assert command[1:3] == ["-m", "torch.distributed.run"] and "--standalone" in command
    assert command[command.index("--nproc-per-node") + 1] == "2"
    assert command[-5:] == ["-m", "core", "train", "--devices", "2"]


def test_followers_never_write_the_run_store():
    writers = {name for name in dir(Run) if name.startswith(("write_", "save_", "append_", "set_")) or
               name == "heartbeat"}
    assert writers <= distributed.FollowerRun.WRITES  # a new writing method of Run must be listed there
    follower = distributed.FollowerRun(Run(Path("/nonexistent")))
    follower.set_status("running")  # a no-op, not an error on a missing folder
    assert follower.has_checkpoint() is False and follower.path == Path("/nonexistent")
