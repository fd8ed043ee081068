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
    assert [(r["source"], r["value"]) for r in references_for("paper-cait-last-block")] == [("paper", 0.96),
                                                                                           ("R2", 0.9619)]
    assert {r["metric"] for r in references_for("qa-parsbert")} == {"squad_exact", "squad_f1"}  # standard SQuAD-v2
    assert references_for(None) == [] and references_for("no-such-preset") == []
    assert _reference("paper-densenet201-last-block", "accuracy") == "0.9476 (paper); 0.9303 (R2)"
    assert _reference("qa-albert-fa", "f1") == "0.8310 (R1)"


def test_the_settings_the_reports_used():
    qa = PRESETS["qa-parsbert"]  # R1: AdamW, weight decay 0.1, lr 5e-5, StepLR gamma 0.1, 1 epoch, length 512
    assert (qa["optimizer"], qa["weight_decay"], qa["lr"], qa["step_gamma"], qa["epochs"], qa["max_length"]) == (
        "adamw", 0.1, 5e-5, 0.1, 1, 512)
    assert PRESETS["qa-parsbert-r0"]["max_length"] == 128
    frozen = PRESETS["tweets-ctbert-bigru-frozen"]  # a blank lr would become 1e-3: the report used 1e-5
    assert (frozen["strategy"], frozen["lr"], frozen["epochs"], frozen["batch_size"]) == ("feature_extraction",
                                                                                           1e-5, 3, 4)
    assert PRESETS["r0-vgg19-block5-conv1"]["model"] == "vgg19_block5_conv1"
