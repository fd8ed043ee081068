"""Persian QA tab: ask one or two models the same question about a passage, side by side.

Handlers are plain functions of the widgets' values (testable in process); ``build()`` only lays the widgets
out and wires them. Picking, loading and describing a model is shared with the other prediction tabs (demo/pickers.py).
"""
from __future__ import annotations

import html
import json
from pathlib import Path

import gradio as gr

from core.paths import REPO_ROOT
from demo.explain_panel import attention_controls, explain_column, explain_text_columns, methods_update
from demo.pickers import (ModelInfo, ModelLists, first_load_words, is_loaded, md_escape, model_heading,
                          model_lists, predict_with, refresh_pickers, unpicked_heading, INFERENCE_CONCURRENCY)


# ---------------------------------------------------------------------------------------------------------------
# QA
# ---------------------------------------------------------------------------------------------------------------
EXAMPLES_FILE = REPO_ROOT / "assets" / "qa_examples.json"
MAX_PASSAGE_CHARS = 100_000  # read in overlapping windows; ~150 windows of 384 tokens for e5_small
EXCERPT_CHARS = 3_000  # longer passages are shown as an excerpt around the answer
EXCERPT_MARGIN = 1_000
TOP_K = 5
NO_ANSWER = "The passage does not say."
ALTERNATIVE_COLUMNS = ["#", "span", "start char", "probability"]


def load_examples(path: Path = EXAMPLES_FILE) -> list[dict]:
    """The passages of ``assets/qa_examples.json``: title, passage, questions (question, answer or None)."""
    return json.loads(path.read_text(encoding="utf-8"))["passages"]


def example_rows(passages: list[dict]) -> tuple[list[list[str]], list[str]]:
    """([passage, question] rows for gr.Examples, a short label per row)."""
    rows, labels = [], []
    for p in passages:
        for q in p["questions"]:
            rows.append([p["passage"], q["question"]])
            labels.append(f"{p['title']}: {q['question']}")
    return rows, labels


# Inline styles: the HTML blocks carry their own look (no app-wide CSS to pass to launch()). A Persian sans font
# keeps letters joined (Gradio's table cells are monospace, which breaks Persian shaping); words never break.
_RTL_STYLE = ("direction:rtl; text-align:right; font-family:Vazirmatn, 'Noto Sans Arabic', Tahoma, sans-serif; "
              "line-height:2; word-break:normal; overflow-wrap:normal; white-space:pre-wrap")
_MARK_STYLE = "background:#bbf7d0; color:#14532d; padding:0.1em 0.25em; border-radius:4px; font-weight:600"
_CELL = "padding:0.3em 0.6em; border-bottom:1px solid #e5e7eb"


def highlighted_passage(passage: str, start: int, end: int) -> tuple[str, str]:
    """HTML of the passage, right to left, with [start, end) marked as the answer (``<mark>``), cut to an excerpt
    around it when the passage is long; and a note saying which characters are shown ("" when all are)."""
    if len(passage) <= EXCERPT_CHARS:
        lo, hi = 0, len(passage)
    else:
        lo, hi = max(0, start - EXCERPT_MARGIN), min(len(passage), end + EXCERPT_MARGIN)
    prefix, suffix = ("… " if lo > 0 else ""), (" …" if hi < len(passage) else "")
    body = (html.escape(prefix + passage[lo:start]) + f'<mark style="{_MARK_STYLE}">'
            + html.escape(passage[start:end]) + "</mark>" + html.escape(passage[end:hi] + suffix))
    note = f"Showing characters {lo:,}–{hi:,} of {len(passage):,}." if (lo, hi) != (0, len(passage)) else ""
    return f'<div dir="rtl" lang="fa" class="tl-passage" style="{_RTL_STYLE}">{body}</div>', note


