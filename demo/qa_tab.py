"""Persian QA tab: ask one or two models the same question about a passage, side by side.

Handlers are plain functions of the widgets' values (testable in process); ``build()`` only lays the widgets
out and wires them. The first section holds what the three prediction tabs (QA, tweets, images) share: loading
a picked model through ``demo.state.predictors()`` and saying what it is (a fine-tuned run, or a registry model
whose task head was never trained, whose outputs are therefore not meaningful).
"""
from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

import gradio as gr

from core import registry
from core.errors import BadInputError, BadSettingError, RunNotFoundError, TransferLabError
from core.paths import REPO_ROOT
from core.runs import open_run
from demo.models_tab import weights_status
from demo.state import model_choices, predictors

log = logging.getLogger(__name__)
T = TypeVar("T")


# ---------------------------------------------------------------------------------------------------------------
# Shared by the prediction tabs: pick, load and describe a model
# ---------------------------------------------------------------------------------------------------------------
HEAD_WORDS = {"images": "classification head", "tweets": "classification head", "qa": "answer-span head"}


@dataclass(frozen=True)
class ModelInfo:
    """What a picked model is, for the line shown above its predictions.

    ``trained`` is True when its task head was trained for this task (a fine-tuned run, or a registry checkpoint
    already fine-tuned for it); otherwise its outputs come from a random head and ``note`` says so.
    """

    ref: str
    name: str
    trained: bool
    note: str  # one Markdown sentence


def md_escape(text: str) -> str:
    """Text safe to put inside Markdown: HTML-escaped, Markdown punctuation backslashed."""
    out = html.escape(str(text), quote=False)
    for ch in "\\`*_[]#|~":
        out = out.replace(ch, "\\" + ch)
    return out


def describe_run(ref: str, task_name: str) -> ModelInfo:
    """A run of this task, described by its model, strategy and test metric; one sentence when it is gone."""
    if not Path(ref).is_dir():
        raise RunNotFoundError(f"Run {Path(ref).name} no longer exists (it was deleted); press Refresh and pick "
                               "another model.")
    summary = open_run(ref).summary()
    if summary["task"] != task_name:
        raise BadSettingError(f"Run {summary['id']} was trained for the {summary['task']} task, not {task_name}.")
    metric = summary["headline"]
    scored = f", test {summary['headline_metric']} {metric:.3f}" if isinstance(metric, (int, float)) else ""
    state = "" if summary["status"] == "completed" else f" (status {summary['status']}: weights of its last checkpoint)"
    note = (f"✅ Fine-tuned run `{summary['id']}`: {md_escape(summary['model'])}, {md_escape(summary['strategy'])}"
            f"{scored}{state}.")
    return ModelInfo(ref, summary["id"], True, note)


def describe_registry_model(ref: str, task_name: str, loaded) -> ModelInfo:
    """A registry model as built here: already fine-tuned for the task (a QA checkpoint from the Hub), or not."""
    spec = registry.get(ref.removeprefix("model:"))
    source = str(getattr(loaded.model, "weights_source", "unknown"))
    if spec.family == "qa_finetuned" and source.startswith("hub:"):
        return ModelInfo(ref, spec.name, True, f"✅ Registry model **{md_escape(spec.name)}**: a checkpoint already "
                                               f"fine-tuned for this task ({md_escape(source)}).")
    if getattr(loaded.model, "pretrained", False):
        body = f"pretrained weights ({md_escape(source)}), but its {HEAD_WORDS[task_name]} was never trained"
    else:
        body = "every weight is random (no pretrained weights on this machine), and it was never trained"
    return ModelInfo(ref, spec.name, False, f"⚠️ **Untrained — not a real prediction.** Registry model "
                                            f"**{md_escape(spec.name)}**: {body}, so these outputs are not meaningful. "
                                            "Fine-tune it first, then pick the run.")


def load_model(ref: str | None, task_name: str):
    """(TaskRun ready to predict, ModelInfo) for a picker's ref; a TransferLabError with one sentence otherwise."""
    if not ref:
        raise BadInputError("Pick a model first.")
    if ref.startswith("model:"):
        spec = registry.get(ref.removeprefix("model:"))  # UnknownModelError: one sentence
        if spec.task != task_name:
            raise BadSettingError(f"{spec.name} is a model for the {spec.task} task, not {task_name}.")
        loaded = predictors().get(ref)
        return loaded, describe_registry_model(ref, task_name, loaded)
    try:
        info = describe_run(ref, task_name)
        loaded = predictors().get(ref)
    except RunNotFoundError:
        predictors().forget_run(ref)  # a deleted run: free the memory its loaded model still holds
        raise
    return loaded, info


def user_message(err: BaseException) -> str:
    """One sentence for the UI. Our typed errors carry theirs; anything else is a bug, logged with its traceback."""
    if isinstance(err, TransferLabError):
        return str(err)
    if "out of memory" in str(err).lower():
        return "The model ran out of memory on this input; try a shorter input or a smaller model."
    log.error("prediction failed", exc_info=err)
    return f"The model failed on this input ({type(err).__name__}); the details are in the server log."


def predict_with(ref: str | None, task_name: str,
                 predict: Callable[[object], T]) -> tuple[ModelInfo | None, T | None, str]:
    """Load ``ref`` and run ``predict(task_run)``: (info, result, "") or (info or None, None, one sentence)."""
    info = None
    try:
        loaded, info = load_model(ref, task_name)
        return info, predict(loaded), ""
    except Exception as err:  # the UI boundary: every failure becomes one sentence, the app keeps running
        return info, None, user_message(err)


def model_heading(title: str, info: ModelInfo | None, error: str) -> str:
    """The Markdown above one model's result: which model, what it is, or why there is no result."""
    lines = [f"### {title}"]
    if info is not None:
        lines.append(info.note)
    if error:
        lines.append(f"**{md_escape(error)}**")
    return "\n\n".join(lines)


def default_ref(choices: list[tuple[str, str]]) -> str | None:
    """The newest finished run, else the first registry model with real weights here, else nothing."""
    for _, ref in choices:
        if not ref.startswith("model:"):
            return ref
    for _, ref in choices:
        if weights_status(registry.get(ref.removeprefix("model:"))) != "untrained":
            return ref
    return None


def refresh_pickers(task_name: str, *current: str | None) -> list[dict]:
    """New choices for every picker of a tab (new runs appear, deleted ones go); each keeps its value if still
    offered."""
    choices = model_choices(task_name)
    refs = {ref for _, ref in choices}
    return [gr.update(choices=choices, value=value if value in refs else None) for value in current]


def model_picker(task_name: str, label: str, first: bool) -> gr.Dropdown:
    choices = model_choices(task_name)
    return gr.Dropdown(choices=choices, value=default_ref(choices) if first else None, label=label,
                       info=None if not first else "Fine-tuned runs first, then registry models (untrained heads).")


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
