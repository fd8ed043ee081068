"""Attention rollout (Abnar & Zuidema, 2020), as a pure numpy function, and the helpers around it.

Per layer: average the heads, add the identity (the residual connection carries each token to itself), renormalise
every row to sum to 1, and multiply the layers together from the first to the last. Row i of the result says how
much of token i's final state can be traced back to each input token, if attention were the only mixing.

>>> import numpy as np
>>> eye = np.eye(3)[None].repeat(2, 0)                      # 2 heads of identity attention
>>> attention_rollout([eye, eye]).round(3).tolist() == np.eye(3).tolist()
True
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def row_normalise(a: np.ndarray) -> np.ndarray:
    """Rows scaled to sum to 1 (negative entries clipped first; an all-zero row becomes uniform)."""
    a = np.clip(np.asarray(a, dtype=np.float64), 0.0, None)
    sums = a.sum(axis=-1, keepdims=True)
    uniform = np.full_like(a, 1.0 / a.shape[-1])
    return np.where(sums > 0, a / np.where(sums > 0, sums, 1.0), uniform)


def fuse_heads(attention: np.ndarray, fusion: str = "mean") -> np.ndarray:
    """(H, T, S) or (T, S) -> (T, S): the heads' mean (or max/min)."""
    attention = np.asarray(attention, dtype=np.float64)
    if attention.ndim == 2:
        return attention
    if fusion == "mean":
        return attention.mean(axis=0)
    if fusion == "max":
        return attention.max(axis=0)
    if fusion == "min":
        return attention.min(axis=0)
    raise ValueError(f"unknown head fusion {fusion!r}")


def rollout_step(attention: np.ndarray, fusion: str = "mean") -> np.ndarray:
    """One layer's (T, T) mixing matrix: heads fused, identity added, rows renormalised."""
    a = fuse_heads(attention, fusion)
    return row_normalise(a + np.eye(a.shape[-1]))


def attention_rollout(attentions: Sequence[np.ndarray], fusion: str = "mean") -> np.ndarray:
    """(T, T) rollout of per-layer attentions, each (H, T, T) or (T, T), first layer first; rows sum to 1."""
    if not len(attentions):
        raise ValueError("attention rollout needs at least one layer")
    result = np.eye(np.asarray(attentions[0]).shape[-1])
    for a in attentions:
        result = rollout_step(a, fusion) @ result
    return result


def class_attention_rollout(patch_rollout: np.ndarray, class_attentions: Sequence[np.ndarray],
                            fusion: str = "mean") -> np.ndarray:
    """CaiT: the class token's (N,) relevance over the N patches.

    ``patch_rollout`` (N, N) is the rollout of the self-attention blocks (patches only, no class token there);
    each class-attention block gives (H, 1, 1 + N) or (1 + N,) attention of the class token over [class, patches].
    The class token starts as a learnt constant (no patch in it); each block mixes ``a[0]`` of the old class state
    (plus the residual) with ``a[1:]`` of the patch states, whose own relevance is ``patch_rollout``.
    """
    n = patch_rollout.shape[0]
    cls_on_patches = np.zeros(n)
    for a in class_attentions:
        heads = np.asarray(a, dtype=np.float64).reshape(-1, 1, 1 + n)  # (H, 1, 1 + N)
        row = fuse_heads(heads, fusion)[0]  # (1 + N,)
        row = row_normalise(row + np.eye(1 + n)[0])  # the residual keeps the old class state
        cls_on_patches = row[0] * cls_on_patches + row[1:] @ patch_rollout
    return cls_on_patches
