"""COVID-19 fake-news tweets (CONSTRAINT 2021): real or fake, with BERT, BERT+BiGRU and MiniLM.

``data.py`` reads and cleans the CSVs and encodes tweets; ``models.py`` builds and registers the tweet models (the
pooled linear head and the BiGRU head); ``task.py`` is the engine adapter (length-grouped batches, the
frozen-encoder cache); ``rows.py`` the prediction row; ``presets.py`` the course's tweet experiments.
"""
from core.registry import InputField, TaskSpec, register_task

NAME = "tweets"
LABELS = ("fake", "real")  # index == label id: fake = 0, real = 1

SPEC = register_task(TaskSpec(
    name=NAME,
    title="COVID-19 tweets",
    description="Is a COVID-19 tweet real news or fake news?",
    labels=LABELS,
    num_outputs=len(LABELS),
    headline="accuracy",
    monitor="accuracy",
    inputs=(InputField("text", "text", "the tweet"),),
    head_words="classification head",
    adapter="TweetTask",
    row="TweetRow",
    order=2,
))
