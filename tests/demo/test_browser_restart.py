"""A server restart in headless Chromium: the page still names its run, not an error, and Resume continues it.

A named tiny MLP job is started from the Fine-tune tab and cancelled (it keeps its checkpoint); then the app server
is stopped and a new one is launched on the same port and run store with an empty job queue (what a restarted
process has). The reloaded page knows its job id and its run (both in the browser's localStorage), says where the
run stands, and its Resume button continues that run as a new job, named as before.

The browser and the helpers are tests/demo/test_browser.py's (imported); the first server is served with
tests/conftest.py's ``launched``; the second one on the first one's port, since localStorage belongs to the origin.
"""
from __future__ import annotations

import re
import shutil
from urllib.parse import urlparse

import pytest

from tests.conftest import launched, require_browser

require_browser()

from tests.demo.test_browser import (FINETUNE, MODEL_MS, STEP_MS, VIEWPORT, browser, choose,  # noqa: F401
                                     expect, open_tab)

from core.weights import hub_available  # noqa: E402

NAME = "restart demo"
EPOCHS = "500"  # far more than the seconds this test waits: the job is cancelled while it trains


@pytest.fixture(scope="module")
def store(tmp_path_factory, tiny_image_run):
    root = tmp_path_factory.mktemp("browser_restart_runs")
    shutil.copytree(tiny_image_run, root / tiny_image_run.name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRANSFER_LAB_RUNS", str(root))  # before the apps are built
        mp.setenv("TRANSFER_LAB_OFFLINE", "1")
        mp.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        hub_available.cache_clear()
        yield root
    hub_available.cache_clear()


def _fresh_app():
    """demo.build_app() with a new, empty job queue: the state of a server process that has just started."""
    from demo import build_app
    from demo.state import jobs

    jobs.cache_clear()
    return build_app()


def _cancel_all() -> None:
    from demo.state import jobs

    for snap in jobs().jobs():
        if snap["status"] in ("queued", "running"):
            jobs().cancel(snap["id"])
            jobs().wait(snap["id"], timeout=120)


def _start(panel) -> None:
    panel.get_by_role("button", name="Start", exact=True).click()
    anyway = panel.get_by_role("button", name="Start anyway", exact=True)
    submitted = panel.get_by_text(re.compile(r"^Job \w+ "))
    expect(anyway.or_(submitted).first).to_be_visible()
    if anyway.is_visible():  # a run this long asks first
        anyway.click()


def test_after_a_restart_the_page_names_its_run_and_resume_continues_it(browser, store):
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(STEP_MS)
    page = context.new_page()
    title = re.compile(rf"^Job (\w+) — images · mlp · scratch · run “{NAME}” \(([\w-]+)\): ")
    second = None
    try:
        with launched(_fresh_app()) as url:
            try:
                page.goto(url)
                panel = open_tab(page, "Fine-tune")
                panel.get_by_role("radio", name="images", exact=True).check()
                choose(panel, "Model", "mlp")
                expect(panel.get_by_role("combobox", name="Strategy", exact=True)).to_have_value("scratch")
                for label, value in {**FINETUNE, "Epochs": EPOCHS}.items():
                    panel.get_by_label(label, exact=True).fill(value)
                panel.get_by_role("textbox", name=re.compile(r"^Run name")).fill(NAME)
                _start(panel)
                status = panel.get_by_text(title)
                expect(status).to_contain_text(re.compile(rf"epoch \d+/{EPOCHS}"), timeout=MODEL_MS)
                job_id, run_id = title.match(status.inner_text()).groups()
                panel.get_by_role("button", name="Cancel", exact=True).click()
                expect(status).to_contain_text("was cancelled", timeout=MODEL_MS)
            finally:
                _cancel_all()

        # The restart: a new server process on the same port and run store, which knows no job.
        port = urlparse(url).port
        second = _fresh_app()
        second.queue()
        second.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        page.reload()
        panel = open_tab(page, "Fine-tune")
        said = panel.get_by_text(re.compile(rf"^The server restarted; run “{NAME}” \({re.escape(run_id)}\) was "
                                            rf"cancelled after epoch \d+ of {EPOCHS}: press Resume to continue "
                                            r"from its checkpoint\.$"))
        expect(said).to_be_visible(timeout=MODEL_MS)
        expect(panel.get_by_text("not known to this server")).to_have_count(0)

        panel.get_by_role("button", name="Resume", exact=True).click()
        resumed = panel.get_by_text(re.compile(rf"^Job (?!{job_id})\w+ — images · mlp · scratch · run “{NAME}” "
                                               rf"\({re.escape(run_id)}\): "))
        expect(resumed).to_be_visible(timeout=MODEL_MS)
        expect(resumed).to_contain_text(re.compile(rf"epoch \d+/{EPOCHS}"), timeout=MODEL_MS)  # it trains again
        panel.get_by_role("button", name="Cancel", exact=True).click()
        expect(resumed).to_contain_text("was cancelled", timeout=MODEL_MS)
    finally:
        context.close()
        _cancel_all()
        if second is not None:
            second.close()
