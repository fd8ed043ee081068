"""The course's tweet experiments as named set-ups (``python -m core train --preset NAME``)."""
from core.tasks.tweets import NAME

PRESETS: dict[str, dict] = {
    "tweets-bert": dict(task=NAME, model="bert_base", strategy="full", lr=2e-5, batch_size=4, epochs=3,
                        scheduler="none"),
    "tweets-bert-bigru": dict(task=NAME, model="bert_bigru", strategy="full", lr=2e-5, batch_size=4, epochs=3,
                              scheduler="none"),
    "tweets-ctbert-bigru": dict(task=NAME, model="ctbert_bigru", strategy="full", lr=1e-5, batch_size=4,
                                epochs=3, scheduler="none"),
}
