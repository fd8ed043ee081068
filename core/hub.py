"""Where weights come from: the Hugging Face Hub when this machine can reach it, else offline packages.

Reachability is decided once per process: ``TRANSFER_LAB_OFFLINE=1`` (or ``HF_HUB_OFFLINE=1``) forces offline;
otherwise a 1.5 s TCP connect to huggingface.co decides. Nothing here downloads anything.
"""
from __future__ import annotations

import functools
import os
import socket

from core.errors import BadSettingError

WEIGHT_CHOICES = ("auto", "hub", "offline", "random")


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@functools.lru_cache(maxsize=1)
def hub_available() -> bool:
    """True when the Hugging Face Hub answers; cached for the process."""
    if _env_true("TRANSFER_LAB_OFFLINE") or _env_true("HF_HUB_OFFLINE"):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=1.5):
            return True
    except OSError:
        return False


def resolve_weights(choice: str, has_offline_package: bool) -> str:
    """Turn a user's weights choice into the source to load: "hub", "offline" or "random".

    >>> resolve_weights("random", True)
    'random'
    """
    if choice not in WEIGHT_CHOICES:
        raise BadSettingError(f"Unknown weights choice '{choice}'; use one of {', '.join(WEIGHT_CHOICES)}.")
    if choice != "auto":
        return choice
    if hub_available():
        return "hub"
    return "offline" if has_offline_package else "random"
