"""COVID-19 tweets, real or fake (CONSTRAINT@AAAI-2021, Patwa et al. 2020): load, clean, subset, describe, encode.

The local copy lives in ``<data_dir>/constraint_covid19_fake_news/`` as three CSVs with the columns
``id,tweet,label`` (label ``real`` or ``fake``); ``data_dir`` is ``$TRANSFER_LAB_DATA`` or ``../shared/datasets``
next to the repository. The Hub copy is read with ``datasets`` only when asked for (``source="hub"``).

Labels are one number per tweet because the models give one logit: ``real`` = 1, ``fake`` = 0.

>>> train = load_split("train")                      # doctest: +SKIP
>>> len(train), train[0].label                        # doctest: +SKIP
(6420, 1)
>>> clean_tweet("Stay home 😷")
'Stay home face with medical mask'
"""
from __future__ import annotations

import csv
import os
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import emoji

from core.errors import BadInputError, BadSettingError, DataNotFoundError
from core.paths import data_dir as resolve_data_dir
from core.tasks.tweets import LABELS

LABEL_IDS = {name: i for i, name in enumerate(LABELS)}
DATASET_FOLDER = "constraint_covid19_fake_news"
SPLIT_FILES = {
    "train": "Constraint_Train.csv",
    "val": "Constraint_Val.csv",
    "test": "english_test_with_labels.csv",
}
_SPLIT_ALIASES = {"validation": "val", "valid": "val", "dev": "val"}
# The same CSVs on the Hugging Face Hub (train.csv / val.csv / test.csv, columns id,tweet,label).
HUB_DATASET_ID = "nanyy1025/covid_fake_news"
_HUB_SPLITS = {"train": "train", "val": "validation", "test": "test"}
REQUIRED_COLUMNS = ("id", "tweet", "label")
PERCENTILES = (5, 25, 50, 75, 90, 95, 99)

# Private-use characters never occur in tweets, so they mark exactly where demojize put an emoji's name.
_EMOJI_OPEN, _EMOJI_CLOSE = "\ue000", "\ue001"
_EMOJI_NAME = re.compile(f"{_EMOJI_OPEN}([^{_EMOJI_CLOSE}]*){_EMOJI_CLOSE}")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Tweet:
    """One labelled tweet. ``label``: 1 = real, 0 = fake."""

    id: str
    text: str
    label: int

    @property
    def label_name(self) -> str:
        return LABELS[self.label]


# ---------------------------------------------------------------------------------------------------------------
# Cleaning and labels
# ---------------------------------------------------------------------------------------------------------------
def clean_tweet(text: str) -> str:
    """The text a tokenizer should see: each emoji becomes its English name in words, whitespace collapsed.

    Emoji names keep their own spaces (``😷`` -> ``face with medical mask``) and are set apart from the
    neighbouring words, so ``safe😷`` -> ``safe face with medical mask``. Underscores outside emoji names
    (``@user_name``) are left alone.

    >>> clean_tweet("Masks work 👍🏽!")
    'Masks work thumbs up medium skin tone !'
    """
    if text is None or not str(text).strip():
        raise BadInputError("The tweet is empty: type some text to classify.")
    marked = emoji.demojize(str(text), delimiters=(_EMOJI_OPEN, _EMOJI_CLOSE))
    words = _EMOJI_NAME.sub(lambda m: " " + m.group(1).replace("_", " ") + " ", marked)
    return _SPACES.sub(" ", words).strip()


def label_id(name: str) -> int:
    """``"real"`` -> 1, ``"fake"`` -> 0 (case and surrounding spaces ignored); BadInputError otherwise."""
    key = str(name).strip().lower()
    if key not in LABEL_IDS:
        raise BadInputError(f"Unknown tweet label '{name}': labels must be 'real' or 'fake'.")
    return LABEL_IDS[key]


# ---------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------
def split_path(split: str, data_dir: str | os.PathLike | None = None) -> Path:
    """Path of one split's CSV; DataNotFoundError when the folder or the file is missing."""
    name = _canonical_split(split)
    folder = resolve_data_dir(data_dir) / DATASET_FOLDER
    if not folder.is_dir():
        raise DataNotFoundError(
            f"The tweet data folder {folder} does not exist; set TRANSFER_LAB_DATA to the folder that holds "
            f"{DATASET_FOLDER}/."
        )
    path = folder / SPLIT_FILES[name]
    if not path.is_file():
        raise DataNotFoundError(f"The {name} split of the tweet data set is missing: {path} does not exist.")
    return path


def load_split(split: str, data_dir: str | os.PathLike | None = None, source: str = "local") -> list[Tweet]:
    """The tweets of one split (``train``, ``val`` or ``test``) from the local CSVs or, when asked, the Hub.

    >>> len(load_split("val"))   # doctest: +SKIP
    2140
    """
    if source == "local":
        return load_tweets_csv(split_path(split, data_dir))
    if source == "hub":
        return load_tweets_hub(split)
    raise BadSettingError(f"Unknown tweet data source '{source}'; use 'local' or 'hub'.")


