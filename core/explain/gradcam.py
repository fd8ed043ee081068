"""Grad-CAM (Selvaraju et al.) with captum ``LayerGradCam`` at the last convolutional stage of an image model.

Map = ReLU(sum over channels of (mean gradient of the class logit over the map) x activation), on the layer's grid,
then bilinearly upsampled to the model's input size (``LayerAttribution.interpolate``).

The layer per backbone (:func:`gradcam_layer`): CNNs, the last module of their last block (VGG19: block5's last
pool, DenseNet201: norm5, ResNet50: layer4, EfficientNet-Lite0: conv_head's bn2); Swin, its last stage, whose
(B, H, W, C) output is viewed as (B, C, H, W) (hooked on the stage's last block, which runs however the backbone is split); CoaT, its last serial block, whose (B, 1 + N, C) tokens lose the
class token and become the (B, C, h, w) grid. The views are made by a small tap module that a forward hook runs on
the stage's output and undoes right after, so captum hooks the tap and the model computes exactly what it did.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from core.errors import BadSettingError
from core.explain.base import Explanation, Method
from core.explain.hygiene import explaining, forward_hooks, no_inplace
from core.explain.inputs import encode_image, weights_notes, input_kind

if TYPE_CHECKING:
    import torch
    from torch import nn

    from core.explain.gridtap import GridTap

GRADCAM_IMAGE_MODELS = ("swin_base", "coat_lite_small")  # transformers with a grid-shaped last stage


def gradcam_layer(model) -> tuple[nn.Module, GridTap | None]:
    """(the module whose output Grad-CAM reads, a tap when that output is not (B, C, h, w))."""
    from core.explain.gridtap import GridTap
    from core.tasks.images.nets import SequentialCNN, SwinBackbone, WholeBackbone

    backbone = getattr(model, "backbone", None)
    if isinstance(backbone, SequentialCNN):
        return backbone.last_block_modules()[-1], None
    if isinstance(backbone, SwinBackbone):
        return backbone.net.layers[-1].blocks[-1], GridTap("nhwc")  # the last block of the last stage
    if isinstance(backbone, WholeBackbone) and hasattr(backbone.net, "serial_blocks4"):
        return backbone.net.serial_blocks4[-1], GridTap("tokens")
    raise BadSettingError("Grad-CAM needs a convolutional backbone, Swin or CoaT; this model has none.")


def _tap_hook(tap: GridTap):
    def hook(module, args, out):
        return tap.restore(tap(out), out)
    return hook


def gradcam(model, x: torch.Tensor, target: int | None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """((h, w) map on the layer's grid, (S, S) map at the input size, the class explained) for one image x."""
    import torch
    from captum.attr import LayerAttribution, LayerGradCam

    layer, tap = gradcam_layer(model)
    with torch.no_grad():
        logits = model(x)["logits"]
    if target is None:
        target = int(logits[0].argmax())
    if not 0 <= int(target) < logits.shape[-1]:
        raise BadSettingError(f"The target class must be from 0 to {logits.shape[-1] - 1}, not {target}.")
    hooks = [(layer, _tap_hook(tap))] if tap is not None else []
    with no_inplace(model), forward_hooks(hooks), torch.enable_grad():
        cam = LayerGradCam(lambda inp: model(inp)["logits"], tap if tap is not None else layer)
        x = x.detach().clone().requires_grad_(True)
        attr = cam.attribute(x, target=int(target), relu_attributions=True)  # (1, 1, h, w)
    attr = attr.detach().float()
    full = LayerAttribution.interpolate(attr, (x.shape[-2], x.shape[-1]), interpolate_mode="bilinear")
    return attr[0, 0], full[0, 0], int(target)


def class_index(task_run, target) -> int | None:
    """A target given as a label name or an index -> the index (None stays None: the predicted class)."""
    if target is None or isinstance(target, int):
        return target
    labels = list(getattr(task_run, "labels", None) or [])
    if isinstance(target, str) and target.isdigit():
        return int(target)
    if target in labels:
        return labels.index(target)
    raise BadSettingError(f"Unknown class '{target}'; choose one of: {', '.join(labels)}.")


class GradCAM(Method):
    name = "grad_cam"
    kind = "grid"
    description = "Grad-CAM: where the last convolutional stage holds evidence for the class."

    def applies_to(self, spec) -> bool:
        return input_kind(spec.task) == "image" and (spec.family == "cnn" or spec.name in GRADCAM_IMAGE_MODELS)

    def explain(self, task_run, inputs: dict, target=None, fine_tuned: bool | None = None,
                **_ignored) -> Explanation:
        started = time.perf_counter()
        model = task_run.model
        image = encode_image(task_run, inputs.get("image"))
        with explaining(model):
            coarse, full, target = gradcam(model, model.preprocess(image), class_index(task_run, target))
        labels = list(getattr(task_run, "labels", None) or [])
        notes = weights_notes(task_run, fine_tuned)
        if float(coarse.max()) <= 0:
            notes.append("The map is zero everywhere: at this layer nothing argues for this class.")
        size = tuple(full.shape)
        return Explanation(
            method=self.name, kind=self.kind, values=full.numpy(), grid=size, target=target,
            target_name=labels[target] if target < len(labels) else str(target),
            seconds=time.perf_counter() - started, notes=notes,
            extras={"coarse": coarse.numpy(), "coarse_shape": list(coarse.shape)})


def __getattr__(name: str):
    if name == "GridTap":  # moved to core.explain.gridtap (torch), still importable from here
        from core.explain.gridtap import GridTap

        return GridTap
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
