"""Persian QA tab: ask one or two models the same question about a passage, side by side.

Handlers are plain functions of the widgets' values (testable in process); ``build()`` only lays the widgets
out and wires them. Picking, loading and describing a model is shared with the other prediction tabs (demo/pickers.py).
"""
from __future__ import annotations

import json
from pathlib import Path

import gradio as gr

from core.paths import REPO_ROOT
from demo.pickers import ModelInfo, md_escape, model_heading, model_picker, predict_with, refresh_pickers


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


def highlighted_passage(passage: str, start: int, end: int) -> tuple[dict, str]:
    """HighlightedText value with [start, end) marked as the answer, cut to an excerpt when the passage is long;
    and a note saying which characters are shown ("" when all are)."""
    if len(passage) <= EXCERPT_CHARS:
        lo, hi = 0, len(passage)
    else:
        lo, hi = max(0, start - EXCERPT_MARGIN), min(len(passage), end + EXCERPT_MARGIN)
    prefix, suffix = ("… " if lo > 0 else ""), (" …" if hi < len(passage) else "")
    text = prefix + passage[lo:hi] + suffix
    offset = len(prefix) - lo
    value = {"text": text, "entities": [{"entity": "answer", "start": start + offset, "end": end + offset}]}
    note = f"Showing characters {lo:,}–{hi:,} of {len(passage):,}." if (lo, hi) != (0, len(passage)) else ""
    return value, note


def qa_result(title: str, info: ModelInfo | None, result: dict | None, error: str, passage: str):
    """(heading Markdown, HighlightedText value, alternatives rows) for one model's answer."""
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
    rows = [[i + 1, alt["text"], alt["start_char"], round(alt["probability"], 4)]
            for i, alt in enumerate(result["alternatives"][:TOP_K])]
    return "\n\n".join(lines), value, rows


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


def answer_question(passage: str | None, question: str | None, ref_a: str | None, ref_b: str | None = None):
    """Event handler: (status, then heading, highlighted passage and alternatives for model A, then for model B)."""
    status = check_question(passage, question)
    if not status and not ref_a and not ref_b:
        status = "Pick a model first."
    if status:
        return (f"**{md_escape(status)}**", *(None,) * 6)
    outputs = []
    for title, ref in (("Model A", ref_a), ("Model B", ref_b)):
        if not ref:
            outputs += ["", None, None]
            continue
        info, result, error = predict_with(ref, "qa", lambda task: task.answer(question, passage, top_k=TOP_K))
        outputs += list(qa_result(title, info, result, error, passage))
    return ("", *outputs)


def refresh_models(ref_a: str | None, ref_b: str | None):
    return tuple(refresh_pickers("qa", ref_a, ref_b))


def _result_column(title: str):
    heading = gr.Markdown(f"### {title}")
    highlight = gr.HighlightedText(label="Answer in the passage", rtl=True, color_map={"answer": "green"},
                                   show_legend=False, combine_adjacent=False)
    table = gr.Dataframe(headers=ALTERNATIVE_COLUMNS, label=f"Top {TOP_K} spans", interactive=False, wrap=True,
                         datatype=["number", "str", "number", "number"])
    return heading, highlight, table


def build() -> None:
    gr.Markdown("Ask a question about a Persian passage. Pick a second model to compare two answers side by side. "
                "Long passages are read in overlapping windows.")
    with gr.Row():
        with gr.Column(scale=3):
            passage = gr.Textbox(label="Passage (متن)", lines=8, max_lines=20, rtl=True, text_align="right")
            question = gr.Textbox(label="Question (پرسش)", lines=1, rtl=True, text_align="right")
        with gr.Column(scale=2):
            model_a = model_picker("qa", "Model A", first=True)
            model_b = model_picker("qa", "Model B (optional)", first=False)
            with gr.Row():
                ask = gr.Button("Answer", variant="primary")
                refresh = gr.Button("Refresh models")
            status = gr.Markdown()
    rows, labels = example_rows(load_examples())
    gr.Examples(rows, inputs=[passage, question], example_labels=labels, label="Examples (written for this demo)",
                examples_per_page=8, api_name="qa_example")
    with gr.Row():
        with gr.Column():
            a = _result_column("Model A")
        with gr.Column():
            b = _result_column("Model B")
    gr.on([ask.click, question.submit], answer_question, [passage, question, model_a, model_b], [status, *a, *b],
          api_name="qa_answer")
    refresh.click(refresh_models, [model_a, model_b], [model_a, model_b], api_name="qa_refresh_models")
