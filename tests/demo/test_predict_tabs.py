"""The QA, tweet and image tabs: handlers in process on real runs trained here, and the three tabs served and
called through gradio_client."""
from __future__ import annotations

import io
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from core.tasks.images.data import CIFAR10_CLASSES
from core.tasks.tweets.data import DATASET_FOLDER
from core.weights import hub_available
from core.paths import data_dir

gr = pytest.importorskip("gradio")
from demo import gallery, images_tab, pickers, qa_tab, tweets_tab  # noqa: E402
from demo.state import predictors  # noqa: E402

DATA = data_dir()  # $TRANSFER_LAB_DATA or ../shared/datasets
needs_cifar = pytest.mark.skipif(not (DATA / "cifar10").is_dir(),
                                 reason=f"CIFAR-10 archives not found under {DATA / 'cifar10'} (set TRANSFER_LAB_DATA)")
needs_tweets = pytest.mark.skipif(not (DATA / DATASET_FOLDER).is_dir(),
                                  reason=f"CONSTRAINT CSVs not found under {DATA / DATASET_FOLDER} "
                                         "(set TRANSFER_LAB_DATA)")


# ---------------------------------------------------------------------------------------------------------------
# Fixtures: a throwaway run store with one image run and one tweet run (copies of the session's tiny runs)
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRANSFER_LAB_RUNS", str(root))
        mp.setenv("TRANSFER_LAB_OFFLINE", "1")
        hub_available.cache_clear()
        yield root
    hub_available.cache_clear()


@pytest.fixture(scope="module")
def image_run(runs_root, tiny_image_run) -> str:
    """A copy, in this module's store, of the session's tiny mlp run (tests/conftest.py)."""
    return str(shutil.copytree(tiny_image_run, runs_root / tiny_image_run.name))


@pytest.fixture(scope="module")
def tweet_run(runs_root, tiny_tweet_run) -> str:
    """A copy, in this module's store, of the session's tiny MiniLM run (tests/conftest.py)."""
    return str(shutil.copytree(tiny_tweet_run, runs_root / tiny_tweet_run.name))


def png_bytes(mode: str, size=(48, 40)) -> bytes:
    color = {"RGBA": (200, 30, 30, 90), "L": 128, "RGB": (10, 200, 10)}[mode]
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return buf.getvalue()


def persian(text: str) -> bool:
    return any("\u0600" <= ch <= "\u06ff" for ch in text)


# ---------------------------------------------------------------------------------------------------------------
# Examples written for the demo
# ---------------------------------------------------------------------------------------------------------------
def test_qa_examples_are_persian_and_include_unanswerable_questions():
    passages = qa_tab.load_examples()
    assert len(passages) >= 4 and len({p["title"] for p in passages}) == len(passages)
    questions = [(p, q) for p in passages for q in p["questions"]]
    unanswerable = [q for _, q in questions if q["answer"] is None]
    assert len(unanswerable) >= 2 and len(unanswerable) < len(questions)
    for p, q in questions:
        assert persian(p["passage"]) and persian(q["question"])
        assert q["answer"] is None or q["answer"] in p["passage"], q  # an answer is a span of its passage
    rows, labels = qa_tab.example_rows(passages)
    assert len(rows) == len(labels) == len(questions) and rows[0] == [passages[0]["passage"],
                                                                      passages[0]["questions"][0]["question"]]


def test_tweet_examples_have_both_styles_and_emojis():
    tweets = tweets_tab.load_examples()
    assert {t["style"] for t in tweets} == {"real-news", "fake-news"}
    assert all(t["text"].strip() for t in tweets)
    assert sum(any(ord(ch) > 0x1F000 for ch in t["text"]) for t in tweets) >= 2


# ---------------------------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------------------------
class _Cells(HTMLParser):
    """Text of an HTML fragment: the <mark>ed text, the whole text, and the <td> cells of each <tr>."""

    def __init__(self, fragment: str):
        super().__init__()
        self.text, self.marked, self.rows, self._in_mark, self._cell = "", "", [], False, None
        self.feed(fragment)

    def handle_starttag(self, tag, attrs):
        if tag == "mark":
            self._in_mark = True
        elif tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self._cell = ""

    def handle_endtag(self, tag):
        if tag == "mark":
            self._in_mark = False
        elif tag == "td":
            self.rows[-1].append(self._cell)
            self._cell = None

    def handle_data(self, data):
        self.text += data
        if self._in_mark:
            self.marked += data
        if self._cell is not None:
            self._cell += data


def span_rows(table_html: str) -> list[tuple[int, str, int, float]]:
    """(rank, span, start char, probability) per row of the top-spans table."""
    rows = [r for r in _Cells(table_html).rows if r]
    return [(int(a), b, int(c.replace(",", "")), float(d)) for a, b, c, d in rows]


