"""The whole app (demo.build_app) in a real headless Chromium, driven with Playwright like a user would.

The in-process and gradio_client tests call the handlers; these check what only a browser shows: that the tabs
render, that example buttons fill the inputs, that an upload reaches the model, that the Fine-tune tab's 1 s
gr.Timer really polls from the page until the job is done, and that plots and galleries are drawn. Each flow
saves a full-page screenshot of its tab to docs/tmp/screenshots/<tab>.png (ignored by git, so a test run
leaves the tree clean; $TRANSFER_LAB_SCREENSHOTS moves it). `make screenshots` runs these tests and copies
the fresh pictures to docs/screenshots/, the README's copies.

Runs go to a throwaway run store (one tiny MLP image run and one tiny MiniLM tweet run, trained here in seconds),
set in TRANSFER_LAB_RUNS before the app is built. Chromium is Debian's (/usr/bin/chromium): Playwright's own
browser download does not work offline, so never run `playwright install`.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import CHROMIUM, launched, require_browser

require_browser()
sync_api = pytest.importorskip("playwright.sync_api")
gr = pytest.importorskip("gradio")
expect, PlaywrightTimeout = sync_api.expect, sync_api.TimeoutError

from core.tasks.images.data import CIFAR10_CLASSES  # noqa: E402
from core.weights import hub_available  # noqa: E402
from core.paths import REPO_ROOT  # noqa: E402
from core.store.runs import list_runs  # noqa: E402

# Where the flows save their pictures: an ignored folder, never the README's tracked copies in docs/screenshots/
# (`make screenshots` refreshes those from here on request).
SCREENSHOTS = Path(os.environ.get("TRANSFER_LAB_SCREENSHOTS") or REPO_ROOT / "docs" / "tmp" / "screenshots")
MAX_SCREENSHOT_BYTES = 1_000_000
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 900}
# Generous: two shared CPU cores, and the first QA answer loads e5_small (converted once into
# ~/.cache/transfer_lab/e5_small, ~10 s; loading the 470 MB result takes a while more).
STEP_MS = 60_000
MODEL_MS = 300_000
TABS = ("Fine-tune", "Persian QA", "Tweets", "Images", "Compare & errors", "Runs", "Models", "Data")
# The small fine-tune the Fine-tune tab starts: seconds on a CPU. The store's image run has the same settings but
# the default learning rate (1e-3), so the two runs the Compare tab compares really differ.
FINETUNE = {"Epochs": "1", "Learning rate": "0.01", "Batch size": "20", "Train limit (examples, 0 = all)": "60",
            "Eval limit (examples, 0 = all)": "20", "Time budget (minutes, 0 = none)": "0"}


# ---------------------------------------------------------------------------------------------------------------
# Fixtures: a run store with two tiny runs, the app served on a free port, one Chromium for the module
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory, tiny_image_run, tiny_tweet_run):
    """A throwaway run store holding one finished image run (mlp) and one finished tweet run (minilm): copies of
    the session's tiny runs (tests/conftest.py), so the run the Fine-tune flow adds stays in this module."""
    root = tmp_path_factory.mktemp("browser_runs")
    for run in (tiny_image_run, tiny_tweet_run):
        shutil.copytree(run, root / run.name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRANSFER_LAB_RUNS", str(root))  # before the app is built: its pickers list this store
        mp.setenv("TRANSFER_LAB_OFFLINE", "1")
        mp.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        hub_available.cache_clear()
        yield {"root": root, "image": tiny_image_run.name, "tweet": tiny_tweet_run.name}
    hub_available.cache_clear()


@pytest.fixture(scope="module")
def server(store):
    """(app, url): demo.build_app() with the queue, launched without blocking; closed at the end."""
    from demo import build_app
    from demo.state import jobs

    app = build_app()
    try:
        with launched(app) as url:
            yield app, url
    finally:
        for snap in jobs().jobs():  # never leave a job of ours training into another module
            if snap["status"] in ("queued", "running"):
                jobs().cancel(snap["id"])
                jobs().wait(snap["id"], timeout=120)


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium; launch() gives it a fresh temporary profile (user-data dir) of its own."""
    expect.set_options(timeout=STEP_MS)  # Playwright's 5 s default is too short on two busy CPU cores
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, server):
    """A fresh page on the app (its own browser session); fails the test on an uncaught script error."""
    _, url = server
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(STEP_MS)
    page = context.new_page()
    script_errors: list[str] = []
    page.on("pageerror", lambda err: script_errors.append(str(err)))
    page.goto(url)
    expect(page.get_by_role("tab", name="Fine-tune")).to_be_visible()
    yield page
    context.close()
    assert not script_errors, f"script errors in the page: {script_errors}"


# ---------------------------------------------------------------------------------------------------------------
# Helpers: what a user does
# ---------------------------------------------------------------------------------------------------------------
def open_tab(page, name: str):
    """Click a tab; the visible tab panel (hidden panels are not in the accessibility tree)."""
    tab = page.get_by_role("tab", name=name, exact=True)
    tab.click()
    expect(tab).to_have_attribute("aria-selected", "true")
    return page.get_by_role("tabpanel")


def choose(panel, label: str, option: str, exact: bool = False) -> None:
    """Open the dropdown labelled ``label`` and click the option whose label contains ``option`` (or is it)."""
    box = panel.get_by_role("combobox", name=label, exact=True)
    box.click()
    expect(box).to_have_attribute("aria-expanded", "true")
    listbox = panel.page.locator(f"#{box.get_attribute('aria-controls')}")
    listbox.get_by_role("option", name=option, exact=exact).click()
    expect(box).to_have_attribute("aria-expanded", "false")
    expect(box).to_have_value(option if exact else re.compile(re.escape(option)))


def run_label_of(task: str, run_id: str) -> str:
    """The label a model picker shows for run ``run_id`` now (short, without the id: demo.state.run_label; a run
    added later can lengthen it, so it is looked up when it is checked)."""
    from demo.state import model_choices

    for text, ref in model_choices(task, include_registry=False):
        if Path(ref).name == run_id:
            return text
    raise AssertionError(f"run {run_id} is not among the {task} pickers' runs")


def screenshot(page, name: str) -> Path:
    """A full-page PNG of the page as it is now, in SCREENSHOTS; checked to stay well under 1 MB."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.mouse.move(0, 0)  # no hover highlight in the picture
    page.screenshot(path=str(path), full_page=True)
    assert 0 < path.stat().st_size < MAX_SCREENSHOT_BYTES, (path, path.stat().st_size)
    with Image.open(path) as img:
        assert img.width == VIEWPORT["width"] and img.height >= VIEWPORT["height"]
    return path


def error_toasts(page):
    return page.locator(".toast-body").filter(has_text="Error")


def dismiss_errors(page) -> None:
    """Close error toasts and the components' error overlays, as a user would with their × buttons."""
    for toast in error_toasts(page).all():
        toast.get_by_role("button", name="Close", exact=True).click()
    expect(error_toasts(page)).to_have_count(0)
    overlays = page.get_by_role("tabpanel").locator("[data-testid=status-tracker]").filter(has_text="Error")
    for overlay in overlays.all():
        overlay.get_by_role("button", name="Clear", exact=True).click()
    expect(overlays).to_have_count(0)


def record_events(page, server) -> list[str]:
    """The api_name of every event the page sends to the queue, in order, appended as they are sent."""
    app, _ = server
    names = {index: fn.api_name for index, fn in app.fns.items()}
    sent: list[str] = []

    def on_request(request):
        if "/queue/join" in request.url and request.post_data:
            sent.append(names.get(json.loads(request.post_data).get("fn_index"), "?"))

    page.on("request", on_request)
    return sent


def read_predictions(store, run_id: str) -> list[dict]:
    text = (store["root"] / run_id / "predictions.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------------------------
# Every tab renders its main control; the Runs and Models tabs react to a click
# ---------------------------------------------------------------------------------------------------------------
MAIN_CONTROL = {
    "Fine-tune": lambda p: p.get_by_role("button", name="Start", exact=True),
    "Persian QA": lambda p: p.get_by_role("textbox", name="Passage (متن)"),
    "Tweets": lambda p: p.get_by_role("textbox", name="Tweet", exact=True),
    "Images": lambda p: p.get_by_role("button", name="Drop an image file here to upload"),
    "Compare & errors": lambda p: p.get_by_role("button", name="Compare", exact=True),
    "Runs": lambda p: p.get_by_role("grid", name="Runs"),
    "Models": lambda p: p.get_by_role("radio", name="all"),
    "Data": lambda p: p.get_by_role("button", name="Show statistics", exact=True),
}


def test_every_tab_shows_its_main_control(page):
    assert [t.strip() for t in page.get_by_role("tab").all_inner_texts()] == list(TABS)
    for name in TABS:
        panel = open_tab(page, name)
        expect(MAIN_CONTROL[name](panel)).to_be_visible()


def test_runs_tab_lists_the_store_and_opens_a_run_on_click(page, store):
    panel = open_tab(page, "Runs")
    table = panel.get_by_role("grid", name="Runs")
    for run_id in (store["image"], store["tweet"]):
        expect(table.get_by_role("gridcell", name=run_id, exact=True)).to_be_visible()
    table.get_by_role("gridcell", name=store["image"], exact=True).click()
    expect(panel.get_by_text(f"Opened run {store['image']}.", exact=True)).to_be_visible()
    expect(panel.get_by_role("combobox", name="Run", exact=True)).to_have_value(store["image"])
    expect(panel.get_by_text("model mlp, strategy scratch")).to_be_visible()
    expect(panel.locator(".js-plotly-plot")).to_have_count(1)  # the run's curves
    screenshot(page, "runs")


def test_models_tab_filters_the_registry_by_task(page):
    panel = open_tab(page, "Models")
    table = panel.get_by_role("grid")
    expect(table.get_by_role("gridcell", name="vgg19", exact=True)).to_be_visible()
    panel.get_by_role("radio", name="qa", exact=True).check()
    expect(table.get_by_role("gridcell", name="e5_small", exact=True)).to_be_visible()
    expect(table.get_by_role("gridcell", name="vgg19", exact=True)).to_have_count(0)
    screenshot(page, "models")


# ---------------------------------------------------------------------------------------------------------------
# Persian QA, tweets, images
# ---------------------------------------------------------------------------------------------------------------
def test_persian_question_from_an_example_is_answered(page):
    from demo.qa_tab import NO_ANSWER, load_examples

    example = load_examples()[0]
    question = example["questions"][1]["question"]
    panel = open_tab(page, "Persian QA")
    passage_box = panel.get_by_role("textbox", name="Passage (متن)")
    expect(passage_box).to_have_attribute("dir", "rtl")
    panel.get_by_role("button", name=f"{example['title']}: {question}", exact=True).click()
    expect(passage_box).to_have_value(example["passage"])
    expect(panel.get_by_role("textbox", name="Question (پرسش)")).to_have_value(question)
    expect(panel.get_by_role("combobox", name="Model A", exact=True)).to_have_value(re.compile("^e5_small"))

    panel.get_by_role("button", name="Answer", exact=True).click()
    # The first answer builds e5_small (cached conversion, 470 MB): minutes on a busy CPU.
    expect(panel.get_by_text("No-answer probability:")).to_be_visible(timeout=MODEL_MS)
    expect(panel.get_by_text("Untrained — not a real prediction.")).to_be_visible()
    answered = panel.get_by_text("Answer:", exact=True)
    if answered.count():  # the random span head picked a span: it is marked in the passage
        expect(panel.get_by_text(re.compile(r"— probability 0\.\d{3}"))).to_be_visible()
        mark = panel.locator("div.tl-passage mark").first
        expect(mark).to_be_visible()
        assert mark.evaluate("m => getComputedStyle(m.parentElement).direction") == "rtl"
    else:
        expect(panel.get_by_text(NO_ANSWER)).to_be_visible()
    spans = panel.locator("table.tl-spans").first
    rows = spans.get_by_role("row")
    expect(rows.first).to_be_visible()
    assert 2 <= rows.count() <= 6  # the header and one to five spans
    screenshot(page, "qa")

    # Why: Model A's explanation of the same question, its Persian tokens right to left.
    panel.get_by_role("button", name="Explain", exact=True).click()
    tokens = panel.locator(".tl-tokens").first
    expect(tokens).to_have_attribute("dir", "rtl", timeout=MODEL_MS)
    expect(tokens.locator(".tl-token").first).to_be_visible()
    screenshot(page, "explain_qa")


def test_tweet_is_classified_real_or_fake(page, store):
    panel = open_tab(page, "Tweets")
    expect(panel.get_by_role("combobox", name="Model 1", exact=True)).to_have_value(
        run_label_of("tweets", store["tweet"]))
    panel.get_by_role("textbox", name="Tweet", exact=True).fill("Masks save lives 😷 says the health ministry")
    panel.get_by_role("button", name="Classify", exact=True).click()
    for label in ("real", "fake"):
        expect(panel.get_by_role("meter", name=label, exact=True)).to_be_visible(timeout=MODEL_MS)
    expect(panel.get_by_role("meter")).to_have_count(2)
    line = panel.get_by_text(re.compile(r"^P\(real\) \d\.\d{3} · P\(fake\) \d\.\d{3}$"))
    expect(line).to_be_visible()
    p_real, p_fake = (float(x) for x in re.findall(r"\d\.\d{3}", line.inner_text()))
    assert abs(p_real + p_fake - 1.0) <= 0.0015
    expect(panel.get_by_text(f"Fine-tuned run {store['tweet']}")).to_be_visible()
    screenshot(page, "tweets")


def test_uploaded_png_gets_five_cifar_labels(page, store, tmp_path):
    picture = tmp_path / "upload.png"
    Image.new("RGBA", (64, 48), (200, 40, 40, 160)).save(picture)  # not 32x32 and not RGB: decoding's job
    panel = open_tab(page, "Images")
    with page.expect_file_chooser() as chooser:
        panel.get_by_role("button", name="Drop an image file here to upload").click()
    chooser.value.set_files(str(picture))
    expect(panel.get_by_role("button", name="Remove Image")).to_be_visible()  # the upload is shown
    expect(panel.get_by_role("combobox", name="Model 1", exact=True)).to_have_value(
        run_label_of("images", store["image"]))
    panel.get_by_role("button", name="Classify", exact=True).click()
    expect(panel.get_by_role("meter")).to_have_count(5, timeout=MODEL_MS)
    shown = [c for c in CIFAR10_CLASSES if panel.get_by_role("meter", name=c, exact=True).count()]
    assert len(shown) == 5, shown  # five distinct CIFAR-10 classes, each with its bar
    expect(panel.get_by_text(re.compile(r"^Top class: \w+ \(0\.\d{3}\)$"))).to_be_visible()
    screenshot(page, "images")


# ---------------------------------------------------------------------------------------------------------------
# Fine-tune: Start, then the page's timer polls until completed and draws the curves
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finetuned(browser, server, store):
    """Drive the Fine-tune tab through one tiny mlp run; what the page showed, and the new run's id.

    A fixture (not a test) because the Compare test needs the run it makes, also when run on its own.
    """
    _, url = server
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(STEP_MS)
    page = context.new_page()
    try:
        sent = record_events(page, server)
        page.goto(url)
        panel = open_tab(page, "Fine-tune")
        panel.get_by_role("radio", name="images", exact=True).check()
        choose(panel, "Model", "mlp")
        # The model's own default; not picked again: after the model pick the Strategy box is covered by the
        # error overlay of the defect in test_picking_a_model_with_other_strategies_shows_no_error.
        expect(panel.get_by_role("combobox", name="Strategy", exact=True)).to_have_value("scratch")
        expect(panel.get_by_text("855,050 of 855,050 (100.0%)")).to_be_visible()  # parameters of the MLP
        for label, value in FINETUNE.items():
            panel.get_by_label(label, exact=True).fill(value)
        panel.get_by_role("button", name="Start", exact=True).click()
        status = panel.get_by_text(re.compile(r"^Job \w+ "))
        expect(status).to_be_visible()
        # Only the timer's poll_job writes "completed": seeing it means the page really polled. The line names the
        # job's task, model, strategy and run.
        expect(status).to_have_text(re.compile(r"^Job \w+ — images · mlp · scratch · run [\w-]+: completed\. "
                                               r"Finished: test accuracy \d\.\d{4}\.?$"), timeout=MODEL_MS)
        curves = panel.locator(".js-plotly-plot")
        expect(curves).to_have_count(1)
        legend = curves.locator(".legendtext")
        expect(legend).to_have_text(["train loss", "val loss", "train accuracy", "val accuracy",
                                     "train loss per step"])
        polls = sent.count("poll_job")
        page.wait_for_timeout(3_000)  # watching for absence: the ended job's timer must send no poll in 3 s
        new = [r["id"] for r in list_runs(task="images") if r["id"] != store["image"]]
        dismiss_errors(page)  # no toast should remain; never let one into the docs picture
        screenshot(page, "finetune")
        shown = {"events": list(sent), "polls": polls, "polls_after": sent.count("poll_job"), "new_runs": new,
                 "progress": panel.get_by_text(re.compile(r"^Done after ")).count(),
                 "stats": panel.get_by_text("Seconds per epoch:").count()}
        # A reload keeps the job: its id is in the browser's storage and the page polls it once more on load.
        job_text = status.inner_text().split(" ")[1]
        page.reload()
        panel = open_tab(page, "Fine-tune")
        expect(panel.get_by_text(re.compile(rf"^Job {job_text} — .*: completed\."))).to_be_visible()
        shown["reload"] = True
        yield shown
    finally:
        context.close()


def test_finetune_tab_trains_and_its_timer_polls_until_done(finetuned, store):
    events = finetuned["events"]
    assert "start_training" in events and "follow_job" in events
    start = events.index("start_training")
    assert finetuned["polls"] >= 1 and "poll_job" in events[start:]
    assert finetuned["polls_after"] == finetuned["polls"], "the timer kept polling after the job had ended"
    assert len(finetuned["new_runs"]) == 1, finetuned["new_runs"]
    assert finetuned["progress"] == 1 and finetuned["stats"] == 1 and finetuned["reload"]
    run_dir = store["root"] / finetuned["new_runs"][0]
    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))["train"]
    assert (config["model"], config["strategy"], config["epochs"], config["train_limit"], config["eval_limit"],
            config["batch_size"], config["max_minutes"], config["lr"]) == ("mlp", "scratch", 1, 60, 20, 20, None, 0.01)


