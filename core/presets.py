"""Named set-ups that reproduce the course's experiments (``python -m core train --preset NAME``).

Each task defines its own in ``core/tasks/<task>/presets.py``; this module merges them and composes a run's
settings. A preset fills in TrainConfig fields; flags given on the command line override it.
"""
from __future__ import annotations

from core.errors import BadSettingError


def _collect() -> dict[str, dict]:
    """Every task's presets (``TaskSpec.presets_module``), in task order; a name may be used once."""
    import importlib

    from core import registry

    out: dict[str, dict] = {}
    for task in registry.list_tasks():
        if not task.presets_module:
            continue
        for name, values in importlib.import_module(task.presets_module).PRESETS.items():
            if name in out:
                raise ValueError(f"preset {name!r} is defined twice")
            out[name] = values
    return out


PRESETS: dict[str, dict] = _collect()


def compose_settings(model: str | None, preset: str | None, given: dict) -> dict:
    """TrainConfig fields for a run: the model's recommended settings (``ModelSpec.recommended``), then the
    preset's, then the ones the user gave (CLI flags or the app's form), each overriding the one before.

    >>> compose_settings("e5_small", None, {"task": "qa", "model": "e5_small", "lr": 3e-5})["strategy"]
    'full'
    """
    from core import registry

    values: dict = {}
    preset_values = get_preset(preset) if preset else {}
    name = given.get("model") or preset_values.get("model") or model
    if name:
        values.update(registry.get(name).recommended)
    if preset:
        values.update(preset_values)
        values["preset"] = preset
    values.update({k: v for k, v in given.items() if v is not None and k != "preset"})
    return values


def get_preset(name: str) -> dict:
    try:
        return dict(PRESETS[name])
    except KeyError:
        raise BadSettingError(f"Unknown preset '{name}'. Presets: {', '.join(PRESETS)}.") from None
