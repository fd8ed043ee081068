"""Names that moved to a heavier module, still importable from where they were, loaded on first use.

The tasks' ``models.py`` declare the registry's models and need no torch; their networks live in ``nets.py``,
which imports torch. ``from core.tasks.images.models import ImageClassifier`` still works: the module's
``__getattr__`` (PEP 562) imports ``nets`` the first time one of its names is asked for.

>>> getattr_, dir_ = moved_names("json", {"dumps"}, {"x": 1})
>>> getattr_("dumps")({"a": 1})
'{"a": 1}'
>>> dir_()
['dumps', 'x']
"""
from __future__ import annotations

import importlib
import sys
import threading
from typing import Any, Callable


def moved_names(target: str, names: set[str] | frozenset[str], namespace: dict[str, Any]
                ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """(``__getattr__``, ``__dir__``) for a module whose ``names`` now live in module ``target``; ``namespace`` is
    the module's ``globals()``. Any other missing name raises the usual AttributeError."""
    names = frozenset(names)
    module_name = namespace.get("__name__", "module")

    def getattr_(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(target), name)
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")

    def dir_() -> list[str]:
        return sorted((set(namespace) - {"__builtins__"}) | names)

    return getattr_, dir_


_transformers_lock = threading.Lock()


def ensure_transformers() -> None:
    """Import ``transformers`` once per process, under a lock, before any ``from transformers import ...``.

    Why this exists: ``transformers/__init__.py`` replaces its own entry in ``sys.modules`` with a lazy module at
    the end of its import. A second thread that imports it while the first is still inside that ``__init__``
    waits for it, then gets the *old* module object, which has none of the lazy names: ``from transformers import
    BertConfig`` fails with ImportError (seen here with the app's background model check loading a tokenizer
    while a request built a tweet model). ``importlib.import_module`` under this lock looks the module up again
    after the wait, so every caller finds the finished one; once it is in place the lock is not taken again.
    """
    module = sys.modules.get("transformers")
    if module is not None and not getattr(getattr(module, "__spec__", None), "_initializing", False) \
            and hasattr(module, "_class_to_module"):
        return  # the finished lazy module
    with _transformers_lock:
        importlib.import_module("transformers")
