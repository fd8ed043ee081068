"""The layout of every tab at a laptop's width (1280 px) and a phone's (390 px), measured in headless Chromium.

What is measured, on every tab, with the DOM's own numbers (page.evaluate):
- the page never scrolls sideways: ``document.documentElement.scrollWidth <= window.innerWidth`` (a wide table
  scrolls inside its own box instead);
- no word of a table header, a component label or a tab name is broken across two lines (each word's text range
  has all its client rectangles on one line), and no table header's text is cut short (neither the header cell
  nor its text scrolls: ``scrollWidth <= clientWidth``, and the text's box lies inside the cell's);
- each data table (Models, Runs) has one-line headers, and when its columns do not fit (the phone) it scrolls
  sideways inside its own box, far enough to bring its last column into view;
- no dropdown's text runs under its arrow (a value too long ends in an ellipsis), and on the phone every
  dropdown is at least ``MIN_PICKER_PX`` wide, so its value is readable.

The app is served as app.py serves it, with ``demo.app.launch_kwargs()`` (the app-wide stylesheet goes through
there), on a throwaway run store with the session's tiny image run so the run pickers hold a real run id. Each
tab's full-page picture goes to docs/tmp/screenshots/<tab>_<width>.png ($TRANSFER_LAB_SCREENSHOTS moves it; the
phone's is clipped to its first two screens); `make screenshots` copies them to docs/screenshots/.
"""
from __future__ import annotations

import shutil

import pytest
from PIL import Image

from tests.conftest import launched, require_browser

require_browser()

from tests.demo.test_browser import (  # noqa: F401  (browser is a fixture)
    MAIN_CONTROL, MAX_SCREENSHOT_BYTES, SCREENSHOTS, STEP_MS, TABS, browser, expect)

from core.weights import hub_available  # noqa: E402

LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
MIN_PICKER_PX = 300  # a phone's dropdown: the whole width of the screen but the margins
PHONE_SCREENS = 2  # the phone's pictures keep this many screens from the top (a full page is very long)
SHOT_NAMES = {"Fine-tune": "finetune", "Persian QA": "qa", "Tweets": "tweets", "Images": "images",
              "Compare & errors": "compare", "Runs": "runs", "Models": "models", "Data": "data"}


