"""Tweets tab: real or fake for one COVID-19 tweet, by up to three models side by side."""
from __future__ import annotations

import json
import os
from pathlib import Path

import gradio as gr

from core.engine.interactive import serving
from core.tasks.tweets.data import clean_tweet
from core.paths import REPO_ROOT
from demo.explain_panel import attention_controls, explain_column, explain_text_columns, methods_update
from demo.pickers import (INFERENCE_CONCURRENCY, ModelLists, checked_input, label_columns, load_model, md_escape,
                          model_heading, picker_panel, predict_columns, predict_with, refresh_pickers,
                          unpicked_heading, user_message)

EXAMPLES_FILE = REPO_ROOT / "assets" / "tweet_examples.json"
N_MODELS = 3
# Requests Gradio gathers into one call of classify_tweets (one forward pass per model for all of them).
MAX_BATCH = int(os.environ.get("TRANSFER_LAB_TWEET_BATCH", "16"))


def load_examples(path: Path = EXAMPLES_FILE) -> list[dict]:
    """The tweets of ``assets/tweet_examples.json``: text and the style it imitates (real-news / fake-news)."""
    return json.loads(path.read_text(encoding="utf-8"))["tweets"]


def tweet_result(title: str, info, result: dict | None, error: str) -> tuple[str, dict | None]:
    """(heading Markdown, gr.Label value {"real": p, "fake": 1 - p}) for one model."""
    if result is None:
        return model_heading(title, info, error), None
    lines = [model_heading(title, info, ""),
             f"P(real) {result['probability_real']:.3f} · P(fake) {result['probability_fake']:.3f}"]
    if result.get("truncated"):
        lines.append(f"Only the first {result['max_length']} tokens were read.")
    return "\n\n".join(lines), {"real": result["probability_real"], "fake": result["probability_fake"]}


def classify_tweet(text: str | None, *refs: str | None):
    """Event handler: (status, then heading and label for each of the ``N_MODELS`` pickers)."""
    _, status = checked_input(lambda: clean_tweet(text), refs)  # the models' own check: one sentence for empty text
    if status:
        return (f"**{md_escape(status)}**", *(None,) * (2 * len(refs)))
    return ("", *predict_columns("tweets", refs, lambda task: task.predict_text(text), tweet_result))


def _column(title: str, ref, texts: list[str]) -> list[tuple[str, dict | None]]:
    """(heading, label) per text for one picker: its model loaded once, one forward pass for all the texts."""
    if not ref:
        return [(unpicked_heading(title), None)] * len(texts)
    info = None
    try:
        task, info = load_model(ref, "tweets")
        with serving():  # a fine-tune in this process waits for the forward (core/engine/interactive.py)
            results = task.predict_texts(texts)
    except Exception as err:  # noqa: BLE001 (the UI boundary)
        if info is None:  # the model itself is unusable: the same sentence for every request that picked it
            return [tweet_result(title, None, None, user_message(err))] * len(texts)
        # the batch failed (e.g. out of memory): each text alone, so one bad text fails only its own answer
        return [tweet_result(title, *predict_with(ref, "tweets", lambda t, x=x: t.predict_text(x)))
                for x in texts]
    return [tweet_result(title, info, r, "") for r in results]