def alternatives_html(alternatives: list[dict]) -> str:
    """The top spans as an HTML table: rank, span (right to left, Persian font), start character, probability."""
    head = "".join(f'<th style="{_CELL}; text-align:{"right" if c == "span" else "left"}">{c}</th>'
                   for c in ALTERNATIVE_COLUMNS)
    rows = []
    for i, alt in enumerate(alternatives[:TOP_K]):
        rows.append(f'<tr><td style="{_CELL}">{i + 1}</td>'
                    f'<td dir="rtl" lang="fa" style="{_CELL}; {_RTL_STYLE}">{html.escape(alt["text"])}</td>'
                    f'<td style="{_CELL}">{alt["start_char"]:,}</td>'
                    f'<td style="{_CELL}">{alt["probability"]:.4f}</td></tr>')
    return (f'<table class="tl-spans" style="width:100%; border-collapse:collapse; font-size:0.95em">'
            f'<thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>')


def qa_result(title: str, info: ModelInfo | None, result: dict | None, error: str, passage: str):
    """(heading Markdown, passage HTML with the answer marked, top-spans HTML table) for one model's answer."""
    if result is None:
        return model_heading(title, info, error), None, None
    lines = [model_heading(title, info, "")]
    if result["has_answer"]:
        value, shown = highlighted_passage(passage, result["start_char"], result["end_char"])
        lines.append(f"**Answer:** «{md_escape(result['answer'])}» — probability {result['probability']:.3f}")
    else:
        value, shown = None, ""
        lines.append(f"**{NO_ANSWER}** The model gives no answer from this passage.")
    lines.append(f"No-answer probability: {result['no_answer_probability']:.3f} · read in {result['windows']} "
                 f"window{'s' if result['windows'] != 1 else ''}. {shown}".rstrip())
    return "\n\n".join(lines), value, alternatives_html(result["alternatives"])


def check_question(passage: str | None, question: str | None) -> str:
    """One sentence when the passage or the question cannot be asked about, else ""."""
    if not passage or not passage.strip():
        return "The passage is empty; paste the text in which to look for the answer."
    if not question or not question.strip():
        return "The question is empty; type a question to ask about the passage."
    if len(passage) > MAX_PASSAGE_CHARS:
        return (f"The passage has {len(passage):,} characters; this demo reads at most {MAX_PASSAGE_CHARS:,}, "
                "so paste the part that holds the answer.")
    return ""


def window_progress(progress, title: str):
    """A ``core`` progress callback (phase, windows read, windows) that shows "<title>: window i of n" in the
    Gradio progress bar of this event."""
    def report(phase: str, done: int, total: int) -> None:
        if done:
            text = f"{title}: window {done} of {total}"
        else:  # before the first batch
            text = f"{title}: reading {total} window{'s' if total != 1 else ''}"
        progress((done, total), desc=text, unit="windows")
    return report


def _no_progress(*args, **kwargs) -> None:
    """A progress tracker that shows nothing."""


def answer_question(passage: str | None, question: str | None, ref_a: str | None, ref_b: str | None = None,
                    progress=gr.Progress()):
    """Event handler: (status, then heading, highlighted passage and alternatives for model A, then for model B).

    ``progress`` (filled in by Gradio; not an API input): "Model A: loading <name> for its first prediction ..."
    (:func:`demo.pickers.first_load_words`) while a model that is not in the predictor cache yet is loaded, then
    "Model A: window i of n" as the passage's windows are read. Outside an event the default gr.Progress() does
    nothing, so a direct call (tests, scripts) needs none; None also means no progress."""
    if progress is None:
        progress = _no_progress
    status = check_question(passage, question)
    if not status and not ref_a and not ref_b:
        status = "Pick a model first."
    if status:
        return (f"**{md_escape(status)}**", *(None,) * 6)
    outputs = []
    for title, ref in (("Model A", ref_a), ("Model B", ref_b)):
        if not ref:
            outputs += [unpicked_heading(title), None, None]
            continue
        if isinstance(ref, str) and not is_loaded(ref):
            progress(0.0, desc=first_load_words(title, ref))
        report = window_progress(progress, title)
        info, result, error = predict_with(
            ref, "qa", lambda task: task.answer(question, passage, top_k=TOP_K, progress=report))
        outputs += list(qa_result(title, info, result, error, passage))
    return ("", *outputs)


