"""After a server restart the browser finds its run again (demo/finetune_tab.py's run memory).

Jobs live in the server's memory only; the browser keeps its job id and, once the job's run folder exists, the
run's id ("run memory"). Here a "restart" is a fresh JobQueue behind the Fine-tune and Runs handlers (what a new
server process has), on the same run store: the poll then follows a job of the new server working on the
remembered run, or says the run's stored status in one sentence, and Resume continues that run.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

gr = pytest.importorskip("gradio")

from core.store.jobs import JobQueue  # noqa: E402
from core.store.runs import HOST, open_run  # noqa: E402
from demo import finetune_tab, runs_tab  # noqa: E402

UNKNOWN = "That training job is not known to this server (it may have restarted)."
NAME = "restart demo"
OLD_JOB = "0ld0j0b0"  # the id the browser kept from before the restart


@pytest.fixture
def server(tmp_path, monkeypatch, data_dir, tiny_image_run):
    """A run store holding a copy of the tiny image run, named NAME, and the handlers' queue, which
    ``restart()`` replaces with a fresh one (every job forgotten, as after a restart)."""
    root = tmp_path / "runs"
    root.mkdir()
    target = root / tiny_image_run.name
    shutil.copytree(tiny_image_run, target)
    open_run(target, root).rename(NAME)
    monkeypatch.setenv("TRANSFER_LAB_RUNS", str(root))
    monkeypatch.setenv("TRANSFER_LAB_DATA", str(data_dir))
    queues = [JobQueue()]
    for module in (finetune_tab, runs_tab):
        monkeypatch.setattr(module, "jobs", lambda: queues[-1])

    def restart() -> JobQueue:
        queues.append(JobQueue())
        return queues[-1]

    def set_status(status: str, **extra) -> None:
        record = {"status": status, "message": "", "updated": time.time(), **extra}
        (target / "status.json").write_text(json.dumps(record))

    yield SimpleNamespace(root=root, path=target, run_id=target.name, restart=restart, set_status=set_status,
                          memory={"job": OLD_JOB, "run": target.name})
    for queue in queues:  # never leave a job training into the next test
        for snap in queue.jobs():
            if snap["status"] in ("queued", "running"):
                queue.cancel(snap["id"])
            queue.wait(snap["id"], timeout=120)


def _title(server) -> str:
    return f"“{NAME}” ({server.run_id})"


def test_the_run_memory_is_written_once_and_the_status_names_the_run(server):
    server.set_status("cancelled", message="Cancelled.")
    job = server.restart().submit_resume(str(server.path))  # a job on the run, as resume_interrupted makes
    out = finetune_tab.poll_job(job.id)
    assert len(out) == 7 and out[0].startswith(f"Job {job.id} — images · mlp · scratch · run {_title(server)}: ")
    remembered = {"job": job.id, "run": server.run_id}
    assert finetune_tab.remember_run(job.id, None) == (gr.skip(), remembered)  # the job id stays
    assert finetune_tab.remember_run(job.id, {"job": "older", "run": "x"}) == (gr.skip(), remembered)
    # the browser already remembers it: nothing is sent
    assert finetune_tab.remember_run(job.id, remembered) == (gr.skip(), gr.skip())


def test_after_a_restart_the_poll_follows_the_job_now_on_the_run(server):
    server.set_status("cancelled", message="Cancelled.")
    job = server.restart().submit_resume(str(server.path))  # the new server resumed the run as a new job
    status, progress, _, _, _, said, timer = finetune_tab.poll_job(OLD_JOB, None, None, server.memory)
    assert status == said == f"The server restarted; following run {_title(server)} again as job {job.id}."
    assert progress == "" and timer.active is True
    job_id, memory = finetune_tab.remember_run(OLD_JOB, server.memory)  # the status changed: the page follows it
    assert job_id == job.id and memory == {"job": job.id, "run": server.run_id}
    restored = finetune_tab.restore_form(OLD_JOB, server.memory)  # a reload shows that run's settings
    assert restored[0] == "images" and restored[1]["value"] == "mlp" and restored[2]["value"] == "scratch"
    assert restored[-1] == NAME  # and its name, so Start again would not drop it
    # from the next tick on, the page polls the new job, which names the run
    assert finetune_tab.poll_job(job_id, None, None, memory)[0].startswith(
        f"Job {job.id} — images · mlp · scratch · run {_title(server)}: ")


def test_after_a_restart_without_a_job_the_run_is_said_and_resume_continues_it(server):
    server.set_status("cancelled", message="Cancelled.")
    queue = server.restart()
    where = "its checkpoint" if open_run(server.path).has_checkpoint() else "the start (it had no checkpoint yet)"
    status, *_, timer = finetune_tab.poll_job(OLD_JOB, None, None, server.memory)
    assert status == (f"The server restarted; run {_title(server)} was cancelled after epoch 1 of 1: press Resume "
                      f"to continue from {where}.")
    assert timer.active is False and finetune_tab.remember_run(OLD_JOB, server.memory) == (gr.skip(), gr.skip())
    assert finetune_tab.restore_form(OLD_JOB, server.memory) == (gr.skip(),) * 12  # nothing runs: form kept
    # an unchanged sentence is not sent again on the next tick
    assert finetune_tab.poll_job(OLD_JOB, None, status, server.memory)[0] == gr.skip()

    new_id, message = finetune_tab.resume_training(OLD_JOB, None, server.memory)
    assert new_id != OLD_JOB and message.startswith(f"Resuming as job {new_id}: ")
    assert Path(queue.snapshot(new_id)["resume"]).name == server.run_id
    assert queue.wait(new_id, timeout=300)["status"] == "completed"


def test_an_interrupted_run_is_said_from_its_status_file(server):
    long_ago = time.time() - 3600  # a heartbeat this old: the training process is gone
    server.set_status("running", heartbeat=long_ago, updated=long_ago, pid=2 ** 22 + 7, host=HOST)
    server.restart()
    status = finetune_tab.poll_job(OLD_JOB, None, None, server.memory)[0]
    assert status.startswith(f"The server restarted; run {_title(server)} was interrupted after epoch 1 of 1: "
                             "press Resume to continue from ")


def test_a_completed_failed_or_deleted_run_is_said_in_one_sentence(server):
    server.restart()
    finished = open_run(server.path).read_status()["message"]
    assert finetune_tab.poll_job(OLD_JOB, None, None, server.memory)[0] == \
        f"The server restarted; run {_title(server)} completed. {finished}".strip()
    server.set_status("failed", message="Out of memory on the GPU.")
    assert finetune_tab.poll_job(OLD_JOB, None, None, server.memory)[0] == \
        f"The server restarted; run {_title(server)} failed. Out of memory on the GPU."
    open_run(server.path).rename("")  # an unnamed run is named by its id
    assert finetune_tab.poll_job(OLD_JOB, None, None, server.memory)[0] == \
        f"The server restarted; run {server.run_id} failed. Out of memory on the GPU."
    shutil.rmtree(server.path)
    assert finetune_tab.poll_job(OLD_JOB, None, None, server.memory)[0] == (
        f"The server restarted and run {server.run_id} is no longer in the run store (it was deleted); press Start "
        "to train again.")
    assert finetune_tab.resume_training(OLD_JOB, None, server.memory)[1] == \
        f"No run '{server.run_id}' in the run store (it may have been deleted)."


@pytest.mark.parametrize("memory", [None, {"job": "another", "run": "x"}, {"job": OLD_JOB, "run": "../etc"},
                                    {"job": OLD_JOB, "run": ".."}, {"job": OLD_JOB, "run": 5}, "junk", ["x"]])
def test_without_a_memory_of_this_job_the_old_sentence_stays(server, memory):
    server.restart()
    status, *_, timer = finetune_tab.poll_job(OLD_JOB, None, None, memory)
    assert status == UNKNOWN and timer.active is False
    assert finetune_tab.remember_run(OLD_JOB, memory) == (gr.skip(), gr.skip())
    assert finetune_tab.resume_training(OLD_JOB, None, memory) == (
        OLD_JOB, "Pick a cancelled, stopped or interrupted run to resume (this session has none of its own).")


def test_the_browser_storage_key_survives_a_rebuild():
    """Gradio draws a random BrowserState secret per build; a restarted server could then not read what the
    browser stored. Ours are fixed, one per storage key."""
    job, memory = finetune_tab.new_job_state(), finetune_tab.new_run_memory()
    assert job.secret == finetune_tab.new_job_state().secret and memory.secret == finetune_tab.new_run_memory().secret
    assert job.secret != memory.secret and job.storage_key != memory.storage_key
