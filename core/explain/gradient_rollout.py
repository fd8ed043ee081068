"""Gradient-weighted attention rollout for image transformers (after Chefer, Gur & Wolf, 2021): class-specific.

Plain rollout (:mod:`core.explain.attention_rollout`) shows where information flows, whatever the class. Here each
block's attention probabilities A (H, T, T) are weighted by the gradient of the target class's logit with respect
to them, and only the positive part is kept: Ā_h = (∂y_c/∂A_h ⊙ A_h)^+. The weighted maps then go through the same
rollout as plain attention (heads averaged, the residual's identity added, rows renormalised, multiplied through
the blocks) and the same readout of the prefix rows over the patch grid (DeiT-distilled: both prefix rows; BEiT:
the mean of the patch rows; CaiT: through its class-attention blocks). Renormalising the rows is this project's
choice, so that the map is comparable with plain rollout; Chefer et al. accumulate R <- R + Ā R unnormalised.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from core.errors import BadSettingError
from core.explain.attention_rollout import ROLLOUT_IMAGE_MODELS, image_rollout_map, upsample
from core.explain.base import Explanation, Method
from core.explain.capture import image_layout
from core.explain.hygiene import explaining, forward_hooks, unfused_timm_attention
from core.explain.inputs import encode_image, input_kind, weights_notes

if TYPE_CHECKING:
    import torch


def weighted_attentions(model, x: torch.Tensor, layout, target: int | None) -> tuple[list, list, int]:
    """(self-attention blocks (H, T, T), class-attention blocks, target) with each map replaced by
    ReLU(gradient of the target logit x attention), for one image ``x`` (1, 3, S, S)."""
    import torch

    modules = list(layout.self_attention) + list(layout.class_attention)
    kept: dict[int, torch.Tensor] = {}

    def keep(index: int):
        def hook(module, args, output):
            kept[index] = output
        return hook

    with unfused_timm_attention(model), forward_hooks((m.attn_drop, keep(i)) for i, m in enumerate(modules)):
        with torch.enable_grad():
            # the input requires grad so that the graph exists even when every parameter is frozen
            logits = model(x.detach().requires_grad_(True))["logits"]  # (1, classes)
            target = int(logits[0].argmax()) if target is None else int(target)
            if not 0 <= target < logits.shape[1]:
                raise BadSettingError(f"There is no class {target}: this model has {logits.shape[1]}.")
            missing = [i for i in range(len(modules)) if i not in kept]
            if missing:
                raise BadSettingError(f"{len(missing)} attention layers produced no attention maps to weight.")
            # autograd.grad, not backward(): the parameters' .grad stay untouched
            grads = torch.autograd.grad(logits[0, target], [kept[i] for i in range(len(modules))],
                                        allow_unused=True)
    if any(g is None for g in grads):
        raise BadSettingError("An attention layer gave no gradient to weight its map with.")
    maps = [torch.relu(g[0] * kept[i][0]).detach().float().cpu().numpy() for i, g in enumerate(grads)]
    n_self = len(layout.self_attention)
    return maps[:n_self], maps[n_self:], target


class GradientRollout(Method):
    name = "gradient_rollout"

    @property
    def kind(self) -> str:
        return "grid"

    def applies_to(self, spec) -> bool:
        return input_kind(spec.task) == "image" and spec.name in ROLLOUT_IMAGE_MODELS

    def explain(self, task_run, inputs: dict, target=None, fine_tuned: bool | None = None,
                **_ignored) -> Explanation:
        started = time.perf_counter()
        model = task_run.model
        layout = image_layout(model)
        labels = list(getattr(task_run, "labels", None) or [])
        if isinstance(target, str) and target in labels:
            target = labels.index(target)
        image = encode_image(task_run, inputs.get("image"))
        with explaining(model):
            x = model.preprocess(image)
            self_maps, class_maps, target = weighted_attentions(model, x, layout, target)
        coarse, notes = image_rollout_map(self_maps, class_maps, layout)
        if not np.isfinite(coarse).all():
            raise BadSettingError("The gradient-weighted rollout is not finite for this input.")
        size = int(model.input_size)
        return Explanation(
            method=self.name, kind="grid", values=upsample(coarse, size), grid=(size, size), target=target,
            target_name=labels[target] if target < len(labels) else str(target),
            seconds=time.perf_counter() - started,
            notes=notes + ["Attention weighted by the gradient of the target class's logit (positive part): "
                           "unlike plain rollout, the map depends on the class."] + weights_notes(task_run,
                                                                                                  fine_tuned),
            extras={"coarse": coarse, "coarse_shape": list(coarse.shape),
                    "layers": len(self_maps) + len(class_maps)})
