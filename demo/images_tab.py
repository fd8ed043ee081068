"""Images tab: the top-5 CIFAR-10 classes of one image, by up to three models side by side (e.g. a CNN and a
vision transformer).

The upload accepts any image a browser can send; decoding (RGBA, grayscale, palette, huge, corrupt) is
core.tasks.images.data.decode_image's job, so the event runs with ``preprocess=False``: Gradio's own preprocessing
would open the file with PIL first and fail on a corrupt one with a generic error instead of our sentence.
Because nothing then checks the payload's path, ``upload_path`` does: a client may name only a file inside
Gradio's upload folder (where every upload and served example lands; symlinks and ``..`` resolved) or this
process's example folder, and core's ``read_image_file`` reads only a regular file within the size limit (never
/dev/zero or /etc/passwd). The app launches with ``max_file_size`` (demo.app.MAX_FILE_SIZE), so a larger upload
is refused before it is stored.
"""
from __future__ import annotations

import os
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder

from core.tasks.images.data import decode_image, read_image_file
from core.errors import BadInputError, TransferLabError
from demo import gallery
from demo.explain_panel import explain_column, explain_image_columns, methods_update
from demo.pickers import (INFERENCE_CONCURRENCY, ModelLists, checked_input, label_columns, md_escape, model_heading,
                          picker_panel, predict_columns, refresh_pickers)

N_MODELS = 3
TOP_K = 5


def pick_example(evt: gr.SelectData) -> tuple:
    """A click on a thumbnail: (the original 32x32 test image as the input, its true label beside the
    predictions)."""
    try:
        path, label = gallery.selected_example(evt.index)
    except TransferLabError as err:
        return gr.update(), md_escape(err)
    return path, f"True label: **{md_escape(label)}**"


def upload_folders() -> tuple[Path, ...]:
    """The folders an image path may come from: Gradio's upload folder and this process's example images."""
    folders = [Path(get_upload_folder())]
    try:
        examples = gallery.example_folder()
    except TransferLabError:  # no CIFAR-10 test images here: uploads only
        examples = None
    if examples is not None:
        folders.append(examples)
    return tuple(f.resolve() for f in folders)


def upload_path(path) -> Path:
    """``path`` resolved, when it lies inside one of upload_folders(); BadInputError (one sentence) otherwise."""
    if not isinstance(path, (str, os.PathLike)) or "\x00" in str(path):
        raise BadInputError("Send the image as an uploaded file.")
    try:
        resolved = Path(path).resolve()
    except (OSError, RuntimeError, ValueError):
        raise BadInputError("The uploaded image could not be read; upload it again.") from None
    if not any(resolved.is_relative_to(folder) for folder in upload_folders()):
        raise BadInputError("Only uploaded images can be classified: upload the file (that path is not an upload).")
    return resolved


def image_bytes(image) -> bytes:
    """The uploaded file's bytes, whatever form the value arrives in: a Gradio file payload (dict with "path"),
    a path, or bytes (in-process callers). Paths must be uploads (upload_path) and are read bounded
    (read_image_file). BadInputError when there is none."""
    if isinstance(image, dict):
        image = image.get("path")
    if image is None or image == "":
        raise BadInputError("Upload an image or pick an example first.")
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    return read_image_file(upload_path(image))


def image_result(title: str, info, result: list[dict] | None, error: str) -> tuple[str, dict | None]:
    """(heading Markdown, gr.Label value {class: probability} of the top 5) for one model."""
    if result is None:
        return model_heading(title, info, error), None
    best = result[0]
    lines = [model_heading(title, info, ""), f"Top class: **{md_escape(best['label'])}** ({best['probability']:.3f})"]
    return "\n\n".join(lines), {r["label"]: r["probability"] for r in result}


def readable_image(image) -> bytes:
    """The image's bytes, after one sentence for an empty, corrupt or oversized file (before any model loads)."""
    data = image_bytes(image)
    decode_image(data, size=32)
    return data


