"""Attention probabilities captured from one forward pass, for text encoders (transformers) and image
transformers (timm).

Text: transformers' eager attention path returns every layer's (B, H, T, T) probabilities with
``output_attentions=True``; the sdpa path returns none, so the encoder is switched to eager for the pass.
Images: timm's unfused attention computes ``softmax(q k^T * scale)`` and passes it through ``attn_drop`` (identity
in eval mode), so a forward hook on each ``attn_drop`` sees the probabilities; fused attention is switched off for
the pass. What each image layout needs is described by :class:`ImageLayout`.
"""
from __future__ import annotations

from dataclasses import dataclass

from typing import TYPE_CHECKING

import numpy as np

from core.errors import BadSettingError
from core.explain.hygiene import eager_attention, forward_hooks, unfused_timm_attention
from core.explain.inputs import TextInput, encoder_kwargs

if TYPE_CHECKING:
    import torch


def text_attentions(model, enc: TextInput) -> list[np.ndarray]:
    """Per layer (H, T, T) attention probabilities of ``model.encoder`` for one encoded text."""
    import torch

    with torch.no_grad(), eager_attention(model.encoder):
        out = model.encoder(**encoder_kwargs(model, enc.tensors), output_attentions=True)
    if not out.attentions:
        raise BadSettingError("This encoder returned no attention maps.")
    return [a[0].float().cpu().numpy() for a in out.attentions]


@dataclass(frozen=True)
class ImageLayout:
    """How an image transformer's tokens are laid out.

    style: "vit" (prefix tokens then patches, every block attends over all), "cait" (self-attention over patches
    only, then class-attention blocks) or "beit" (like vit but the head averages the patch tokens).
    """

    style: str
    prefix: int  # class (and distillation) tokens before the patches
    grid: tuple[int, int]  # patches per side
    self_attention: tuple  # attention modules of the blocks, in order
    class_attention: tuple = ()  # CaiT's class-attention modules
    mean_pooled: bool = False


def image_layout(model) -> ImageLayout:
    """The token layout of an ImageClassifier's transformer backbone; BadSettingError for any other backbone."""
    from core.tasks.images.nets import BeitBackbone, CaitBackbone, ViTBackbone

    backbone = getattr(model, "backbone", None)
    net = getattr(backbone, "net", None)
    if isinstance(backbone, ViTBackbone):
        return ImageLayout("vit", int(net.num_prefix_tokens), tuple(net.patch_embed.grid_size),
                           tuple(b.attn for b in net.blocks))
    if isinstance(backbone, BeitBackbone):
        pooled = getattr(net, "global_pool", "token") == "avg"
        return ImageLayout("beit", 1, tuple(net.patch_embed.grid_size), tuple(b.attn for b in net.blocks),
                           mean_pooled=pooled)
    if isinstance(backbone, CaitBackbone):
        return ImageLayout("cait", 0, tuple(net.patch_embed.grid_size), tuple(b.attn for b in net.blocks),
                           tuple(b.attn for b in net.blocks_token_only))
    raise BadSettingError("Attention rollout needs a ViT, DeiT, CaiT or BEiT backbone; this model has none.")


def image_attentions(model, x: torch.Tensor, layout: ImageLayout) -> tuple[list[np.ndarray], list[np.ndarray], torch.Tensor]:
    """(self-attention per block (H, T, T), class attention per block (H, 1, 1 + N), logits) for one image."""
    import torch

    captured: dict[int, list[np.ndarray]] = {}
    modules = list(layout.self_attention) + list(layout.class_attention)

    def keep(index: int):
        def hook(module, args, output):
            captured.setdefault(index, []).append(output[0].float().cpu().numpy())
        return hook

    hooks = forward_hooks((m.attn_drop, keep(i)) for i, m in enumerate(modules))
    with torch.no_grad(), unfused_timm_attention(model), hooks:
        logits = model(x)["logits"]
    missing = [i for i in range(len(modules)) if i not in captured]
    if missing:
        raise BadSettingError(f"{len(missing)} attention layers produced no attention maps to capture.")
    n_self = len(layout.self_attention)
    return ([captured[i][0] for i in range(n_self)],
            [captured[i][0] for i in range(n_self, len(modules))], logits)
