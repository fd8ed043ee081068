"""head="paper_1024" widens the paper head; normalize picks the mean/std preprocess really uses."""
import pytest
import torch
from torch import nn

from core.errors import BadSettingError
from core.tasks.images.models import (CIFAR10_MEAN, CIFAR10_STD, Backbone, ImageClassifier, MLPClassifier,
                                      normalization, set_normalization)


class _Tiny(Backbone):
    def __init__(self):
        super().__init__(nn.Identity())

    n_outputs = 1

    def forward(self, x):
        return x.mean(dim=(2, 3))  # (B, 3)


def _hidden(model):
    return model.heads[0][1].out_features


@pytest.mark.parametrize("head,width", [("paper", 256), ("paper_1024", 1024)])
def test_paper_head_width(head, width):
    model = ImageClassifier(_Tiny(), 3, 196, 8, (0.5,) * 3, (0.5,) * 3, head)
    assert _hidden(model) == width and model.heads[0][-1].in_features == width
    assert model(torch.zeros(2, 3, 8, 8))["logits"].shape == (2, 196)


def test_unknown_head_is_refused():
    with pytest.raises(BadSettingError):
        ImageClassifier(_Tiny(), 3, 10, 8, (0.5,) * 3, (0.5,) * 3, "wide")


def test_normalization_choices():
    bm, bs = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    assert normalization("backbone", bm, bs) == (bm, bs)
    assert normalization("cifar10", bm, bs) == (CIFAR10_MEAN, CIFAR10_STD)
    assert normalization("half", bm, bs) == ((0.5,) * 3, (0.5,) * 3)
    with pytest.raises(BadSettingError):
        normalization("imagenet", bm, bs)


def test_set_normalization_changes_preprocess():
    images = torch.full((1, 3, 32, 32), 255, dtype=torch.uint8)  # pixel value 1.0
    backbone = ImageClassifier(_Tiny(), 3, 10, 32, (0.2,) * 3, (0.4,) * 3)
    assert torch.allclose(set_normalization(backbone, "backbone").preprocess(images), torch.tensor(2.0))
    half = set_normalization(ImageClassifier(_Tiny(), 3, 10, 32, (0.2,) * 3, (0.4,) * 3), "half")
    assert torch.allclose(half.preprocess(images), torch.tensor(1.0))  # (1 - 0.5) / 0.5
    cifar = set_normalization(MLPClassifier(10), "cifar10").preprocess(images)
    want = (1 - torch.tensor(CIFAR10_MEAN)) / torch.tensor(CIFAR10_STD)
    assert torch.allclose(cifar[0, :, 0, 0], want)
