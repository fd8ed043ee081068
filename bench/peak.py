"""This machine's measured matmul peak, and a step's share of it (model FLOP/s utilisation, MFU).

    .venv/bin/python bench/peak.py [--sizes 1024 2048] [--repeats 5] [--device cpu|cuda]

``gemm_peak(dtype)`` times ``torch.matmul`` on square matrices of a few sizes (best of ``repeats`` per size, after
one warm-up) and returns the best rate in FLOP/s (2 n^3 per product). It is a *measured* peak: what this torch
build reaches on this machine, not the datasheet's, so an MFU of 100% means "as fast as a large GEMM here".

``step_flops(fn)`` counts the FLOPs of one call of ``fn`` (forward + backward when ``fn`` runs both) with
``torch.utils.flop_counter.FlopCounterMode``, which counts matmuls, convolutions and attention (the FLOPs that
matter; it ignores element-wise work); ``length_flops`` extends a text model's count to any sequence length, and
``mfu(flops, seconds, peak)`` is the share of the peak a step reached.

>>> peak = gemm_peak(torch.float32)                                 # doctest: +SKIP
>>> mfu(step_flops(lambda: model(x).sum().backward()), 0.8, peak)   # doctest: +SKIP
0.31
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import time
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

DEFAULT_SIZES = (512, 1024, 2048)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def gemm_rates(dtype: torch.dtype = torch.float32, sizes=DEFAULT_SIZES, repeats: int = 5,
               device: str | torch.device = "cpu") -> dict[int, float]:
    """FLOP/s of ``a @ b`` per square size n (best of ``repeats``; one untimed warm-up first)."""
    device = torch.device(device)
    rates = {}
    for n in sizes:
        g = torch.Generator(device="cpu").manual_seed(n)
        a = torch.randn(n, n, generator=g).to(device, dtype)
        b = torch.randn(n, n, generator=g).to(device, dtype)
        torch.matmul(a, b)
        _sync(device)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.matmul(a, b)
            _sync(device)
            best = min(best, time.perf_counter() - t0)
        rates[n] = 2 * n ** 3 / best
    return rates


@functools.lru_cache(maxsize=8)
def gemm_peak(dtype: torch.dtype = torch.float32, device: str = "cpu", sizes=DEFAULT_SIZES,
              repeats: int = 5) -> float:
    """The best GEMM rate (FLOP/s) over ``sizes``: the peak the MFU figures divide by (measured once per process)."""
    return max(gemm_rates(dtype, sizes, repeats, device).values())


def step_flops(fn: Callable[[], object]) -> int:
    """FLOPs counted while ``fn()`` runs (matmuls, convolutions, attention; forward and backward)."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def length_flops(count_one_row: Callable[[int], int], lengths=(8, 16, 32)) -> Callable[[int], float]:
    """FLOPs of one row of a transformer step as a function of its sequence length t.

    A transformer's matmuls cost c0 + c1 t + c2 t^2 per row (projections and MLPs grow with t, attention with
    t^2, the pooler and head are constant), so three counts of ``count_one_row(t)`` (a real one-row step under
    ``step_flops``) fix the polynomial exactly, and an epoch's FLOPs are summed over its batches' shapes without
    counting every batch. ``count_one_row`` must count the same work (forward+backward) at any t."""
    t = torch.tensor(lengths, dtype=torch.float64)
    a = torch.stack([torch.ones_like(t), t, t * t], dim=1)  # (3, 3)
    y = torch.tensor([float(count_one_row(n)) for n in lengths], dtype=torch.float64)
    c0, c1, c2 = torch.linalg.solve(a, y).tolist()
    return lambda n: c0 + c1 * n + c2 * n * n


def mfu(flops: float, seconds: float, peak: float) -> float:
    """Share of ``peak`` (FLOP/s) reached by ``flops`` done in ``seconds``."""
    return flops / seconds / peak if seconds > 0 and peak > 0 else float("nan")


def peak_summary(device: str = "cpu", sizes=DEFAULT_SIZES, repeats: int = 5) -> dict:
    """Both peaks (fp32, bf16) in GFLOP/s, with the per-size rates, for a bench's JSON line."""
    out = {"device": device, "load_average_1min": round(os.getloadavg()[0], 2), "threads": torch.get_num_threads()}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        rates = gemm_rates(dtype, sizes, repeats, device)
        out[f"{name}_gflops_by_size"] = {n: round(r / 1e9, 1) for n, r in rates.items()}
        out[f"{name}_peak_gflops"] = round(max(rates.values()) / 1e9, 1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    print(json.dumps(peak_summary(args.device, tuple(args.sizes), args.repeats)))


if __name__ == "__main__":
    main()
