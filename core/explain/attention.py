"""Raw attention of a text encoder: one layer's (and one head's, or the heads' mean) token-by-token matrix.

Captured on transformers' eager path (:func:`core.explain.capture.text_attentions`). Row i is where token i looked;
the [CLS] row is returned apart because the tweet head reads the [CLS] state. Attention is not attribution: a
token can be looked at and ignored, which is why :mod:`core.explain.integrated_gradients` exists.
"""
from __future__ import annotations

import time

import numpy as np

from core.errors import BadSettingError
from core.explain.base import Explanation, Method
from core.explain.capture import text_attentions
from core.explain.hygiene import explaining
from core.explain.inputs import encode_question, encode_tweet, weights_notes, input_kind

def encode_text(task_run, inputs: dict, max_length=None, stride=None):
    """The task's one encoded text: a tweet, or the QA window that holds the answer."""
    kind = input_kind(task_run.task_spec)
    if kind == "span":
        return encode_question(task_run, inputs.get("question"), inputs.get("context"), max_length, stride)
    if kind == "text":
        return encode_tweet(task_run, inputs.get("text"))
    raise BadSettingError(f"Attention maps here are for text models, not the {task_run.task_spec.name} task.")


def pick(attentions: list[np.ndarray], layer: int, head) -> tuple[np.ndarray, int, str]:
    """(T, T) matrix of one layer (negative counts from the top) and one head or the heads' mean."""
    n_layers, n_heads = len(attentions), attentions[0].shape[0]
    if not -n_layers <= int(layer) < n_layers:
        raise BadSettingError(f"This encoder has {n_layers} layers; choose a layer from 0 to {n_layers - 1}.")
    layer = int(layer) % n_layers
    if head in (None, "mean"):
        return attentions[layer].mean(axis=0), layer, "mean"
    if not -n_heads <= int(head) < n_heads:
        raise BadSettingError(f"Each layer has {n_heads} heads; choose a head from 0 to {n_heads - 1}, or 'mean'.")
    return attentions[layer][int(head) % n_heads], layer, str(int(head) % n_heads)


class AttentionMap(Method):
    name = "attention"
    kind = "matrix"
    description = "Attention: where each token looks in one layer (one head, or the heads' mean)."

    def applies_to(self, spec) -> bool:
        return input_kind(spec.task) != "image"

    def explain(self, task_run, inputs: dict, target=None, layer: int = -1, head="mean", max_length=None,
                stride=None, fine_tuned: bool | None = None, **_ignored) -> Explanation:
        started = time.perf_counter()
        enc = encode_text(task_run, inputs, max_length, stride)
        with explaining(task_run.model):
            attentions = text_attentions(task_run.model, enc)
        matrix, layer, head = pick(attentions, layer, head)
        return Explanation(
            method=self.name, kind=self.kind, values=matrix, tokens=enc.tokens, grid=matrix.shape,
            target=enc.target or None, target_name=enc.target_name, seconds=time.perf_counter() - started,
            notes=list(enc.notes) + weights_notes(task_run, fine_tuned),
            extras={"layer": layer, "head": head, "layers": len(attentions), "heads": attentions[0].shape[0],
                    "cls_row": matrix[0]})
