"""Tweets tab: real or fake for one COVID-19 tweet, by up to three models side by side."""
from __future__ import annotations

import json
from pathlib import Path

import gradio as gr

from core.tasks.tweets.data import clean_tweet
from core.errors import BadInputError
from core.paths import REPO_ROOT
from demo.pickers import (label_columns, md_escape, model_heading, picker_panel,
                          predict_with, refresh_pickers, unpicked_heading)

EXAMPLES_FILE = REPO_ROOT / "assets" / "tweet_examples.json"
N_MODELS = 3


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
    status = ""
    try:
        clean_tweet(text)  # the same check the models make: one sentence for empty text
    except BadInputError as err:
        status = str(err)
    if not status and not any(refs):
        status = "Pick at least one model."
    if status:
        return (f"**{md_escape(status)}**", *(None,) * (2 * len(refs)))
    outputs = []
    for i, ref in enumerate(refs):
        if not ref:
            outputs += [unpicked_heading(f"Model {i + 1}"), None]
            continue
        info, result, error = predict_with(ref, "tweets", lambda task: task.predict_text(text))
        outputs += list(tweet_result(f"Model {i + 1}", info, result, error))
    return ("", *outputs)


def refresh_models(*current: str | None):
    return tuple(refresh_pickers("tweets", *current))


def build() -> None:
    gr.Markdown("Is a COVID-19 tweet real news or fake news? Compare up to three models; emojis are read as words.")
    with gr.Row():
        with gr.Column(scale=3):
            tweet = gr.Textbox(label="Tweet", lines=3, max_lines=8, placeholder="Type or paste a tweet")
            examples = load_examples()
            gr.Examples([[t["text"]] for t in examples], inputs=[tweet], label="Examples (written for this demo)",
                        example_labels=[f"{t['style']}: {t['text'][:60]}…" for t in examples],
                        api_name="tweet_example")
        with gr.Column(scale=2):
            pickers, go, refresh, status = picker_panel("tweets", N_MODELS, "Classify")
    results = label_columns(N_MODELS, 2, "P(real) / P(fake)")
    gr.on([go.click, tweet.submit], classify_tweet, [tweet, *pickers], [status, *results], api_name="tweet_classify")
    refresh.click(refresh_models, pickers, pickers, api_name="tweet_refresh_models")
