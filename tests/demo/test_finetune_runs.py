"""The Fine-tune and Runs tabs: handlers in process on real tiny jobs, then the launched app over gradio_client."""
from __future__ import annotations

import time
import zipfile
from pathlib import Path

import pytest

gr = pytest.importorskip("gradio")
go = pytest.importorskip("plotly.graph_objects")

from core.starter import unavailable_reason  # noqa: E402
from core.weights import hub_available  # noqa: E402
from core.store.runs import open_run  # noqa: E402
from demo import finetune_tab, runs_tab  # noqa: E402
from demo.plots import curves_figure  # noqa: E402
from demo.state import jobs, predictors  # noqa: E402

# mlp on CIFAR with tiny limits: a whole job takes seconds on a CPU.
TINY = dict(task="images", model="mlp", strategy="scratch", epochs=2, lr="", batch_size=20, train_limit=60,
            eval_limit=30, minutes=None, preset=finetune_tab.NO_PRESET)
SLOW = dict(TINY, epochs=50, train_limit=400, batch_size=10)  # long enough to be caught while training


@pytest.fixture
def store(tmp_path, monkeypatch, data_dir):
    """A throwaway run store; the shared queue (runs_root=None) writes into it because it reads the env."""
    root = tmp_path / "runs"
    monkeypatch.setenv("TRANSFER_LAB_RUNS", str(root))
    monkeypatch.setenv("TRANSFER_LAB_DATA", str(data_dir))
    yield root
    for snap in jobs().jobs():  # never leave a job running into the next test
        if snap["status"] in ("queued", "running"):
            jobs().cancel(snap["id"])
            jobs().wait(snap["id"], timeout=120)


def _start(job_id=None, **changes):
    form = {**TINY, **changes}
    return finetune_tab.start_training(job_id, *(form[k] for k in (
        "task", "model", "strategy", "epochs", "lr", "batch_size", "train_limit", "eval_limit", "minutes", "preset")))


def _ended(snap) -> bool:
    return snap["status"] not in ("queued", "running")


def _training(snap) -> bool:
    return (snap["progress"] or {}).get("phase") == "train"


def _poll_until(job_id, done, timeout=300):
    """Poll like the timer does until ``done(snapshot)``; returns the last outputs and the last figure sent."""
    shown, figure, deadline = None, None, time.monotonic() + timeout
    while True:
        snap = jobs().snapshot(job_id)  # before the poll, so the poll's outputs are at least this far along
        out = finetune_tab.poll_job(job_id, shown)
        shown = out[4]
        if isinstance(out[2], go.Figure):
            figure = out[2]
        if done(snap):
            return out, figure
        assert time.monotonic() < deadline, f"job {job_id} still at: {out[0]}"
        time.sleep(0.2)


def _finished_run(**changes) -> str:
    job_id, message = _start(**{**TINY, "epochs": 1, "train_limit": 40, "eval_limit": 20, **changes})
    assert job_id, message
    snap = jobs().wait(job_id, timeout=300)
    assert snap["status"] == "completed", snap["message"]
    return Path(snap["run_dir"]).name


# -- Fine-tune tab, in process ---------------------------------------------------------------------------------
def test_start_and_poll_a_job_until_completed(store):
    job_id, message = _start()
    assert job_id and message.startswith(f"Job {job_id} submitted (mlp, scratch)")
    # One job per session at a time: a second Start is refused and the session keeps its job.
    again, refusal = _start(job_id)  # loading CIFAR alone takes longer than this call
    assert again == job_id and refusal.startswith(f"Your job {job_id} is still ")

    (status, progress, _, stats, shown, _, timer), figure = _poll_until(job_id, _ended)
    run_id = Path(jobs().snapshot(job_id)["run_dir"]).name  # the status line names the task, model, strategy, run
    assert status.startswith(f"Job {job_id} — images · mlp · scratch · run {run_id}: completed. Finished: test "
                             "accuracy 0.")
    assert progress.startswith("Done after")
    steps = open_run(jobs().snapshot(job_id)["run_dir"]).read_steps()
    assert timer.active is False and shown == f"{job_id}:2:{len(steps)}" and steps
    names = [t.name for t in figure.data]
    assert names == ["train loss", "val loss", "train accuracy", "val accuracy", "train loss per step"]
    assert all(list(t.x) == [1, 2] for t in figure.data[:4])
    assert len(figure.data[4].x) == len(steps)  # the live figure draws the per-step loss too
    assert "**Seconds per epoch:**" in stats and "855,050 of 855,050 (100.0%)" in stats
    # Nothing new finished: the next tick does not resend the figure.
    assert not isinstance(finetune_tab.poll_job(job_id, shown)[2], go.Figure)
    assert runs_tab.run_rows()[0][:5] == [run_id, "images", "mlp", "scratch", "completed"]


