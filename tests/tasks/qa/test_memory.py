"""The QA fine-tune's memory levers (core/tasks/qa/models.py, task.py): the word-embedding table that trains only
the rows the training windows use (TrainedRowsEmbedding) and activation checkpointing. Fast tests on tiny random
encoders; no memory figures are asserted (the README gives the measured ones)."""
from __future__ import annotations

import dataclasses
import json
from unittest import mock

import pytest
import torch
from torch import nn

from core import registry
from core.config import TrainConfig
from core.engine.fit import make_optimizer
from core.errors import BadSettingError, RunNotFoundError
from core.freezing import apply_strategy, trainable_parameters
from core.registry import BuildRequest
from core.tasks.qa import models as M
from core.tasks.qa.data import QAExample
from core.tasks.qa.task import QATask, make_split

pytestmark = pytest.mark.usefixtures("offline")  # tests/conftest.py: the Hub counts as unreachable

SMALL_BERT = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                  max_position_embeddings=64, type_vocab_size=2, pad_token_id=1)
# The XLM-R vocabulary, so that the e5 package's tokenizer can feed it.
XLMR_VOCAB_BERT = dict(SMALL_BERT, vocab_size=250037, hidden_size=16, num_attention_heads=2, intermediate_size=20)


def small_model(config: dict = SMALL_BERT, seed: int = 0) -> M.QAModel:
    arch = M.QAArch("none", "bert", config)
    model = M.build_qa_model(registry.get("e5_small"), BuildRequest(num_classes=2, weights="random", seed=seed), arch)
    return apply_strategy(model, "full")


