"""Friendly run names: one check (core.config.clean_run_name) for TrainConfig, the CLI's --name and a rename; the
name stored in the run's config.json; short picker labels (demo.state.run_label) that stay unique."""
from __future__ import annotations

import json
import shutil

import pytest

from core import cli
from core.config import MAX_NAME, TrainConfig, clean_run_name
from core.errors import BadSettingError, RunNotFoundError
from core.store.runs import list_runs, open_run, run_id_time

BASE = dict(task="images", model="mlp", strategy="scratch")


@pytest.mark.parametrize("given, stored", [
    ("  my first run ", "my first run"),
    ("", None),
    ("   ", None),
    (None, None),
    ("Persian QA — پرسش", "Persian QA — پرسش"),
    ("x" * MAX_NAME, "x" * MAX_NAME),
])
def test_a_name_is_stored_stripped_and_blank_means_none(given, stored):
    assert clean_run_name(given) == stored
    assert TrainConfig(**BASE, name=given).validate().name == stored


@pytest.mark.parametrize("given, sentence", [
    ("two\nlines", "The run name must be a single line of printable characters."),
    ("tab\there", "The run name must be a single line of printable characters."),
    ("bell\x07", "The run name must be a single line of printable characters."),
    ("y" * (MAX_NAME + 1), f"The run name must be at most {MAX_NAME} characters; got {MAX_NAME + 1}."),
    (42, "The run name must be text; got int."),
    (["a"], "The run name must be text; got list."),
])
def test_a_bad_name_is_one_sentence(given, sentence):
    with pytest.raises(BadSettingError) as err:
        TrainConfig(**BASE, name=given).validate()
    assert str(err.value) == sentence
    with pytest.raises(BadSettingError):
        clean_run_name(given)


def test_the_cli_train_flags_take_a_name():
    args = cli.build_parser().parse_args(["train", "--task", "images", "--model", "mlp", "--strategy", "scratch",
                                          "--name", " my first run "])
    cfg = cli._config_from_args(args).validate()
    assert cfg.name == "my first run"
    assert cli._config_from_args(cli.build_parser().parse_args(["train", "--task", "images", "--model",
                                                                "mlp"])).name is None


def test_the_cli_refuses_a_long_name_in_one_sentence(capsys):
    assert cli.main(["train", "--task", "images", "--model", "mlp", "--name", "z" * 61]) == 2
    assert f"at most {MAX_NAME} characters" in capsys.readouterr().err


@pytest.fixture
def named_store(tmp_path, tiny_image_run):
    root = tmp_path / "runs"
    root.mkdir()
    target = root / tiny_image_run.name
    shutil.copytree(tiny_image_run, target)
    return root, target


def test_rename_rewrites_only_the_name_and_the_listing_shows_it(named_store):
    root, target = named_store
    before = json.loads((target / "config.json").read_text(encoding="utf-8"))
    run = open_run(target, root)
    assert run.name() is None and list_runs(root)[0]["name"] is None
    assert run.rename("  my first run  ") == "my first run"
    after = json.loads((target / "config.json").read_text(encoding="utf-8"))
    assert after["train"] == {**before["train"], "name": "my first run"}
    assert {k: v for k, v in after.items() if k != "train"} == {k: v for k, v in before.items() if k != "train"}
    assert run.name() == "my first run" and list_runs(root)[0]["name"] == "my first run"
    assert run.train_config().name == "my first run"  # a resume reads it back through TrainConfig
    assert not [p.name for p in target.iterdir() if p.name.endswith(".tmp")]  # the atomic write left nothing
    assert run.rename("") is None and run.name() is None


def test_a_bad_rename_changes_nothing(named_store):
    root, target = named_store
    run = open_run(target, root)
    run.rename("kept")
    before = (target / "config.json").read_bytes()
    with pytest.raises(BadSettingError):
        run.rename("a\nb")
    assert (target / "config.json").read_bytes() == before
    (target / "config.json").write_text(json.dumps({"headline_metric": "accuracy"}))
    with pytest.raises(RunNotFoundError, match="has no training settings to name"):
        run.rename("x")


