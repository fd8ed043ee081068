"""Activations viewer: what one layer of an image model computes for one image.

CNNs: the ``top_k`` feature maps of the layer with the highest mean activation, (k, h, w), with their channel
indices. Image transformers: the L2 norm of every patch token at the layer's output, on the patch grid (h, w)
(prefix tokens dropped; Swin's (H, W, C) maps are already a grid). ``layer`` names a module of the timm network
(``backbone.net``), as ``named_modules()`` lists them; by default the last stage.
"""
from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from core.errors import BadSettingError
from core.explain.base import Explanation, Method
from core.explain.hygiene import explaining, forward_hooks
from core.explain.inputs import encode_image, weights_notes, input_kind

if TYPE_CHECKING:
    import torch


def default_layer(backbone) -> tuple[str, torch.nn.Module]:
    """(name, module) of the layer shown by default: the last stage of the backbone."""
    from core.tasks.images.nets import SequentialCNN, SwinBackbone, WholeBackbone

    net = backbone.net
    names = {m: n for n, m in net.named_modules()}
    if isinstance(backbone, SequentialCNN):
        module = backbone.last_block_modules()[-1]
    elif isinstance(backbone, SwinBackbone):
        module = net.layers[-1].blocks[-1]
    elif isinstance(backbone, WholeBackbone) and hasattr(net, "serial_blocks4"):
        module = net.serial_blocks4[-1]
    elif hasattr(net, "blocks"):
        module = net.blocks[-1]
    else:
        raise BadSettingError("This backbone has no layer the activations viewer knows how to show.")
    return names[module], module


def _prefix_tokens(backbone, name: str) -> int:
    from core.tasks.images.nets import CaitBackbone

    if isinstance(backbone, CaitBackbone) and not name.startswith("blocks_token_only"):
        return 0  # CaiT's self-attention blocks see patches only
    return int(getattr(backbone.net, "num_prefix_tokens", 1))


class Activations(Method):
    name = "activations"
    kind = "grid"
    description = "Activations: the strongest feature maps (CNN) or the patch-token norms (transformer) of a layer."

    def applies_to(self, spec) -> bool:
        return input_kind(spec.task) == "image" and spec.family in ("cnn", "vision_transformer")

    def explain(self, task_run, inputs: dict, target=None, layer: str | None = None, top_k: int = 4,
                fine_tuned: bool | None = None, **_ignored) -> Explanation:
        import torch

        from core.tasks.images.nets import SequentialCNN, SwinBackbone

        started = time.perf_counter()
        model = task_run.model
        backbone = getattr(model, "backbone", None)
        if backbone is None or not hasattr(backbone, "net"):
            raise BadSettingError("The activations viewer needs a timm backbone; this model has none.")
        if layer is None:
            name, module = default_layer(backbone)
        else:
            modules = dict(backbone.net.named_modules())
            if layer not in modules:
                raise BadSettingError(f"This backbone has no layer named '{layer}'.")
            name, module = layer, modules[layer]
        if top_k < 1:
            raise BadSettingError(f"top_k must be at least 1, not {top_k}.")
        captured = []
        image = encode_image(task_run, inputs.get("image"))
        with explaining(model), torch.no_grad(), forward_hooks([(module, lambda m, a, out: captured.append(out))]):
            logits = model(model.preprocess(image))["logits"]
        if not captured or not torch.is_tensor(captured[0]):
            raise BadSettingError(f"Layer '{name}' did not run or gives no tensor for this model.")
        out = captured[0][0].float()  # (C, h, w), (h, w, C) or (T, C)
        extras = {"layer": name, "predicted": int(logits[0].argmax())}
        if isinstance(backbone, SequentialCNN) and out.ndim == 3:
            means = out.mean(dim=(1, 2))
            top = means.topk(min(int(top_k), len(means)))
            values = out[top.indices]
            extras.update(channels=top.indices.tolist(), channel_means=top.values.tolist(),
                          channels_total=int(out.shape[0]))
            grid = tuple(values.shape)
        else:
            if isinstance(backbone, SwinBackbone) and out.ndim == 3:
                values = out.norm(dim=-1)  # (h, w, C) -> (h, w)
            elif out.ndim == 2:
                norms = out[_prefix_tokens(backbone, name):].norm(dim=-1)
                side = math.isqrt(len(norms))
                if side * side != len(norms):
                    raise BadSettingError(f"Layer '{name}' has {len(norms)} tokens, not a square grid of patches.")
                values = norms.reshape(side, side)
            else:
                raise BadSettingError(f"Layer '{name}' gives a {tuple(out.shape)} tensor the viewer cannot map.")
            grid = tuple(values.shape)
        return Explanation(method=self.name, kind=self.kind, values=values.numpy(), grid=grid,
                           seconds=time.perf_counter() - started, notes=weights_notes(task_run, fine_tuned),
                           extras=extras)