def test_parameter_counts_and_choices_follow_the_model():
    text = finetune_tab.parameter_text("densenet201", "last_block")
    assert text == "**Trainable parameters:** 7,476,746 of 18,587,274 (40.2%)"
    strategies, params = finetune_tab.on_model("mlp", "last_block")
    assert strategies["choices"] == ["scratch", "full"] and strategies["value"] == "scratch"
    assert "855,050 of 855,050" in params
    labels = dict((name, label) for label, name in finetune_tab.model_options("images"))
    assert labels["efficientnet_lite0"] == "efficientnet_lite0 — packaged offline"
    assert labels["vgg19"] == "vgg19 — untrained"
    runnable = [n for n in ["parsbert", "albert_fa", "xlmr_base", "distilbert_fa_pquad", "xlmr_pquad", "e5_small"]
                if unavailable_reason(n, wait=True) is None]  # offline: not the models whose vocabulary only the Hub has
    assert "e5_small" in runnable
    models, strategy, presets, _ = finetune_tab.on_task("qa")
    assert [name for _, name in models["choices"]] == runnable
    assert [v for _, v in presets["choices"]] == [finetune_tab.NO_PRESET, "qa-parsbert-r0", "qa-albert-fa-r0",
                                                  "qa-parsbert", "qa-albert-fa", "qa-xlmr-base", "qa-e5-small"]
    if not hub_available():  # offline the pick is the model with real weights, with QA's recommended strategy
        assert models["value"] == "e5_small" and strategy["value"] == "full"
    assert finetune_tab.parameter_text("mlp", "last_block") == \
        "mlp supports the strategies scratch, full, not last_block."
    filled = finetune_tab.apply_preset("paper-densenet201-last-block")
    assert filled[0] == "images" and filled[1]["value"] == "densenet201" and filled[2]["value"] == "last_block"
    assert filled[3:6] == (20, "1e-05", 512) and "7,476,746" in filled[6]


@pytest.mark.parametrize("changes, sentence", [
    (dict(lr="nan"), "The learning rate must be a positive number; got nan."),
    (dict(lr="fast"), "The learning rate must be a number; got 'fast'."),
    (dict(lr="0"), "The learning rate must be a positive number; got 0.0."),
    (dict(epochs=0), "The number of epochs must be a whole number of at least 1; got 0."),
    (dict(batch_size=2.5), "The batch size must be a whole number of at least 1; got 2.5."),
    (dict(batch_size=None), "Fill in the batch size."),
    (dict(model=None), "Pick a model."),
    (dict(strategy="last_block"), "mlp supports the strategies scratch, full, not last_block."),
    (dict(model="bert_base"), "Model 'bert_base' is for the tweets task, not images."),
    (dict(minutes=-1), "The time budget must be a positive number of minutes; got -1.0."),
    (dict(model="no_such_model"), "Unknown model 'no_such_model'."),
])
def test_bad_settings_become_one_sentence_and_queue_nothing(changes, sentence):
    before = len(jobs().jobs())
    job_id, message = _start("previous-job", **changes)
    assert job_id == "previous-job"  # the session keeps what it had
    assert message.startswith(sentence)
    assert len(jobs().jobs()) == before