def explain_qa(passage: str | None, question: str | None, ref_a: str | None, ref_b: str | None,
               method_a: str | None, method_b: str | None, layer_a=-1, layer_b=-1, head_a="mean", head_b="mean",
               progress=gr.Progress()):
    """Event handler: (status, then for model A and B: explanation HTML (right to left), figure, layer and head
    pickers). Integrated Gradients explains the answer's start + end score."""
    status = check_question(passage, question)
    if not status and not ref_a and not ref_b:
        status = "Pick a model first."
    if status:
        return (f"**{md_escape(status)}**", *(None, None, gr.update(), gr.update()) * 2)
    columns = explain_text_columns("qa", {"question": question, "context": passage}, (ref_a, ref_b),
                                   (method_a, method_b), (layer_a, layer_b), (head_a, head_b), progress)
    return ("", *columns)


def refresh_models(ref_a: str | None, ref_b: str | None):
    return tuple(refresh_pickers("qa", ref_a, ref_b))


def _result_column(title: str):
    heading = gr.Markdown(f"### {title}")
    highlight = gr.HTML(label="Answer in the passage", show_label=True, container=True)
    table = gr.HTML(label=f"Top {TOP_K} spans", show_label=True, container=True)
    return heading, highlight, table


def _explain_widgets(title: str, picker):
    return explain_column(title, picker.value, attention=True)


def build() -> ModelLists:
    """Lay the tab out and wire it; returns its model lists (demo.app refreshes them when the tab is selected and
    on its timer)."""
    gr.Markdown("Ask a question about a Persian passage. Pick a second model to compare two answers side by side. "
                "Long passages are read in overlapping windows.")
    with gr.Row():
        with gr.Column(scale=3):
            passage = gr.Textbox(label="Passage (متن)", lines=8, max_lines=20, rtl=True, text_align="right")
            question = gr.Textbox(label="Question (پرسش)", lines=1, rtl=True, text_align="right")
        with gr.Column(scale=2):
            lists = model_lists("qa", ["Model A", "Model B (optional)"],
                                info="Fine-tuned runs first, then registry models (untrained heads).")
            model_a, model_b = lists.pickers
            with gr.Row():
                ask = gr.Button("Answer", variant="primary")
                refresh = gr.Button("Refresh models")
                explain_go = gr.Button("Explain", variant="secondary")
            status = gr.Markdown()
            explain_status = gr.Markdown()
    rows, labels = example_rows(load_examples())
    gr.Examples(rows, inputs=[passage, question], example_labels=labels, label="Examples (written for this demo)",
                examples_per_page=8, api_name="qa_example")
    with gr.Row():
        with gr.Column():
            a = _result_column("Model A")
            explain_a = _explain_widgets("Model A", model_a)
        with gr.Column():
            b = _result_column("Model B")
            explain_b = _explain_widgets("Model B", model_b)
    gr.on([ask.click, question.submit], answer_question, [passage, question, model_a, model_b], [status, *a, *b],
          api_name="qa_answer", concurrency_limit=INFERENCE_CONCURRENCY)
    refresh.click(refresh_models, [model_a, model_b], [model_a, model_b], api_name="qa_refresh_models").then(
        **lists.follow_event(), api_name="qa_refresh_note")
    columns = (explain_a, explain_b)
    methods = [c.method for c in columns]
    gr.on([model_a.change, model_b.change], methods_update, [model_a, model_b], methods,
          api_name="qa_explain_methods")
    gr.on([m.change for m in methods], attention_controls, methods,
          [w for c in columns for w in (c.layer, c.head)], api_name="qa_explain_controls")
    gr.on([explain_go.click] + [w.input for c in columns for w in (c.method, c.layer, c.head)], explain_qa,
          [passage, question, model_a, model_b, *methods, *(c.layer for c in columns), *(c.head for c in columns)],
          [explain_status, *(w for c in columns for w in c.outputs())], api_name="explain_qa",
          concurrency_limit=INFERENCE_CONCURRENCY)
    return lists