def load_tweets_csv(path: str | os.PathLike) -> list[Tweet]:
    """Tweets from any CSV with the columns ``id,tweet,label`` (extra columns ignored).

    Quoted multi-line tweets are read as one record. A missing file is DataNotFoundError; a missing column, an
    empty tweet or an unknown label is BadInputError naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"The tweet file {path} does not exist.")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            missing = [c for c in REQUIRED_COLUMNS if c not in columns]
            if missing:
                raise BadInputError(
                    f"{path.name} is not a tweet CSV: it needs the columns id, tweet and label "
                    f"(missing: {', '.join(missing)})."
                )
            return [_tweet_from_row(row, f"{path.name} line {reader.line_num}") for row in reader]
    except UnicodeDecodeError:
        raise BadInputError(f"{path.name} is not UTF-8 text, so it cannot be read as a tweet CSV.") from None
    except csv.Error as err:
        raise BadInputError(f"{path.name} is not a well-formed CSV file ({err}).") from None


def load_tweets_hub(split: str, dataset_id: str = HUB_DATASET_ID) -> list[Tweet]:
    """One split from the Hugging Face Hub through ``datasets``; any failure is one DataNotFoundError."""
    name = _canonical_split(split)
    try:
        import datasets

        rows = datasets.load_dataset(dataset_id, split=_HUB_SPLITS[name])
    except Exception as err:  # offline, unknown id, changed layout: all mean "not available here"
        raise DataNotFoundError(
            f"Could not load the {name} split of {dataset_id} from the Hugging Face Hub "
            f"({type(err).__name__}); use the local CSVs instead."
        ) from err
    missing = [c for c in REQUIRED_COLUMNS if c not in rows.column_names]
    if missing:
        raise BadInputError(f"The Hub data set {dataset_id} lacks the columns {', '.join(missing)}.")
    return [_tweet_from_row(row, f"{dataset_id} {name} row {i}") for i, row in enumerate(rows)]


def _canonical_split(split: str) -> str:
    name = _SPLIT_ALIASES.get(split, split)
    if name not in SPLIT_FILES:
        raise BadSettingError(f"Unknown tweet split '{split}'; use train, val or test.")
    return name


def _tweet_from_row(row: dict, where: str) -> Tweet:
    text = row.get("tweet")
    if text is None or not str(text).strip():
        raise BadInputError(f"Empty tweet text at {where}.")
    label = row.get("label")
    if label is None:
        raise BadInputError(f"Missing label at {where}.")
    try:
        return Tweet(id=str(row.get("id", "")).strip(), text=str(text), label=label_id(label))
    except BadInputError:
        raise BadInputError(f"Unknown label '{label}' at {where}: labels must be 'real' or 'fake'.") from None


# ---------------------------------------------------------------------------------------------------------------
# Subsets and statistics
# ---------------------------------------------------------------------------------------------------------------
def limit_tweets(tweets: Sequence[Tweet], n: int | None, seed: int = 0) -> list[Tweet]:
    """A class-balanced, deterministic subset of ``n`` tweets, kept in their original order.

    Each label gets ``n // 2`` (``real`` takes the odd one); when one label runs short the other fills in.
    ``n=None`` or ``n >= len(tweets)`` returns every tweet.

    >>> [t.label for t in limit_tweets([Tweet("1", "a", 1), Tweet("2", "b", 1), Tweet("3", "c", 0)], 2)]
    [1, 0]
    """
    if n is None or n >= len(tweets):
        return list(tweets)
    if n <= 0:
        raise BadSettingError(f"The number of tweets must be positive, not {n}.")
    rng = random.Random(seed)
    by_label: dict[int, list[int]] = {lab: [] for lab in range(len(LABELS))}
    for i, t in enumerate(tweets):
        by_label[t.label].append(i)
    for idx in by_label.values():
        rng.shuffle(idx)
    want = {1: n - n // 2, 0: n // 2}
    for lab, other in ((0, 1), (1, 0)):  # a short label hands its shortfall to the other one
        short = want[lab] - len(by_label[lab])
        if short > 0:
            want[lab] -= short
            want[other] += short
    chosen = sorted(i for lab in (0, 1) for i in by_label[lab][: want[lab]])
    return [tweets[i] for i in chosen]


@dataclass(frozen=True)
class TweetStatistics:
    """Label counts and tweet lengths in whitespace-separated words (of the text as stored).

    ``histogram`` holds ``edges`` (bins + 1 numbers) and ``counts`` per label name and for ``all``, so a bar or
    overlaid-histogram plot needs nothing else.
    """

    n: int
    label_counts: dict[str, int]
    words_min: int
    words_max: int
    words_mean: float
    words_percentiles: dict[int, float]
    histogram: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "n": self.n,
            "label_counts": dict(self.label_counts),
            "words": {"min": self.words_min, "max": self.words_max, "mean": self.words_mean,
                      "percentiles": {str(p): v for p, v in self.words_percentiles.items()}},
            "histogram": self.histogram,
        }


def tweet_statistics(tweets: Sequence[Tweet], bins: int = 20) -> TweetStatistics:
    """Counts per label and the word-length distribution of ``tweets``.

    Percentiles use linear interpolation between order statistics (numpy's default).

    >>> s = tweet_statistics([Tweet("1", "a b", 1), Tweet("2", "a b c d", 0)], bins=2)
    >>> s.label_counts, s.words_mean, s.histogram["edges"], s.histogram["counts"]["all"]
    ({'fake': 1, 'real': 1}, 3.0, [2.0, 3.0, 4.0], [1, 1])
    """
    if not tweets:
        raise BadInputError("There are no tweets to describe.")
    if bins < 1:
        raise BadSettingError(f"A histogram needs at least one bin, not {bins}.")
    import numpy as np

    lengths = np.array([len(t.text.split()) for t in tweets])
    labels = np.array([t.label for t in tweets])
    counts = Counter(int(x) for x in labels)
    lo, hi = int(lengths.min()), int(lengths.max())
    edges = np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
    hist = {"all": np.histogram(lengths, edges)[0].tolist()}
    for lab, name in enumerate(LABELS):
        hist[name] = np.histogram(lengths[labels == lab], edges)[0].tolist()
    return TweetStatistics(
        n=len(tweets),
        label_counts={name: counts.get(lab, 0) for lab, name in enumerate(LABELS)},
        words_min=lo,
        words_max=hi,
        words_mean=float(lengths.mean()),
        words_percentiles={p: float(np.percentile(lengths, p)) for p in PERCENTILES},
        histogram={"edges": edges.tolist(), "counts": hist},
    )


# ---------------------------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------------------------
def encode_tweets(tweets: Iterable[Tweet | str], tokenizer, max_length: int = 128, clean: bool = True) -> dict:
    """Tokenise cleaned tweets into tensors, truncated and padded (on the right) to ``max_length``.

    Returns ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the tokenizer makes them), each
    (N, max_length) int64, plus ``labels`` (N,) float32 when every item is a :class:`Tweet`. Plain strings are
    accepted for prediction.

    >>> batch = encode_tweets([Tweet("1", "Stay safe 😷", 1)], tokenizer, max_length=16)   # doctest: +SKIP
    >>> batch["input_ids"].shape, batch["labels"]                                              # doctest: +SKIP
    (torch.Size([1, 16]), tensor([1.]))
    """
    import torch

    items = list(tweets)
    if not items:
        raise BadInputError("There are no tweets to encode.")
    if max_length < 2:
        raise BadSettingError(f"max_length must leave room for [CLS] and [SEP], not {max_length}.")
    texts = [t.text if isinstance(t, Tweet) else t for t in items]
    texts = [clean_tweet(t) if clean else _require_text(t) for t in texts]
    # Right padding whatever the tokenizer's default: the GRU heads pack by length and rely on it.
    enc = tokenizer(texts, truncation=True, padding="max_length", max_length=max_length, padding_side="right",
                    return_tensors="pt")
    batch = {k: enc[k].long() for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
    if all(isinstance(t, Tweet) for t in items):
        batch["labels"] = torch.tensor([t.label for t in items], dtype=torch.float32)
    return batch


def _require_text(text) -> str:
    if text is None or not str(text).strip():
        raise BadInputError("The tweet is empty: type some text to classify.")
    return str(text)


SPLITS = ("train", "val", "test")


def statistics(tweets: Sequence[Tweet]) -> dict:
    """Label counts and tweet lengths in words (:func:`tweet_statistics`), as JSON."""
    return tweet_statistics(tweets).to_json()


def load_examples(split: str, data_dir: str | os.PathLike | None = None,
                  data_file: str | os.PathLike | None = None) -> list[Tweet]:
    """One split as the task registry asks for it (``TaskSpec.load_examples``): a user CSV (``id,tweet,label``)
    given as ``data_file``, else the CONSTRAINT CSVs under the data folder."""
    if data_file is not None:
        return load_tweets_csv(data_file)
    return load_split(split, data_dir)


def hub_dataset() -> dict:
    """The data set's Hub copy for ``python -m core prefetch``: its id, the Hub split names (as ``datasets``
    caches them), the same splits as :func:`load_split` names them, and the loader users run."""
    return {"hub_id": HUB_DATASET_ID, "hub_splits": tuple(_HUB_SPLITS.values()), "loader_splits": tuple(_HUB_SPLITS),
            "load": lambda split: load_split(split, source="hub")}
