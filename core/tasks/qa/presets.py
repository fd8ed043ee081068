"""The course's Persian QA experiments as named set-ups (``python -m core train --preset NAME``)."""
from core.tasks.qa import NAME

PRESETS: dict[str, dict] = {
    "qa-parsbert": dict(task=NAME, model="parsbert", strategy="full", optimizer="adamw", lr=5e-5, weight_decay=0.01,
                        scheduler="step", step_size=1, step_gamma=0.1, batch_size=16, epochs=2, max_length=384,
                        doc_stride=128),
    # Offline Persian QA: measured on this project's 2-core CPU, 1 epoch over 2,000 PQuAD questions takes ~15 min
    # and reaches test F1 0.50 against the no-answer baseline's 0.24 (README, "Persian QA").
    "qa-e5-small": dict(task=NAME, model="e5_small", strategy="full", optimizer="adamw", lr=1e-4, batch_size=16,
                        scheduler="none", epochs=1, max_length=384, doc_stride=128),
    "qa-albert-fa": dict(task=NAME, model="albert_fa", strategy="full", optimizer="adamw", lr=5e-5,
                         weight_decay=0.01, scheduler="step", step_size=1, step_gamma=0.1, batch_size=16, epochs=2,
                         max_length=384, doc_stride=128),
}
