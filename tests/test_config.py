"""TrainConfig's newer settings: SGD with (Nesterov) momentum, the image head and normalisation choices, the step
log, precision, micro-batches and devices; each bad value is one sentence."""
import pytest
import torch

from core.config import CHOICES, TrainConfig
from core.engine.fit import make_optimizer
from core.errors import BadSettingError


def _cfg(**kw):
    return TrainConfig(task="images", model="mlp", strategy="scratch", **kw)


def test_sgd_with_nesterov_momentum_builds_that_optimizer():
    cfg = _cfg(optimizer="sgd", momentum=0.9, nesterov=True, weight_decay=1e-4).validate()
    param = torch.nn.Parameter(torch.zeros(3))
    opt = make_optimizer(cfg, [param], 0.01)
    assert isinstance(opt, torch.optim.SGD)
    group = opt.param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"], group["weight_decay"]) == (0.01, 0.9, True, 1e-4)


def test_adam_is_still_the_default():
    opt = make_optimizer(_cfg().validate(), [torch.nn.Parameter(torch.zeros(1))], 1e-3)
    assert type(opt) is torch.optim.Adam


@pytest.mark.parametrize("settings, words", [
    ({"optimizer": "adam", "nesterov": True}, "Nesterov momentum needs the sgd optimizer"),
    ({"optimizer": "sgd", "momentum": 0.0, "nesterov": True}, "Nesterov momentum needs the sgd optimizer"),
    ({"momentum": 1.0}, "Momentum must be at least 0 and below 1"),
    ({"momentum": float("nan")}, "Momentum must be at least 0 and below 1"),
    ({"log_every": -1}, "Log every must be a whole number"),
    ({"log_every": 2.5}, "Log every must be a whole number"),
    ({"nesterov": "yes"}, "Nesterov must be true or false"),
    ({"normalize": "imagenet"}, "Unknown normalize 'imagenet'; use backbone, cifar10 or half."),
    ({"precision": "fp16"}, "Unknown precision 'fp16'; use auto, fp32 or bf16."),
    ({"head": "huge"}, "Unknown head 'huge'; use paper, paper_1024 or linear."),
    ({"optimizer": "rmsprop"}, "Unknown optimizer 'rmsprop'; use adam, adamw or sgd."),
    ({"micro_batch": -1}, "Micro batch must be a whole number of examples from 0 (the whole batch) to 4,096"),
    ({"micro_batch": 2.5}, "Micro batch must be a whole number"),
    ({"micro_batch": True}, "Micro batch must be a whole number"),
    ({"devices": 0}, "Devices must be a whole number from 1 to 1,024; got 0."),
    ({"devices": 1.5}, "Devices must be a whole number"),
    ({"devices": 4, "batch_size": 3, "device": "cpu"}, "The batch size (3) is the global batch shared by the 4 "
                                                       "devices, so it must be at least 4."),
])
def test_a_bad_value_is_one_sentence(settings, words):
    with pytest.raises(BadSettingError) as err:
        _cfg(**settings).validate()
    message = str(err.value)
    assert words in message and message.count(". ") == 0 and message.endswith(".")


def test_micro_batch_and_devices_in_range_are_accepted():
    assert _cfg(micro_batch=0).validate().micro_batch == 0 and _cfg(micro_batch=7).validate().micro_batch == 7
    assert _cfg(devices=2, device="cpu").validate().devices == 2  # CPU processes need no GPU


@pytest.mark.parametrize("device", ["cuda", "auto"])
def test_devices_on_cuda_need_that_many_gpus(monkeypatch, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(BadSettingError) as err:
        _cfg(devices=2, device=device).validate()
    assert str(err.value) == "Training on 2 devices needs 2 GPUs; this machine has 1."
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert _cfg(devices=2, device=device).validate().devices == 2


def test_new_settings_round_trip_through_config_json():
    cfg = _cfg(optimizer="sgd", nesterov=True, normalize="half", head="paper_1024", log_every=7, precision="bf16",
               micro_batch=8, devices=2)
    again = TrainConfig.from_json(cfg.to_json())
    assert again == cfg


def test_every_choice_is_a_tuple_of_names():
    for name, allowed in CHOICES.items():
        assert allowed and all(isinstance(v, str) for v in allowed), name