def classify_image(image, ref_1: str | None = None, ref_2: str | None = None, ref_3: str | None = None,
                   progress=gr.Progress()):
    """Event handler: (status, then heading and top-5 label for each of the ``N_MODELS`` pickers); a model's
    first load shows on the progress bar."""
    refs = (ref_1, ref_2, ref_3)
    data, status = checked_input(lambda: readable_image(image), refs)
    if status:
        return (f"**{md_escape(status)}**", *(None,) * (2 * len(refs)))
    return ("", *predict_columns("images", refs, lambda task: task.predict_image(data, top_k=TOP_K), image_result,
                                 progress))


def explain_image(image, ref_1: str | None, ref_2: str | None, ref_3: str | None, method_1: str | None,
                  method_2: str | None, method_3: str | None, shared_scale: bool = False, progress=gr.Progress()):
    """Event handler: (status, then per model: explanation HTML and figure, the map over the upscaled image)."""
    refs = (ref_1, ref_2, ref_3)
    data, status = checked_input(lambda: readable_image(image), refs)
    if status:
        return (f"**{md_escape(status)}**", *(None,) * (2 * len(refs)))
    return ("", *explain_image_columns(data, refs, (method_1, method_2, method_3), bool(shared_scale), progress))


def refresh_models(*current: str | None):
    return tuple(refresh_pickers("images", *current))


def build() -> ModelLists:
    """Lay the tab out and wire it; returns its model lists (demo.app refreshes them when the tab is selected and
    on its timer)."""
    gr.Markdown("Classify an image into the CIFAR-10 classes with up to three models, for example a CNN and a "
                "vision transformer. Any size or mode is accepted; it is centre-cropped and resized per model.")
    with gr.Row():
        with gr.Column(scale=3):
            image = gr.Image(label="Image", type="filepath", image_mode=None, sources=["upload", "clipboard"],
                             height=260)
            true_label = gr.Markdown()
            try:
                thumbnails = gallery.gallery_value()
            except TransferLabError as err:
                gr.Markdown(f"_No example images: {md_escape(err)}_")
            else:
                thumbs = gr.Gallery(thumbnails, columns=5, allow_preview=False, object_fit="contain",
                                    height="auto", label="CIFAR-10 test images, one per class: click one to use it",
                                    interactive=False)
                thumbs.select(pick_example, None, [image, true_label], api_name="image_gallery_pick")
            image.upload(lambda: "", None, true_label, show_progress="hidden", api_visibility="private")
        with gr.Column(scale=2):
            lists, go, refresh, status = picker_panel("images", N_MODELS, "Classify")
            pickers = lists.pickers
            with gr.Row():
                explain_go = gr.Button("Explain", variant="secondary")
                shared = gr.Checkbox(label="Shared colour scale", value=False,
                                     info="One scale for every column's map, so their strengths compare.")
            explain_status = gr.Markdown()
    results, columns = label_columns(N_MODELS, TOP_K, f"top {TOP_K} classes",
                                     below=lambda i: explain_column(f"Model {i + 1}", pickers[i].value, False))
    go.click(classify_image, [image, *pickers], [status, *results], api_name="image_classify", preprocess=False,
             concurrency_limit=INFERENCE_CONCURRENCY)
    refresh.click(refresh_models, pickers, pickers, api_name="image_refresh_models").then(
        **lists.follow_event(), api_name="image_refresh_note")
    methods = [c.method for c in columns]
    gr.on([p.change for p in pickers], methods_update, pickers, methods, api_name="image_explain_methods")
    gr.on([explain_go.click, shared.input] + [m.input for m in methods], explain_image,
          [image, *pickers, *methods, shared], [explain_status, *(w for c in columns for w in c.outputs())],
          api_name="explain_image", preprocess=False, concurrency_limit=INFERENCE_CONCURRENCY)
    return lists
