"""An Explanation drawn as a PNG with PIL and numpy only: a heatmap blended over the image for grids, a heatmap
of the matrix, or a strip of coloured cells for token scores (red for, blue against).

>>> open("map.png", "wb").write(to_png(explanation, image))   # doctest: +SKIP
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

# A perceptual dark-to-bright ramp (close to matplotlib's inferno at five stops), for non-negative maps.
_RAMP = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=np.float64)


def colour(values: np.ndarray) -> np.ndarray:
    """(..., ) values in [0, 1] -> (..., 3) uint8 on the ramp."""
    v = np.clip(np.nan_to_num(values), 0.0, 1.0) * (len(_RAMP) - 1)
    lo = np.floor(v).astype(int).clip(0, len(_RAMP) - 2)
    frac = (v - lo)[..., None]
    return (_RAMP[lo] * (1 - frac) + _RAMP[lo + 1] * frac).round().astype(np.uint8)


def diverging(values: np.ndarray) -> np.ndarray:
    """(...,) signed values -> (..., 3) uint8: blue (negative), white (0), red (positive), scaled by max |v|."""
    scale = float(np.abs(values).max()) or 1.0
    v = np.clip(values / scale, -1.0, 1.0)[..., None]
    red, blue, white = np.array([214, 39, 40.]), np.array([31, 119, 180.]), np.array([255, 255, 255.])
    out = np.where(v >= 0, white + (red - white) * v, white + (blue - white) * -v)
    return out.round().astype(np.uint8)


def _normalise(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def to_png(explanation, image: np.ndarray | None = None, cell: int = 24) -> bytes:
    """PNG bytes of an explanation; ``image`` (H, W, 3) uint8 lies under a grid map (blended half and half)."""
    values = explanation.array()
    if explanation.kind == "tokens":
        rgb = np.repeat(np.repeat(diverging(values)[None], cell, axis=0), cell, axis=1)
    elif explanation.kind == "matrix":
        rgb = np.kron(colour(_normalise(values)), np.ones((max(1, cell // 4), max(1, cell // 4), 1), np.uint8))
    else:
        maps = values[None] if values.ndim == 2 else values  # (k, h, w)
        tiles = []
        for m in maps:
            heat = Image.fromarray(colour(_normalise(m)))
            if image is not None:
                base = Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")
                heat = Image.blend(base, heat.resize(base.size, Image.BILINEAR), 0.5)
            elif heat.width < 224:
                heat = heat.resize((224, 224 * heat.height // heat.width), Image.NEAREST)
            tiles.append(np.asarray(heat))
        rgb = np.concatenate(tiles, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="PNG")
    return buffer.getvalue()
