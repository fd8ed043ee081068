"""Shared test set-up: offline, CPU only, the shared data folder, a throwaway run store."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never reach the Hub: weights come from offline packages or random init.
os.environ.setdefault("TRANSFER_LAB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from core.paths import data_dir as resolve_data_dir  # noqa: E402  (after the environment is set)

DATA = resolve_data_dir()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA / "cifar10").is_dir():
        pytest.skip(f"shared datasets not found at {DATA} (set TRANSFER_LAB_DATA)")
    return DATA


@pytest.fixture
def runs_root(tmp_path) -> Path:
    root = tmp_path / "runs"
    root.mkdir()
    return root