def test_highlighted_passage_marks_the_answer_in_an_excerpt():
    short = "تهران پایتخت <ایران> است."
    value, note = qa_tab.highlighted_passage(short, 0, 5)
    parsed = _Cells(value)
    assert parsed.text == short and parsed.marked == "تهران" and note == ""
    assert 'dir="rtl"' in value and "&lt;ایران&gt;" in value  # user text is escaped, never markup
    long = "ا" * 2500 + "قنات" + "ب" * 2500
    value, note = qa_tab.highlighted_passage(long, 2500, 2504)
    parsed = _Cells(value)
    assert parsed.marked == "قنات"
    assert parsed.text.startswith("… ") and parsed.text.endswith(" …")
    assert len(parsed.text) == 2 + 1000 + 4 + 1000 + 2
    assert note == "Showing characters 1,500–3,504 of 5,004."


def test_alternatives_table_lists_rank_span_start_and_probability():
    table = qa_tab.alternatives_html([{"text": "قنات <b>", "start_char": 12345, "probability": 0.25},
                                      {"text": "آب", "start_char": 3, "probability": 0.125}])
    assert span_rows(table) == [(1, "قنات <b>", 12345, 0.25), (2, "آب", 3, 0.125)]
    assert "<b>" not in table


def test_md_escape_keeps_user_text_literal():
    assert pickers.md_escape("a*b_<i>") == "a\\*b\\_&lt;i&gt;"


# ---------------------------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------------------------
def test_image_handler_rgba_grayscale_and_path_payloads(image_run, tmp_path):
    rgba = png_bytes("RGBA")
    status, md1, label1, md2, label2, md3, label3 = images_tab.classify_image(rgba, image_run, "model:mlp", None)
    assert status == ""
    assert "Fine-tuned run" in md1 and "not meaningful" not in md1
    assert "not meaningful" in md2 and "mlp" in md2  # the registry MLP is random: said so next to its output
    assert (md3, label3) == (pickers.unpicked_heading("Model 3"), None)
    expected = predictors().get(image_run).predict_image(rgba, top_k=5)
    assert label1 == {r["label"]: r["probability"] for r in expected}
    for label in (label1, label2):
        assert len(label) == 5 and set(label) <= set(CIFAR10_CLASSES)
        assert all(0.0 <= p <= 1.0 for p in label.values()) and sum(label.values()) <= 1.0 + 1e-6
    # A path is read only when it is an upload (inside Gradio's upload folder), as Gradio's own files are.
    from gradio.utils import get_upload_folder

    uploads = Path(get_upload_folder()) / f"test-{tmp_path.name}"
    uploads.mkdir(parents=True, exist_ok=True)
    gray = uploads / "gray.png"
    gray.write_bytes(png_bytes("L", (300, 120)))
    try:
        by_path = images_tab.classify_image(str(gray), image_run, None, None)
        by_payload = images_tab.classify_image({"path": str(gray), "orig_name": "gray.png"}, image_run, None, None)
    finally:
        shutil.rmtree(uploads, ignore_errors=True)
    assert by_path == by_payload and by_path[0] == "" and len(by_path[2]) == 5
    elsewhere = tmp_path / "gray.png"
    elsewhere.write_bytes(png_bytes("L", (300, 120)))
    assert images_tab.classify_image(str(elsewhere), image_run, None, None)[0].startswith(
        "**Only uploaded images can be classified")


def test_image_handler_bad_inputs_give_one_sentence(image_run):
    status, *rest = images_tab.classify_image(b"\x89PNG\r\n\x1a\nthis is not an image", image_run, None, None)
    assert status.startswith("**The file is not a readable image") and rest == [None] * 6
    assert images_tab.classify_image(None, image_run, None, None)[0] == "**Upload an image or pick an example first.**"
    assert images_tab.classify_image(png_bytes("RGB"), None, None, None)[0] == "**Pick at least one model.**"


def test_a_run_deleted_while_open_says_so_and_the_others_still_answer(image_run, tweet_run, tmp_path):
    copy = Path(image_run).parent / "doomed-run"  # inside the run store: the tabs open no other folder
    shutil.copytree(image_run, copy)
    ok = images_tab.classify_image(png_bytes("RGB"), str(copy), image_run, None)
    assert ok[0] == "" and ok[2] is not None
    shutil.rmtree(copy)
    status, md1, label1, md2, label2, _, _ = images_tab.classify_image(png_bytes("RGB"), str(copy), image_run,
                                                                       tweet_run)
    assert status == "" and label1 is None and "doomed-run no longer exists" in md1
    assert label2 is not None  # the other model still answers
    assert not any(k.startswith(f"{copy}@") for k in predictors().keys())  # its memory was freed


