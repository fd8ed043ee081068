"""Compose the tabs into one Blocks app. Each tab lives in its own module and builds itself."""
from __future__ import annotations

import gradio as gr

from core.tasks.images.data import MAX_IMAGE_BYTES
from demo import compare_tab, finetune_tab, images_tab, models_tab, qa_tab, runs_tab, tweets_tab

INTRO = ("# Transfer Lab\nFine-tune pretrained models with the strategy you pick, ask questions about Persian "
         "passages, classify COVID-19 tweets and CIFAR-10 images, and compare two runs side by side. "
         "Models marked *untrained* have random weights on this machine (no Hub access): their outputs are "
         "labelled as not meaningful.")


MAX_FILE_SIZE = MAX_IMAGE_BYTES  # the only uploads are images: Gradio refuses larger files before storing them


def launch_kwargs(**overrides) -> dict:
    """What every ``launch()`` of the app passes (app.py, bench/, tests): the upload size limit, plus overrides
    such as server_name and server_port."""
    return {"max_file_size": MAX_FILE_SIZE, **overrides}


def build_app() -> gr.Blocks:
    with gr.Blocks(title="Transfer Lab") as app:
        gr.Markdown(INTRO)
        job = finetune_tab.new_job_state()  # this browser's training job, shared by Fine-tune and Runs
        with gr.Tab("Fine-tune"):
            finetune_tab.build(job_state=job)
        with gr.Tab("Persian QA"):
            qa_tab.build()
        with gr.Tab("Tweets"):
            tweets_tab.build()
        with gr.Tab("Images"):
            images_tab.build()
        with gr.Tab("Compare & errors"):
            compare_tab.build()
        with gr.Tab("Runs"):
            runs_tab.build(job_state=job)
        with gr.Tab("Models"):
            models_tab.build()
    return app