@pytest.fixture(scope="module")
def store(tmp_path_factory, tiny_image_run):
    root = tmp_path_factory.mktemp("layout_runs")
    shutil.copytree(tiny_image_run, root / tiny_image_run.name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRANSFER_LAB_RUNS", str(root))  # before the app is built: its pickers list this store
        mp.setenv("TRANSFER_LAB_OFFLINE", "1")
        mp.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        hub_available.cache_clear()
        yield root
    hub_available.cache_clear()


@pytest.fixture(scope="module")
def url(store):
    """The app served by tests.conftest.launched, with app.py's launch settings (the stylesheet among them)."""
    from demo import build_app

    with launched(build_app()) as address:
        yield address


@pytest.fixture(params=[LAPTOP, PHONE], ids=lambda v: f"{v['width']}px")
def page(request, browser, url):
    context = browser.new_context(viewport=request.param)
    context.set_default_timeout(STEP_MS)
    page = context.new_page()
    script_errors: list[str] = []
    page.on("pageerror", lambda err: script_errors.append(str(err)))
    page.goto(url)
    expect(page.locator(".tab-container").first).to_be_visible()
    yield page
    context.close()
    assert not script_errors, f"script errors in the page: {script_errors}"


def open_tab(page, name: str):
    """Select a tab as a user would: its button, or on a narrow screen the tab bar's overflow menu (⋯)."""
    tab = page.get_by_role("tab", name=name, exact=True)
    if not tab.is_visible():
        page.locator(".overflow-menu > button").first.click()
        page.locator(".overflow-dropdown").get_by_role("button", name=name, exact=True).click()
    else:
        tab.click()
    expect(page.get_by_role("tab", name=name, exact=True)).to_have_attribute("aria-selected", "true")
    panel = page.get_by_role("tabpanel")
    expect(MAIN_CONTROL[name](panel)).to_be_visible()
    page.wait_for_timeout(500)  # the tab's load events redraw tables and pickers
    return panel


# Every measurement is the browser's: layout boxes, and for words the client rectangles of a text Range.
HORIZONTAL_OVERFLOW = "() => [document.documentElement.scrollWidth, window.innerWidth]"

BROKEN_WORDS = """(selector) => {
  const broken = [];
  const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
  for (const el of document.querySelectorAll(selector)) {
    if (!visible(el)) continue;
    const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const m of node.data.matchAll(/\\S+/g)) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const tops = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
        if (tops.size > 1) broken.push(m[0]);
      }
    }
  }
  return broken;
}"""

# A header is cut when its cell or its text span scrolls (content wider than the box that clips it), or when the
# text's own rectangle reaches past the cell's (measured on the text Range, so it holds however the span is styled).
CUT_HEADERS = """() => [...document.querySelectorAll('[role=tabpanel] th')]
  .filter(th => th.getClientRects().length > 0 && th.innerText.trim())
  .filter(th => {
    const spans = [...th.querySelectorAll('span')].filter(s => s.innerText.trim() && s.children.length === 0);
    const cell = th.getBoundingClientRect();
    const range = document.createRange();
    range.selectNodeContents(spans[0] || th);
    const text = range.getBoundingClientRect();
    return th.scrollWidth > th.clientWidth + 1 || spans.some(s => s.scrollWidth > s.clientWidth + 1)
      || text.left < cell.left - 1 || text.right > cell.right + 1;
  })
  .map(th => th.innerText.trim())"""

NARROW_PICKERS = """(least) => [...document.querySelectorAll('[role=tabpanel] input[role=combobox]')]
  .filter(i => i.getClientRects().length > 0)
  .map(i => [i.getAttribute('aria-label') || '?', Math.round(i.closest('.wrap').getBoundingClientRect().width)])
  .filter(([, w]) => w < least)"""

STYLESHEET_RULE = """() => [...document.styleSheets].some(sheet => {
  try { return [...sheet.cssRules].some(r => (r.selectorText || '').includes('gradio-container')
                                           && r.style && r.style.overflowX === 'clip'); }
  catch (e) { return false; }
})"""

# A dropdown whose text area (its input less the right padding) runs under its arrow.
OVERLAPPED_PICKERS = """() => [...document.querySelectorAll('[role=tabpanel] input[role=combobox]')]
  .filter(i => i.getClientRects().length > 0)
  .filter(i => {
    const icon = i.parentElement.querySelector('.icon-wrap');
    if (!icon || !icon.getClientRects().length) return false;
    const text_right = i.getBoundingClientRect().right - parseFloat(getComputedStyle(i).paddingRight);
    return text_right > icon.getBoundingClientRect().left + 1;
  })
  .map(i => i.getAttribute('aria-label') || '?')"""

HEADERS = "[role=tabpanel] th"
LABELS = "[role=tabpanel] [data-testid=block-info], [role=tablist] button"


def screenshot(page, name: str, viewport: dict) -> None:
    """The page as it is now in SCREENSHOTS/<name>.png: full page at 1280 px, the first screens on a phone."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.mouse.move(0, 0)  # no hover highlight in the picture
    height = page.evaluate("() => document.documentElement.scrollHeight")
    if viewport is PHONE:
        height = min(height, PHONE_SCREENS * viewport["height"])
    page.screenshot(path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": viewport["width"],
                                                          "height": height})
    assert 0 < path.stat().st_size < MAX_SCREENSHOT_BYTES, (path, path.stat().st_size)
    with Image.open(path) as img:
        assert img.width == viewport["width"]


def test_the_app_stylesheet_is_served(page):
    """The page carries demo/style.py's rules (launched passes launch_kwargs' css): without them every other
    measurement here would be of Gradio's defaults."""
    # Its first rule, `.gradio-container { overflow-x: clip }`, as the page's style sheets hold it (the computed
    # value reads 'hidden' once Gradio's own overflow-y applies, so the rule itself is looked for).
    assert page.evaluate(STYLESHEET_RULE), "demo/style.py's rules are not in the page"


