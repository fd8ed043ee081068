"""core/registry.py: tasks as first-class objects (TaskSpec), the one model/task/strategy check, and that nothing
outside a task's folder needs to know a task's name."""
import subprocess
import sys
from pathlib import Path

import pytest

from core import registry
from core.errors import BadSettingError, UnknownModelError, UnknownStrategyError
from core.registry import TaskSpec

REPO = Path(__file__).resolve().parents[1]


def test_every_task_is_found_even_when_one_task_module_was_imported_first():
    # Importing one task's data module registers that task alone; the registry must still find the others.
    code = ("import core.tasks.images.data; from core import registry; "
            "print(','.join(registry.task_names()))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "images,tweets,qa"


def test_each_task_declares_what_callers_need():
    for task in registry.list_tasks():
        assert isinstance(task, TaskSpec)
        assert task.adapter_class().task == task.name  # the engine adapter belongs to this task
        rows = task.row_class()
        assert rows.true_axis(task.labels or ()) and rows.predicted_axis(task.labels or ())
        assert task.inputs and all(f.kind in ("image", "text") for f in task.inputs)
        assert task.num_outputs == (len(task.labels) if task.labels else 2)
        assert registry.list_models(task.name), f"{task.name} has no models"
    assert registry.get_task("qa").labels is None and registry.get_task("images").labels[0] == "airplane"


def test_the_one_check_says_what_does_not_fit():
    assert registry.check("images", "mlp", "scratch").name == "mlp"
    with pytest.raises(BadSettingError, match="Unknown task 'audio'"):
        registry.check("audio", "mlp", "scratch")
    with pytest.raises(BadSettingError, match="is for the images task, not tweets"):
        registry.check("tweets", "mlp", "scratch")
    with pytest.raises(UnknownStrategyError, match="supports the strategies scratch, full, not last_block"):
        registry.check("images", "mlp", "last_block")
    with pytest.raises(UnknownStrategyError, match="Unknown strategy 'frozen'"):
        registry.check("images", "mlp", "frozen")
    with pytest.raises(UnknownModelError, match="Unknown model 'gpt5'"):
        registry.check("images", "gpt5", "full")


def test_no_task_name_is_tested_outside_the_task_folders():
    # The task-as-object rule: core/ and demo/ look declarations up instead of comparing names (registrations in
    # core/tasks/<task>/ and the per-task tab modules of demo/ may name their own task).
    offenders = []
    for path in list((REPO / "core").rglob("*.py")) + list((REPO / "demo").glob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith("core/tasks/"):
            continue
        text = path.read_text(encoding="utf-8")
        for needle in ('== "qa"', "== 'qa'", '== "images"', '== "tweets"', "QA_TASK"):
            if needle in text:
                offenders.append(f"{rel}: {needle}")
    assert offenders == []


def test_the_first_lookups_from_several_threads_at_once_all_see_the_whole_registry():
    """A fresh process whose first registry lookups come from six threads at once (the app's warm-up, requests,
    the model check): every thread sees every model (before, all but the loading thread saw an empty registry and
    answered "Unknown model")."""
    code = ("import threading\nfrom core import registry\nout = []\n"
            "ts = [threading.Thread(target=lambda: out.append(len(registry.list_models()))) for _ in range(6)]\n"
            "[t.start() for t in ts]\n[t.join() for t in ts]\nprint(sorted(set(out)))\n")
    found = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
    counts = eval(found.stdout.strip())  # noqa: S307 - our own printout of a list of ints
    assert len(counts) == 1 and counts[0] == len(registry.list_models()) > 20