def test_image_handler_refuses_a_model_of_another_task(image_run, tweet_run):
    out = images_tab.classify_image(png_bytes("RGB"), tweet_run, "model:minilm", None)
    assert out[2] is None and "was trained for the tweets task, not images" in out[1]
    assert out[4] is None and "minilm is a model for the tweets task, not images" in out[3]


@needs_cifar
def test_image_examples_cover_every_class_and_a_pick_feeds_the_original_test_png():
    from core.tasks.images import CIFAR10_CLASSES

    examples = gallery.class_examples()
    assert [e.label for e in examples] == list(CIFAR10_CLASSES)
    for e in examples:
        assert not e.path.startswith(str(qa_tab.REPO_ROOT))
        with Image.open(e.path) as img:
            assert img.size == (32, 32) and img.mode == "RGB"
        assert images_tab.upload_path(e.path) == Path(e.path).resolve()  # the classify event accepts it

    class Select:  # what Gradio passes for a click on the third thumbnail
        index = 2
    path, note = images_tab.pick_example(Select())
    assert path == examples[2].path and note == f"True label: **{examples[2].label}**"
    Select.index = 99
    update, note = images_tab.pick_example(Select())
    assert note == "Pick one of the example images."


# ---------------------------------------------------------------------------------------------------------------
# Tweets
# ---------------------------------------------------------------------------------------------------------------
def test_tweet_handler_gives_probabilities_and_labels_untrained_models(tweet_run):
    text = "Wash your hands and wear a mask 😷 says the health ministry"
    status, md1, label1, md2, label2, md3, label3 = tweets_tab.classify_tweet(text, tweet_run, "model:minilm", None)
    assert status == "" and (md3, label3) == (pickers.unpicked_heading("Model 3"), None)
    expected = predictors().get(tweet_run).predict_text(text)
    assert label1 == {"real": expected["probability_real"], "fake": expected["probability_fake"]}
    assert abs(sum(label2.values()) - 1.0) < 1e-6 and all(0.0 <= p <= 1.0 for p in label2.values())
    assert "Fine-tuned run" in md1 and "not meaningful" not in md1
    assert "not meaningful" in md2


def test_tweet_handler_bad_inputs_give_one_sentence(tweet_run):
    assert tweets_tab.classify_tweet("   ", tweet_run, None, None) == (
        "**The tweet is empty: type some text to classify.**", None, None, None, None, None, None)
    assert tweets_tab.classify_tweet("hello", None, None, None)[0] == "**Pick at least one model.**"


def test_refresh_picks_up_new_runs_and_drops_deleted_ones(image_run, runs_root):
    a, b, c = images_tab.refresh_models(image_run, "model:mlp", str(runs_root / "gone"))
    refs = [ref for _, ref in a["choices"]]
    assert refs[0] == image_run and "model:mlp" in refs  # runs first, then registry models
    assert (a["value"], b["value"], c["value"]) == (image_run, "model:mlp", None)


# ---------------------------------------------------------------------------------------------------------------
# QA (e5_small from the registry: real encoder weights offline, untrained span head)
# ---------------------------------------------------------------------------------------------------------------
def _qa_available() -> str:
    try:
        from core.tasks.qa.models import load_qa_tokenizer

        load_qa_tokenizer("e5_small")
    except Exception as err:  # package missing: say which
        return f"e5_small cannot be built here ({err})"
    return ""


needs_e5 = pytest.mark.skipif(bool(_qa_available()), reason=_qa_available() or "e5_small available")


def check_qa_column(md, highlight, table, passage):
    assert "not meaningful" in md  # the registry span head is random
    if highlight is not None:
        answer = md.split("«")[1].split("»")[0]
        assert _Cells(highlight).marked == answer.replace("\\", "")
    else:
        assert qa_tab.NO_ANSWER in md
    rows = span_rows(table)
    assert 1 <= len(rows) <= 5
    for rank, text, start, prob in rows:
        assert 0.0 <= prob <= 1.0 and passage[start:start + len(text)] == text
    assert "No-answer probability: " in md
    p_none = float(md.split("No-answer probability: ")[1].split(" ")[0])
    assert 0.0 <= p_none <= 1.0


@needs_e5
def test_qa_handler_answers_or_says_the_passage_does_not_say():
    p = qa_tab.load_examples()[0]
    question = next(q["question"] for q in p["questions"] if q["answer"] is None)
    status, md_a, hl_a, table_a, md_b, hl_b, table_b = qa_tab.answer_question(p["passage"], question,
                                                                               "model:e5_small", None)
    assert status == "" and (md_b, hl_b, table_b) == (pickers.unpicked_heading("Model B"), None, None)
    check_qa_column(md_a, hl_a, table_a, p["passage"])
    assert "read in 1 window." in md_a


