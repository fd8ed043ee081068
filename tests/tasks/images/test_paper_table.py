"""Malpure et al.'s table (SEED_EXPERIMENTS.md, section C): ``last_block`` trains what the paper unfroze, row by row.

Counts are ``python -m core params NAME --strategy last_block`` (meta-device builds, so NFNet-F6's 436 M
parameters count instantly): the last block, the norm after it and the paper head. Where a count here differs from
the paper's it is written as the paper's figure and the stated difference, never rounded to it.
"""
import json
import subprocess
import sys

import pytest

from core import registry
from core.presets import PRESET_INFO
from core.registry import parameter_counts


def paper_head(features: int, classes: int = 10) -> int:
    """Flatten -> Linear(features, 256) -> ELU -> Dropout -> Linear(256, classes)."""
    return features * 256 + 256 + 256 * classes + classes


# model -> (the paper's count, what last_block trains here minus the paper's count, why)
PAPER_TABLE = {
    # Keras puts biases on each block's last 1x1 convolution (3 x 2048) and on the shortcut convolution (2048).
    "resnet152v2": (15_497_994, -8_192, "Keras's conv biases"),
    # The paper leaves the head out for EfficientNetV2-L and DenseNet201.
    "efficientnetv2_l": (7_020_960, paper_head(1280), "the paper head, which the paper's count leaves out"),
    "vgg19": (9_573_130, 0, ""),
    "nfnet_f6": (12_012_043, 0, ""),
    "densenet201": (6_982_400, paper_head(1920), "the paper head, which the paper's count leaves out"),
    "vit_large_patch32": (12_863_242, 0, ""),
    "swin_base": (12_868_650, 0, ""),
    "coat_lite_small": (3_308_298, 0, ""),
    "cait_s24": (1_877_130, 0, ""),
    "deit_base_distilled": (7_488_276, 0, ""),
}


def test_the_table_has_the_papers_ten_rows():
    assert len(PAPER_TABLE) == 10 and all(registry.get(name).task == "images" for name in PAPER_TABLE)
    assert (paper_head(1280), paper_head(1920)) == (330_506, 494_346)


@pytest.mark.parametrize("name", list(PAPER_TABLE))
def test_last_block_trains_what_the_paper_unfroze(name):
    paper, difference, _why = PAPER_TABLE[name]
    assert parameter_counts(name, "last_block")["trainable"] == paper + difference


@pytest.mark.parametrize("name", [n for n, (_, difference, _) in PAPER_TABLE.items() if difference])
def test_every_difference_from_the_paper_is_said_where_the_model_is_offered(name):
    paper, difference, _why = PAPER_TABLE[name]
    notes = registry.get(name).notes
    assert f"{paper:,}" in notes and f"{paper + difference:,}" in notes


def test_the_new_rows_exact_counts():
    assert parameter_counts("resnet152v2", "last_block") == {"trainable": 15_489_802, "total": 58_663_242}
    assert parameter_counts("efficientnetv2_l", "last_block") == {"trainable": 7_351_466, "total": 117_564_778}
    assert parameter_counts("nfnet_f6", "last_block") == {"trainable": 12_012_043, "total": 436_075_374}
    # feature_extraction trains the paper head alone: the width of what each backbone hands it.
    assert parameter_counts("nfnet_f6", "feature_extraction")["trainable"] == paper_head(3072)
    assert parameter_counts("resnet152v2", "feature_extraction")["trainable"] == paper_head(2048)


def test_resnet152v2_has_no_hub_weights_and_says_so():
    spec = registry.get("resnet152v2")
    assert spec.hub_id is None and spec.offline == "untrained" and "no pretrained weights" in spec.description
    assert registry.get("efficientnetv2_l").hub_id == "timm/tf_efficientnetv2_l.in1k"
    assert registry.get("nfnet_f6").hub_id == "timm/dm_nfnet_f6.dm_in1k"


def test_every_row_has_a_paper_preset_with_the_papers_figure():
    rows = {p.settings["model"]: p for p in PRESET_INFO.values()
            if p.report == "paper" and p.settings.get("task") == "images"}
    assert set(rows) == set(PAPER_TABLE)
    for preset in rows.values():
        assert preset.settings["strategy"] == "last_block" and [r.source for r in preset.references] == ["paper"]


def test_params_cli_gives_the_new_rows_count():
    out = subprocess.run([sys.executable, "-m", "core", "params", "nfnet_f6", "--strategy", "last_block", "--json"],
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == {"trainable": 12_012_043, "total": 436_075_374}
