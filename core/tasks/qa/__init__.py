"""Persian extractive question answering on PQuAD (SQuAD 2.0 style: a quarter of the questions have no answer).

``data.py`` reads SQuAD-2.0 JSON and cuts passages into token windows with labels; ``models.py`` builds and
registers the QA encoders with their span head; ``e5_offline.py`` reads the packaged 4-bit e5-small;
``task.py`` is the engine adapter; ``decoding.py`` turns window logits into answers (n-best, the no-answer
threshold); ``metrics.py`` the SQuAD-v2 exact match and F1; ``rows.py`` the prediction row; ``presets.py`` the
course's QA experiments.
"""
from core.registry import InputField, TaskSpec, register_task

NAME = "qa"

SPEC = register_task(TaskSpec(
    name=NAME,
    title="Persian QA",
    description="Find the answer to a Persian question in a passage, or say that the passage has none.",
    labels=None,  # the outputs are spans, not classes
    num_outputs=2,  # the start and the end of the span
    headline="f1",
    monitor="f1",
    inputs=(InputField("question", "text", "the question"),
            InputField("context", "text", "the passage in which to look for the answer")),
    head_words="answer-span head",
    adapter="QATask",
    row="QARow",
    windows=True,
    rtl=True,
    order=3,
))
