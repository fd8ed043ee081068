"""Compose the tabs into one Blocks app."""
from __future__ import annotations

import gradio as gr

from demo import models_tab, runs_tab


def build_app() -> gr.Blocks:
    with gr.Blocks(title="Transfer Lab") as app:
        gr.Markdown("# Transfer Lab\nFine-tune pretrained models, compare strategies, and look at the errors. "
                    "Models marked *untrained* have random weights on this machine (no Hub access).")
        with gr.Tab("Models"):
            models_tab.build()
        with gr.Tab("Runs"):
            runs_tab.build()
    return app
