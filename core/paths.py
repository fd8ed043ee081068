"""Default locations: the shared data folder, the run store and the cache. Each can be set by an env variable.
:func:`env_switch` reads the app's on/off environment settings the same way everywhere."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

_ON, _OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def env_switch(name: str, default: bool) -> bool:
    """An on/off setting from the environment: 1/true/yes/on or 0/false/no/off (any case), ``default`` when unset
    or blank; anything else is a BadSettingError naming the variable.

    >>> env_switch("TRANSFER_LAB_NO_SUCH_SETTING", True)
    True
    """
    from core.errors import BadSettingError

    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in _ON:
        return True
    if value in _OFF:
        return False
    raise BadSettingError(f"{name} must be 1 or 0; got '{value}'.")


def _given(value: str | os.PathLike | None) -> Path | None:
    """A user-typed folder: surrounding whitespace dropped, ``~`` expanded; None when blank."""
    if value is None:
        return None
    text = str(value).strip()
    return Path(text).expanduser() if text else None


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The one data-folder resolver: ``explicit``, else $TRANSFER_LAB_DATA, else ``../shared/datasets`` beside
    the repository. Every task's loader calls this, so ``~`` and stray whitespace mean the same everywhere.

    >>> data_dir(" ~/data ").name
    'data'
    """
    return _given(explicit) or _given(os.environ.get("TRANSFER_LAB_DATA")) or REPO_ROOT.parent / "shared" / "datasets"


def runs_dir(explicit: str | os.PathLike | None = None) -> Path:
    """``explicit``, else $TRANSFER_LAB_RUNS, else ``runs/`` in the repository."""
    return _given(explicit) or _given(os.environ.get("TRANSFER_LAB_RUNS")) or REPO_ROOT / "runs"


def cache_dir() -> Path:
    """$TRANSFER_LAB_CACHE, else ``~/.cache/transfer_lab``; created on demand."""
    path = _given(os.environ.get("TRANSFER_LAB_CACHE")) or Path.home() / ".cache" / "transfer_lab"
    path.mkdir(parents=True, exist_ok=True)
    return path