def windows(seed: int = 0, b: int = 4, t: int = 12, vocab: int = 40) -> dict:
    """A batch of right-padded windows over token ids 2..vocab-1 (id 1 is padding), with span labels."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, vocab, (b, t), generator=g)
    mask = torch.ones(b, t, dtype=torch.long)
    mask[1, 8:] = 0
    mask[2, 5:] = 0
    ids[mask == 0] = 1
    return {"input_ids": ids, "attention_mask": mask, "start_positions": torch.randint(0, 5, (b,), generator=g),
            "end_positions": torch.randint(5, 8, (b,), generator=g)}


def train_steps(model: M.QAModel, batches: list[dict], weight_decay: float = 0.0) -> list[float]:
    cfg = TrainConfig(task="qa", model="e5_small", strategy="full", optimizer="adamw", weight_decay=weight_decay)
    opt = make_optimizer(cfg, trainable_parameters(model), 1e-2)
    model.train()
    losses = []
    torch.manual_seed(0)  # the same dropout draws for every model trained here
    for b in batches:
        opt.zero_grad(set_to_none=True)
        loss = model(**b)["loss"]
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


# ----------------------------------------------------------------------------------- TrainedRowsEmbedding
def test_trained_rows_read_the_table_and_only_they_train():
    model = small_model()
    table = model.word_embeddings()
    before = table.weight.detach().clone()
    compact = model.train_rows_only(torch.tensor([[5, 7, 1], [7, 9, 5]]))
    assert model.word_embeddings() is compact and model.trained_rows is compact
    assert compact.trained_ids.tolist() == [5, 7, 9]  # unique and sorted; the padding row (1) never trains
    ids = torch.tensor([[0, 5, 7, 9, 1, 98]])
    assert torch.equal(compact(ids), before[ids])  # the same vectors as the plain table
    # The table is frozen: not given to the optimizer, and no gradient reaches it.
    params = {id(p) for p in trainable_parameters(model)}
    assert id(compact.weight) not in params and id(compact.trained_rows) in params
    compact(ids).sum().backward()
    assert compact.weight.grad is None
    assert compact.trained_rows.grad.shape == (3, SMALL_BERT["hidden_size"])
    with torch.no_grad():
        compact.trained_rows += 1.0
    out = compact(ids)
    assert torch.equal(out[0, 1:4], before[[5, 7, 9]] + 1.0) and torch.equal(out[0, [0, 4, 5]], before[[0, 1, 98]])
    assert torch.equal(compact.merged_weight()[[5, 7, 9]], before[[5, 7, 9]] + 1.0)


def test_trained_rows_refuse_ids_outside_the_table():
    with pytest.raises(Exception, match="0..98"):
        small_model().train_rows_only(torch.tensor([3, 99]))


def test_training_only_the_used_rows_is_the_same_training():
    """With no weight decay, AdamW on the whole table and on the used rows end at the same weights (dropout on,
    the same draws), because the rows no window uses get zero gradients and never move."""
    batches = [windows(seed) for seed in range(4)]
    used = torch.cat([b["input_ids"][b["attention_mask"].bool()] for b in batches])
    whole, rows = small_model(), small_model()
    rows.train_rows_only(used)
    losses_whole, losses_rows = train_steps(whole, batches), train_steps(rows, batches)
    assert losses_whole == pytest.approx(losses_rows, rel=1e-5)
    merged = rows.trained_rows.merged_weight()
    assert torch.allclose(whole.word_embeddings().weight, merged, atol=1e-6)
    others = {n: p for n, p in rows.named_parameters() if "word_embeddings" not in n}
    for name, p in whole.named_parameters():
        if "word_embeddings" not in name:
            assert torch.allclose(p, others[name], atol=1e-5), name
    # Unused rows kept their pretrained values in both.
    unused = torch.ones(SMALL_BERT["vocab_size"], dtype=torch.bool)
    unused[used] = False
    assert torch.equal(whole.word_embeddings().weight[unused], small_model().word_embeddings().weight[unused])


def test_weight_decay_moves_unused_rows_so_the_task_keeps_the_whole_table():
    """The reason the task trains the whole table under weight decay: AdamW then shrinks rows no window uses."""
    batches = [windows(0)]
    model = small_model()
    train_steps(model, batches, weight_decay=0.1)
    assert not torch.equal(model.word_embeddings().weight[90], small_model().word_embeddings().weight[90])


# ----------------------------------------------------------------------------------- activation checkpointing
def test_activation_checkpointing_gives_the_same_loss_and_gradients():
    b = windows(1)
    grads = []
    for on in (False, True):
        model = small_model()
        model.set_activation_checkpointing(on)
        assert model.activation_checkpointing is on
        model.train()
        torch.manual_seed(3)  # dropout on: the recomputed forward must replay the same draws
        out = model(**b)
        out["loss"].backward()
        grads.append((float(out["loss"].detach()), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (loss_off, g_off), (loss_on, g_on) = grads
    assert loss_on == pytest.approx(loss_off, rel=1e-6)
    for name, g in g_off.items():
        assert torch.allclose(g, g_on[name], atol=1e-6, rtol=1e-4), name


def test_activation_checkpointing_recomputes_in_backward_only_in_training():
    model = small_model()
    model.set_activation_checkpointing(True)
    calls = []
    layer = model.encoder.encoder.layer[0]
    layer.attention.register_forward_hook(lambda *args: calls.append(1))
    b = windows(2)
    model.train()
    model(**b)["loss"].backward()
    assert len(calls) == 2  # the forward, then the recomputation in the backward pass
    calls.clear()
    model.eval()
    with torch.no_grad():
        model(**b)
    assert len(calls) == 1
    model.set_activation_checkpointing(False)
    assert not model.activation_checkpointing


# ----------------------------------------------------------------------------------- the task
def qa_task(weight_decay: float = 0.0, strategy: str = "full") -> QATask:
    """A QATask with a small train split, building a tiny random BERT over the XLM-R vocabulary."""
    cfg = TrainConfig(task="qa", model="e5_small", strategy=strategy, max_length=48, doc_stride=16,
                      weight_decay=weight_decay)
    task = QATask(cfg, torch.device("cpu"))
    examples = [QAExample("a", "", "تهران پایتخت ایران است.", "پایتخت ایران کجاست؟", (("تهران", 0),), False),
                QAExample("b", "", "البرز در شمال تهران است.", "البرز کجاست؟", (), True)]
    task.splits["train"] = make_split(examples, task.tokenizer(), 48, 16, "test")
    tiny = dataclasses.replace(registry.get("e5_small"), build=lambda spec, req: small_model(XLMR_VOCAB_BERT))
    with mock.patch.object(registry, "check", lambda *args: tiny):
        task.build_model()
    return task


def test_the_task_trains_the_used_rows_without_weight_decay_only():
    task = qa_task()
    rows = task.model.trained_rows
    split = task.splits["train"]
    used = set(split.windows["input_ids"][split.windows["attention_mask"].bool()].tolist()) - {1}
    assert set(rows.trained_ids.tolist()) == used
    counts = task.parameter_counts()
    total = sum(p.numel() for n, p in task.model.named_parameters() if not n.endswith("trained_rows"))
    assert counts["total"] == total
    assert counts["trainable"] == total - 250037 * 16 + len(used) * 16
    assert task.describe()["word_embeddings"]["trained_rows"] == len(used)
    assert qa_task(weight_decay=0.01).model.trained_rows is None
    assert qa_task(strategy="last_block").model.trained_rows is None  # the table is frozen there anyway


def test_saved_trained_rows_are_put_back_when_reopening():
    task = qa_task()
    with torch.no_grad():
        task.model.trained_rows.trained_rows.add_(0.5)
    saved = task.state_to_save()
    assert not any(k.endswith("word_embeddings.weight") for k in saved)  # the frozen table is rebuilt instead
    fingerprint = task.frozen_fingerprint()
    # A reopened run: the same model without the train split, then the saved weights.
    reopened = QATask(task.cfg, torch.device("cpu"))
    reopened.spec = task.spec
    reopened._finish_model(small_model(XLMR_VOCAB_BERT))
    reopened.load_state(saved, fingerprint)
    ids = torch.tensor([[0, *task.model.trained_rows.trained_ids[:5].tolist(), 7]])
    assert torch.equal(reopened.model.word_embeddings()(ids), task.model.word_embeddings()(ids))
    # Weights whose trained rows differ from the ones this run's windows use are refused in one sentence.
    other = dict(saved)
    key = next(k for k in saved if k.endswith("trained_ids"))
    other[key] = saved[key][:-1]
    other[key.replace("trained_ids", "trained_rows")] = saved[key.replace("trained_ids", "trained_rows")][:-1]
    with pytest.raises(RunNotFoundError, match="training data changed"):
        task.load_state(other)


def test_the_activation_checkpointing_setting_reaches_the_encoder_and_other_tasks_refuse_it(data_dir, runs_root):
    """``activation_checkpointing`` (``--activation-checkpointing``): the QA task turns it on in its encoder (the
    same gradients: test_activation_checkpointing_gives_the_same_loss_and_gradients); a task whose models have
    no such switch refuses it in one sentence at the start of the run, and the run says so."""
    from core.engine.fit import train

    task = qa_task()
    assert not task.model.activation_checkpointing
    task.set_activation_checkpointing(True)
    assert task.model.activation_checkpointing
    with pytest.raises(BadSettingError, match="must be true or false"):
        TrainConfig(task="qa", model="e5_small", strategy="full", activation_checkpointing="yes").validate()
    cfg = TrainConfig(task="images", model="mlp", strategy="scratch", epochs=1, train_limit=20, eval_limit=10,
                      device="cpu", data_dir=str(data_dir), activation_checkpointing=True)
    with pytest.raises(BadSettingError, match="Activation checkpointing is not available for mlp"):
        train(cfg, runs_root=str(runs_root))
    (run,) = runs_root.iterdir()
    assert "Activation checkpointing is not available" in json.loads((run / "status.json").read_text())["message"]