# ---------------------------------------------------------------------------------------------------------------
# Compare & errors: the image run against the fine-tuned one
# ---------------------------------------------------------------------------------------------------------------
def _cells(store, a: str, b: str) -> dict[tuple[str, str], int]:
    """(true, predicted) -> how many of A's test examples (those B also has) fall in that cell."""
    shared = {row["id"] for row in read_predictions(store, b)}
    counts: dict[tuple[str, str], int] = {}
    for row in read_predictions(store, a):
        if row["id"] in shared:
            key = (row["label_name"], row["prediction_name"])
            counts[key] = counts.get(key, 0) + 1
    return counts


def test_compare_two_image_runs_heatmaps_and_a_cells_examples(page, store, finetuned):
    run_a, run_b = store["image"], finetuned["new_runs"][0]
    panel = open_tab(page, "Compare & errors")
    panel.get_by_role("button", name="Refresh", exact=True).click()
    choose(panel, "Run A", run_label_of("images", run_a), exact=True)
    choose(panel, "Run B", run_label_of("images", run_b), exact=True)
    panel.get_by_role("button", name="Compare", exact=True).click()
    expect(panel.get_by_text(f"Comparing images runs A ({run_a}")).to_be_visible()
    titles = panel.locator(".js-plotly-plot .gtitle")
    expect(titles).to_have_count(3)  # curves, heatmap A, heatmap B
    expect(titles.nth(1)).to_contain_text(f"A: mlp scratch · {run_a}")
    expect(titles.nth(2)).to_contain_text(f"B: mlp scratch · {run_b}")
    for n in (1, 2):  # each heatmap is annotated with its ten true-label rows x ten predicted columns
        expect(panel.locator(".js-plotly-plot").nth(n).locator(".ytick")).to_have_count(len(CIFAR10_CLASSES))

    cells = _cells(store, run_a, run_b)
    busy = next(iter(cells))  # a cell with examples: its gallery shows them
    empty = next((t, p) for t in CIFAR10_CLASSES for p in CIFAR10_CLASSES if (t, p) not in cells)
    for (true, predicted), count in ((busy, cells[busy]), (empty, 0)):
        choose(panel, "True", true, exact=True)
        choose(panel, "Predicted", predicted, exact=True)
        panel.get_by_role("button", name="Show examples", exact=True).click()
        plural = "" if count == 1 else "s"
        expect(panel.get_by_text(f"Run A, true {true}, predicted {predicted}: {count} example{plural}.",
                                 exact=True)).to_be_visible()
        thumbnails = panel.get_by_role("button", name=re.compile(r"^Thumbnail \d+ of \d+$"))
        examples = panel.get_by_role("grid", name="Examples", exact=True)
        if count:
            expect(thumbnails).to_have_count(count)
            expect(panel.get_by_role("img", name=re.compile(rf"^{true} \/ A: {predicted} \(0\.\d\d\) \/ B: "))
                   ).to_have_count(count)
            expect(examples.get_by_role("row")).to_have_count(count + 1)
            screenshot(page, "compare")
        else:
            expect(thumbnails).to_have_count(0)  # the gallery is hidden; the note says there are none
            expect(examples.get_by_role("row")).to_have_count(1)


