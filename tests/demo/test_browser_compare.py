"""The Compare tab in headless Chromium with three image runs: one cost-first table with the reference rows, the
curves and times of all three, and nothing of the previous task left on screen after a task switch.

The browser, the page, the served app and the helpers are tests/demo/test_browser.py's (imported); this module's
own ``store`` holds three copies of the session's tiny image run, labelled as runs of the ``mlp-baseline``
preset (so the "R3 reference" row shows) with B's and C's accuracy rewritten so the columns differ, and the tiny
tweet run. The screenshot goes to docs/tmp/screenshots/compare_multi.png.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import require_browser

require_browser()

from tests.demo.test_browser import browser, choose, expect, open_tab, page, screenshot, server  # noqa: F401

from core.weights import hub_available  # noqa: E402

PRESET = "mlp-baseline"  # the course's MLP (R3): its report's accuracy is the reference row


def _rewrite(path: Path, change) -> None:
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


@pytest.fixture(scope="module")
def store(tmp_path_factory, tiny_image_run, tiny_tweet_run):
    root = tmp_path_factory.mktemp("browser_compare_runs")
    names = {}
    for key, suffix, accuracy in (("a", "", None), ("b", "-b", 0.5), ("c", "-c", 0.75)):
        folder = root / f"{tiny_image_run.name}{suffix}"
        shutil.copytree(tiny_image_run, folder)
        _rewrite(folder / "config.json", lambda c: {**c, "train": {**c["train"], "preset": PRESET}})
        if accuracy is not None:
            _rewrite(folder / "metrics.json", lambda m, acc=accuracy: {**m, "accuracy": acc})
        names[key] = folder.name
    shutil.copytree(tiny_tweet_run, root / tiny_tweet_run.name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRANSFER_LAB_RUNS", str(root))  # before the app is built
        mp.setenv("TRANSFER_LAB_OFFLINE", "1")
        mp.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        hub_available.cache_clear()
        yield {"root": root, "tweet": tiny_tweet_run.name, **names}
    hub_available.cache_clear()


MORE = "More runs (C, D, …: in the table, curves and times; matrices and examples stay A and B)"
TABLE = "Cost and test metrics (each run's own test set)"


def add_run(panel, option: str) -> None:
    """Add ``option`` to the More runs multiselect; its list stays open after a pick, so close it as a user would."""
    box = panel.get_by_role("combobox", name=MORE, exact=True)
    box.click()
    listbox = panel.page.locator(f"#{box.get_attribute('aria-controls')}")
    listbox.get_by_role("option", name=option, exact=True).click()
    box.press("Escape")
    expect(box).to_have_attribute("aria-expanded", "false")


def test_three_runs_cost_first_with_references_then_a_task_switch_clears(page, store):
    from demo.state import model_choices

    # the options' short labels (demo.state.run_label): the three runs share model and strategy
    label = {Path(ref).name: text for text, ref in model_choices("images", include_registry=False)}
    panel = open_tab(page, "Compare & errors")
    panel.get_by_role("button", name="Refresh", exact=True).click()
    choose(panel, "Run A", label[store["a"]], exact=True)
    choose(panel, "Run B", label[store["b"]], exact=True)
    add_run(panel, label[store["c"]])
    panel.get_by_role("button", name="Compare", exact=True).click()
    expect(panel.get_by_text(re.compile(rf"^Comparing images runs A \({re.escape(store['a'])}, .* and C "
                                        rf"\({re.escape(store['c'])}, accuracy 0\.7500\)"))).to_be_visible()
    table = panel.get_by_role("grid", name=TABLE, exact=True)
    headers = [h.strip() for h in table.get_by_role("columnheader").all_inner_texts()]
    assert headers[:4] == ["metric", "A", "B", "C"] and "C − A" in headers, headers
    first = [c.strip() for c in table.get_by_role("row").nth(5).get_by_role("gridcell").all_inner_texts()]
    assert first[0] == "trainable parameters", first  # right after run, model, strategy, weights
    reference = table.get_by_role("row").filter(has=page.get_by_role("gridcell", name="R3 reference: accuracy"))
    expect(reference).to_have_count(1)
    expect(reference.get_by_role("gridcell").nth(1)).to_have_text("0.4618")
    expect(table.get_by_role("gridcell", name="wall time (s)", exact=True)).to_be_visible()
    titles = panel.locator(".js-plotly-plot .gtitle")
    expect(titles.first).to_contain_text("Learning curves: A, B and C")
    legend = panel.locator(".js-plotly-plot").first.locator(".legendtext")
    expect(legend.filter(has_text="C mlp scratch · val accuracy")).to_have_count(1)
    expect(legend.filter(has_text="A mlp scratch · train loss per step")).to_have_count(1)

    # Something per example on screen: A's busiest error cell's examples (preselected).
    panel.get_by_role("button", name="Show examples", exact=True).click()
    expect(panel.get_by_text(re.compile(r"^Run A, true \w+, predicted \w+: \d+ example"))).to_be_visible()
    screenshot(page, "compare_multi")

    # A task switch empties every result: no image gallery, no image table rows, no curves legend.
    panel.get_by_role("radio", name="tweets", exact=True).check()
    expect(panel.get_by_role("combobox", name="Run A", exact=True)).to_have_value(
        next(text for text, ref in model_choices("tweets", include_registry=False)
             if Path(ref).name == store["tweet"]))
    expect(panel.get_by_role("button", name=re.compile(r"^Thumbnail \d+ of \d+$"))).to_have_count(0)
    expect(panel.get_by_role("grid", name="Examples", exact=True).get_by_role("row")).to_have_count(1)
    expect(table.get_by_role("row")).to_have_count(1)
    expect(panel.get_by_text(re.compile(r"^Run A, true "))).to_have_count(0)
    expect(panel.locator(".js-plotly-plot").first.locator(".legendtext")).to_have_count(0)
