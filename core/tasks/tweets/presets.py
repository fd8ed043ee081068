"""The course's tweet experiments (R2) as named set-ups (``python -m core train --preset NAME``), each with the
figures the report got (SEED_EXPERIMENTS.md, section B)."""
from core.presets import Preset, Reference
from core.tasks.tweets import NAME

_R2 = dict(task=NAME, batch_size=4, epochs=3, scheduler="none", optimizer="adam")


def _r2(model: str, strategy: str, lr: float, accuracy: float, note: str) -> Preset:
    return Preset(dict(_R2, model=model, strategy=strategy, lr=lr), "R2",
                  (Reference("R2", "accuracy", accuracy, note),))


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