def classify_tweets(texts: list, *refs: list) -> tuple[list, ...]:
    """Batched event handler (Gradio ``batch=True``): one list per input, one list per output. Each request is
    checked alone (its one sentence in its own status, never failing the others); the good ones are grouped by
    picked model, so each model runs one forward pass for all the requests that picked it."""
    n = len(texts)
    rows: list[list] = [[None] * (1 + 2 * len(refs)) for _ in range(n)]
    good = []
    for i in range(n):
        item_refs = [r[i] for r in refs]
        _, status = checked_input(lambda: clean_tweet(texts[i]), item_refs)
        if status:
            rows[i][0] = f"**{md_escape(status)}**"
        else:
            rows[i][0] = ""
            good.append(i)
    for c, column in enumerate(refs):
        groups: dict = {}
        for i in good:
            key = column[i] if isinstance(column[i], str) or column[i] is None else repr(column[i])
            groups.setdefault(key, []).append(i)
        for key, idx in groups.items():
            answers = _column(f"Model {c + 1}", column[idx[0]], [texts[i] for i in idx])
            for i, (heading, label) in zip(idx, answers):
                rows[i][1 + 2 * c], rows[i][2 + 2 * c] = heading, label
    return tuple(list(col) for col in zip(*rows)) if n else tuple([] for _ in range(1 + 2 * len(refs)))


def explain_tweet(text: str | None, ref_1: str | None, ref_2: str | None, ref_3: str | None,
                  method_1: str | None, method_2: str | None, method_3: str | None,
                  layer_1=-1, layer_2=-1, layer_3=-1, head_1="mean", head_2="mean", head_3="mean",
                  progress=gr.Progress()):
    """Event handler: (status, then per model: explanation HTML, figure, layer picker, head picker)."""
    refs = (ref_1, ref_2, ref_3)
    _, status = checked_input(lambda: clean_tweet(text), refs)
    if status:
        return (f"**{md_escape(status)}**", *(None, None, gr.update(), gr.update()) * len(refs))
    columns = explain_text_columns("tweets", {"text": text}, refs, (method_1, method_2, method_3),
                                   (layer_1, layer_2, layer_3), (head_1, head_2, head_3), progress)
    return ("", *columns)


def refresh_models(*current: str | None):
    return tuple(refresh_pickers("tweets", *current))


def build() -> ModelLists:
    """Lay the tab out and wire it; returns its model lists (demo.app refreshes them when the tab is selected and
    on its timer)."""
    gr.Markdown("Is a COVID-19 tweet real news or fake news? Compare up to three models; emojis are read as words.")
    with gr.Row():
        with gr.Column(scale=3):
            tweet = gr.Textbox(label="Tweet", lines=3, max_lines=8, placeholder="Type or paste a tweet")
            examples = load_examples()
            gr.Examples([[t["text"]] for t in examples], inputs=[tweet], label="Examples (written for this demo)",
                        example_labels=[f"{t['style']}: {t['text'][:60]}…" for t in examples],
                        api_name="tweet_example")
        with gr.Column(scale=2):
            lists, go, refresh, status = picker_panel("tweets", N_MODELS, "Classify")
            pickers = lists.pickers
            explain_go = gr.Button("Explain", variant="secondary")
            explain_status = gr.Markdown()
    results, columns = label_columns(N_MODELS, 2, "P(real) / P(fake)",
                                     below=lambda i: explain_column(f"Model {i + 1}", pickers[i].value, True))
    gr.on([go.click, tweet.submit], classify_tweets, [tweet, *pickers], [status, *results], api_name="tweet_classify",
          batch=True, max_batch_size=MAX_BATCH, concurrency_limit=INFERENCE_CONCURRENCY)
    refresh.click(refresh_models, pickers, pickers, api_name="tweet_refresh_models").then(
        **lists.follow_event(), api_name="tweet_refresh_note")
    methods = [c.method for c in columns]
    gr.on([p.change for p in pickers], methods_update, pickers, methods, api_name="tweet_explain_methods")
    gr.on([m.change for m in methods], attention_controls, methods,
          [w for c in columns for w in (c.layer, c.head)], api_name="tweet_explain_controls")
    gr.on([explain_go.click] + [w.input for c in columns for w in (c.method, c.layer, c.head)], explain_tweet,
          [tweet, *pickers, *methods, *(c.layer for c in columns), *(c.head for c in columns)],
          [explain_status, *(w for c in columns for w in c.outputs())], api_name="explain_tweet",
          concurrency_limit=INFERENCE_CONCURRENCY)
    return lists
