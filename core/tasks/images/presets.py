"""The course's image experiments as named set-ups (``python -m core train --preset NAME``), each with the figures
its report and the paper got (SEED_EXPERIMENTS.md, sections C-E).

Every preset states the settings its experiment used; where a report leaves one out, the preset says which and
what it uses instead (its note). Names start with the report (r0-, r1-, r2-) or ``paper-``; the R3/R4 ones keep
their first names (mlp-baseline, resnet50-*) so that scripts keep working.
"""
from core.presets import Preset, Reference
from core.tasks.images import NAME

# Malpure et al.'s settings: last block unfrozen, lr 1e-5, x0.6 on a validation plateau down to 1e-7, batch 512, at
# most 20 epochs, the paper head, cross-entropy.
_PAPER = dict(task=NAME, strategy="last_block", optimizer="adam", lr=1e-5, scheduler="plateau", plateau_factor=0.6,
              min_lr=1e-7, batch_size=512, epochs=20, head="paper", normalize="backbone")
_PAPER_GAPS = ("The paper names no optimizer (Adam here) and no plateau patience (2 epochs here); its 'at most 20 "
               "epochs' implies early stopping, which this project does not do: all 20 epochs run.")
_UNTRAINED_EVERYWHERE = ("timm publishes no ImageNet weights for ResNet152V2, so this preset trains from random "
                         "weights on every machine and cannot approach the paper's figure. ")
# R0: mean = std = 0.5, batch 32; it gives no optimizer or learning rate, so the paper's (which it follows) are used.
_R0 = dict(_PAPER, batch_size=32, normalize="half")
_R0_GAPS = "R0 gives no optimizer, learning rate or schedule: the paper's (Adam, 1e-5, x0.6 on a plateau) are used."
# R2: the CIFAR-10 mean/std; its other settings are the paper's.
_R2 = dict(_PAPER, normalize="cifar10")
_R2_GAPS = "R2 states only the normalisation and the unfrozen layers; the rest are the paper's settings. " + _PAPER_GAPS
# R4: ResNet50 on a 196-class car data set, checkpoint (model + optimizer) every 5 epochs.
_R4 = dict(task=NAME, model="resnet50", normalize="backbone", checkpoint_every=5, batch_size=64, scheduler="none")
_CARS = ("R4 trained on a 196-class car data set that is not available here, so this preset runs on CIFAR-10 (10 "
         "classes) and its accuracies are not comparable with R4's. R4 gives no optimizer, learning rate or batch "
         "size: Adam, batch 64 and the lr shown are this project's.")


def _paper(model: str, accuracy: float, what: str, note: str = "") -> Preset:
    return Preset(dict(_PAPER, model=model), "paper", (Reference("paper", "accuracy", accuracy, what),),
                  note + _PAPER_GAPS)


