"""The "Explain" controls of the prediction tabs (Tweets, Persian QA, Images) and what their handlers share.

Each model column gets a method picker that offers only ``core.explain.methods_for(spec)`` of the picked model
(a run's spec is read from its summary, so picking a model loads nothing), attention layer/head pickers (shown
for the attention method only; core returns one layer and head, never the whole stack), and the explanation of
the same input rendered in that column (demo.explain_views). Explanations are cached in
``demo.state.explanations()`` by (model ref, input hash, method, settings).
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import numpy as np

from core import registry
from core.errors import BadInputError
from core.explain import Explanation, explain, methods_for
from core.store.runs import open_run, resolve_run_ref
from demo.explain_views import message_html, method_label, render, value_range
from demo.pickers import load_model, user_message
from demo.state import explanations

LAST_LAYER = -1
HEAD_MEAN = "mean"
NO_METHOD = "No explanation method applies to this model."


def spec_for_ref(ref: str | None):
    """The ModelSpec of a picker's ref (``model:<name>`` or a run of the run store), without loading weights."""
    if not ref:
        raise BadInputError("Pick a model first.")
    if not isinstance(ref, str):
        raise BadInputError("Pick a model from the list (a run id or model:<name>).")
    if ref.startswith("model:"):
        return registry.get(ref.removeprefix("model:"))
    return registry.get(open_run(resolve_run_ref(ref)).summary()["model"])


def method_choices(ref: str | None) -> list[tuple[str, str]]:
    """(label, method) pairs for a ref's method picker; [] when nothing is picked or nothing applies."""
    try:
        return [(method_label(m), m) for m in methods_for(spec_for_ref(ref))]
    except Exception:  # a vanished run or an unknown name: the explain event says why in one sentence
        return []


def no_method_sentence(ref: str) -> str:
    try:
        return f"No explanation method applies to {spec_for_ref(ref).name}."
    except Exception:
        return NO_METHOD


def methods_update(*refs: str | None) -> tuple[dict, ...]:
    """New choices for each column's method picker (the first method preselected) after a model pick."""
    updates = []
    for ref in refs:
        choices = method_choices(ref)
        updates.append(gr.update(choices=choices, value=choices[0][1] if choices else None))
    return tuple(updates)


def common_method_choices(spec_a, spec_b) -> list[tuple[str, str]]:
    """Methods both specs support, in the order core offers them."""
    b = set(methods_for(spec_b))
    return [(method_label(m), m) for m in methods_for(spec_a) if m in b]


def attention_controls(*methods: str | None) -> tuple[dict, ...]:
    """(layer update, head update) per column: visible only when that column explains with attention."""
    out = []
    for method in methods:
        shown = method == "attention"
        out += [gr.update(visible=shown), gr.update(visible=shown)]
    return tuple(out)


def _layer(value) -> int:
    try:
        return int(value) if value not in (None, "") else LAST_LAYER
    except (TypeError, ValueError):
        raise BadInputError(f"The layer must be a whole number (-1 for the last), not {value!r}.") from None


def _head(value):
    if value in (None, "", HEAD_MEAN):
        return HEAD_MEAN
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadInputError(f"The head must be a whole number or 'mean', not {value!r}.") from None


def explain_ref(ref: str, task_name: str, method: str | None, inputs: dict, **settings) -> Explanation:
    """One explanation of ``ref``'s prediction on ``inputs`` (cached); a TransferLabError with one sentence."""
    if not method:
        raise BadInputError("Pick an explanation method.")
    task_run, _ = load_model(ref, task_name, int8=False)  # gradients need the float model; loaded once, cached
    settings.setdefault("fine_tuned", not ref.startswith("model:"))
    cache = explanations()
    key = cache.key(ref, inputs, method, settings)
    found = cache.get(key)
    if found is not None:
        return found
    result = explain(task_run, method, inputs, **settings)
    cache.put(key, result)
    return result


# -- layout ---------------------------------------------------------------------------------------------------------
@dataclass
class ExplainColumn:
    """One model column's explanation widgets."""

    method: gr.Dropdown
    layer: gr.Dropdown | None
    head: gr.Dropdown | None
    view: gr.HTML
    plot: gr.Plot

    def outputs(self) -> list:
        return [self.view, self.plot] + ([self.layer, self.head] if self.layer is not None else [])