# ---------------------------------------------------------------------------------------------------------------
# Defects seen only in the browser (demo/ is not this file's to change): strict, so a fix shows up as XPASS
# ---------------------------------------------------------------------------------------------------------------
def test_picking_a_model_with_other_strategies_shows_no_error(page):
    panel = open_tab(page, "Fine-tune")
    expect(panel.get_by_role("combobox", name="Strategy", exact=True)).to_have_value("feature_extraction")
    choose(panel, "Model", "mlp")  # mlp: scratch or full only
    expect(panel.get_by_role("combobox", name="Strategy", exact=True)).to_have_value("scratch")
    try:
        error_toasts(page).first.wait_for(state="visible", timeout=15_000)
    except PlaywrightTimeout:
        return
    pytest.fail(f"an error toast after picking mlp: {error_toasts(page).first.inner_text()!r}")


def test_zero_limits_of_the_finetune_form_mean_no_limit(page):
    """gr.Number cannot show a blank, so 0 means no limit (no budget); the form opens on a run sized for this
    machine (core.estimate.default_settings: about a minute on a CPU), not on all the data."""
    from core.estimate import default_settings
    from demo.finetune_tab import config_from_form

    sized = default_settings()
    panel = open_tab(page, "Fine-tune")
    expect(panel.get_by_label("Epochs", exact=True)).to_have_value(str(sized["epochs"]))
    shown = {label: panel.get_by_label(label, exact=True).input_value()
             for label in ("Train limit (examples, 0 = all)", "Eval limit (examples, 0 = all)",
                           "Time budget (minutes, 0 = none)")}
    assert shown == {"Train limit (examples, 0 = all)": str(sized["train_limit"]),
                     "Eval limit (examples, 0 = all)": str(sized["eval_limit"]),
                     "Time budget (minutes, 0 = none)": "0"}, shown
    cfg = config_from_form("images", "mlp", "scratch", 1, "", 20, 0, 0, 0)
    assert (cfg.train_limit, cfg.eval_limit, cfg.max_minutes) == (None, None, None)