PRESETS: dict[str, Preset] = {
    # -- C. the paper's table, one preset per row, in the table's order ------------------------------------------
    "paper-resnet152v2-last-block": _paper("resnet152v2", 0.83583, "ResNet152V2, last stage",
                                           _UNTRAINED_EVERYWHERE + "last_block trains 15,489,802 parameters, the "
                                           "paper 15,497,994 (Keras has biases on four of the stage's convolutions, "
                                           "+8,192). "),
    "paper-efficientnetv2-l-last-block": _paper("efficientnetv2_l", 0.90130, "EfficientNetV2-L",
                                                "Input 384 px (the pretrained resolution). "),
    "paper-vgg19-last-block": _paper("vgg19", 0.92784, "VGG-19, block5 and pooled 512 features"),
    "paper-nfnet-f6-last-block": _paper("nfnet_f6", 0.94350, "NFNet-F6",
                                        "Input 448 px (the pretrained resolution); 436 M parameters: plan for a "
                                        "large GPU. "),
    "paper-densenet201-last-block": _paper("densenet201", 0.94757, "DenseNet201"),
    "paper-vit-large-last-block": _paper("vit_large_patch32", 0.95467, "ViT-L/32 (ImageNet-21k)"),
    "paper-swin-last-block": _paper("swin_base", 0.93580, "Swin-B (224)"),
    "paper-coat-last-block": _paper("coat_lite_small", 0.94100, "CoaT-Lite-Small"),
    "paper-cait-last-block": _paper("cait_s24", 0.96000, "CaiT-S24"),
    "paper-deit-last-block": _paper("deit_base_distilled", 0.96450, "DeiT-B distilled"),
    # The paper's settings on DeiT-small (the paper ran DeiT-B): kept under its first name for scripts.
    "paper-deit-small-last-block": Preset(dict(_PAPER, model="deit_small_distilled"), "project", (),
                                          "The paper's settings on DeiT-small distilled, which the paper did not "
                                          "run; the second report's own DeiT-small run is r1-deit-small."),
    # -- C. R0: mean = std = 0.5, batch 32, 20 epochs --------------------------------------------------------------
    "r0-vgg19-block5-conv1": Preset(dict(_R0, model="vgg19_block5_conv1"), "R0", (
        Reference("R0", "accuracy", 0.912, "block5_conv1 unfrozen, flattened 25,088-input head, 20 epochs (its "
                                           "table says 0.917); train 0.999, 7,294 s (its text says 9,294)"),),
        _R0_GAPS),
    "r0-vgg19-frozen": Preset(dict(_R0, model="vgg19_block5_conv1", strategy="feature_extraction"), "R0", (
        Reference("R0", "accuracy", 0.871, "nothing of the backbone unfrozen, flattened head, 20 epochs; train "
                                           "1.000, 7,290 s"),), _R0_GAPS),
    "r0-deit-base-block12": Preset(dict(_R0, model="deit_base_distilled", epochs=5), "R0", (
        Reference("R0", "accuracy", 0.961, "12th block unfrozen, 5 epochs, batch 32 (its table says 0.981); train "
                                           "0.985, 8,501 s"),
        Reference("paper", "accuracy", 0.96450, "DeiT-B distilled, the paper's settings")),
        _R0_GAPS + " R0 does not describe its head: the paper head (one per token) is used."),
    # -- C. R1: DeiT-small as transformers' DeiTForImageClassification, lr 1e-4, batch 512, 10 epochs ------------
    "r1-deit-small": Preset(dict(task=NAME, model="deit_small_distilled_cls", strategy="last_block", head="linear",
                                 optimizer="adam", lr=1e-4, scheduler="none", batch_size=512, epochs=10,
                                 normalize="backbone"), "R1", (),
                            "R1 reports no accuracy, only a final training loss of 0.0531 (compare the run's last "
                            "train_loss). It trained the last encoder layer and one Linear on the class token; the "
                            "norm after that layer (768 parameters) trains here too. It names no optimizer or "
                            "schedule: Adam with a constant lr is used. Its normalisation is the DeiT feature "
                            "extractor's, i.e. the backbone's ImageNet statistics."),
    # -- C. R2: the CIFAR-10 mean/std ------------------------------------------------------------------------------
    "r2-densenet201-last-block": Preset(dict(_R2, model="densenet201"), "R2", (
        Reference("R2", "accuracy", 0.9303, "denseblock4 + norm5 unfrozen; train 0.9860"),
        Reference("R2", "mean_seconds_per_epoch", 173.19, "training seconds per epoch on R2's GPU (+27.37 s "
                                                          "validation)"),
        Reference("paper", "accuracy", 0.94757, "DenseNet201, which R2's table puts beside its own")), _R2_GAPS),
    "r2-cait-last-block": Preset(dict(_R2, model="cait_s24"), "R2", (
        Reference("R2", "accuracy", 0.9619, "last class-attention block + norm unfrozen; train 0.9872"),
        Reference("R2", "mean_seconds_per_epoch", 308.34, "training seconds per epoch on R2's GPU (+62.07 s "
                                                          "validation)"),
        Reference("paper", "accuracy", 0.96000, "CaiT-S24, which R2's table puts beside its own")), _R2_GAPS),
    # -- D. R3 -------------------------------------------------------------------------------------------------------
    "mlp-baseline": Preset(dict(task=NAME, model="mlp", strategy="scratch", optimizer="sgd", lr=0.01, momentum=0.9,
                                nesterov=True, weight_decay=1e-6, scheduler="none", batch_size=128, epochs=20),
                           "R3", (Reference("R3", "accuracy", 0.4618, "test accuracy (test loss 1.508), SGD lr 0.01 "
                                                                      "with Nesterov momentum 0.9"),),
                           "R3 gives no batch size, epochs or normalisation: batch 128, 20 epochs and the CIFAR-10 "
                           "mean/std are this project's. Its 'decay 1e-6' is read as weight decay; if it was Keras's "
                           "per-step learning-rate decay lr/(1 + 1e-6 t), that lowers the lr by under 1% over 20 "
                           "epochs, and no scheduler here implements it."),
    "r3-beit-full": Preset(dict(task=NAME, model="beit_base", strategy="full", optimizer="adam", lr=1e-4,
                                scheduler="none", batch_size=64, epochs=5, head="paper", normalize="backbone"), "R3", (
        Reference("R3", "accuracy", 0.9869, "fine-tuned BEiT; macro F1 0.98688, train loss 0.1253, validation loss "
                                            "0.0566"),),
        "R3 gives only its results: the optimizer, lr, batch size, epochs, head and normalisation here are this "
        "project's defaults for fine-tuning, and CIFAR-10 is assumed as its data set (the report's MLP uses it)."),
    # -- E. R4: ResNet50 four ways (the fourth, the linear SVM, is `python -m core svm --model resnet50`) ----------
    "resnet50-scratch": Preset(dict(_R4, strategy="scratch", optimizer="adam", lr=1e-3, epochs=20), "R4", (
        Reference("R4", "accuracy", 0.0348, "cars, 10 + 10 epochs (train 0.0429)"),),
        "R4 trained 10 epochs, checkpointing every 5, then resumed for 10 more: here one run of 20 epochs "
        "checkpoints every 5 (a stopped run continues with --resume; a finished run cannot be extended). " + _CARS),
    "resnet50-feature-extraction": Preset(dict(_R4, strategy="feature_extraction", optimizer="adam", lr=1e-3,
                                               head="paper_1024", epochs=5), "R4", (
        Reference("R4", "accuracy", 0.0801, "cars, best validation after 5 epochs (43 min)"),),
        "R4's head was Dense(1024, ReLU) -> Dense(196); paper_1024 is the paper head with 1024 units (ELU and "
        "Dropout(0.5) where R4 had ReLU and no dropout; the same parameter count). " + _CARS),
    "resnet50-full": Preset(dict(_R4, strategy="full", optimizer="adam", lr=1e-4, epochs=5), "R4", (
        Reference("R4", "accuracy", 0.1957, "cars, full fine-tuning, 5 epochs"),), _CARS),
}
