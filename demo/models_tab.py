"""Models tab: the registry, with where each model's weights come from here and whether this machine can run it."""
from __future__ import annotations

import gradio as gr

from core import registry
from core.starter import checking, unavailable_reason
from core.weights import weights_status

COLUMNS = ["name", "task", "family", "weights here", "hub id", "last block", "runs here"]


def runs_here(name: str) -> str:
    """"yes", "checking…" (the background tokenizer check has not ended) or "no: <why>" (core.starter)."""
    reason = unavailable_reason(name)
    if reason is not None:
        return f"no: {reason}"
    return "checking…" if checking(name) else "yes"


def model_rows(task: str = "all") -> list[list[str]]:
    specs = registry.list_models(None if task == "all" else task)
    return [[s.name, s.task, s.family, weights_status(s), s.hub_id or "-", s.last_block, runs_here(s.name)]
            for s in specs]


def build() -> None:
    task = gr.Radio(["all", *registry.task_names()], value="all", label="Task")
    table = gr.Dataframe(value=model_rows(), headers=COLUMNS, interactive=False, wrap=True)
    task.change(model_rows, task, table, api_name="list_models")
    # page load: the "runs here" checks may have ended since the app was built
    gr.on(triggers=None, fn=model_rows, inputs=task, outputs=table, api_name="list_models_on_load",
          show_progress="hidden")
