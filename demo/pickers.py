"""What the prediction tabs (QA, tweets, images) share: pick, load and describe a model.

A picked model is loaded through ``demo.state.predictors()`` and described honestly: a fine-tuned run, or a
registry model whose task head was never trained (its outputs are therefore not meaningful).

The model lists follow the run store (:class:`ModelLists`): on page load, when the tab is selected, on the app's
slow timer (so a job that ends shows up) and on "Refresh models", Model 1 defaults to the best completed run of the
task by its test headline metric, and a line under the pickers says which run that is. Registry models this
machine cannot run are not offered; the same line names them and says why.
"""
from __future__ import annotations

import functools
import html
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

import gradio as gr

from core import registry
from core.engine.interactive import serving
from core.errors import BadInputError, BadSettingError, RunNotFoundError, TransferLabError
from core.store.runs import open_run, resolve_run_ref
from core.weights import head_is_trained, weights_status
from demo.state import best_run, model_choices, predictors, unrunnable_models

log = logging.getLogger(__name__)
T = TypeVar("T")
# Requests of one inference event served at once (Gradio's default is one at a time, so a class of 60 queued
# behind each other). Forward passes release the GIL, and the loaded models are shared read-only.
INFERENCE_CONCURRENCY = int(os.environ.get("TRANSFER_LAB_INFERENCE_CONCURRENCY", "4"))


