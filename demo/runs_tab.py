"""Runs tab: every saved run with its task, model, strategy, status and headline metric."""
from __future__ import annotations

import gradio as gr

from core.runs import list_runs

COLUMNS = ["id", "task", "model", "strategy", "status", "metric", "value", "created"]

def run_rows() -> list[list]:
    rows = []
    for r in list_runs():
        value = r["headline"]
        rows.append([r["id"], r["task"], r["model"], r["strategy"], r["status"], r["headline_metric"],
                     round(value, 4) if isinstance(value, (int, float)) else None, r["created"]])
    return rows

def build() -> None:
    refresh = gr.Button("Refresh")
    table = gr.Dataframe(value=run_rows, headers=COLUMNS, interactive=False, wrap=True)
    refresh.click(run_rows, None, table, api_name="list_runs")
    gr.Markdown(f"_Runs are folders under the run store; train one with `python -m core train ...`. "
                "Press Refresh after a run finishes._")
