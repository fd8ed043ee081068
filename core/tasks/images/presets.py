"""The course's image experiments as named set-ups (``python -m core train --preset NAME``), each with the figures
its report and the paper got (SEED_EXPERIMENTS.md, section C-E)."""
from core.presets import Preset, Reference
from core.tasks.images import NAME

# Malpure et al.'s settings: last block unfrozen, Adam lr 1e-5, x0.6 on a validation plateau down to 1e-7,
# batch 512, at most 20 epochs.
_PAPER = dict(task=NAME, strategy="last_block", optimizer="adam", lr=1e-5, scheduler="plateau", plateau_factor=0.6,
              min_lr=1e-7, batch_size=512, epochs=20)
_CARS = ("R4 trained on a 196-class car data set, not CIFAR-10: its accuracies are not comparable with a CIFAR-10 "
         "run of this preset.")

PRESETS: dict[str, Preset] = {
    "paper-deit-last-block": Preset(dict(_PAPER, model="deit_base_distilled"), "paper", (
        Reference("paper", "accuracy", 0.96450, "DeiT-B distilled, validation accuracy"),
        Reference("R0", "accuracy", 0.961, "12th block unfrozen, 5 epochs, batch 32 (its table says 0.981)"))),
    "paper-deit-small-last-block": Preset(dict(_PAPER, model="deit_small_distilled"), "R1", (),
                                          "R1 ran DeiT-small distilled with lr 1e-4 and 10 epochs and reports only "
                                          "a final training loss of 0.0531."),
    "paper-cait-last-block": Preset(dict(_PAPER, model="cait_s24"), "paper", (
        Reference("paper", "accuracy", 0.96000, "CaiT-S24"),
        Reference("R2", "accuracy", 0.9619, "last class-attention block + norm"))),
    "paper-densenet201-last-block": Preset(dict(_PAPER, model="densenet201"), "paper", (
        Reference("paper", "accuracy", 0.94757, "DenseNet201"),
        Reference("R2", "accuracy", 0.9303, "denseblock4 + norm5"))),
    "paper-vgg19-last-block": Preset(dict(_PAPER, model="vgg19"), "paper", (
        Reference("paper", "accuracy", 0.92784, "VGG-19, block5 and pooled 512 features"),)),
    "paper-vit-large-last-block": Preset(dict(_PAPER, model="vit_large_patch32"), "paper", (
        Reference("paper", "accuracy", 0.95467, "ViT-L/32 (ImageNet-21k)"),)),
    "paper-swin-last-block": Preset(dict(_PAPER, model="swin_base"), "paper", (
        Reference("paper", "accuracy", 0.93580, "Swin-B (224)"),)),
    "paper-coat-last-block": Preset(dict(_PAPER, model="coat_lite_small"), "paper", (
        Reference("paper", "accuracy", 0.94100, "CoaT-Lite-Small"),)),
    "r0-vgg19-block5-conv1": Preset(dict(task=NAME, model="vgg19_block5_conv1", strategy="last_block",
                                         batch_size=32, epochs=20), "R0", (
        Reference("R0", "accuracy", 0.912, "block5_conv1 unfrozen, flattened 25,088-input head, 20 epochs (its "
                                           "table says 0.917); 7,294 s"),)),
    "r0-vgg19-frozen": Preset(dict(task=NAME, model="vgg19_block5_conv1", strategy="feature_extraction",
                                   batch_size=32, epochs=20), "R0", (
        Reference("R0", "accuracy", 0.871, "nothing of the backbone unfrozen, 20 epochs; 7,290 s"),)),
    "resnet50-scratch": Preset(dict(task=NAME, model="resnet50", strategy="scratch", lr=1e-3, batch_size=64,
                                    epochs=10), "R4", (Reference("R4", "accuracy", 0.0348, "cars, 10 + 10 epochs"),),
                               _CARS),
    "resnet50-feature-extraction": Preset(dict(task=NAME, model="resnet50", strategy="feature_extraction", lr=1e-3,
                                               head="paper_1024", batch_size=64, epochs=5), "R4", (
        Reference("R4", "accuracy", 0.0801, "cars, best validation after 5 epochs"),), _CARS),
    "resnet50-full": Preset(dict(task=NAME, model="resnet50", strategy="full", lr=1e-4, batch_size=64, epochs=10),
                            "R4", (Reference("R4", "accuracy", 0.1957, "cars, 5 epochs"),), _CARS),
    "mlp-baseline": Preset(dict(task=NAME, model="mlp", strategy="scratch", optimizer="sgd", lr=0.01, momentum=0.9,
                                nesterov=True, weight_decay=1e-6, batch_size=128, epochs=20),
                           "R3", (Reference("R3", "accuracy", 0.4618, "test accuracy, SGD lr 0.01 with Nesterov "
                                                                      "momentum 0.9"),),
                           "R3's batch size and epochs are not given; its decay 1e-6 is read as weight decay."),
}
