"""Explanation objects (core.explain.Explanation) drawn for the browser: escaped HTML and plotly figures.

Pure functions of an Explanation (no gradio, no model): tokens coloured by their score (red for, blue against,
the same diverging scale as core.explain.png), an attention matrix as a heatmap whose ticks stay unique when a
token repeats, token scores as a bar chart, and an image map laid over the upscaled input image, optionally on a
colour scale shared by several columns.

>>> html = token_html(Explanation("integrated_gradients", "tokens", [0.5, -0.25], tokens=["[CLS]", "<b>"]))
>>> "&lt;b&gt;" in html and "<b>" not in html
True
"""
from __future__ import annotations

import base64
import html
import io

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from core.explain import Explanation
from core.explain.png import diverging

METHOD_LABELS = {
    "integrated_gradients": "Integrated Gradients",
    "attention": "Attention (one layer and head)",
    "attention_rollout": "Attention rollout",
    "grad_cam": "Grad-CAM",
    "activations": "Activations",
}
MAX_OVERLAY_CELLS = 56  # an image map is sent at most 56 x 56 (the maps are upsampled 7x7 or 14x14 grids anyway)
_RTL_STYLE = "direction:rtl; text-align:right; font-family:Vazirmatn, 'Noto Sans Arabic', Tahoma, sans-serif"
_TOKEN_STYLE = ("display:inline-block; margin:0.12em; padding:0.05em 0.3em; border-radius:4px; color:#111827; "
                "border:1px solid #e5e7eb")


def method_label(name: str) -> str:
    return METHOD_LABELS.get(name, name.replace("_", " "))


def unique_ticks(tokens: list[str]) -> list[str]:
    """Tick labels that stay apart when a token repeats: each token suffixed with its position ("wash·1")."""
    return [f"{t}·{i}" for i, t in enumerate(tokens)]


def _rgb(triple) -> str:
    return f"rgb({int(triple[0])},{int(triple[1])},{int(triple[2])})"


def header_html(e: Explanation) -> str:
    """What was explained, the completeness gap (Integrated Gradients), the time, and every note (escaped)."""
    parts = [f"<b>{html.escape(method_label(e.method))}</b>"]
    if e.target_name:
        parts.append(f"target: <b>{html.escape(str(e.target_name))}</b>")
    if e.completeness_gap is not None:
        parts.append(f"completeness gap {e.completeness_gap:.1%}")
    if e.extras.get("layer") is not None and e.kind == "matrix":
        parts.append(f"layer {html.escape(str(e.extras['layer']))}, head {html.escape(str(e.extras.get('head')))}")
    parts.append(f"{e.seconds:.2f} s")
    notes = "".join(f'<li class="tl-note">Note: {html.escape(str(n))}</li>' for n in e.notes)
    return (f'<div class="tl-explain-head">{" · ".join(parts)}</div>'
            + (f'<ul class="tl-notes" style="margin:0.3em 0; padding-left:1.2em">{notes}</ul>' if notes else ""))


def token_html(e: Explanation, rtl: bool = False) -> str:
    """The tokens, each on a background coloured by its score (hover shows it); ``rtl`` for Persian text."""
    values = e.array().reshape(-1)
    tokens = list(e.tokens or [])
    colours = diverging(values) if values.size else np.zeros((0, 3))
    spans = "".join(
        f'<span class="tl-token" title="{v:+.4f}" style="{_TOKEN_STYLE}; background:{_rgb(c)}">'
        f"{html.escape(str(t))}</span>"
        for t, v, c in zip(tokens, values, colours))
    direction = f' dir="rtl" lang="fa" style="{_RTL_STYLE}; line-height:2"' if rtl else ' style="line-height:2"'
    legend = ('<div style="font-size:0.85em; color:#6b7280">red: pushes towards the target · blue: against · '
              "white: no effect (hover a token for its score)</div>") if e.method != "attention_rollout" else (
        '<div style="font-size:0.85em; color:#6b7280">darker red: more attention flows from this token to the '
        "output (hover for the share)</div>")
    return (f'<div class="tl-explanation">{header_html(e)}'
            f'<div class="tl-tokens"{direction}>{spans}</div>{legend}</div>')


def token_bar_figure(e: Explanation, title: str = "") -> go.Figure:
    """Token scores as bars, one per position (unique ticks, so repeated tokens keep their own bar)."""
    values = e.array().reshape(-1)
    ticks = unique_ticks(list(e.tokens or []))
    fig = go.Figure(go.Bar(x=ticks, y=values, marker_color=[_rgb(c) for c in diverging(values)],
                           marker_line_color="#9ca3af", marker_line_width=0.5,
                           hovertemplate="%{x}<br>%{y:.4f}<extra></extra>"))
    fig.update_xaxes(type="category", tickangle=-45)
    fig.update_layout(title=title or method_label(e.method), height=320, margin=dict(l=40, r=10, t=50, b=80))
    return fig


