"""Integrated Gradients on the word-embedding layer of a text model (tweets and QA), with captum.

Attribution of token i: the path integral, from the baseline's word embeddings to the input's, of the gradient of
the explained score with respect to token i's embedding, times the embedding difference, summed over the
embedding's width (captum ``LayerIntegratedGradients`` on ``encoder.get_input_embeddings()``; Gauss-Legendre
steps). The baseline is the same text with every non-special token replaced by [PAD] ([CLS]/[SEP]/<s>/</s> kept),
same attention mask and positions. Completeness says the attributions sum to ``f(x) - f(baseline)``; the gap left
is reported relative to that difference.

Scores explained: tweets, the real-news logit (target "real"/1; "fake"/0 explains its negation, the log-odds of
fake); QA, the answer's start logit plus end logit (``qa_target="start"``/``"end"`` for one of them). Subword
tokens are merged into words by summing (:mod:`core.explain.tokens`), so the total is kept.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable

from core.errors import BadSettingError
from core.explain.base import Explanation, Method
from core.explain.hygiene import explaining
from core.explain.inputs import TextInput, encode_question, encode_tweet, weights_notes, input_kind
from core.explain.tokens import merge_subwords

if TYPE_CHECKING:
    import torch

QA_TARGETS = ("sum", "start", "end")
QA_STEPS_PER_BATCH = 16  # a 384-token window x 16 steps bounds the memory of one IG batch


def integrated_gradients(forward: Callable, layer: torch.nn.Module, input_ids: torch.Tensor,
                         baseline_ids: torch.Tensor, extra_args: tuple = (), n_steps: int = 50,
                         internal_batch_size: int | None = None) -> dict:
    """Layer IG of a scalar-per-example ``forward(ids, *extra_args) -> (B,)`` at ``layer`` for one input (1, T).

    Returns ``scores`` (T,) (the attribution summed over the layer's width), ``f_x``, ``f_baseline`` and
    ``gap`` = |sum(scores) - (f_x - f_baseline)| / max(|f_x - f_baseline|, 1e-8).
    """
    import torch
    from captum.attr import LayerIntegratedGradients

    if n_steps < 1:
        raise BadSettingError(f"Integrated Gradients needs at least 1 step, not {n_steps}.")
    lig = LayerIntegratedGradients(forward, layer)
    with torch.enable_grad():
        attr = lig.attribute(input_ids, baselines=baseline_ids, additional_forward_args=extra_args,
                             n_steps=n_steps, internal_batch_size=internal_batch_size)
    scores = attr.detach().float().sum(dim=-1)[0]  # (T,)
    with torch.no_grad():
        f_x = float(forward(input_ids, *extra_args)[0])
        f_b = float(forward(baseline_ids, *extra_args)[0])
    diff = f_x - f_b
    gap = abs(float(scores.sum()) - diff) / max(abs(diff), 1e-8)
    return {"scores": scores.cpu().numpy(), "f_x": f_x, "f_baseline": f_b, "gap": gap}


def _tweet_target(target) -> tuple[int, float]:
    """(label index, sign of the logit): None/"real"/1 -> (1, +1); "fake"/0 -> (0, -1)."""
    if target is None or target in ("real", 1):
        return 1, 1.0
    if target in ("fake", 0):
        return 0, -1.0
    raise BadSettingError(f"A tweet explanation's target is 'real' or 'fake', not {target!r}.")


def _tweet_forward(model, sign: float) -> Callable:
    def forward(ids, mask, token_types=None):
        return sign * model(input_ids=ids, attention_mask=mask, token_type_ids=token_types)["logits"]
    return forward


def _qa_forward(model, start: int, end: int, part: str) -> Callable:
    def forward(ids, mask, token_types=None):
        out = model(input_ids=ids, attention_mask=mask, token_type_ids=token_types)
        s, e = out["start_logits"][:, start], out["end_logits"][:, end]
        return s + e if part == "sum" else (s if part == "start" else e)
    return forward


class IntegratedGradients(Method):
    name = "integrated_gradients"
    kind = "tokens"
    description = ("Integrated Gradients: how much each word moves the score from an all-[PAD] text to this one; "
                   "the word scores add up to that difference.")

    def applies_to(self, spec) -> bool:
        return input_kind(spec.task) != "image"

    def explain(self, task_run, inputs: dict, target=None, steps: int = 50, internal_batch_size: int | None = None,
                qa_target: str = "sum", max_length: int | None = None, stride: int | None = None,
                fine_tuned: bool | None = None, **_ignored) -> Explanation:
        started = time.perf_counter()
        model = task_run.model
        kind = input_kind(task_run.task_spec)
        if kind == "image":
            raise BadSettingError("Integrated Gradients here explains text models, not the "
                                  f"{task_run.task_spec.name} task.")
        if kind == "span":
            if qa_target not in QA_TARGETS:
                raise BadSettingError(f"qa_target must be one of {', '.join(QA_TARGETS)}, not {qa_target!r}.")
            enc = encode_question(task_run, inputs.get("question"), inputs.get("context"), max_length, stride)
            start, end = enc.target
            forward = _qa_forward(model, start, end, qa_target)
            target_index, target_name = [start, end], enc.target_name
        else:
            enc = encode_tweet(task_run, inputs.get("text"))
            label, sign = _tweet_target(target)
            forward = _tweet_forward(model, sign)
            target_index, target_name = label, model.label_names[label]
        if internal_batch_size is None:  # tweets are short: all steps in one batch is fastest on CPU
            internal_batch_size = int(steps) if kind == "text" else QA_STEPS_PER_BATCH
        with explaining(model):
            result = integrated_gradients(forward, model.encoder.get_input_embeddings(), enc.tensors["input_ids"],
                                          enc.baseline_ids(), _extra_args(enc), n_steps=int(steps),
                                          internal_batch_size=internal_batch_size)
        words, word_scores, groups = merge_subwords(enc.tokens, result["scores"], enc.special)
        notes = list(enc.notes) + weights_notes(task_run, fine_tuned)
        if result["gap"] > 0.05:
            notes.append(f"The attributions miss completeness by {result['gap']:.0%}: use more steps.")
        return Explanation(
            method=self.name, kind=self.kind, values=word_scores, tokens=words, target=target_index,
            target_name=target_name, completeness_gap=result["gap"], seconds=time.perf_counter() - started,
            notes=notes,
            extras={"subword_tokens": enc.tokens, "subword_values": result["scores"], "word_groups": groups,
                    "score": result["f_x"], "baseline_score": result["f_baseline"], "steps": int(steps),
                    "explained": _explained_words(kind, qa_target)})


def _extra_args(enc: TextInput) -> tuple:
    return (enc.tensors["attention_mask"], enc.tensors.get("token_type_ids"))


def _explained_words(kind: str, qa_target: str) -> str:
    if kind == "span":
        return {"sum": "start logit + end logit of the answer", "start": "start logit of the answer",
                "end": "end logit of the answer"}[qa_target]
    return "logit of the target label (log-odds)"
