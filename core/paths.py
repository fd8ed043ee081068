"""Default locations: the shared data folder, the run store and the cache. Each can be set by an env variable."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """``explicit``, else $TRANSFER_LAB_DATA, else ``../shared/datasets`` beside the repository."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("TRANSFER_LAB_DATA")
    return Path(env).expanduser() if env else REPO_ROOT.parent / "shared" / "datasets"


def runs_dir(explicit: str | os.PathLike | None = None) -> Path:
    """``explicit``, else $TRANSFER_LAB_RUNS, else ``runs/`` in the repository."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("TRANSFER_LAB_RUNS")
    return Path(env).expanduser() if env else REPO_ROOT / "runs"


def cache_dir() -> Path:
    """$TRANSFER_LAB_CACHE, else ``~/.cache/transfer_lab``; created on demand."""
    env = os.environ.get("TRANSFER_LAB_CACHE")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "transfer_lab"
    path.mkdir(parents=True, exist_ok=True)
    return path