@needs_e5
def test_qa_handler_reads_a_100000_character_passage_in_windows():
    texts = [p["passage"] for p in qa_tab.load_examples()]
    passage = (" ".join(texts) + " ") * (100_000 // len(" ".join(texts)) + 1)
    passage = passage[:100_000]
    question = qa_tab.load_examples()[4]["questions"][1]["question"]
    status, md_a, hl_a, table_a, *_ = qa_tab.answer_question(passage, question, "model:e5_small", None)
    assert status == ""
    check_qa_column(md_a, hl_a, table_a, passage)
    windows = int(md_a.split("read in ")[1].split(" ")[0])
    assert windows > 50
    if hl_a is not None:
        assert len(_Cells(hl_a).text) < 3_000 and "Showing characters" in md_a


def test_qa_handler_bad_inputs_give_one_sentence():
    p = "تهران پایتخت ایران است."
    empty = (None,) * 6
    assert qa_tab.answer_question("", "کجا؟", "model:e5_small") == (
        "**The passage is empty; paste the text in which to look for the answer.**", *empty)
    assert qa_tab.answer_question(p, "  ", "model:e5_small") == (
        "**The question is empty; type a question to ask about the passage.**", *empty)
    assert qa_tab.answer_question(p, "کجا؟", None, None) == ("**Pick a model first.**", *empty)
    too_long = qa_tab.answer_question("ا" * 100_001, "کجا؟", "model:e5_small")
    assert too_long[0].startswith("**The passage has 100,001 characters") and too_long[1:] == empty
    unknown = qa_tab.answer_question(p, "کجا؟", "model:no_such_model")
    assert unknown[0] == "" and "Unknown model 'no\\_such\\_model'" in unknown[1] and unknown[2] is None


# ---------------------------------------------------------------------------------------------------------------
# The three tabs served, called through gradio_client
# ---------------------------------------------------------------------------------------------------------------
@needs_e5
def test_tabs_serve_their_endpoints(image_run, tweet_run, tmp_path, free_port):
    import httpx
    from gradio_client import Client, handle_file

    with gr.Blocks(analytics_enabled=False) as app:
        with gr.Tab("Questions"):
            qa_tab.build()
        with gr.Tab("Tweets"):
            tweets_tab.build()
        with gr.Tab("Images"):
            images_tab.build()
    app.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True)
    try:
        client = Client(app.local_url, verbose=False)
        api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        for name in ("qa_answer", "qa_refresh_models", "tweet_classify", "tweet_refresh_models", "image_classify",
                     "image_refresh_models"):
            assert f"/{name}" in api

        rgba = tmp_path / "rgba.png"
        rgba.write_bytes(png_bytes("RGBA"))
        status, md1, label1, *_ = client.predict(handle_file(str(rgba)), image_run, None, None,
                                                 api_name="/image_classify")
        assert status == "" and "Fine-tuned run" in md1 and len(label1["confidences"]) == 5
        paths = [e.path for e in gallery.class_examples()] if (DATA / "cifar10").is_dir() else []
        if paths:  # the thumbnails are served, and an example classifies like an upload
            values = [c["props"]["value"] for c in app.get_config_file()["components"] if c.get("type") == "gallery"]
            urls = [item["image"]["url"] for value in values if value for item in value]
            assert len(urls) == len(paths)
            assert httpx.get(app.local_url.rstrip("/") + urls[0]).status_code == 200
            status, md1, label1, *_ = client.predict(handle_file(paths[0]), image_run, None, None,
                                                     api_name="/image_classify")
            assert status == "" and len(label1["confidences"]) == 5
        corrupt = tmp_path / "corrupt.png"
        corrupt.write_bytes(b"not an image at all")
        status, *_ = client.predict(handle_file(str(corrupt)), image_run, None, None, api_name="/image_classify")
        assert "not a readable image" in status

        status, md1, label1, *_ = client.predict("Masks save lives 😷", tweet_run, None, None,
                                                 api_name="/tweet_classify")
        assert status == "" and {c["label"] for c in label1["confidences"]} == {"real", "fake"}

        p = qa_tab.load_examples()[1]
        status, md_a, hl_a, table_a, md_b, *_ = client.predict(p["passage"], p["questions"][0]["question"],
                                                               "model:e5_small", None, api_name="/qa_answer")
        assert status == "" and "not meaningful" in md_a and 1 <= len(span_rows(table_a)) <= 5
        assert client.predict("", "?", "model:e5_small", None, api_name="/qa_answer")[0].startswith(
            "**The passage is empty")
        a, b = client.predict("model:e5_small", None, api_name="/qa_refresh_models")
        assert a["value"] == "model:e5_small" and b["value"] is None  # the client returns the update
        assert ["e5_small (packaged offline, head not trained)", "model:e5_small"] in a["choices"]
    finally:
        app.close()