# ---------------------------------------------------------------------------------------------------------------
# Explanations: a tweet's Integrated Gradients, an image's Grad-CAM, and Compare's clickable cells and rows
# ---------------------------------------------------------------------------------------------------------------
def test_tweet_is_explained_with_integrated_gradients(page, store):
    panel = open_tab(page, "Tweets")
    expect(panel.get_by_role("combobox", name="Model 1", exact=True)).to_have_value(
        run_label_of("tweets", store["tweet"]))
    expect(panel.get_by_role("combobox", name="Model 1: explain with", exact=True)).to_have_value(
        "Integrated Gradients")
    panel.get_by_role("textbox", name="Tweet", exact=True).fill("Masks save lives <b>says</b> the ministry")
    panel.get_by_role("button", name="Explain", exact=True).click()
    tokens = panel.locator(".tl-tokens").first.locator(".tl-token")
    expect(tokens.first).to_have_text("[CLS]", timeout=MODEL_MS)
    expect(panel.get_by_text(re.compile(r"completeness gap \d+\.\d%"))).to_be_visible()
    assert any(t.strip() == "<" for t in tokens.all_inner_texts())  # the tag is shown as text, escaped
    expect(panel.locator(".js-plotly-plot")).to_have_count(1)  # the token bars
    screenshot(page, "explain_tweet")


