"""The tap Grad-CAM hooks when a stage's output is not a (B, C, h, w) grid (Swin, CoaT): see core.explain.gradcam.

Apart from gradcam.py because it is an ``nn.Module`` (torch), imported when Grad-CAM picks its layer.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class GridTap(nn.Module):
    """Views a stage's output as (B, C, h, w) for captum; :meth:`restore` turns the grid back."""

    def __init__(self, layout: str):
        super().__init__()
        self.layout = layout  # "nhwc" (Swin) or "tokens" (CoaT: class token first)

    def forward(self, out: torch.Tensor) -> torch.Tensor:
        if self.layout == "nhwc":
            return out.permute(0, 3, 1, 2)
        patches = out[:, 1:]  # (B, N, C)
        side = math.isqrt(patches.shape[1])
        return patches.transpose(1, 2).reshape(out.shape[0], out.shape[2], side, side)

    def restore(self, grid: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        if self.layout == "nhwc":
            return grid.permute(0, 2, 3, 1)
        return torch.cat((out[:, :1], grid.flatten(2).transpose(1, 2)), dim=1)
