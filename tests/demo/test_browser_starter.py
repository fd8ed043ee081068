"""A fresh run store in a real headless Chromium: the starter panel offers the starter runs with their estimates,
one click queues them and shows their progress, and then each task tab answers with its starter run by default,
without a Refresh click. The starter's limits are the test's own (tiny), set before the app is built.

Fixtures and helpers come from tests/demo/test_browser.py (Debian's Chromium, Playwright, a free port).
"""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import launched


def _browser_module():
    """tests/demo/test_browser.py, whose fixtures' settings and helpers this module shares (it skips the module
    itself when Chromium or Playwright is missing)."""
    name = "transfer_lab_test_browser"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("test_browser.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_b = _browser_module()
CHROMIUM, CHROMIUM_ARGS, MODEL_MS, STEP_MS, VIEWPORT = _b.CHROMIUM, _b.CHROMIUM_ARGS, _b.MODEL_MS, _b.STEP_MS, \
    _b.VIEWPORT
expect, open_tab, screenshot, sync_api = _b.expect, _b.open_tab, _b.screenshot, _b.sync_api

from core.weights import hub_available  # noqa: E402

STARTER_MS = 900_000  # three tiny runs, one after the other, on two busy cores (e5-small's first load included)
TINY = {
    "images": dict(model="mlp", strategy="scratch", train_limit=60, eval_limit=20, epochs=1, batch_size=20),
    "tweets": dict(model="minilm", strategy="feature_extraction", train_limit=40, eval_limit=20, epochs=1,
                   batch_size=20),
    "qa": dict(model="e5_small", strategy="full", train_limit=16, eval_limit=8, epochs=1, batch_size=8,
               max_length=64, doc_stride=16),
}


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory, data_dir):
    from core import starter

    root = tmp_path_factory.mktemp("starter_runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRANSFER_LAB_RUNS", str(root))
        mp.setenv("TRANSFER_LAB_OFFLINE", "1")
        mp.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        for task, settings in TINY.items():
            mp.setitem(starter.STARTER_TRAINING, task, settings)
        hub_available.cache_clear()
        yield root
    hub_available.cache_clear()


@pytest.fixture(scope="module")
def server(empty_store):
    from demo import build_app
    from demo.state import jobs

    app = build_app()
    try:
        with launched(app) as url:
            yield url
    finally:
        app.close()
        for snap in jobs().jobs():
            if snap["status"] in ("queued", "running"):
                jobs().cancel(snap["id"])
                jobs().wait(snap["id"], timeout=120)


def test_the_starter_button_makes_a_run_per_task_that_each_tab_then_uses(server, empty_store):
    expect.set_options(timeout=STEP_MS)
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = chromium.new_context(viewport=VIEWPORT).new_page()
            page.goto(server)
            offer = page.get_by_text(re.compile(r"No completed run yet for CIFAR-10 images, COVID-19 tweets, Persian QA"))
            expect(offer.first).to_be_visible()
            # the plan with an estimate per part, before anything starts
            expect(page.get_by_text(re.compile(r"^images: mlp \(scratch\): start; about "))).to_be_visible(
                timeout=MODEL_MS)
            page.get_by_role("button", name="Make starter runs", exact=True).click()
            expect(page.get_by_text(re.compile(r"^Queued 3 starter runs"))).to_be_visible()
            expect(page.get_by_text(re.compile(r"^images · mlp: "))).to_be_visible()  # progress, per job
            for task in ("images · mlp", "tweets · minilm", "qa · e5_small"):
                expect(page.get_by_text(re.compile(rf"^{re.escape(task)}: completed\."))).to_be_visible(
                    timeout=STARTER_MS)
            screenshot(page, "starter")

            from demo.state import model_choices

            runs = {p.name.split("-")[2]: p.name for p in empty_store.iterdir()}  # <date>-<time>-<model>-...
            for tab, label, model, task in (("Images", "Model 1", "mlp", "images"),
                                            ("Tweets", "Model 1", "minilm", "tweets"),
                                            ("Persian QA", "Model A", "e5_small", "qa")):
                panel = open_tab(page, tab)  # selecting the tab brings its lists up to date: no Refresh click
                shown = next(text for text, ref in model_choices(task, include_registry=False)
                             if Path(ref).name == runs[model])  # the picker's short label of the starter run
                expect(panel.get_by_role("combobox", name=label, exact=True)).to_have_value(shown)
                expect(panel.get_by_text(re.compile(rf"{label} by default: run {re.escape(runs[model])} "))
                       ).to_be_visible()
            # the offer is gone once every task has a completed run (on the next page load)
            page.reload()
            expect(page.get_by_role("tab", name="Fine-tune")).to_be_visible()
            expect(page.get_by_role("button", name="Make starter runs", exact=True)).to_be_hidden()
        finally:
            chromium.close()
