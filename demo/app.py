"""Compose the tabs into one Blocks app. Each tab lives in its own module and builds itself.

Above the tabs, the starter panel: shown while the run store has no completed run of some task, it offers the
starter runs (core/starter.py: one good run per task with the best weights here), says how long they take here
before they start, queues them on the shared job queue and shows their progress, with Cancel (pressing the button
again resumes them). The prediction tabs' model lists follow the run store: on page load, when their tab is
selected, and on a slow timer (so a job that ends anywhere shows up without a click).
"""
from __future__ import annotations

import gradio as gr

from core import registry
from core.errors import TransferLabError
from core.estimate import duration
from core.starter import GROUP, job_line, plan, submit, tasks_without_a_completed_run, total_seconds
from core.tasks.images.data import MAX_IMAGE_BYTES
from demo import compare_tab, data_tab, finetune_tab, images_tab, models_tab, qa_tab, runs_tab, tweets_tab
from demo.pickers import follow_many, md_escape
from demo.state import jobs
from demo.style import CSS

INTRO = ("# Transfer Lab\nFine-tune pretrained models with the strategy you pick, ask questions about Persian "
         "passages, classify COVID-19 tweets and CIFAR-10 images, compare two or more runs side by side and look at the data sets. "
         "Models marked *untrained* have random weights on this machine (no Hub access): their outputs are "
         "labelled as not meaningful.")


MAX_FILE_SIZE = MAX_IMAGE_BYTES  # the only uploads are images: Gradio refuses larger files before storing them
LISTS_SECONDS = 10.0  # the model lists look at the run store this often (an unchanged store sends nothing)
STARTER_POLL_SECONDS = 2.0
ACTIVE = ("queued", "running")


def launch_kwargs(**overrides) -> dict:
    """What every ``launch()`` of the app passes (app.py, bench/, tests): the upload size limit and the app-wide
    stylesheet (demo/style.py; Gradio 6 takes css at launch, not in Blocks), plus overrides such as server_name
    and server_port."""
    return {"max_file_size": MAX_FILE_SIZE, "css": CSS, **overrides}


# -- the starter panel ------------------------------------------------------------------------------------------
def starter_jobs() -> list[dict]:
    """Snapshots of the starter's jobs on the shared queue, of its latest request (jobs submitted together)."""
    snaps = [s for s in jobs().jobs() if s.get("group") == GROUP]
    if not snaps:
        return []
    latest = max(s["submitted"] for s in snaps)
    return [s for s in snaps if latest - s["submitted"] < 5.0]


def _titles(tasks: list[str]) -> str:
    return ", ".join(registry.get_task(t).title for t in tasks)


def starter_offer() -> tuple[dict, str, dict]:
    """Page load: (panel visibility, its text, progress timer) — shown while a task has no completed run or the
    starter's jobs are active."""
    active = [s for s in starter_jobs() if s["status"] in ACTIVE]
    if active:
        return gr.update(visible=True), "**Starter runs in progress.**", gr.Timer(active=True)
    missing = tasks_without_a_completed_run()
    if not missing:
        return gr.update(visible=False), "", gr.Timer(active=False)
    return (gr.update(visible=True), f"**No completed run yet for {_titles(missing)}**, so those tabs have nothing "
            "trained to answer with. The starter makes one good run per task with the best weights this machine "
            "has. Estimating how long that takes here…", gr.Timer(active=False))


def starter_estimate() -> str:
    """The plan of the starter for the tasks without a completed run, each part with its estimate (a measured
    probe, cached per process), before anything starts."""
    missing = tasks_without_a_completed_run()
    if not missing or any(s["status"] in ACTIVE for s in starter_jobs()):
        return gr.skip()
    try:
        parts = plan(missing)
    except TransferLabError as err:
        return f"**The starter runs cannot be planned here:** {md_escape(err)}"
    total = total_seconds(parts)
    when = f"about {duration(total, rounded=True)} in all here" if total is not None else "no estimate for all"
    lines = [f"**No completed run yet for {_titles(missing)}.** Starter runs ({when}; they run one after the "
             "other on the shared queue, so a fine-tune started meanwhile waits behind them):"]
    lines += [f"- {md_escape(p.line())}" for p in parts]
    return "\n".join(lines)