def test_every_tab_fits_the_screen_without_broken_words(page):
    viewport = page.viewport_size
    problems = []
    for name in TABS:
        open_tab(page, name)
        width, inner = page.evaluate(HORIZONTAL_OVERFLOW)
        if width > inner + 1:
            problems.append(f"{name}: the page is {width} px wide in a {inner} px window")
        for where, selector in (("table header", HEADERS), ("label", LABELS)):
            broken = page.evaluate(BROKEN_WORDS, selector)
            if broken:
                problems.append(f"{name}: {where} words broken across lines: {broken}")
        cut = page.evaluate(CUT_HEADERS)
        if cut:
            problems.append(f"{name}: table headers cut short: {cut}")
        overlapped = page.evaluate(OVERLAPPED_PICKERS)
        if overlapped:
            problems.append(f"{name}: dropdown text runs under the arrow: {overlapped}")
        if viewport["width"] == PHONE["width"]:
            narrow = page.evaluate(NARROW_PICKERS, MIN_PICKER_PX)
            if narrow:
                problems.append(f"{name}: dropdowns narrower than {MIN_PICKER_PX} px: {narrow}")
        screenshot(page, f"{SHOT_NAMES[name]}_{viewport['width']}", PHONE if viewport["width"] < 600 else LAPTOP)
    assert not problems, "\n".join(problems)


# The header texts of the tab's data table with how many lines each takes, and the geometry of the box it
# scrolls in: before and after that box is scrolled all the way to the right.
TABLE_HEADERS = """() => {
  const visible = (el) => el.getClientRects().length > 0;
  const wrap = [...document.querySelectorAll('[role=tabpanel] .table-wrap')].find(visible);
  const ths = [...wrap.querySelectorAll('th')].filter(visible);
  const cells = ths.map(th => {
    const text = [...th.querySelectorAll('span')].find(s => s.innerText.trim() && s.children.length === 0);
    const range = document.createRange();
    range.selectNodeContents(text);
    const lines = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
    return [text.innerText.trim(), lines.size];
  });
  let box = ths[0].parentElement;
  while (box !== wrap.parentElement && !['auto', 'scroll'].includes(getComputedStyle(box).overflowX)) {
    box = box.parentElement;
  }
  const edges = () => {
    const b = box.getBoundingClientRect();
    return {first_left: ths[0].getBoundingClientRect().left - b.left,
            last_right: ths[ths.length - 1].getBoundingClientRect().right - b.right};
  };
  const start = edges();
  const scrolls = box.scrollWidth > box.clientWidth + 1;
  box.scrollLeft = box.scrollWidth;
  const end = edges();
  box.scrollLeft = 0;
  return {cells, scrolls, scrollable: ['auto', 'scroll'].includes(getComputedStyle(box).overflowX), start, end};
}"""


@pytest.mark.parametrize("tab", ["Models", "Runs"])
def test_a_data_table_has_one_line_headers_and_scrolls_inside_its_box(page, tab):
    """A data table's header: each cell one line high (no 'tas k'), none cut short; when the columns do not fit
    (the Runs table's 9 columns on a phone) the table scrolls sideways inside its own box, the page does not,
    and scrolling that box to its end shows the last column whole."""
    from demo.models_tab import COLUMNS as MODEL_COLUMNS
    from demo.runs_tab import COLUMNS as RUN_COLUMNS

    open_tab(page, tab)
    table = page.evaluate(TABLE_HEADERS)
    assert [text for text, _ in table["cells"]] == {"Models": MODEL_COLUMNS, "Runs": RUN_COLUMNS}[tab]
    assert [(text, lines) for text, lines in table["cells"] if lines != 1] == []
    assert page.evaluate(CUT_HEADERS) == []
    width, inner = page.evaluate(HORIZONTAL_OVERFLOW)
    assert width <= inner + 1, (width, inner)
    if table["scrolls"]:
        assert table["scrollable"], table
    assert table["start"]["first_left"] >= -1, table  # the first column starts inside the box
    assert table["end"]["last_right"] <= 1, table  # scrolled to the end, the last column ends inside it
    if tab == "Runs" and page.viewport_size["width"] == PHONE["width"]:
        assert table["scrolls"], "the Runs table's 9 columns are expected to scroll sideways on a phone"