def matrix_figure(e: Explanation, title: str = "") -> go.Figure:
    """A (T, T) attention matrix: row i = where token i looks; ticks index-suffixed so repeats stay apart."""
    values = np.round(e.array(), 4)
    ticks = unique_ticks(list(e.tokens or []))
    fig = go.Figure(go.Heatmap(z=values, x=ticks, y=ticks, colorscale="Viridis", zmin=0,
                               hovertemplate="%{y} looks at %{x}<br>%{z:.3f}<extra></extra>"))
    fig.update_xaxes(type="category", tickangle=-45, title_text="looked at")
    fig.update_yaxes(type="category", autorange="reversed", title_text="token")
    layer, head = e.extras.get("layer"), e.extras.get("head")
    name = title or f"Attention, layer {layer}, head {head}"
    fig.update_layout(title=name, height=440, margin=dict(l=80, r=10, t=50, b=80))
    return fig


def _png_data_uri(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def coarse(values: np.ndarray, cells: int = MAX_OVERLAY_CELLS) -> np.ndarray:
    """(H, W) -> at most (cells, cells), bilinear: what the browser gets instead of every pixel."""
    h, w = values.shape
    if max(h, w) <= cells:
        return values.astype(np.float32)
    small = Image.fromarray(values.astype(np.float32), mode="F").resize((cells, cells), Image.BILINEAR)
    return np.asarray(small, dtype=np.float32)


def value_range(explanations: list[Explanation | None]) -> tuple[float, float] | None:
    """(min, max) over every 2-D grid map given: the colour scale shared by several columns (None if none)."""
    maps = [e.array() for e in explanations if e is not None and e.kind == "grid" and e.array().ndim == 2]
    if not maps:
        return None
    lo, hi = min(float(m.min()) for m in maps), max(float(m.max()) for m in maps)
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def grid_figure(e: Explanation, image: np.ndarray | None = None, zrange: tuple[float, float] | None = None,
                title: str = "") -> go.Figure:
    """An image map laid half-transparent over ``image`` ((S, S, 3) uint8 at the map's size); activations
    ((k, h, w)) as k small heatmaps. ``zrange`` fixes the colour scale (shared between columns)."""
    values = e.array()
    name = title or f"{method_label(e.method)}" + (f": {e.target_name}" if e.target_name else "")
    if values.ndim == 3:
        channels = e.extras.get("channels") or list(range(values.shape[0]))
        fig = make_subplots(rows=1, cols=values.shape[0], subplot_titles=[f"channel {c}" for c in channels])
        for k, m in enumerate(values):
            fig.add_trace(go.Heatmap(z=np.round(m, 4), colorscale="Inferno", showscale=False,
                                     hovertemplate="%{z:.3f}<extra></extra>"), row=1, col=k + 1)
            fig.update_yaxes(autorange="reversed", showticklabels=False, scaleanchor=f"x{k + 1 if k else ''}",
                             row=1, col=k + 1)
            fig.update_xaxes(showticklabels=False, row=1, col=k + 1)
        fig.update_layout(title=name, height=260, margin=dict(l=10, r=10, t=70, b=10))
        return fig
    h, w = values.shape
    small = coarse(values)
    fy, fx = h / small.shape[0], w / small.shape[1]
    lo, hi = zrange if zrange is not None else (float(values.min()), float(values.max()))
    fig = go.Figure()
    if image is not None:
        fig.add_trace(go.Image(source=_png_data_uri(image), hoverinfo="skip"))
    fig.add_trace(go.Heatmap(z=np.round(small, 4), x0=fx / 2 - 0.5, dx=fx, y0=fy / 2 - 0.5, dy=fy,
                             colorscale="Inferno", zmin=lo, zmax=hi, opacity=0.5 if image is not None else 1.0,
                             colorbar=dict(thickness=12), hovertemplate="%{z:.3f}<extra></extra>"))
    fig.update_xaxes(showticklabels=False, range=[-0.5, w - 0.5], showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, range=[h - 0.5, -0.5], showgrid=False, zeroline=False, scaleanchor="x")
    fig.update_layout(title=name, height=380, margin=dict(l=10, r=10, t=50, b=10))
    return fig


def render(e: Explanation, rtl: bool = False, image: np.ndarray | None = None,
           zrange: tuple[float, float] | None = None) -> tuple[str, go.Figure | None]:
    """(HTML, figure or None) for one explanation: the form each kind is shown in."""
    if e.kind == "tokens":
        return token_html(e, rtl=rtl), token_bar_figure(e)
    if e.kind == "matrix":
        return f'<div class="tl-explanation">{header_html(e)}</div>', matrix_figure(e)
    return f'<div class="tl-explanation">{header_html(e)}</div>', grid_figure(e, image=image, zrange=zrange)


def message_html(text: str) -> str:
    """One sentence (an error a user can cause, or why there is nothing to show), escaped."""
    return f'<div class="tl-explain-message"><b>{html.escape(str(text))}</b></div>'
