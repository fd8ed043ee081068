"""Every registered model of every task, under every strategy it supports, the way timm's tests loop over
``list_models()``: a model is tested here the moment it is registered.

Each model is built from its config with random weights (no download), the strategy applied, and one training step
run on a tiny input (batch 1; 8 tokens for text). The checks: the loss is finite, every trainable parameter gets a
finite gradient, every frozen one none at all, the strategy trains exactly its groups (feature_extraction: the head;
last_block: the head and ``last_block_modules()``; scratch/full: everything), frozen modules stay in eval mode and
their buffers (BatchNorm statistics) do not move.

Image models whose pretrained input is above 224 px (EfficientNetV2-L at 384, NFNet-F6 at 448 with 436 M parameters)
would take minutes per step on a CPU; they are built and stepped on the meta device instead, where shapes, the
autograd graph (which parameters get a gradient) and train/eval modes are real but values do not exist, so the
finiteness and buffer checks are left to the models that run on the CPU.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from core import registry
from core.freezing import apply_strategy, set_train_mode

SEQ_LEN = 8  # tokens per text input
CPU_INPUT_SIZE = 224  # image models with a larger pretrained input are stepped on the meta device


def _cases() -> list:
    """(model, strategy) pairs in registry order, so one model's strategies run one after another on one build."""
    return [pytest.param(spec.name, strategy, id=f"{spec.name}-{strategy}")
            for spec in registry.list_models() for strategy in spec.strategies]


@pytest.fixture(scope="module")
def built():
    """``built(name)``: the model built with random weights, kept only until the next name (one in memory)."""
    cache: dict[str, nn.Module] = {}

    def get(name: str) -> nn.Module:
        if name not in cache:
            cache.clear()
            spec = registry.get(name)
            request = registry.BuildRequest(num_classes=registry.get_task(spec.task).num_outputs, weights="random")
            model = None
            if spec.task == "images":
                with torch.device("meta"):  # no memory, no initialisation: what its input size is
                    model = registry.build(name, request)
            if model is None or getattr(model, "input_size", 0) <= CPU_INPUT_SIZE:
                model = registry.build(name, request)
            cache[name] = model
        return cache[name]

    yield get
    cache.clear()


# One small training input per task, as the task's adapter feeds its model: keyword arguments of forward(),
# labels included, so that ``model(**inputs)["loss"]`` is the task's own loss.
def _image_inputs(model: nn.Module, g: torch.Generator) -> dict:
    images = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8, generator=g)  # a CIFAR-sized image
    return {"pixel_values": model.preprocess(images), "labels": torch.tensor([3])}  # resized to the model's size


def _token_inputs(model: nn.Module, g: torch.Generator) -> dict:
    # Ids above the special tokens of every vocabulary here (BERT [PAD]=0 .. XLM-R <unk>=3).
    ids = torch.randint(5, model.encoder.config.vocab_size, (1, SEQ_LEN), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}


def _tweet_inputs(model: nn.Module, g: torch.Generator) -> dict:
    return {**_token_inputs(model, g), "labels": torch.tensor([1.0])}


def _qa_inputs(model: nn.Module, g: torch.Generator) -> dict:
    return {**_token_inputs(model, g), "start_positions": torch.tensor([2]), "end_positions": torch.tensor([4])}


INPUTS = {"images": _image_inputs, "tweets": _tweet_inputs, "qa": _qa_inputs}


def test_every_task_has_an_input_here():
    # A new task fails here, by name, instead of with a KeyError in every one of its models' cases.
    assert set(registry.task_names()) <= set(INPUTS)


def _ids(modules) -> set[int]:
    return {id(p) for m in modules for p in m.parameters()}


def _never_read(model: nn.Module) -> set[int]:
    """Parameters the model declares it never reads: a BiGRU tweet head reads the hidden states, not BERT's
    pooler, which stays in the model only because it is part of the checkpoint."""
    if getattr(model, "feature_kind", None) == "sequence" and getattr(model.encoder, "pooler", None) is not None:
        return _ids([model.encoder.pooler])
    return set()


@pytest.mark.parametrize(("name", "strategy"), _cases())
def test_one_step_reaches_exactly_what_the_strategy_trains(name, strategy, built):
    spec = registry.get(name)
    model = built(name)
    torch.manual_seed(0)  # dropout masks
    apply_strategy(model, strategy)
    set_train_mode(model, True)
    model.zero_grad(set_to_none=True)
    params = dict(model.named_parameters())
    by_id = {id(p): n for n, p in params.items()}

    # What the strategy should train, from the model's own answers.
    everything = set(by_id)
    head = _ids(model.head_modules())
    last = _ids(model.last_block_modules())
    expected = {"scratch": everything, "full": everything, "feature_extraction": head,
                "last_block": head | last}[strategy]
    assert head and last and head < everything and (head | last) < everything
    trainable = {id(p) for p in params.values() if p.requires_grad}
    assert sorted(by_id[i] for i in trainable) == sorted(by_id[i] for i in expected)

    # Frozen modules stay in eval mode, so frozen BatchNorm statistics and dropout do not move.
    frozen_modules = [m for m in model.modules() if not m.training]
    if strategy in ("scratch", "full"):
        assert frozen_modules == []
    else:
        assert all(not any(p.requires_grad for p in m.parameters(recurse=False)) for m in frozen_modules)
        assert model.training is False  # the root holds frozen parts, so it is in eval mode
    frozen_buffers = {id(b): b.clone() for m in frozen_modules for b in m.buffers(recurse=False)}

    meta = next(model.parameters()).is_meta
    device = next(model.parameters()).device
    inputs = {k: v.to(device) for k, v in INPUTS[spec.task](model, torch.Generator().manual_seed(0)).items()}
    loss = model(**inputs)["loss"]
    assert loss.dim() == 0 and (meta or torch.isfinite(loss))
    loss.backward()

    unread = _never_read(model)
    no_grad = sorted(by_id[id(p)] for p in params.values()
                     if p.requires_grad and id(p) not in unread and p.grad is None)
    not_finite = sorted(n for n, p in params.items()
                        if p.grad is not None and not meta and not torch.isfinite(p.grad).all())
    frozen_with_grad = sorted(n for n, p in params.items() if not p.requires_grad and p.grad is not None)
    assert no_grad == [] and not_finite == [] and frozen_with_grad == []
    assert all(params[by_id[i]].grad is None for i in unread)  # what the model declares unread really is
    changed = [m for m in frozen_modules for b in m.buffers(recurse=False)
               if not meta and id(b) in frozen_buffers and not torch.equal(b, frozen_buffers[id(b)])]
    assert changed == []
    model.zero_grad(set_to_none=True)  # the next strategy starts from no gradients
