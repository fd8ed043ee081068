"""demo/plots.py: the learning-curve and time figures' traces, colours, x axis and labels, on hand-written rows
and on the session's tiny finished run (its history.jsonl, steps.jsonl and config.json)."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("plotly")

from core.store.runs import Run  # noqa: E402
from demo.plots import (SETUP_COLOUR, SPLIT_COLOURS, RunCurves, curves_figure, run_curves, seconds_figure,  # noqa: E402
                        sizes_text, step_points, steps_per_epoch)

TWO_EPOCHS = [
    {"epoch": 0, "train_loss": 2.0, "train_accuracy": 0.2, "val_loss": 1.9, "val_accuracy": 0.25, "seconds": 3.0,
     "eval_seconds": 0.5},
    {"epoch": 1, "train_loss": 1.5, "train_accuracy": 0.4, "val_loss": 1.6, "val_accuracy": 0.35, "seconds": 2.0,
     "eval_seconds": 0.25},
]
# 4 steps per epoch, logged every 2: points at global steps 2, 4 (end of epoch 1), 6, 8 (end of epoch 2)
STEPS = [{"epoch": e, "step": s, "loss": 2.2 - 0.1 * s, "lr": 1e-3, "seconds": 0.1}
         for e, s in ((0, 2), (0, 4), (1, 6), (1, 8))]


def by_name(fig):
    return {t.name: t for t in fig.data}


def colour(trace):
    return trace.marker.color if trace.mode == "markers" else trace.line.color


def test_one_run_has_a_colour_per_split_epochs_from_one_and_step_points():
    curves = RunCurves(TWO_EPOCHS, STEPS, {"train": 60, "val": 20, "test": 20}, setup_seconds=12.0)
    fig = curves_figure({"mlp scratch": curves}, "accuracy")
    traces = by_name(fig)
    assert list(traces) == ["train loss", "val loss", "train accuracy", "val accuracy", "train loss per step"]
    for name, trace in traces.items():
        split = "train" if name.startswith("train") else "val"
        assert colour(trace) == SPLIT_COLOURS[split], name
        if trace.mode != "markers":
            assert trace.line.dash == ("dash" if split == "train" else "solid"), name
    assert SPLIT_COLOURS["train"] != SPLIT_COLOURS["val"]
    assert list(traces["val accuracy"].x) == [1, 2] and list(traces["val accuracy"].y) == [0.25, 0.35]
    # step points in fractional epochs: step 2 of 4 is halfway through epoch 1; each epoch ends on a whole number
    assert list(traces["train loss per step"].x) == [0.5, 1.0, 1.5, 2.0]
    assert list(traces["train loss per step"].y) == pytest.approx([2.0, 1.8, 1.6, 1.4])
    assert traces["train loss per step"].xaxis == "x"  # the loss panel
    assert list(fig.layout.xaxis.tickvals) == [1, 2] and fig.layout.xaxis.range[0] == 0
    # the hover of every epoch point carries that epoch's training and validation seconds
    assert [list(c) for c in traces["val loss"].customdata] == [["3.0 s", "0.5 s"], ["2.0 s", "0.2 s"]]
    assert "validation %{customdata[1]}" in traces["val loss"].hovertemplate
    assert fig.layout.title.text == "train 60 · val 20 · test 20 examples"


def test_several_runs_have_a_colour_each_and_their_sizes_in_the_legend():
    runs = {"A mlp": RunCurves(TWO_EPOCHS, STEPS, {"train": 60, "val": 20}),
            "B mlp": RunCurves(TWO_EPOCHS[:1], [], {"train": 120, "val": 20}),
            "C resnet": TWO_EPOCHS}  # a plain list: epoch rows only
    fig = curves_figure(runs, "accuracy", title="Learning curves: A, B and C")
    per_run = {label: {colour(t) for t in fig.data if t.legendgroup == label} for label in runs}
    assert all(len(c) == 1 for c in per_run.values())  # one colour per run, every split
    assert len({next(iter(c)) for c in per_run.values()}) == 3  # and three different ones
    names = [t.name for t in fig.data]
    assert "A mlp · train loss per step" in names and not any("per step" in n for n in names if n[0] in "BC")
    train, val = by_name(fig)["B mlp · train loss"], by_name(fig)["B mlp · val loss"]
    assert (train.line.dash, train.marker.symbol) == ("dash", "circle-open") and val.line.dash == "solid"
    assert {t.legendgrouptitle.text for t in fig.data if t.legendgroup == "B mlp"} == {
        "B mlp (train 120 · val 20 examples)"}
    assert fig.layout.title.text == "Learning curves: A, B and C"
    assert min(min(t.x) for t in fig.data if "per step" not in t.name) == 1


def test_one_epoch_runs_are_labelled_markers():
    fig = curves_figure({"qa": [{"epoch": 0, "train_loss": 3.0, "train_accuracy": 0.1, "val_loss": 2.5,
                                 "val_f1": 0.3}]}, "f1")
    for trace in fig.data:
        assert list(trace.x) == [1] and "markers" in trace.mode and "text" in trace.mode
        assert trace.marker.size >= 10
    assert list(by_name(fig)["val f1"].text) == ["0.300"]
    assert fig.layout.xaxis.range[0] == 0.5 and list(fig.layout.xaxis.tickvals) == [1]
    longer = curves_figure({"mlp": TWO_EPOCHS * 2}, "accuracy")  # four points: lines, no labels
    assert all(t.mode == "lines+markers" for t in longer.data)


def test_step_positions_need_a_finished_epoch_or_the_steps_per_epoch():
    live = RunCurves(history=[], steps=STEPS[:1])  # first epoch running: where would step 2 be?
    assert steps_per_epoch(live) is None and step_points(live) == ([], [], [])
    assert step_points(RunCurves([], STEPS[:1], steps_per_epoch=4))[0] == [0.5]
    assert steps_per_epoch(RunCurves(TWO_EPOCHS[:1], STEPS)) == 4.0
    torn = RunCurves(TWO_EPOCHS, [*STEPS, {"epoch": 1, "step": 9, "loss": float("nan")}])
    assert len(step_points(torn)[0]) == 4  # a non-finite loss is not drawn


def test_seconds_figure_shows_setup_training_and_validation():
    fig = seconds_figure({"mlp": RunCurves(TWO_EPOCHS, sizes={}, setup_seconds=12.0)})
    traces = by_name(fig)
    assert list(traces) == ["setup s", "training s", "validation s"]
    assert (list(traces["setup s"].x), list(traces["setup s"].y)) == ([0], [12.0])
    assert list(traces["validation s"].x) == [1, 2] and list(traces["validation s"].y) == [0.5, 0.25]
    assert [t.marker.color for t in fig.data] == [SETUP_COLOUR, SPLIT_COLOURS["train"], SPLIT_COLOURS["val"]]
    assert list(fig.layout.xaxis.ticktext) == ["setup", "1", "2"]
    two = seconds_figure({"A": TWO_EPOCHS, "B": TWO_EPOCHS})
    assert len({t.marker.color for t in two.data}) == 2 and len(two.data) == 4
    assert two.data[1].marker.pattern.shape == "/"  # validation hatched where the colour names the run
    empty = seconds_figure({})
    assert not empty.data and empty.layout.annotations[0].text == "No time recorded yet."


def test_curves_can_carry_the_seconds_as_a_third_panel():
    fig = curves_figure({"A": RunCurves(TWO_EPOCHS, setup_seconds=12.0), "B": TWO_EPOCHS}, "accuracy", seconds=True)
    bars = [t for t in fig.data if t.type == "bar"]
    assert [t.name for t in bars] == ["A · setup s", "A · training s", "A · validation s", "B · training s",
                                      "B · validation s"]
    assert {t.xaxis for t in bars} == {"x3"} and {t.xaxis for t in fig.data if t.type == "scatter"} == {"x", "x2"}
    assert list(fig.layout.xaxis3.ticktext) == ["setup", "1", "2"] and list(fig.layout.xaxis.tickvals) == [1, 2]
    assert len(curves_figure({"A": TWO_EPOCHS}, "accuracy").data) == 4  # without it: the curves alone


def test_sizes_text():
    assert sizes_text({"test": 5, "train": 1200, "val": 30}) == "train 1,200 · val 30 · test 5 examples"
    assert sizes_text({}) == ""


def test_a_finished_runs_curves_come_from_its_files(tiny_image_run):
    run = Run(tiny_image_run)
    curves = run_curves(run)
    config = json.loads((tiny_image_run / "config.json").read_text())
    steps = [json.loads(line) for line in (tiny_image_run / "steps.jsonl").read_text().splitlines() if line]
    assert steps and curves.steps == steps and curves.history == run.read_history()
    assert curves.sizes == {split: facts["n"] for split, facts in config["data"].items()}
    assert curves.setup_seconds == config["prepare_seconds"]
    fig = curves_figure({run.id: curves}, "accuracy", title=run.id)
    step_trace = by_name(fig)["train loss per step"]
    assert len(step_trace.x) == len(steps) and max(step_trace.x) == pytest.approx(1.0)  # one epoch, ends at 1
    assert f"train {curves.sizes['train']}" in fig.layout.title.text
    assert by_name(seconds_figure({run.id: curves}))["validation s"].y[0] == curves.history[0]["eval_seconds"]
