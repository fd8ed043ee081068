"""What ``python -m core explain`` does, apart from argument parsing: load the model, read the inputs the task
declares, explain, and write the PNG. Kept here so that core/cli.py only parses flags.

>>> result = explain_ref("model:minilm", "integrated_gradients", {"text": "Wash your hands"})   # doctest: +SKIP
>>> result.tokens[:3]                                                                              # doctest: +SKIP
['[CLS]', 'wash', 'your']
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.explain import Explanation, explain
from core.explain.png import to_png


def explain_ref(ref: str, method: str, given: dict, target=None, runs_root: str | None = None,
                out: str | None = None, **settings) -> Explanation:
    """Explain one prediction of a run (folder or id) or of ``model:<registry name>``; write a PNG to ``out``."""
    from core.store.predictors import PredictorCache

    task_run = PredictorCache(runs_root=runs_root).get(ref)
    inputs = task_run.task_spec.read_inputs(given)
    if isinstance(target, str) and target.lstrip("-").isdigit():
        target = int(target)
    settings.setdefault("fine_tuned", not ref.startswith("model:"))
    explanation = explain(task_run, method, inputs, target=target, **settings)
    if out:
        image = None
        if explanation.kind == "grid" and "image" in inputs and explanation.array().ndim == 2:
            from core.tasks.images.data import decode_image

            size = int(task_run.model.input_size)
            image = decode_image(inputs["image"], size=size).permute(1, 2, 0).numpy().astype(np.uint8)
        Path(out).write_bytes(to_png(explanation, image))
    return explanation


def summary_lines(e: Explanation, top: int = 8) -> list[str]:
    """A few readable lines: what was explained, the strongest tokens or cells, the completeness gap, the notes."""
    lines = [f"{e.method} ({e.kind}) target: {e.target_name or '-'} [{e.target}]  {e.seconds:.2f}s"]
    values = e.array()
    if e.kind == "tokens" and e.tokens:
        order = np.argsort(-np.abs(values))[:top]
        lines.append("strongest: " + ", ".join(f"{e.tokens[i]} {values[i]:+.3f}" for i in order))
    elif values.size:
        lines.append(f"shape {list(values.shape)}, min {values.min():.4g}, max {values.max():.4g}")
    if e.completeness_gap is not None:
        lines.append(f"completeness gap {e.completeness_gap:.2%}")
    lines += [f"note: {n}" for n in e.notes]
    return lines
