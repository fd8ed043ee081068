"""Attention rollout (Abnar & Zuidema) for text encoders and image transformers.

Text: the rollout of every layer (:func:`core.explain.rollout.attention_rollout`), and the row of the token the
head reads ([CLS] for tweets; for QA the mean of the answer's start and end rows) as per-word scores (subwords
summed, so a row still sums to 1).
Images (ViT, DeiT-distilled, CaiT, BEiT): the rows of the prefix tokens the head reads (DeiT-distilled: the class
and the distillation token, averaged, as its two heads are), over the patch columns, on the patch grid; CaiT: the
self-attention rollout over patches carried through its class-attention blocks
(:func:`core.explain.rollout.class_attention_rollout`); BEiT pools the patch tokens, so the map is the mean of the
patch rows. Rollout does not depend on the class: it shows where information flows, not what it argues for.
"""
from __future__ import annotations

import time

import numpy as np

from core.errors import BadSettingError
from core.explain.attention import encode_text
from core.explain.base import Explanation, Method
from core.explain.capture import image_attentions, image_layout, text_attentions
from core.explain.hygiene import explaining
from core.explain.inputs import encode_image, weights_notes, input_kind
from core.explain.rollout import attention_rollout, class_attention_rollout, row_normalise
from core.explain.tokens import merge_subwords

# Image transformers whose attention rollout is defined here (the others, Swin and CoaT, get Grad-CAM).
ROLLOUT_IMAGE_MODELS = ("deit_base_distilled", "deit_small_distilled", "cait_s24", "vit_large_patch32", "beit_base")


def upsample(grid: np.ndarray, size: int) -> np.ndarray:
    """(h, w) -> (size, size), bilinear."""
    import torch
    import torch.nn.functional as F

    t = torch.as_tensor(np.asarray(grid, dtype=np.float32))[None, None]
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[0, 0].numpy()


def image_rollout_map(self_attn: list[np.ndarray], class_attn: list[np.ndarray], layout, fusion: str = "mean"
                      ) -> tuple[np.ndarray, list[str]]:
    """((h, w) map over the patch grid, notes) from captured attentions."""
    notes = []
    h, w = layout.grid
    if layout.style == "cait":
        # Talking-heads attention mixes heads after the softmax, so its rows need not sum to 1: clip, renormalise.
        patches = attention_rollout([row_normalise(a) for a in self_attn], fusion)
        relevance = class_attention_rollout(patches, class_attn, fusion)
        notes.append("CaiT: talking-heads attention rows are clipped at 0 and renormalised before the rollout.")
    else:
        rollout = attention_rollout(self_attn, fusion)
        p = layout.prefix
        if layout.mean_pooled:
            relevance = rollout[p:, p:].mean(axis=0)
            notes.append("BEiT averages its patch tokens, so the map is the mean of the patch rows of the rollout.")
        else:
            relevance = rollout[:p, p:].mean(axis=0)
            if p == 2:
                notes.append("DeiT-distilled: the class and distillation tokens' rows are averaged, as its two "
                             "heads are.")
    return relevance.reshape(h, w), notes


class AttentionRollout(Method):
    name = "attention_rollout"
    description = ("Attention rollout: attention multiplied through the layers (heads averaged, residual added), "
                   "from the token the head reads back to the inputs.")

    @property
    def kind(self) -> str:  # "tokens" for text, "grid" for images; each Explanation says which
        return "tokens|grid"

    def applies_to(self, spec) -> bool:
        if input_kind(spec.task) != "image":
            return True
        return spec.name in ROLLOUT_IMAGE_MODELS

    def explain(self, task_run, inputs: dict, target=None, fusion: str = "mean", max_length=None, stride=None,
                fine_tuned: bool | None = None, **_ignored) -> Explanation:
        started = time.perf_counter()
        if fusion not in ("mean", "max", "min"):
            raise BadSettingError(f"Head fusion is mean, max or min, not {fusion!r}.")
        if input_kind(task_run.task_spec) == "image":
            return self._image(task_run, inputs, fusion, fine_tuned, started)
        enc = encode_text(task_run, inputs, max_length, stride)
        with explaining(task_run.model):
            attentions = text_attentions(task_run.model, enc)
        rollout = attention_rollout(attentions, fusion)  # (T, T)
        rows = enc.target if enc.target else [0]
        row = rollout[rows].mean(axis=0)
        words, scores, groups = merge_subwords(enc.tokens, row, enc.special)
        return Explanation(
            method=self.name, kind="tokens", values=scores, tokens=words, target=enc.target or None,
            target_name=enc.target_name, seconds=time.perf_counter() - started,
            notes=list(enc.notes) + weights_notes(task_run, fine_tuned),
            extras={"rollout": rollout, "subword_tokens": enc.tokens, "word_groups": groups,
                    "row": "answer start and end" if enc.target else "[CLS]"})

    def _image(self, task_run, inputs, fusion, fine_tuned, started) -> Explanation:
        model = task_run.model
        layout = image_layout(model)
        image = encode_image(task_run, inputs.get("image"))
        with explaining(model):
            x = model.preprocess(image)
            self_attn, class_attn, logits = image_attentions(model, x, layout)
        coarse, notes = image_rollout_map(self_attn, class_attn, layout, fusion)
        predicted = int(logits[0].argmax())
        size = int(model.input_size)
        labels = getattr(task_run, "labels", None) or []
        return Explanation(
            method=self.name, kind="grid", values=upsample(coarse, size), grid=(size, size), target=predicted,
            target_name=labels[predicted] if predicted < len(labels) else str(predicted),
            seconds=time.perf_counter() - started,
            notes=notes + ["Rollout does not depend on the class; the target is the predicted class, for "
                           "reference."] + weights_notes(task_run, fine_tuned),
            extras={"coarse": coarse, "coarse_shape": list(coarse.shape), "layers": len(self_attn) + len(class_attn)})