def test_cancel_keeps_the_checkpoint_and_resume_continues(store):
    job_id, _ = _start(**SLOW)
    _poll_until(job_id, _training)
    run_id = Path(jobs().snapshot(job_id)["run_dir"]).name
    # A run still training is neither deleted nor resumed twice.
    message = runs_tab.delete_selected(run_id, True)[0]
    assert message == f"Run {run_id} is still queued or training; cancel it before deleting it."
    assert finetune_tab.cancel_job(job_id).startswith(f"Cancelling job {job_id}")
    (status, *_, timer), _ = _poll_until(job_id, _ended)
    assert status.startswith(f"Job {job_id} — images · mlp · scratch · run {run_id}: was cancelled. ")
    assert status.endswith("Press Resume to continue from its checkpoint.")
    assert timer.active is False and open_run(run_id).has_checkpoint()
    assert finetune_tab.cancel_job(job_id) == f"Job {job_id} has already ended (cancelled)."
    assert run_id in finetune_tab.resumable_runs()["choices"]

    resumed, message = finetune_tab.resume_training(job_id)  # nothing picked: the session's own run
    assert resumed != job_id and message.startswith(f"Resuming as job {resumed}")
    # While the resumed job is active the session resumes nothing else, from either tab.
    assert finetune_tab.resume_training(resumed, run_id)[1].startswith(f"Your job {resumed} is still ")
    assert runs_tab.resume_selected(run_id, resumed)[1].startswith(f"Your job {resumed} is still ")
    assert runs_tab.resume_selected(run_id, None)[1] == f"Run {run_id} is already queued or training."
    finetune_tab.cancel_job(resumed)
    assert jobs().wait(resumed, timeout=120)["status"] == "cancelled"


def test_each_session_sees_its_place_in_the_shared_queue(store):
    first, _ = _start(**SLOW)  # three browser sessions, one queue
    second, _ = _start()
    third, message = _start()
    assert message == f"Job {third} submitted (mlp, scratch): queued, 2 jobs ahead of yours."
    assert finetune_tab.poll_job(third)[0] == f"Job {third} — images · mlp · scratch: queued, 2 jobs ahead of yours."
    assert finetune_tab.poll_job(second)[0] == f"Job {second} — images · mlp · scratch: queued, 1 job ahead of yours."
    assert finetune_tab.cancel_job(third) == f"Job {third} is cancelled; it had not started."
    status, *_, timer = finetune_tab.poll_job(third)
    assert status == f"Job {third} — images · mlp · scratch: was cancelled. Cancelled before it started."
    assert timer.active is False
    assert finetune_tab.resume_training(third)[1] == \
        f"Job {third} was cancelled before it started; there is nothing to resume, press Start."
    for job in (second, first):
        finetune_tab.cancel_job(job)
        assert jobs().wait(job, timeout=120)["status"] == "cancelled"


def test_progress_line_reads_the_engine_progress():
    progress = dict(phase="train", epoch=1, epochs=5, step=30, steps=120, global_step=150, total_steps=600,
                    loss=1.23456, elapsed=35.2, eta=80.4)
    assert finetune_tab.progress_text(progress) == \
        "epoch 2/5 · training 30/120 · loss 1.2346 · ETA 1 min 20 s · elapsed 35 s"
    testing = dict(progress, phase="eval:test", epoch=5, step=7, steps=10, loss=None, eta=None)
    assert finetune_tab.progress_text(testing) == "epoch 5/5 · testing 7/10 · elapsed 35 s"
    assert finetune_tab.progress_text(dict(progress, phase="done", elapsed=3725)) == "Done after 1 h 2 min."
    assert finetune_tab.progress_text(None) == ""


def test_a_session_without_a_job_or_with_an_unknown_one():
    status, progress, *_, timer = finetune_tab.poll_job(None)
    assert status.startswith("No job in this session yet") and timer.active is False
    status, *_, timer = finetune_tab.poll_job("feedbeef")
    assert status == "That training job is not known to this server (it may have restarted)." and not timer.active
    assert finetune_tab.cancel_job(None) == "There is no job of this session to cancel."
    assert finetune_tab.resume_training(None) == (
        None, "Pick a cancelled, stopped or interrupted run to resume (this session has none of its own).")


# -- plots -----------------------------------------------------------------------------------------------------
def test_curves_figure_overlays_runs_and_names_qa_curves_honestly():
    a = [{"epoch": 0, "train_loss": 2.0, "train_accuracy": 0.2, "val_loss": 1.9, "val_accuracy": 0.25},
         {"epoch": 1, "train_loss": 1.5, "train_accuracy": 0.4, "val_loss": 1.6, "val_accuracy": 0.35}]
    qa = [{"epoch": 0, "train_loss": 3.0, "train_accuracy": 0.1, "val_loss": 2.5, "val_f1": 0.3}]
    fig = curves_figure({"A": a, "B": a[:1]}, "accuracy")
    assert [t.name for t in fig.data][:4] == [
        "A · train loss", "A · val loss", "A · train accuracy", "A · val accuracy"]
    assert len(fig.data) == 8 and list(fig.data[3].y) == [0.25, 0.35]
    assert [t.name for t in curves_figure({"qa": qa}, "f1").data] == [
        "train loss", "val loss", "train accuracy", "val f1"]
    assert len(curves_figure({}, "accuracy").data) == 0


