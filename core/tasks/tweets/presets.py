"""The course's tweet experiments (R2) as named set-ups (``python -m core train --preset NAME``), each with the
figures the report got (SEED_EXPERIMENTS.md, section B)."""
from core.presets import Preset, Reference
from core.tasks.tweets import NAME

# R2: BCE loss, Adam, 3 epochs, batch 4, max length 128 (truncated and padded), emoji turned into words; the same
# learning rate for the fine-tuned and the feature-based runs (2e-5 for BERT, 1e-5 for CT-BERT).
_R2 = dict(task=NAME, batch_size=4, epochs=3, scheduler="none", optimizer="adam", max_length=128)
_GAPS = "R2 gives no learning-rate schedule (constant here) and no evaluation batch size."


def _r2(model: str, strategy: str, lr: float, accuracy: float, note: str) -> Preset:
    return Preset(dict(_R2, model=model, strategy=strategy, lr=lr), "R2",
                  (Reference("R2", "accuracy", accuracy, note),), _GAPS)


PRESETS: dict[str, Preset] = {
    "tweets-bert": _r2("bert_base", "full", 2e-5, 0.98, "fine-tuned, test accuracy"),
    "tweets-bert-bigru": _r2("bert_bigru", "full", 2e-5, 0.98, "fine-tuned, test accuracy"),
    "tweets-ctbert-bigru": _r2("ctbert_bigru", "full", 1e-5, 0.98, "fine-tuned, test accuracy"),
    "tweets-bert-frozen": _r2("bert_base", "feature_extraction", 2e-5, 0.73,
                              "feature-based (encoder frozen), test accuracy; a table in the same report says 0.79, "
                              "fake-class F1 0.62"),
    "tweets-bert-bigru-frozen": _r2("bert_bigru", "feature_extraction", 2e-5, 0.93,
                                    "feature-based, test accuracy (fake-class F1 0.92)"),
    "tweets-ctbert-bigru-frozen": _r2("ctbert_bigru", "feature_extraction", 1e-5, 0.94,
                                      "feature-based, test accuracy (fake-class F1 0.94)"),
}