def explain_column(title: str, ref: str | None, attention: bool) -> ExplainColumn:
    """Call inside a model's gr.Column: the method picker (choices for ``ref``), layer/head pickers for text
    models, and the HTML and plot the explanation is drawn in."""
    choices = method_choices(ref)
    method = gr.Dropdown(choices=choices, value=choices[0][1] if choices else None, label=f"{title}: explain with",
                         info="Only the methods that apply to the picked model.")
    layer = head = None
    shown = bool(choices) and choices[0][1] == "attention"
    if attention:
        with gr.Row():
            # allow_custom_value: the choices grow once the model's layer and head counts are known
            layer = gr.Dropdown(choices=[("last", LAST_LAYER)], value=LAST_LAYER, label=f"{title}: layer",
                                allow_custom_value=True, visible=shown)
            head = gr.Dropdown(choices=[HEAD_MEAN], value=HEAD_MEAN, label=f"{title}: head",
                               allow_custom_value=True, visible=shown)
    view = gr.HTML(label=f"{title}: explanation")
    plot = gr.Plot(label=f"{title}: explanation plot", show_label=False)
    return ExplainColumn(method, layer, head, view, plot)


# -- handlers' shared body --------------------------------------------------------------------------------------------
def _layer_head_updates(e: Explanation | None, layer, head) -> list[dict]:
    if e is None or e.method != "attention":
        return [gr.update(), gr.update()]
    layers, heads = int(e.extras.get("layers", 0)), int(e.extras.get("heads", 0))
    return [gr.update(choices=[("last", LAST_LAYER)] + [(str(i), i) for i in range(layers)], value=layer),
            gr.update(choices=[HEAD_MEAN] + [str(h) for h in range(heads)], value=str(head))]


def explain_text_columns(task_name: str, inputs: dict, refs, methods, layers, heads, progress) -> list:
    """For each column: [HTML, figure, layer update, head update] of its model's explanation of ``inputs``."""
    out = []
    picked = [i for i, ref in enumerate(refs) if ref]
    for i, ref in enumerate(refs):
        if not ref:
            out += [message_html("No model picked."), None, gr.update(), gr.update()]
            continue
        progress(picked.index(i) / max(len(picked), 1), desc=f"Explaining with model {i + 1}")
        try:
            if not methods[i] and not method_choices(ref):
                raise BadInputError(no_method_sentence(ref))
            layer, head = _layer(layers[i]), _head(heads[i])
            settings = {"layer": layer, "head": head} if methods[i] == "attention" else {}
            e = explain_ref(ref, task_name, methods[i], inputs, **settings)
        except Exception as err:  # the UI boundary: one sentence per column, the others still shown
            out += [message_html(user_message(err)), None, gr.update(), gr.update()]
            continue
        view, fig = render(e, rtl=registry.get_task(task_name).rtl)
        out += [view, fig, *_layer_head_updates(e, layer, head)]
    progress(1.0, desc="Done")
    return out


def overlay_base(image: np.ndarray | bytes, size: int) -> np.ndarray:
    """The input image at the map's size, (size, size, 3) uint8, for the overlay."""
    from PIL import Image

    from core.tasks.images.data import decode_image

    if isinstance(image, (bytes, bytearray)):
        return decode_image(bytes(image), size=size).permute(1, 2, 0).numpy().astype(np.uint8)
    return np.asarray(Image.fromarray(np.asarray(image, dtype=np.uint8)).resize((size, size), Image.BILINEAR))


def explain_image_columns(image, refs, methods, shared: bool, progress) -> list:
    """For each column: [HTML, figure] of its model's explanation of ``image`` (bytes or (H, W, 3) uint8); with
    ``shared`` every 2-D map uses one colour scale."""
    results: list[Explanation | str | None] = []
    picked = [i for i, ref in enumerate(refs) if ref]
    for i, ref in enumerate(refs):
        if not ref:
            results.append(None)
            continue
        progress(picked.index(i) / max(len(picked), 1), desc=f"Explaining with model {i + 1}")
        try:
            if not methods[i] and not method_choices(ref):
                raise BadInputError(no_method_sentence(ref))
            results.append(explain_ref(ref, "images", methods[i], {"image": image}))
        except Exception as err:
            results.append(user_message(err))
    found = [r for r in results if isinstance(r, Explanation)]
    zrange = value_range(found) if shared and len(found) > 1 else None
    out = []
    for r in results:
        if r is None:
            out += [message_html("No model picked."), None]
        elif isinstance(r, str):
            out += [message_html(r), None]
        else:
            base = overlay_base(image, int(r.grid[-1])) if r.array().ndim == 2 else None
            out += list(render(r, image=base, zrange=zrange))
    progress(1.0, desc="Done")
    return out
