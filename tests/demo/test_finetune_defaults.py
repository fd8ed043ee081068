"""The Fine-tune tab's default run is sized for this machine, estimated before Start, and confirmed when long."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

gr = pytest.importorskip("gradio")

from core import estimate  # noqa: E402
from core.config import TrainConfig  # noqa: E402
from demo import finetune_tab  # noqa: E402
from demo.state import jobs  # noqa: E402

FIELDS = ("task", "model", "strategy", "epochs", "lr", "batch_size", "train_limit", "eval_limit", "minutes", "preset")
# A made-up probe (seconds per example), so sizes and sums can be checked by hand.
PROBE = estimate.Probe(cache=0.02, train=0.001, evaluate=0.0005, build=1.0, cached=True, source="measured")


@pytest.fixture
def store(tmp_path, monkeypatch, data_dir):
    monkeypatch.setenv("TRANSFER_LAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("TRANSFER_LAB_DATA", str(data_dir))
    yield tmp_path / "runs"
    for snap in jobs().jobs():
        if snap["status"] in ("queued", "running"):
            jobs().cancel(snap["id"])
            jobs().wait(snap["id"], timeout=120)


def _form_defaults() -> dict:
    """The values the built form opens with, by field."""
    with gr.Blocks() as app:
        finetune_tab.build()
    numbers = {c.label: c for c in app.blocks.values() if isinstance(c, gr.Number)}
    drops = {c.label: c for c in app.blocks.values() if isinstance(c, (gr.Dropdown, gr.Radio))}
    return {"task": drops["Task"].value, "model": drops["Model"].value, "strategy": drops["Strategy"].value,
            "epochs": numbers["Epochs"].value, "lr": "", "batch_size": numbers["Batch size"].value,
            "train_limit": numbers["Train limit (examples, 0 = all)"].value,
            "eval_limit": numbers["Eval limit (examples, 0 = all)"].value,
            "minutes": numbers["Time budget (minutes, 0 = none)"].value, "preset": finetune_tab.NO_PRESET,
            "_minimums": [c.minimum for c in numbers.values()]}


def _args(form: dict) -> list:
    return [form[k] for k in FIELDS]


def test_the_default_form_on_a_cpu_is_a_small_run(monkeypatch, data_dir):
    monkeypatch.setattr(estimate, "has_gpu", lambda: False)
    form = _form_defaults()
    assert (form["model"], form["strategy"]) == ("efficientnet_lite0", "feature_extraction")
    assert (form["epochs"], form["train_limit"], form["eval_limit"]) == (3, 1000, 500)
    assert form["_minimums"] == [None] * 5  # Gradio's own pop-up never pre-empts the status sentence
    assert estimate.default_settings(gpu=True)["train_limit"] > 1000
    cfg = finetune_tab.config_from_form(*_args(dict(form, lr="")))
    cfg.data_dir = str(data_dir)
    est = estimate.estimate_run(cfg)  # a real probe on this machine
    print(f"default run estimate: {est.text()}")
    assert est.cache_examples == 900 * 2 + 100 + 500  # both flips of the training images, then val and test
    assert est.low < 120 and est.seconds < 300  # about a minute alone; loose: the probe shares 2 cores with others


def test_the_estimate_grows_with_the_run_and_includes_the_cache_pass(data_dir):
    base = TrainConfig(task="images", model="efficientnet_lite0", train_limit=1000, eval_limit=500, epochs=3,
                       data_dir=str(data_dir))
    est = estimate.estimate_run(base, PROBE)
    assert est.cache_examples == 2400 and est.cache_seconds == pytest.approx(2400 * 0.02)
    assert est.epoch_seconds == pytest.approx(900 * 0.001 + 100 * 0.0005)
    assert est.seconds == pytest.approx(estimate.SETUP_SECONDS + 1.0 + 48 + 3 * 0.95 + 500 * 0.0005)
    assert est.low < est.seconds < est.high
    more = lambda **kw: estimate.estimate_run(TrainConfig(**{**base.to_json(), **kw}), PROBE).seconds  # noqa: E731
    assert more(train_limit=2000) > est.seconds and more(eval_limit=2000) > est.seconds
    assert more(epochs=30) > est.seconds
    everything = estimate.estimate_run(TrainConfig(**{**base.to_json(), "train_limit": None, "eval_limit": None}),
                                       PROBE)
    assert everything.cache_examples == 45000 * 2 + 5000 + 10000  # the 105,000 images
    uncached = estimate.estimate_run(base, estimate.Probe(0.0, 0.01, 0.001, 1.0, False, "measured"))
    assert uncached.cache_examples == 0 and "caching" not in uncached.text()
    assert est.text() == ("about 55 s (41 s – 1 min 23 s): caching 2,400 frozen features ≈ 48 s, then 3 epochs × "
                          "< 1 s, test < 1 s")
    recomputed = estimate.estimate_run(TrainConfig(**{**base.to_json(), "activation_checkpointing": True}), PROBE)
    assert recomputed.epoch_seconds == pytest.approx(900 * 0.001 * 4 / 3 + 100 * 0.0005)  # one more forward


def test_a_long_or_untrained_run_asks_first_and_a_confirmed_one_starts(store):
    long = dict(task="images", model="mlp", strategy="scratch", epochs=100000, lr="", batch_size=64, train_limit=0,
                eval_limit=0, minutes=None, preset=finetune_tab.NO_PRESET)
    status, button, gate = finetune_tab.request_start(None, *_args(long))
    assert status.startswith("This run is estimated at ") and "Start anyway" in status
    assert button["visible"] is True and gate is False
    assert finetune_tab.start_training(None, *_args(long), gate) == (gr.skip(), gr.skip())  # nothing started
    assert finetune_tab.estimate_text(*_args(long)).startswith("**Estimated time here:** about ")

    untrained = dict(long, model="vgg19", strategy="feature_extraction", epochs=1, train_limit=20, eval_limit=10)
    status, button, gate = finetune_tab.request_start(None, *_args(untrained))
    assert status.startswith("The model vgg19 has no pretrained weights here (untrained") and gate is False

    tiny = dict(long, epochs=1, train_limit=40, eval_limit=20)  # mlp from scratch: random weights are the point
    assert finetune_tab.request_start(None, *_args(tiny))[2] is True

    job_id, message = finetune_tab.start_training(None, *_args(long))  # "Start anyway" (and scripts)
    assert job_id and message.startswith(f"Job {job_id} submitted (mlp, scratch)")
    finetune_tab.cancel_job(job_id)
    assert jobs().wait(job_id, timeout=120)["status"] == "cancelled"


@pytest.mark.parametrize("changes, sentence", [
    (dict(epochs=0), "The number of epochs must be a whole number of at least 1; got 0."),
    (dict(train_limit=-5), "The train limit must be a whole number of examples, or 0 for all of them; got -5."),
    (dict(eval_limit=2.5), "The eval limit must be a whole number of examples, or 0 for all of them; got 2.5."),
])
def test_bad_numbers_are_one_sentence_in_the_status(changes, sentence):
    form = dict(task="images", model="mlp", strategy="scratch", epochs=1, lr="", batch_size=20, train_limit=40,
                eval_limit=20, minutes=None, preset=finetune_tab.NO_PRESET, **{})
    form.update(changes)
    status, _, gate = finetune_tab.request_start("previous", *_args(form))
    assert gate is True  # no confirmation over a mistake: start_training says it
    assert finetune_tab.start_training("previous", *_args(form), gate) == ("previous", sentence)
    assert finetune_tab.estimate_text(*_args(form)) == f"**Estimated time here:** none yet. {sentence}"


def test_the_default_form_runs_to_completion_in_about_a_minute(store, monkeypatch):
    monkeypatch.setattr(estimate, "has_gpu", lambda: False)
    form = _form_defaults()
    status, _, gate = finetune_tab.request_start(None, *_args(form))
    assert gate is True, status  # the default run needs no confirmation
    t0 = time.monotonic()
    job_id, message = finetune_tab.start_training(None, *_args(form), gate)
    assert message.startswith(f"Job {job_id} submitted (efficientnet_lite0, feature_extraction)")
    restored = finetune_tab.restore_form(job_id)  # a reload while it runs shows its settings
    assert restored[0] == "images" and restored[1]["value"] == "efficientnet_lite0" and restored[6:8] == (1000, 500)
    assert restored[-1] == ""  # the run has no name

    said, lines = None, set()
    while True:
        snap = jobs().snapshot(job_id)
        out = finetune_tab.poll_job(job_id, None, said)
        if out[0] != gr.skip():
            lines.add(out[0])
        said = out[5]
        if snap["status"] not in ("queued", "running"):
            break
        assert time.monotonic() - t0 < 600, said
        time.sleep(0.5)
    seconds = time.monotonic() - t0
    print(f"default form run: {seconds:.1f} s")
    assert snap["status"] == "completed", snap["message"]
    run_id = Path(snap["run_dir"]).name
    title = f"Job {job_id} — images · efficientnet_lite0 · feature_extraction · run {run_id}"
    assert said.startswith(f"{title}: completed. Finished: test accuracy 0.")
    assert any(line.startswith(f"{title}: epoch ") for line in lines)
    # an unchanged status is not sent again, so a sentence a button wrote meanwhile stays
    assert finetune_tab.poll_job(job_id, None, said)[0] == gr.skip()
    assert finetune_tab.restore_form(job_id) == (gr.skip(),) * 12  # an ended job leaves the form alone
    assert seconds < 300  # sanity only: the time itself is reported, not asserted
