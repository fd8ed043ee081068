"""Named set-ups that reproduce the course's experiments (``python -m core train --preset NAME``).

Each task defines its own in ``core/tasks/<task>/presets.py``; this module merges them and composes a run's
settings. A preset fills in TrainConfig fields; flags given on the command line override it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from core.errors import BadSettingError

# The course reports and the paper, for grouping presets (SEED_EXPERIMENTS.md cites the reports as R0-R4).
SOURCES = {"R0": "report R0", "R1": "report R1", "R2": "report R2", "R3": "report R3", "R4": "report R4",
           "paper": "Malpure et al. / the PQuAD paper", "project": "this project"}


@dataclass(frozen=True)
class Reference:
    """One figure a course report or a paper got: ``metric`` is the metrics.json key it compares with (as a
    fraction, like the run's), ``note`` says under which settings."""

    source: str  # a key of SOURCES
    metric: str
    value: float
    note: str = ""

    def to_json(self) -> dict:
        return {"source": self.source, "metric": self.metric, "value": self.value, "note": self.note}


@dataclass(frozen=True)
class Preset:
    """A course experiment: the TrainConfig fields it sets, the report it comes from, the figures it got, and a
    note on what could not be reproduced."""

    settings: dict
    report: str
    references: tuple[Reference, ...] = ()
    note: str = ""
    name: str = field(default="", compare=False)

    def to_json(self) -> dict:
        return {"name": self.name, "report": self.report, "settings": dict(self.settings),
                "references": [r.to_json() for r in self.references], "note": self.note}

    def label(self) -> str:
        """One line for a picker: the report, the name and the settings a student recognises.

        >>> Preset(dict(model="deit_small_distilled_cls", strategy="last_block", lr=1e-4, epochs=10), "R1",
        ...        name="r1-deit-small").label()
        'R1 · r1-deit-small (deit_small_distilled_cls, last_block, lr 1e-4, 10 ep)'
        """
        s = self.settings
        parts = [s[k] for k in ("model", "strategy") if s.get(k)]
        if s.get("lr") is not None:
            parts.append("lr " + f"{s['lr']:.0e}".replace("e-0", "e-"))
        if s.get("epochs"):
            parts.append(f"{s['epochs']} ep")
        return f"{self.report} · {self.name}" + (f" ({', '.join(parts)})" if parts else "")


def _collect() -> dict[str, Preset]:
    """Every task's presets (``core/tasks/<task>/presets.py``), in task order; a name may be used once."""
    import dataclasses
    import importlib

    from core import registry

    out: dict[str, Preset] = {}
    for task in registry.list_tasks():
        for name, preset in importlib.import_module(task.presets_module).PRESETS.items():
            if name in out:
                raise ValueError(f"preset {name!r} is defined twice")
            if preset.report not in SOURCES or any(r.source not in SOURCES for r in preset.references):
                raise ValueError(f"preset {name!r} names an unknown report")
            out[name] = dataclasses.replace(preset, name=name)
    return out


PRESET_INFO: dict[str, Preset] = _collect()
# name -> the TrainConfig fields it sets (what compose_settings layers)
PRESETS: dict[str, dict] = {name: dict(p.settings) for name, p in PRESET_INFO.items()}


def presets_by_report() -> dict[str, list[Preset]]:
    """Every preset grouped by the report (or paper) it comes from, groups in SOURCES order (R0 .. R4, the papers,
    this project), presets in their definition order within a group; empty groups left out.

    >>> list(presets_by_report())[:2]
    ['R0', 'R1']
    """
    groups: dict[str, list[Preset]] = {source: [] for source in SOURCES}
    for preset in PRESET_INFO.values():
        groups[preset.report].append(preset)
    return {source: presets for source, presets in groups.items() if presets}


def references_for(preset: str | None) -> list[dict]:
    """The report/paper figures of a run's preset (empty for a run without one, or an unknown name)."""
    info = PRESET_INFO.get(preset or "")
    return [r.to_json() for r in info.references] if info else []


def reference_lines(preset: str | None, metrics: dict | None, weights: dict | None = None) -> list[str]:
    """One markdown line per figure the course got for a run's preset, beside the run's own value of the same
    metric: what the Fine-tune tab (when a job ends) and the Runs tab show. ``weights``: the run's config.json
    record; random (untrained) weights get said, since such a run cannot approach the course's figure.

    >>> reference_lines("mlp-baseline", {"accuracy": 0.41})[0]
    '**R3 reference:** accuracy 0.4618 (test accuracy (test loss 1.508), SGD lr 0.01 with Nesterov momentum 0.9); this run 0.4100'
    """
    lines = []
    untrained = isinstance(weights, dict) and weights.get("kind") == "random"
    for ref in references_for(preset):
        own = (metrics or {}).get(ref["metric"])
        line = f"**{ref['source']} reference:** {ref['metric']} {ref['value']:.4f}"
        line += f" ({ref['note']})" if ref["note"] else ""
        line += f"; this run {own:.4f}" if isinstance(own, (int, float)) and not isinstance(own, bool) else ""
        lines.append(line)
    if lines and untrained:
        lines.append("_This run's pretrained weights are not available here (random initial weights): it is not "
                     "expected to reach these figures._")
    return lines


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
