"""Explanations of single predictions: one method per file behind :class:`core.explain.base.Method`.

Which methods apply to which model is decided here (:data:`METHODS`, each method's ``applies_to``), from the
ModelSpec alone, so the UI offers only what applies:

    images, cnn                      grad_cam, activations
    images, ViT / DeiT / CaiT / BEiT attention_rollout, gradient_rollout, activations
    images, Swin / CoaT              grad_cam, activations
    images, mlp                      (none)
    tweets and qa, every encoder     integrated_gradients, attention, attention_rollout

>>> from core import registry
>>> methods_for(registry.get("resnet50"))
['grad_cam', 'activations']
>>> methods_for(registry.get("minilm"))
['integrated_gradients', 'attention', 'attention_rollout']
>>> explain(task_run, "grad_cam", {"image": png_bytes}).target_name      # doctest: +SKIP
'cat'
"""
from __future__ import annotations

from core.errors import BadSettingError
from core.explain.activations import Activations
from core.explain.attention import AttentionMap
from core.explain.attention_rollout import AttentionRollout
from core.explain.base import Explanation, Method
from core.explain.gradcam import GradCAM
from core.explain.gradient_rollout import GradientRollout
from core.explain.integrated_gradients import IntegratedGradients

METHODS: dict[str, Method] = {m.name: m for m in (IntegratedGradients(), AttentionMap(), AttentionRollout(),
                                                   GradientRollout(), GradCAM(), Activations())}

__all__ = ["Explanation", "Method", "METHODS", "methods_for", "explain"]


def methods_for(spec) -> list[str]:
    """The names of the methods that apply to a ModelSpec, in the order the UI offers them."""
    return [name for name, method in METHODS.items() if method.applies_to(spec)]


def explain(task_run, method: str, inputs: dict, target=None, **settings) -> Explanation:
    """Explain one prediction of ``task_run.model`` (a TaskRun ready to predict) with the named method.

    ``inputs`` are the task's inputs by name (``{"text": ...}``, ``{"image": bytes}``, ``{"question", "context"}``);
    ``settings`` go to the method (``steps``, ``layer``, ``head``, ``fine_tuned`` ...). BadSettingError, one
    sentence, for an unknown method or one that does not apply to this model.
    """
    if method not in METHODS:
        raise BadSettingError(f"Unknown explanation method '{method}'. Choose one of: {', '.join(METHODS)}.")
    if task_run.model is None:
        raise BadSettingError("Build or load a model before explaining its predictions.")
    spec = task_run.spec
    if spec is not None and not METHODS[method].applies_to(spec):
        offered = methods_for(spec)
        raise BadSettingError(f"{method} does not apply to {spec.name}; "
                              + (f"choose one of: {', '.join(offered)}." if offered else
                                 "no explanation method applies to it."))
    return METHODS[method].explain(task_run, inputs, target=target, **settings)