def test_image_is_explained_with_grad_cam(page, store, tmp_path):
    picture = tmp_path / "explain.png"
    Image.new("RGB", (48, 48), (40, 120, 200)).save(picture)
    panel = open_tab(page, "Images")
    with page.expect_file_chooser() as chooser:
        panel.get_by_role("button", name="Drop an image file here to upload").click()
    chooser.value.set_files(str(picture))
    expect(panel.get_by_role("button", name="Remove Image")).to_be_visible()
    choose(panel, "Model 2 (optional)", "efficientnet_lite0")
    expect(panel.get_by_role("combobox", name="Model 2: explain with", exact=True)).to_have_value("Grad-CAM")
    panel.get_by_role("button", name="Explain", exact=True).click()
    expect(panel.get_by_text("No explanation method applies to mlp.")).to_be_visible(timeout=MODEL_MS)
    expect(panel.get_by_text("Grad-CAM", exact=True)).to_be_visible(timeout=MODEL_MS)
    expect(panel.locator(".js-plotly-plot")).to_have_count(1)  # the overlay of Model 2
    expect(panel.locator(".js-plotly-plot .heatmaplayer, .js-plotly-plot image").first).to_be_attached()
    screenshot(page, "explain_image")


def test_compare_cell_click_lists_examples_and_a_row_click_explains_it(page, store):
    panel = open_tab(page, "Compare & errors")
    panel.get_by_role("radio", name="tweets", exact=True).check()
    expect(panel.get_by_role("combobox", name="Run A", exact=True)).to_have_value(
        run_label_of("tweets", store["tweet"]))
    choose(panel, "Run B", run_label_of("tweets", store["tweet"]), exact=True)
    panel.get_by_role("button", name="Compare", exact=True).click()
    matrix = panel.get_by_role("grid", name="Confusion matrix A (click a cell)", exact=True)
    expect(matrix.get_by_role("row")).to_have_count(3)  # the header, true real, true fake
    cells = _cells(store, store["tweet"], store["tweet"])
    (true, predicted), count = next(iter(cells.items()))
    headers = [h.strip() for h in matrix.get_by_role("columnheader").all_inner_texts()]
    row = matrix.get_by_role("row").filter(has=page.get_by_role("gridcell", name=true, exact=True))
    row.get_by_role("gridcell").nth(headers.index(predicted)).click()  # column 0 holds the true label
    plural = "" if count == 1 else "s"
    expect(panel.get_by_text(f"Run A, true {true}, predicted {predicted}: {count} example{plural}",
                             exact=False)).to_be_visible()
    expect(panel.get_by_role("combobox", name="True", exact=True)).to_have_value(true)
    expect(panel.get_by_role("combobox", name="Predicted", exact=True)).to_have_value(predicted)
    examples = panel.get_by_role("grid", name="Examples", exact=True)
    expect(examples.get_by_role("row")).to_have_count(min(count, 500) + 1)
    examples.get_by_role("row").nth(1).get_by_role("gridcell").nth(1).click()
    expect(panel.get_by_text(re.compile(r"^Example .+, explained by A \("))).to_be_visible(timeout=MODEL_MS)
    expect(panel.locator(".tl-tokens")).to_have_count(2)  # run A's and run B's explanation, side by side
    screenshot(page, "compare_explain")
