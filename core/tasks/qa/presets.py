"""The course's Persian QA experiments (R0, R1) as named set-ups (``python -m core train --preset NAME``), each
with the figures its report and the PQuAD paper got (SEED_EXPERIMENTS.md, section A). The reports scored with the
standard SQuAD-v2 metric, so their figures stand beside a run's ``squad_exact``/``squad_f1``."""
from core.presets import Preset, Reference
from core.tasks.qa import NAME

# R1: AdamW, weight decay 0.1, lr 5e-5, StepLR(step 1, gamma 0.1), 1 epoch, train batch 16, eval batch 4, length 512.
_R1 = dict(task=NAME, strategy="full", optimizer="adamw", lr=5e-5, weight_decay=0.1, scheduler="step", step_size=1,
           step_gamma=0.1, epochs=1, batch_size=16, eval_batch_size=4, max_length=512, doc_stride=128)
# R0: max length 128 (ParsBERT 2 epochs, ALBERT 1); the report gives no other setting, so R1's optimizer is used.
_R0 = dict(_R1, max_length=128, doc_stride=64)
_PAPER_PARSBERT = (Reference("paper", "squad_exact", 0.681, "PQuAD paper, ParsBERT"),
                   Reference("paper", "squad_f1", 0.820, "PQuAD paper, ParsBERT"))

PRESETS: dict[str, Preset] = {
    "qa-parsbert": Preset(dict(_R1, model="parsbert"), "R1", (
        Reference("R1", "squad_exact", 0.69709, "1 epoch, max length 512"),
        Reference("R1", "squad_f1", 0.82936, "1 epoch, max length 512"), *_PAPER_PARSBERT)),
    "qa-parsbert-r0": Preset(dict(_R0, model="parsbert", epochs=2), "R0", (
        Reference("R0", "squad_exact", 0.678, "2 epochs, max length 128"),
        Reference("R0", "squad_f1", 0.744, "2 epochs, max length 128"), *_PAPER_PARSBERT)),
    "qa-albert-fa": Preset(dict(_R1, model="albert_fa"), "R1", (
        Reference("R1", "squad_exact", 0.69458, "1 epoch, max length 512"),
        Reference("R1", "squad_f1", 0.83103, "1 epoch, max length 512"))),
    "qa-albert-fa-r0": Preset(dict(_R0, model="albert_fa"), "R0", (
        Reference("R0", "squad_exact", 0.692, "1 epoch, max length 128"),
        Reference("R0", "squad_f1", 0.762, "1 epoch, max length 128"))),
    "qa-xlmr-base": Preset(dict(_R1, model="xlmr_base"), "paper", (
        Reference("paper", "squad_exact", 0.748, "PQuAD paper, XLM-R large (this preset trains XLM-R base)"),
        Reference("paper", "squad_f1", 0.876, "PQuAD paper, XLM-R large (this preset trains XLM-R base)"))),
    # Offline Persian QA on this project's 2-core CPU (README, "Persian QA"): not a course experiment. Whole
    # batches of 16 with activation checkpointing (each encoder layer recomputed in the backward pass: the same
    # update in about 4 GB instead of 11); with no weight decay only the word-embedding rows the training windows
    # use train (core/tasks/qa/task.py), which is the same training without the 250k-row gradient and AdamW state.
    "qa-e5-small": Preset(dict(task=NAME, model="e5_small", strategy="full", optimizer="adamw", lr=1e-4,
                               batch_size=16, activation_checkpointing=True, scheduler="none", epochs=1,
                               max_length=384, doc_stride=128), "project",
                          (), "This project's offline set-up (the packaged 4-bit e5-small); the course did not run it."),
}