def start_starter() -> tuple[str, dict]:
    """The button: queue the starter's parts for the tasks without a completed run (resuming a cancelled starter
    run instead of starting it again); (text, progress timer)."""
    active = [s for s in starter_jobs() if s["status"] in ACTIVE]
    if active:
        return "The starter runs are already queued; their progress is below.", gr.Timer(active=True)
    missing = tasks_without_a_completed_run()
    if not missing:
        return "Every task has a completed run already; nothing to start.", gr.Timer(active=False)
    try:
        parts = plan(missing)
        queued = submit(parts, jobs())
    except TransferLabError as err:
        return str(err), gr.Timer(active=False)
    if not queued:
        return "Every starter run is done or being trained already.", gr.Timer(active=True)
    total = total_seconds(parts)
    when = f" (about {duration(total, rounded=True)} here)" if total is not None else ""
    return f"Queued {len(queued)} starter run{'s' if len(queued) != 1 else ''}{when}.", gr.Timer(active=True)


def starter_progress() -> tuple[str, dict, dict]:
    """Timer tick: (one line per starter job, panel visibility, timer: off once every job has ended)."""
    snaps = starter_jobs()
    if not snaps:
        return "", gr.skip(), gr.Timer(active=False)
    lines = "\n".join(f"- {md_escape(job_line(s))}" for s in snaps)
    if any(s["status"] in ACTIVE for s in snaps):
        return lines, gr.update(visible=True), gr.Timer(active=True)
    keep = bool(tasks_without_a_completed_run())  # a part failed or was cancelled: the offer stays
    return lines, gr.update(visible=True) if keep else gr.skip(), gr.Timer(active=False)


def cancel_starter() -> str:
    """Cancel the starter's active jobs; each run keeps what it did, and the button resumes it."""
    active = [s for s in starter_jobs() if s["status"] in ACTIVE]
    for s in active:
        jobs().cancel(s["id"])
    if not active:
        return "No starter run is queued or running."
    return (f"Cancelling {len(active)} starter run{'s' if len(active) != 1 else ''}; press Make starter runs again "
            "to resume.")


def build_starter() -> None:
    timer = gr.Timer(STARTER_POLL_SECONDS, active=False)
    with gr.Column(visible=False) as panel:
        offer = gr.Markdown()
        with gr.Row():
            go = gr.Button("Make starter runs", variant="primary")
            cancel = gr.Button("Cancel starter runs", variant="stop")
        said = gr.Markdown()
        progress = gr.Markdown()
    gr.on(triggers=None, fn=starter_offer, outputs=[panel, offer, timer], api_name="starter_offer",
          show_progress="hidden").then(starter_estimate, None, offer, api_name="starter_estimate",
                                       concurrency_id="starter_plan", show_progress="minimal")
    go.click(start_starter, None, [said, timer], api_name="start_starter", concurrency_id="starter_plan")
    cancel.click(cancel_starter, None, said, api_name="cancel_starter")
    timer.tick(starter_progress, None, [progress, panel, timer], api_name="starter_progress",
               show_progress="hidden", concurrency_limit=None)


def build_app() -> gr.Blocks:
    with gr.Blocks(title="Transfer Lab") as app:
        gr.Markdown(INTRO)
        build_starter()
        job = finetune_tab.new_job_state()  # this browser's training job, shared by Fine-tune and Runs
        with gr.Tab("Fine-tune"):
            finetune_tab.build(job_state=job)
        with gr.Tab("Persian QA") as qa:
            qa_lists = qa_tab.build()
        with gr.Tab("Tweets") as tweets:
            tweet_lists = tweets_tab.build()
        with gr.Tab("Images") as images:
            image_lists = images_tab.build()
        with gr.Tab("Compare & errors"):
            compare_tab.build()
        with gr.Tab("Runs"):
            runs_tab.build(job_state=job)
        with gr.Tab("Models"):
            models_tab.build()
        with gr.Tab("Data") as data:
            data_tab.build(tab=data)
        for tab, lists in ((qa, qa_lists), (tweets, tweet_lists), (images, image_lists)):
            tab.select(**lists.follow_event(), api_name=f"{lists.task}_tab_selected")
        handler, inputs, outputs = follow_many([qa_lists, tweet_lists, image_lists])
        gr.Timer(LISTS_SECONDS).tick(handler, inputs, outputs, api_name="follow_model_lists",
                                     show_progress="hidden", concurrency_limit=None)
    return app