# -- Runs tab, in process --------------------------------------------------------------------------------------
def test_open_download_and_delete_a_run(store):
    run_id = _finished_run()
    path = str(open_run(run_id).path)

    summary, figure, metrics, status = runs_tab.open_run_view(run_id)
    assert status == f"Opened run {run_id}."
    assert "model `mlp`, strategy `scratch`" in summary and "untrained (random initial weights)" in summary
    assert "parameters: 855,050 trainable of 855,050 (100.0%)" in summary
    names = [t.name for t in figure.data]
    assert names[:5] == ["train loss", "val loss", "train accuracy", "val accuracy", "train loss per step"]
    assert {"setup s", "training s", "validation s"} <= set(names[5:])  # the seconds panel: where the time went
    assert "| accuracy | 0." in metrics and "confusion_matrix" not in metrics
    picked = runs_tab.select_run_row(gr.SelectData(None, {"index": [0, 4], "value": "completed",
                                                          "row_value": runs_tab.run_rows()[0]}))
    assert picked[0] == run_id and picked[-1] == f"Opened run {run_id}."

    zip_path, message = runs_tab.build_download(run_id)
    assert message == f"Zip of run {run_id} ready."
    with zipfile.ZipFile(zip_path) as zf:
        assert sorted(zf.namelist()) == sorted(f"{run_id}/{n}" for n in runs_tab.DOWNLOAD_FILES)
        assert zf.read(f"{run_id}/config.json") == (Path(path) / "config.json").read_bytes()

    assert runs_tab.resume_selected(run_id, "job-x") == (
        "job-x", f"Run {run_id} is completed; only cancelled, stopped or interrupted runs can be resumed.")
    predictors().get(path)  # the image tab has loaded this run
    assert any(k.startswith(f"{path}@") for k in predictors().keys())

    first = runs_tab.delete_selected(run_id, False)  # step one: nothing deleted yet
    assert first[0].startswith("Tick “I am sure” and press Delete again") and first[3] is False
    assert open_run(run_id).path.is_dir()
    done = runs_tab.delete_selected(run_id, True)
    assert done[0] == f"Deleted run {run_id}." and done[1] == [] and done[2]["value"] is None
    assert not any(k.startswith(f"{path}@") for k in predictors().keys())

    gone = f"No run '{run_id}' in the run store (it may have been deleted)."
    assert runs_tab.open_run_view(run_id)[3] == gone
    assert runs_tab.build_download(run_id) == (None, gone)
    assert runs_tab.delete_selected(run_id, True)[0] == gone
    assert runs_tab.resume_selected(run_id)[1] == gone


def test_runs_tab_acts_only_on_runs_inside_the_store(store, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "config.json").write_text("{}")  # looks like a run, but is not in the store
    for ref in (str(outside), "../elsewhere", ".."):
        assert runs_tab.delete_selected(ref, True)[0] == f"No run named '{ref}' in the run store."
        assert runs_tab.build_download(ref) == (None, f"No run named '{ref}' in the run store.")
    assert (outside / "config.json").is_file()
    assert runs_tab.delete_selected(None, True)[0] == "Pick a run to delete."
    assert runs_tab.open_run_view(None)[3] == "Pick a run in the table or the list to open it."


def _two_tabs() -> "gr.Blocks":
    """The two tabs as demo/app.py composes them, sharing the browser's job id."""
    with gr.Blocks() as app:
        state = finetune_tab.new_job_state()
        with gr.Tab("Fine-tune"):
            finetune_tab.build(job_state=state)
        with gr.Tab("Runs"):
            runs_tab.build(job_state=state)
    return app


def test_tabs_build_with_an_api_name_on_every_event(store):
    app = _two_tabs()
    names = [d.api_name for d in app.fns.values()]
    assert all(names) and len(names) == len(set(names))
    assert {"start_training", "poll_job", "cancel_job", "resume_training", "parameter_counts", "list_runs",
            "open_run", "download_run", "delete_run", "resume_run"} <= set(names)