def test_the_run_id_gives_its_creation_time():
    created = run_id_time("20261202-184012-mlp-scratch-1a2b")
    assert (created.tm_year, created.tm_mon, created.tm_mday, created.tm_hour, created.tm_min) == \
        (2026, 12, 2, 18, 40)
    assert run_id_time("my-copied-run") is None and run_id_time("") is None


def _row(run_id, name=None, model="minilm", strategy="full", value=0.7491, metric="accuracy"):
    return {"id": run_id, "name": name, "model": model, "strategy": strategy, "headline": value,
            "headline_metric": metric}


def test_picker_labels_are_short_and_name_the_run():
    from demo.state import run_label

    assert run_label(_row("20261202-184012-minilm-full-ab12")) == "minilm full · 12-02 18:40 · accuracy 0.749"
    assert run_label(_row("20261202-184012-minilm-full-ab12", name="my first run", value=0.8104, metric="f1")) \
        == "my first run · minilm full · F1 0.810"
    assert run_label(_row("copied-run", value=None)) == "minilm full · copied-run"  # no time in it, no metric


def test_picker_labels_stay_unique():
    from demo.state import run_labels

    rows = [_row("20261202-184012-minilm-full-ab12"), _row("20261202-184055-minilm-full-cd34"),
            _row("20261202-184012-minilm-full-ab12-copy"), _row("20261202-190000-minilm-full-ef56", value=0.5)]
    labels = run_labels(rows)
    assert labels == ["minilm full · 12-02 18:40 · accuracy 0.749 · ab12",
                      "minilm full · 12-02 18:40 · accuracy 0.749 · cd34",
                      "minilm full · 12-02 18:40 · accuracy 0.749 · ab12-copy",
                      "minilm full · 12-02 19:00 · accuracy 0.500"]
    same_tail = [_row("20261202-184012-minilm-full-ab12"), _row("20261202-184013-minilm-full-ab12")]
    assert run_labels(same_tail) == [
        "minilm full · 12-02 18:40 · accuracy 0.749 · ab12 · 20261202-184012-minilm-full-ab12",
        "minilm full · 12-02 18:40 · accuracy 0.749 · ab12 · 20261202-184013-minilm-full-ab12"]


def test_model_choices_label_runs_by_name_and_keep_their_folder(named_store, monkeypatch):
    from demo.state import model_choices

    root, target = named_store
    monkeypatch.setenv("TRANSFER_LAB_RUNS", str(root))
    open_run(target, root).rename("baseline mlp")
    runs = [(label, ref) for label, ref in model_choices("images", include_registry=False)]
    assert len(runs) == 1 and runs[0][1] == str(target)
    assert runs[0][0].startswith("baseline mlp · mlp scratch · accuracy 0.")
    assert target.name not in runs[0][0]  # short: the id is the Runs tab's


def test_the_runs_tab_renames_a_run_and_lists_its_name(named_store, monkeypatch):
    gr = pytest.importorskip("gradio")
    from demo import runs_tab

    root, target = named_store
    monkeypatch.setenv("TRANSFER_LAB_RUNS", str(root))
    status, rows, summary = runs_tab.rename_selected(target.name, "  baseline ")
    assert status == f"Run {target.name} is now named “baseline”."
    assert rows[0][0] == target.name and rows[0][-1] == "baseline" and runs_tab.COLUMNS[-1] == "name"
    assert summary.startswith(f"**baseline** — run `{target.name}`")
    assert runs_tab.rename_selected(target.name, "a\nb") == (
        "The run name must be a single line of printable characters.", gr.skip(), gr.skip())
    assert runs_tab.rename_selected(None, "x")[0] == "Pick a run to rename."
    assert runs_tab.rename_selected("../elsewhere", "x")[0] == "No run named '../elsewhere' in the run store."
    status, rows, summary = runs_tab.rename_selected(target.name, "")
    assert status == f"Run {target.name} has no name now." and rows[0][-1] == ""
    assert summary.startswith(f"**{target.name}**")
    assert open_run(target, root).name() is None
