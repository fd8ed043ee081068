"""core/presets.py and core/tasks/<task>/presets.py: every course experiment as a preset with its report's figures."""
import pytest

from core.config import TrainConfig
from core.presets import PRESET_INFO, PRESETS, SOURCES, compose_settings, references_for
from core.store.report import _reference


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_makes_a_valid_config(name):
    values = compose_settings(None, name, {})
    cfg = TrainConfig(**values).validate()  # the model fits the task and strategy; every setting is in range
    assert cfg.preset == name and PRESET_INFO[name].report in SOURCES


def test_presets_carry_their_reports_figures():
    # A paper row carries the paper's figure; the report that re-ran it has its own preset with its own settings
    # (R2: CIFAR-10 normalisation) and both figures, as its table put them side by side.
    assert [(r["source"], r["value"]) for r in references_for("paper-cait-last-block")] == [("paper", 0.96)]
    assert [(r["source"], r["metric"], r["value"]) for r in references_for("r2-cait-last-block")] == [
        ("R2", "accuracy", 0.9619), ("R2", "mean_seconds_per_epoch", 308.34), ("paper", "accuracy", 0.96)]
    assert {r["metric"] for r in references_for("qa-parsbert")} == {"squad_exact", "squad_f1"}  # standard SQuAD-v2
    assert references_for(None) == [] and references_for("no-such-preset") == []
    assert _reference("paper-densenet201-last-block", "accuracy") == "0.9476 (paper)"
    assert _reference("r2-densenet201-last-block", "accuracy") == "0.9303 (R2); 0.9476 (paper)"
    assert _reference("qa-albert-fa", "f1") == "0.8310 (R1)"


def test_a_presets_label_names_its_report_and_key_settings():
    assert PRESET_INFO["r1-deit-small"].label() == (
        "R1 · r1-deit-small (deit_small_distilled_cls, last_block, lr 1e-4, 10 ep)")
    assert PRESET_INFO["mlp-baseline"].label() == "R3 · mlp-baseline (mlp, scratch, lr 1e-2, 20 ep)"


def test_the_settings_the_reports_used():
    qa = PRESETS["qa-parsbert"]  # R1: AdamW, weight decay 0.1, lr 5e-5, StepLR gamma 0.1, 1 epoch, length 512
    assert (qa["optimizer"], qa["weight_decay"], qa["lr"], qa["step_gamma"], qa["epochs"], qa["max_length"]) == (
        "adamw", 0.1, 5e-5, 0.1, 1, 512)
    assert PRESETS["qa-parsbert-r0"]["max_length"] == 128
    frozen = PRESETS["tweets-ctbert-bigru-frozen"]  # a blank lr would become 1e-3: the report used 1e-5
    assert (frozen["strategy"], frozen["lr"], frozen["epochs"], frozen["batch_size"]) == ("feature_extraction",
                                                                                           1e-5, 3, 4)
    assert PRESETS["r0-vgg19-block5-conv1"]["model"] == "vgg19_block5_conv1"
    # Normalisation as each report had it: R0 0.5/0.5, R2 the CIFAR-10 statistics, the paper the backbone's.
    assert {PRESETS[n]["normalize"] for n in ("r0-vgg19-block5-conv1", "r0-vgg19-frozen", "r0-deit-base-block12")} == {
        "half"}
    assert PRESETS["r2-densenet201-last-block"]["normalize"] == PRESETS["r2-cait-last-block"]["normalize"] == "cifar10"
    assert PRESETS["paper-densenet201-last-block"]["normalize"] == "backbone"
    # R4: the 1024-unit head, a checkpoint every 5 epochs; R1: one Linear on the class token.
    assert (PRESETS["resnet50-feature-extraction"]["head"], PRESETS["resnet50-scratch"]["checkpoint_every"]) == (
        "paper_1024", 5)
    assert (PRESETS["r1-deit-small"]["head"], PRESETS["r1-deit-small"]["model"]) == ("linear",
                                                                                   "deit_small_distilled_cls")