# -- the launched app, over HTTP -------------------------------------------------------------------------------
def test_launched_tabs_are_scriptable_with_gradio_client(store, monkeypatch, free_port):
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    client_mod = pytest.importorskip("gradio_client")
    app = _two_tabs()
    port = free_port()
    app.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        client = client_mod.Client(f"http://127.0.0.1:{port}/", verbose=False)
        api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
        assert {"/start_training", "/poll_job", "/parameter_counts", "/list_runs", "/open_run", "/download_run",
                "/delete_run"} <= set(api)

        assert client.predict("densenet201", "last_block", api_name="/parameter_counts") == \
            "**Trainable parameters:** 7,476,746 of 18,587,274 (40.2%)"
        job, message = client.predict(None, "images", "mlp", "scratch", 1, "nan", 20, 40, 20, None,
                                      finetune_tab.NO_PRESET, api_name="/start_training")
        assert job is None and message == "The learning rate must be a positive number; got nan."
        job, message = client.predict(None, "images", "mlp", "scratch", 1, "", 20, 40, 20, None,
                                      finetune_tab.NO_PRESET, api_name="/start_training")
        assert message.startswith(f"Job {job} ") and "submitted (mlp, scratch)" in message
        again, message = client.predict(job, "images", "mlp", "scratch", 1, "", 20, 40, 20, None,
                                        finetune_tab.NO_PRESET, api_name="/start_training")
        if again == job and "still" in message:  # one job at a time per browser (unless it already finished)
            assert message.startswith(f"Your job {job} is still")
        else:
            job = again
        deadline = time.monotonic() + 300
        while True:  # the job id is the browser's (gr.BrowserState): a script passes it to poll_job
            status, progress, plot, stats = client.predict(job, api_name="/poll_job")[:4]
            if "completed" in status:
                break
            assert time.monotonic() < deadline and "failed" not in status, status
            time.sleep(0.5)
        assert "Finished: test accuracy" in status and "855,050" in stats

        table = client.predict(api_name="/list_runs")
        run_id = table["data"][0][0]
        summary, _, metrics, opened = client.predict(run_id, api_name="/open_run")
        assert opened == f"Opened run {run_id}." and "| accuracy |" in metrics
        zip_path, ready = client.predict(run_id, api_name="/download_run")
        assert ready == f"Zip of run {run_id} ready."
        with zipfile.ZipFile(zip_path) as zf:
            assert f"{run_id}/weights.safetensors" in zf.namelist()
        assert client.predict(run_id, False, api_name="/delete_run")[0].startswith("Tick “I am sure”")
        assert client.predict(run_id, True, api_name="/delete_run")[0] == f"Deleted run {run_id}."
        assert client.predict(run_id, api_name="/open_run")[3] == \
            f"No run '{run_id}' in the run store (it may have been deleted)."
    finally:
        app.close()


def test_a_preset_runs_course_figures_are_shown_beside_its_own(store, tiny_image_run):
    """Runs and the Fine-tune tab (when a job ends) put the figures the report behind a run's preset got next to
    the run's value, and say when the run's weights are random (it cannot reach them)."""
    import json
    import shutil

    target = store / tiny_image_run.name
    shutil.copytree(tiny_image_run, target)
    config = json.loads((target / "config.json").read_text())
    config["train"]["preset"] = "mlp-baseline"
    (target / "config.json").write_text(json.dumps(config))
    accuracy = json.loads((target / "metrics.json").read_text())["accuracy"]
    expected = "**R3 reference:** accuracy 0.4618"
    _, _, metrics, status = runs_tab.open_run_view(target.name)
    assert status == f"Opened run {target.name}."
    assert expected in metrics and f"this run {accuracy:.4f}" in metrics
    assert ("random initial weights" in metrics) == (config["weights"]["kind"] == "random")
    stats = finetune_tab.stats_text({"status": "completed", "run_dir": str(target), "history": [],
                                     "config": config["train"]})
    assert expected in stats and f"this run {accuracy:.4f}" in stats
    running = finetune_tab.stats_text({"status": "running", "run_dir": str(target), "history": [],
                                       "config": config["train"]})
    assert expected not in running  # only once the run has its test figures
