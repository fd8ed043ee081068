"""The frozen-encoder cache that the text tasks share (tweets and QA).

When a strategy leaves an encoder (or everything before its last layer) frozen and in eval mode, its output for an
example never changes, so it is computed once per example before the first epoch, and every epoch trains the rest
on the cached tensors. Two layouts:

- ``pooled``: one vector per example, (N, H) per split.
- ``sequence``: the hidden states of each example's *real* tokens only, stored back to back as one
  (total real tokens, H) tensor with per-example ``offsets`` (N + 1,), so example i is
  ``rows[offsets[i]:offsets[i + 1]]``. :meth:`EncoderCache.gather` re-pads a batch (zeros) to its longest row.
  Compared with a dense (N, max_length, H) tensor this is 2-3 times smaller on tweets and PQuAD windows.

dtype: float32 when the whole cache (all splits) is below :data:`FP32_CACHE_LIMIT` in float32, so cached and
uncached training are the same computation up to float rounding; fp16 above that, which halves the memory and
rounds the features to about 3 decimal digits (the head still computes in float32). A cache larger than the run's
``cache_max_gb`` is skipped (the task then trains on the uncached path).

>>> cache, info = EncoderCache.build("pooled", {"train": lengths}, 384, encode, 64, torch.device("cpu"), 4.0)  # doctest: +SKIP
>>> cache.gather("train", torch.tensor([0, 2])).shape                                                          # doctest: +SKIP
torch.Size([2, 384])
"""
from __future__ import annotations

from typing import Callable

import torch
from torch.nn.utils.rnn import pad_sequence

FP32_CACHE_LIMIT = 2**30  # bytes: below this (in float32) the cache is float32, above it fp16

# (split name, row indices) -> (b, H) pooled or (b, T, H) sequence outputs, T >= the rows' real lengths
EncodeFn = Callable[[str, torch.Tensor], torch.Tensor]
ProgressFn = Callable[[str, int, int], None]


class EncoderCache:
    """Frozen-encoder outputs per split (see the module docstring for the two layouts)."""

    def __init__(self, kind: str, dtype: torch.dtype):
        if kind not in ("pooled", "sequence"):
            raise ValueError(f"unknown cache kind {kind!r}")
        self.kind = kind
        self.dtype = dtype
        self.features: dict[str, torch.Tensor] = {}
        self.offsets: dict[str, torch.Tensor] = {}

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.features.values())

    def gather(self, split: str, idx: torch.Tensor) -> torch.Tensor:
        """float32 features of rows ``idx``: (B, H), or (B, T_b, H) zero-padded to the longest of them."""
        feats = self.features[split]
        if self.kind == "pooled":
            return feats[idx.to(feats.device)].float()
        off = self.offsets[split].tolist()
        rows = [feats[off[i]:off[i + 1]] for i in idx.tolist()]
        return pad_sequence(rows, batch_first=True).float()

    @classmethod
    def build(cls, kind: str, lengths: dict[str, torch.Tensor], hidden: int, encode: EncodeFn, batch_size: int,
              device: torch.device, cache_max_gb: float, progress: ProgressFn | None = None
              ) -> tuple["EncoderCache | None", dict]:
        """Run ``encode`` once over every row of every split (longest rows first, ``batch_size`` at a time, under
        no_grad) and keep its outputs. ``lengths``: per split, the real tokens of each row (N,).

        Returns (the cache, facts for config.json), or (None, why it was skipped) when it would exceed
        ``cache_max_gb``."""
        rows = {s: len(n) if kind == "pooled" else int(n.sum()) for s, n in lengths.items()}
        fp32_bytes = sum(rows.values()) * hidden * 4
        dtype = torch.float32 if fp32_bytes < FP32_CACHE_LIMIT else torch.float16
        need = fp32_bytes if dtype == torch.float32 else fp32_bytes // 2
        if need > cache_max_gb * 2**30:
            return None, {"feature_cache": None,
                          "feature_cache_skipped": f"needs {need / 2**30:.2f} GiB > cache_max_gb {cache_max_gb}"}
        cache = cls(kind, dtype)
        total, done = sum(len(n) for n in lengths.values()), 0
        with torch.no_grad():
            for name, n in lengths.items():
                feats = torch.empty((rows[name], hidden), dtype=dtype, device=device)
                if kind == "sequence":
                    offsets = torch.zeros(len(n) + 1, dtype=torch.long)
                    offsets[1:] = n.cumsum(0)
                    cache.offsets[name] = offsets
                order = torch.argsort(n, descending=True, stable=True)  # similar lengths share a forward
                for i in range(0, len(n), batch_size):
                    idx = order[i:i + batch_size]
                    out = encode(name, idx)  # (b, H) or (b, T, H)
                    if kind == "pooled":
                        feats[idx.to(device)] = out.to(dtype)
                    else:
                        for j, k in enumerate(idx.tolist()):
                            start, end = int(offsets[k]), int(offsets[k + 1])
                            feats[start:end] = out[j, :end - start].to(dtype)
                    done += len(idx)
                    if progress:
                        progress("cache", done, total)
                cache.features[name] = feats
        return cache, {"feature_cache": {"kind": kind, "dtype": str(dtype).replace("torch.", ""),
                                         "bytes": cache.nbytes(), "rows": rows, "hidden_size": hidden}}
