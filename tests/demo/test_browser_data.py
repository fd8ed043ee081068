"""The Data tab of the whole app (demo.build_app) in headless Chromium: opening the tab fills it, picking a task
redraws the table and the plots, and a screenshot of it goes to docs/tmp/screenshots/data.png.

The browser, the page and the helpers are tests/demo/test_browser.py's (imported, so the same Chromium set-up and
screenshot checks apply); the app is served here without that module's run store, which this tab never reads.
"""
from __future__ import annotations

import pytest

from tests.conftest import launched, require_browser

require_browser()

from tests.demo.test_browser import browser, expect, open_tab, page, record_events, screenshot  # noqa: F401

from core import registry  # noqa: E402
from core.weights import hub_available  # noqa: E402

TAB = "Data"


def _has_tab(app, label: str) -> bool:
    import gradio as gr

    return any(isinstance(b, gr.Tab) and b.label == label for b in app.blocks.values())


@pytest.fixture(scope="module")
def server(data_dir, tmp_path_factory):
    """(app, url): demo.build_app() launched on a free port, with an empty run store and the shared data."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRANSFER_LAB_RUNS", str(tmp_path_factory.mktemp("data_tab_runs")))
        mp.setenv("TRANSFER_LAB_DATA", str(data_dir))
        mp.setenv("TRANSFER_LAB_OFFLINE", "1")
        mp.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        hub_available.cache_clear()
        from demo import build_app
        from demo import data_tab

        data_tab.clear_cache()
        app = build_app()
        assert _has_tab(app, TAB)
        try:
            with launched(app) as url:
                yield app, url
        finally:
            data_tab.clear_cache()
    hub_available.cache_clear()


def test_data_tab_shows_each_tasks_statistics_and_plots(page, server):
    sent = record_events(page, server)
    tasks = registry.list_tasks()
    panel = open_tab(page, TAB)
    first = tasks[0]
    # opening the tab reads the picked (first) task's data set: its status line, a column per split
    expect(panel.get_by_text(f"{first.title}:", exact=False).first).to_be_visible()
    table = panel.get_by_role("grid")
    for split in first.splits():
        expect(table.get_by_role("columnheader", name=split, exact=True)).to_be_visible()
    assert "data_stats_open" in sent

    for task in tasks[1:]:
        panel.get_by_role("radio", name=task.title, exact=True).check()
        expect(panel.get_by_text(f"{task.title}:", exact=False).first).to_be_visible()
        for split in task.splits():
            expect(table.get_by_role("columnheader", name=split, exact=True)).to_be_visible()
        expect(panel.locator(".js-plotly-plot").first).to_be_visible()
    assert "data_stats" in sent

    # PQuAD: counts and lengths, two plots; its lengths are means with their ranges (markers, no boxes)
    qa = registry.get_task("qa")
    panel.get_by_role("radio", name=qa.title, exact=True).check()
    expect(panel.get_by_role("gridcell", name="answerable percent", exact=True)).to_be_visible()
    plots = panel.locator(".js-plotly-plot")
    expect(plots).to_have_count(2)
    expect(plots.nth(0).locator(".bars path").first).to_be_attached()
    expect(plots.nth(1).locator(".scatterlayer .point").first).to_be_attached()
    screenshot(page, "data")


def test_tweet_lengths_are_boxes(page):
    panel = open_tab(page, TAB)
    tweets = registry.get_task("tweets")
    panel.get_by_role("radio", name=tweets.title, exact=True).check()
    expect(panel.get_by_role("gridcell", name="words · p50", exact=True)).to_be_visible()
    plots = panel.locator(".js-plotly-plot")
    expect(plots).to_have_count(2)
    expect(plots.nth(1).locator(".boxlayer .trace")).to_have_count(len(tweets.splits()))
    screenshot(page, "data_tweets")
