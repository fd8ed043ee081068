"""Models tab: the registry, with where each model's weights come from here."""
from __future__ import annotations

import gradio as gr

from core import registry
from core.weights import weights_status

COLUMNS = ["name", "task", "family", "weights here", "hub id", "last block"]


def model_rows(task: str = "all") -> list[list[str]]:
    specs = registry.list_models(None if task == "all" else task)
    return [[s.name, s.task, s.family, weights_status(s), s.hub_id or "-", s.last_block] for s in specs]


def build() -> None:
    task = gr.Radio(["all", *registry.task_names()], value="all", label="Task")
    table = gr.Dataframe(value=model_rows(), headers=COLUMNS, interactive=False, wrap=True)
    task.change(model_rows, task, table, api_name="list_models")
