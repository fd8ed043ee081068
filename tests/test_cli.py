"""The `python -m core` argument parser: train flags generated from TrainConfig, global options anywhere."""
import json
import subprocess
import sys
from dataclasses import fields

import pytest

from core import cli
from core.config import CHOICES, TrainConfig


def parse(*argv):
    return cli.build_parser().parse_args(list(argv))


def train_actions():
    sub = next(a for a in cli.build_parser()._actions if a.dest == "command")
    return {a.dest: a for a in sub.choices["train"]._actions}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


SETTINGS = [f for f in fields(TrainConfig) if f.name not in cli._NOT_TRAIN_FLAGS]


def test_every_trainconfig_field_has_one_flag_with_help():
    actions = train_actions()
    assert set(cli._NOT_TRAIN_FLAGS) == {"preset"} and "preset" in actions  # --preset is hand-written
    for f in SETTINGS:
        action = actions[f.name]
        on_off = [flag(f.name), "--no-" + f.name.replace("_", "-")]  # a preset may turn on what is off by default
        assert action.option_strings == (on_off if isinstance(f.default, bool) else [flag(f.name)]), f.name
        assert action.default is None, f.name  # "not given", for compose_settings
        assert cli._TRAIN_HELP.get(f.name) and action.help, f.name
    assert set(cli._TRAIN_HELP) == {f.name for f in SETTINGS}  # no help for a field that is gone


def test_flags_parse_to_the_annotated_types_and_nothing_given_is_none():
    args = parse("train", "--batch-size", "8", "--lr", "3e-4", "--max-minutes", "1.5", "--data-dir", "/d",
                 "--train-limit", "10", "--plateau-patience", "4", "--head", "linear")
    assert (args.batch_size, args.lr, args.max_minutes, args.data_dir, args.train_limit, args.plateau_patience,
            args.head) == (8, 3e-4, 1.5, "/d", 10, 4, "linear")
    assert type(args.batch_size) is int and type(args.lr) is float
    bare = parse("train")
    assert all(getattr(bare, f.name) is None for f in fields(TrainConfig))
    with pytest.raises(SystemExit):
        parse("train", "--batch-size", "eight")


def test_no_feature_cache_and_no_hflip_map_to_false():
    args = parse("train", "--no-feature-cache", "--no-hflip")
    assert args.feature_cache is False and args.hflip is False
    cfg = cli._config_from_args(parse("train", "--task", "images", "--model", "mlp", "--no-hflip"))
    assert (cfg.hflip, cfg.feature_cache) == (False, True)


def test_a_flag_turns_off_what_a_preset_turns_on():
    assert cli._config_from_args(parse("train", "--preset", "qa-e5-small")).activation_checkpointing is True
    off = cli._config_from_args(parse("train", "--preset", "qa-e5-small", "--no-activation-checkpointing"))
    assert off.activation_checkpointing is False and off.model == "e5_small"


def test_choices_come_from_one_place_and_unknown_values_are_rejected(capsys):
    actions = train_actions()
    for name, allowed in CHOICES.items():
        assert actions[name].choices == list(allowed)
    assert actions["strategy"].choices == list(cli.STRATEGIES)
    assert actions["task"].choices == list(cli._task_names())
    with pytest.raises(SystemExit) as err:
        parse("train", "--optimizer", "rmsprop")
    assert err.value.code == 2 and "invalid choice: 'rmsprop'" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["--runs-dir", "/tmp/before", "train", "--task", "images"],
    ["train", "--task", "images", "--runs-dir", "/tmp/after"],
    ["runs", "--runs-dir", "/tmp/after"],
    ["--runs-dir", "/tmp/before", "runs"],
])
def test_runs_dir_before_or_after_the_subcommand(argv):
    expected = argv[argv.index("--runs-dir") + 1]
    assert parse(*argv).runs_dir == expected


def test_runs_dir_default_and_the_later_one_wins():
    assert parse("runs").runs_dir is None
    assert parse("--runs-dir", "/a", "models", "--runs-dir", "/b").runs_dir == "/b"


def test_train_help_lists_every_flag(capsys):
    with pytest.raises(SystemExit) as err:
        parse("train", "--help")
    out = capsys.readouterr().out
    assert err.value.code == 0
    for f in SETTINGS:
        assert flag(f.name) in out, f.name
        if isinstance(f.default, bool):
            assert "--no-" + f.name.replace("_", "-") in out, f.name
    for extra in ("--preset", "--resume", "--runs-dir"):
        assert extra in out


def test_runs_dir_after_the_subcommand_end_to_end(tmp_path):
    from core.store.runs import create_run

    run = create_run("mlp", "scratch", tmp_path)
    run.write_config({"train": {"task": "images", "model": "mlp", "strategy": "scratch"}})
    out = subprocess.run([sys.executable, "-m", "core", "runs", "--json", "--runs-dir", str(tmp_path)],
                         capture_output=True, text=True, check=True)
    assert [r["id"] for r in json.loads(out.stdout)] == [run.id]


def test_rename_names_a_run_lists_it_and_refuses_bad_names(tmp_path, capsys):
    from core.cli import main
    from core.config import MAX_NAME
    from core.store.runs import create_run, open_run

    run = create_run("mlp", "scratch", tmp_path)
    run.write_config({"train": {"task": "images", "model": "mlp", "strategy": "scratch"}})
    run.set_status("completed")
    assert main(["rename", run.id, "  first try ", "--runs-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"Run {run.id} is now named “first try”."
    assert open_run(run.path).name() == "first try"
    assert main(["runs", "--runs-dir", str(tmp_path)]) == 0 and "“first try”" in capsys.readouterr().out
    assert main(["rename", run.id, "x" * (MAX_NAME + 1), "--runs-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (f"error: The run name must be at most {MAX_NAME} characters; got "
                                               f"{MAX_NAME + 1}.")
    assert open_run(run.path).name() == "first try"  # a refused name changes nothing
    assert main(["rename", run.id, "", "--json", "--runs-dir", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out) == {"run": run.id, "name": None}
    run.set_status("running")
    assert main(["rename", run.id, "later", "--runs-dir", str(tmp_path)]) == 2
    assert "still training" in capsys.readouterr().err and open_run(run.path).name() is None


def test_data_command_reports_each_split(capsys):
    from core.cli import main
    from core.paths import data_dir

    if not (data_dir() / "constraint_covid19_fake_news").is_dir():
        pytest.skip("CONSTRAINT tweets not found (set TRANSFER_LAB_DATA)")
    assert main(["data", "tweets", "--split", "val", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)["val"]
    assert stats["n"] == 2140 == sum(stats["label_counts"].values())
    assert main(["data", "qa", "--split", "nope"]) == 2  # one sentence, exit status 2
    assert "PQuAD split 'nope'" in capsys.readouterr().err
