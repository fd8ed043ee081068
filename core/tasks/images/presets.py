"""The course's image experiments as named set-ups (``python -m core train --preset NAME``)."""
from core.tasks.images import NAME

# Malpure et al.'s settings: last block unfrozen, Adam lr 1e-5, x0.6 on a validation plateau down to 1e-7,
# batch 512, at most 20 epochs.
_PAPER = dict(task=NAME, strategy="last_block", optimizer="adam", lr=1e-5, scheduler="plateau", plateau_factor=0.6,
              min_lr=1e-7, batch_size=512, epochs=20)

PRESETS: dict[str, dict] = {
    "paper-deit-last-block": dict(_PAPER, model="deit_base_distilled"),
    "paper-deit-small-last-block": dict(_PAPER, model="deit_small_distilled"),
    "paper-cait-last-block": dict(_PAPER, model="cait_s24"),
    "paper-densenet201-last-block": dict(_PAPER, model="densenet201"),
    "paper-vgg19-last-block": dict(_PAPER, model="vgg19"),
    "resnet50-scratch": dict(task=NAME, model="resnet50", strategy="scratch", lr=1e-3, batch_size=64, epochs=10),
    "resnet50-feature-extraction": dict(task=NAME, model="resnet50", strategy="feature_extraction", lr=1e-3,
                                        batch_size=64, epochs=10),
    "resnet50-full": dict(task=NAME, model="resnet50", strategy="full", lr=1e-4, batch_size=64, epochs=10),
    "mlp-baseline": dict(task=NAME, model="mlp", strategy="scratch", lr=1e-3, batch_size=128, epochs=20),
}
