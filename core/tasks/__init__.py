"""Task adapters: what the one training engine (core.train) needs to know about each task.

``make_task(cfg, device)`` returns a :class:`core.tasks.base.TaskRun` for ``cfg.task``.
"""
from __future__ import annotations

import importlib

from core.errors import BadSettingError

_TASK_CLASSES = {
    "images": ("core.tasks.images", "ImageTask"),
    "tweets": ("core.tasks.tweets", "TweetTask"),
    "qa": ("core.tasks.qa", "QATask"),
}


def task_class(task: str):
    try:
        module, name = _TASK_CLASSES[task]
    except KeyError:
        raise BadSettingError(f"Unknown task '{task}'. Choose one of: {', '.join(_TASK_CLASSES)}.") from None
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as err:
        if err.name == module:
            raise BadSettingError(f"The {task} task is not available in this version.") from None
        raise