def fmt_value(value) -> str:
    """A metric or count for a table cell: 4 decimals, thousands separators, yes/no, blank for missing."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


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


def md_code(text: str) -> str:
    """``text`` as a Markdown code span: shown as is (Markdown renders a code span's content literally, HTML
    included, so :func:`md_escape`'s backslashes would show there); backticks and line breaks, which would end the
    span, become ' and a space.

    >>> md_code("albert_fa")
    '`albert_fa`'
    """
    return "`" + str(text).replace("`", "'").replace("\r", " ").replace("\n", " ") + "`"


def describe_run(ref: str, task_name: str) -> ModelInfo:
    """A run of this task, described by its model, strategy and test metric; one sentence when it is gone or
    is not a run of the run store (resolve_run_ref: clients cannot name folders elsewhere)."""
    try:
        path = resolve_run_ref(ref)
    except RunNotFoundError as err:
        if isinstance(ref, str) and not Path(ref).is_dir():
            raise RunNotFoundError(f"Run {Path(ref).name[:80]} no longer exists (it was deleted); press Refresh "
                                   "and pick another model.") from None
        raise err from None
    summary = open_run(path).summary()
    if summary["task"] != task_name:
        raise BadSettingError(f"Run {summary['id']} was trained for the {summary['task']} task, not {task_name}.")
    metric = summary["headline"]
    scored = f", test {summary['headline_metric']} {metric:.3f}" if isinstance(metric, (int, float)) else ""
    state = "" if summary["status"] == "completed" else f" (status {summary['status']}: weights of its last checkpoint)"
    note = (f"Fine-tuned run `{summary['id']}`: {md_escape(summary['model'])}, {md_escape(summary['strategy'])}"
            f"{scored}{state}.")
    return ModelInfo(ref, summary["id"], True, note)


def describe_registry_model(ref: str, task_name: str, loaded) -> ModelInfo:
    """A registry model as built here: already fine-tuned for the task (a QA checkpoint from the Hub), or not."""
    spec = registry.get(ref.removeprefix("model:"))
    source = loaded.model.weights
    if head_is_trained(spec, source):
        return ModelInfo(ref, spec.name, True, f"Registry model **{md_escape(spec.name)}**: a checkpoint already "
                                               f"fine-tuned for this task ({md_escape(source.label())}).")
    if source.pretrained:
        body = (f"pretrained weights ({md_escape(source.label())}), but its "
                f"{registry.get_task(task_name).head_words} was never trained")
    else:
        body = "every weight is random (no pretrained weights on this machine), and it was never trained"
    return ModelInfo(ref, spec.name, False, f"**Untrained — not a real prediction.** Registry model "
                                            f"**{md_escape(spec.name)}**: {body}, so these outputs are not meaningful. "
                                            "Fine-tune it first, then pick the run.")


def load_model(ref: str | None, task_name: str, int8: bool | None = None):
    """(TaskRun ready to predict, ModelInfo) for a picker's ref; a TransferLabError with one sentence otherwise.
    ``int8``: the predictor cache's option (None: its default, TRANSFER_LAB_INT8); explanations pass False, since
    a quantised model has no gradients."""
    if not ref:
        raise BadInputError("Pick a model first.")
    if not isinstance(ref, str):
        raise BadInputError("Pick a model from the list (a run id or model:<name>).")
    if ref.startswith("model:"):
        spec = registry.get(ref.removeprefix("model:"))  # UnknownModelError: one sentence
        if spec.task != task_name:
            raise BadSettingError(f"{spec.name} is a model for the {spec.task} task, not {task_name}.")
        loaded = predictors().get(ref, int8=int8)
        return loaded, describe_registry_model(ref, task_name, loaded)
    try:
        info = describe_run(ref, task_name)
        loaded = predictors().get(ref, int8=int8)
    except RunNotFoundError:
        for key in {ref, str(Path(ref).resolve())}:  # a deleted run: free the memory its loaded model still holds
            predictors().forget_run(key)
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
        with serving():  # a fine-tune in this process waits for the forward (core/engine/interactive.py)
            result = predict(loaded)
        return info, result, ""
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


NOT_PICKED = "*No model picked.*"


def unpicked_heading(title: str) -> str:
    """The Markdown of a result column whose picker is empty: its heading stays, so the columns keep their names."""
    return f"### {title}\n\n{NOT_PICKED}"


def default_ref(choices: list[tuple[str, str]]) -> str | None:
    """The newest finished run, else the first registry model with real weights here, else nothing."""
    for _, ref in choices:
        if not ref.startswith("model:"):
            return ref
    for _, ref in choices:
        if weights_status(registry.get(ref.removeprefix("model:"))) != "untrained":
            return ref
    return None


def default_pick(task_name: str, choices: list[tuple[str, str]], first: str = "Model 1") -> tuple[str | None, str]:
    """(ref, one Markdown sentence) for the first picker (called ``first``): the best completed run of the task by
    its test headline metric (demo.state.best_run), else the first registry model with real weights here; the
    sentence says which."""
    best = best_run(task_name)
    runs = [ref for _, ref in choices if not ref.startswith("model:")]
    if best is not None and best["path"] in runs:
        metric = best["headline"]
        score = f"test {best['headline_metric']} {metric:.3f}" if isinstance(metric, (int, float)) else "no score"
        of = f"the best of {len(runs)} completed runs by test {best['headline_metric']}" if len(runs) > 1 else \
            "the only completed run of this task"
        return best["path"], (f"**{first} by default:** run {md_code(best['id'])} ({md_escape(best['model'])}, "
                              f"{md_escape(best['strategy'])}, {score}): {of}.")
    ref = default_ref(choices)
    hint = "fine-tune one, or press **Make starter runs** at the top of the page."
    if ref is None:
        return None, f"**No completed run of this task yet:** {hint}"
    return ref, (f"**No completed run of this task yet:** {first} is the registry model "
                 f"**{md_escape(ref.removeprefix('model:'))}** (real pretrained weights, head never trained); {hint}")


def lists_note(task_name: str, default_note: str) -> str:
    """The line under a tab's pickers: which run Model 1 defaults to, and the registry models not offered here."""
    gone = unrunnable_models(task_name)
    if not gone:
        return default_note
    names = ", ".join(md_code(name) for name, _ in gone)
    reasons = " ".join(dict.fromkeys(md_escape(reason) for _, reason in gone))  # each distinct sentence once
    return f"{default_note}\n\n**Not offered on this machine:** {names}. {reasons}"


def refresh_pickers(task_name: str, *current: str | None) -> list[dict]:
    """New choices for every picker of a tab (new runs appear, deleted ones go); each keeps its value if still
    offered."""
    choices = model_choices(task_name)
    refs = {ref for _, ref in choices}
    return [gr.update(choices=choices, value=value if value in refs else None) for value in current]


@dataclass
class ModelLists:
    """A tab's model pickers that follow the run store, the line under them, and what this browser was last sent
    (``shown``: the choices, the default and the note, so an unchanged store sends nothing)."""

    task: str
    pickers: list
    note: gr.Markdown
    shown: gr.State = field(repr=False)
    first: str = "Model 1"  # what the first picker is called in the note

    def follow_event(self) -> dict:
        """Keyword arguments of an event (``.then(**lists.follow_event())``) that brings these lists up to date."""
        return dict(fn=functools.partial(follow_store, self.task, first=self.first), inputs=self.inputs,
                    outputs=self.outputs, show_progress="hidden")

    @property
    def inputs(self) -> list:
        return [self.shown, *self.pickers]

    @property
    def outputs(self) -> list:
        return [self.shown, *self.pickers, self.note]


def follow_store(task_name: str, shown: dict | None, *current: str | None, first: str = "Model 1") -> tuple:
    """Bring a tab's pickers up to date with the run store: (shown, one update per picker, note).

    Nothing is sent when the choices, the default and the note are what this browser already has. Model 1 moves to
    the new default unless the user picked something else that is still offered; the other pickers keep their
    value while it is offered (a deleted run goes).
    """
    choices = model_choices(task_name)
    default, note = default_pick(task_name, choices, first)
    note = lists_note(task_name, note)
    signature = (tuple(choices), default, note)
    shown = shown or {}
    if shown.get("signature") == signature:
        return (gr.skip(),) * (2 + len(current))
    refs = {ref for _, ref in choices}
    picked, *others = current
    if picked is None or picked == shown.get("default") or picked not in refs:
        picked = default
    values = [picked, *(v if v in refs else None for v in others)]
    return ({"signature": signature, "default": default}, *(gr.update(choices=choices, value=v) for v in values),
            note)


def follow_many(lists: list[ModelLists]):
    """(handler, inputs, outputs) that brings several tabs' lists up to date in one event (the app's timer)."""
    def handler(*values):
        out, i = [], 0
        for ml in lists:
            n = 1 + len(ml.pickers)
            out += follow_store(ml.task, *values[i:i + n], first=ml.first)
            i += n
        return tuple(out)

    return handler, [c for ml in lists for c in ml.inputs], [c for ml in lists for c in ml.outputs]


def model_lists(task_name: str, labels: list[str], info: str | None = None) -> ModelLists:
    """Pickers labelled ``labels`` (Model 1 preselected with the default, the others empty) and the line under
    them, wired to follow the run store on page load. Call inside the tab's layout."""
    choices = model_choices(task_name)
    first = labels[0].split(" (")[0]
    default, note = default_pick(task_name, choices, first)
    pickers = [gr.Dropdown(choices=choices, value=default if i == 0 else None, label=label,
                           info=info if i == 0 else None) for i, label in enumerate(labels)]
    lists = ModelLists(task_name, pickers, gr.Markdown(lists_note(task_name, note)),
                       gr.State({"signature": None, "default": default}), first)
    # Page load: an event with no inputs runs on load only. A fresh page holds the values built here, so the
    # store is compared with those.
    built = [p.value for p in pickers]
    gr.on(triggers=None, fn=lambda: follow_store(task_name, {"signature": None, "default": default}, *built,
                                                 first=first),
          inputs=None, outputs=lists.outputs, api_name=f"{task_name}_follow_models", show_progress="hidden")
    return lists


def picker_panel(task_name: str, n: int, action: str) -> tuple[ModelLists, gr.Button, gr.Button, gr.Markdown]:
    """The right-hand column of a prediction tab: ``n`` model pickers following the run store (the first
    preselected, the others optional), the ``action`` and Refresh buttons, and a status line. Call inside a
    ``gr.Column``."""
    lists = model_lists(task_name, [f"Model {i + 1}" + ("" if i == 0 else " (optional)") for i in range(n)],
                        info="Fine-tuned runs first, then registry models (untrained heads).")
    with gr.Row():
        go = gr.Button(action, variant="primary")
        refresh = gr.Button("Refresh models")
    status = gr.Markdown()
    return lists, go, refresh, status


def label_columns(n: int, num_top_classes: int, what: str, below: Callable[[int], T] | None = None):
    """One column per model under the inputs: its heading (Markdown) and a gr.Label of ``what``; the flat list
    [heading 1, label 1, heading 2, ...] that the tab's handler returns after its status. With ``below``,
    ``below(i)`` builds more widgets at the foot of column i (the Explain controls) and the call returns
    (that list, [below(0), below(1), ...])."""
    results, extras = [], []
    with gr.Row():
        for i in range(n):
            with gr.Column():
                results.append(gr.Markdown(f"### Model {i + 1}"))
                results.append(gr.Label(num_top_classes=num_top_classes, label=f"Model {i + 1}: {what}"))
                if below is not None:
                    extras.append(below(i))
    return results if below is None else (results, extras)


def checked_input(read: Callable[[], T], refs) -> tuple[T | None, str]:
    """(the input as ``read`` returns it, "") or (None, one sentence) when the input is unusable (``read`` raises
    BadInputError) or no model is picked: what every prediction tab checks before it loads a model."""
    try:
        value = read()
    except BadInputError as err:
        return None, str(err)
    return value, ("" if any(refs) else "Pick at least one model.")


def is_loaded(ref: str | None) -> bool:
    """Whether the predictor cache already holds the model ``ref`` (with the cache's default int8 choice): a
    prediction then needs no load. False for a ref the cache cannot resolve (its load says why, in one sentence)."""
    return isinstance(ref, str) and predictors().loaded(ref)


def first_load_words(title: str, ref: str) -> str:
    """What the progress bar says while ``ref`` is loaded for its first prediction."""
    name = ref.removeprefix("model:") if ref.startswith("model:") else Path(ref).name
    return f"{title}: loading {name[:80]} for its first prediction (later ones skip this)"


def predict_columns(task_name: str, refs, predict: Callable, render: Callable,
                    progress: Callable | None = None) -> list:
    """Per picker: [heading, value] of its model's prediction (``predict(task)``, drawn by ``render(title, info,
    result, error)``), or the unpicked heading and None. With ``progress`` (a gr.Progress), a model that is not
    loaded yet says so before its load (the first prediction of a model waits for it)."""
    outputs = []
    for i, ref in enumerate(refs):
        if not ref:
            outputs += [unpicked_heading(f"Model {i + 1}"), None]
            continue
        if progress is not None and isinstance(ref, str) and not is_loaded(ref):
            progress((i, len(refs)), desc=first_load_words(f"Model {i + 1}", ref), unit="models")
        info, result, error = predict_with(ref, task_name, predict)
        outputs += list(render(f"Model {i + 1}", info, result, error))
    return outputs
