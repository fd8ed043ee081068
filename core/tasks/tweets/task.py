"""Tweet classification task (real vs fake COVID-19 tweets) with the registry's BERT / BERT+BiGRU / MiniLM models.

Data: train = ``Constraint_Train.csv`` (``train_limit``, class balanced by ``seed``), val = ``Constraint_Val.csv``
and test = ``english_test_with_labels.csv`` (both limited by ``eval_limit``, so per-epoch validation stays cheap);
``data_file`` (a user CSV with ``id,tweet,label``) replaces the test split and is limited the same way. The data
set has its own validation split, so ``val_fraction`` only switches validation off (0) or on (anything else).
Tweets are cleaned (emojis become words) and encoded to ``max_length`` tokens (``cfg.max_length`` or 128; 17 of
the 6,420 training tweets are longer and get truncated).

Length grouping. Tweets are short (51.6 tokens on average with [CLS]/[SEP], 95th percentile 95, a few > 128), so
padding every batch to 128 would make most of the encoder's work padding. Every forward is therefore trimmed to
the longest real length of its rows, and rows are grouped by length first: evaluation walks each split in length
order, and a training batch (random, as in ImageTask) runs its encoder in length-sorted chunks of
``TRAIN_CHUNK_ROWS`` rows on CPU (the whole batch at once on a GPU). The chunks' outputs are put back in batch
order and the head and the loss see the whole batch in one call, so the result does not depend on the chunking
except through float rounding and the encoder's dropout draws. On the 2-core machine a MiniLM training step of
64 tweets went from 3.7-5.9 s (padded to the batch's longest tweet) to 2.2-2.5 s.

Frozen-encoder cache (``feature_extraction``, ``feature_cache=True``). The encoder is frozen and in eval mode, so
its output for a tweet never changes: it is computed once per tweet of train/val/test before the first epoch, and
epochs train the head alone on the cached tensors.
  - pooled head (``bert_base``, ``minilm``): the pooled [CLS], (N, H) per split.
  - BiGRU head (``*_bigru``): the last hidden states of each tweet's *real* tokens only, stored back to back as one
    (total real tokens, H) tensor with per-tweet offsets. A batch is re-padded (zeros) to its longest tweet; the
    packed GRU never reads padding, so nothing is lost. Compared with a dense (N, 128, H) tensor this is about
    2.5 times smaller.
  Memory for the full training split (6,420 tweets) at max_length 128: dense (N, 128, H) fp16 would be
  6,420 x 128 x 384 x 2 = 631,111,680 bytes (602 MiB) for MiniLM and 6,420 x 128 x 768 x 2 = 1,262,223,360 bytes
  (1.18 GiB) for BERT-base (BERT-large, H=1024: 1.57 GiB). As stored here (327,550 real tokens): MiniLM
  327,550 x 384 x 4 = 503,116,800 bytes (480 MiB) in float32, 252 MB in fp16; BERT-base 1,006,233,600 bytes
  (960 MiB) in float32, 503 MB in fp16. All three splits together (544,883 tokens): MiniLM 837 MB in float32,
  so it stays float32; BERT-base 1.67 GB in float32, so it is stored in fp16 (837 MB).
  Pooled caches are negligible (6,420 x 384 x 4 = 9.9 MB).
  dtype: float32 when the whole cache (all splits) is below 1 GiB in float32, so cached and uncached training are
  the same computation (up to float rounding from different batch shapes); fp16 above that, which halves the
  memory and makes cached training differ slightly from the fp32 uncached path (features rounded to ~3 decimal
  digits; the head still computes in float32). A cache larger than ``cache_max_gb`` is skipped (uncached path).
  ``prepare_training`` reports the cache's bytes, dtype and kind in config.json. ``last_block`` is not cached.

>>> run = train(TrainConfig(task="tweets", model="minilm", strategy="full", train_limit=1000, epochs=2))  # doctest: +SKIP
>>> run, task = load_run_task(str(run.path)); sorted(task.predict_text("Wash your hands"))            # doctest: +SKIP
['label', 'max_length', 'probability_fake', 'probability_real', 'tokens', 'truncated']
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from core.tasks.tweets import NAME
from core.tasks.tweets.data import (LABELS, Tweet, clean_tweet, encode_tweets, limit_tweets, load_split,
                              load_tweets_csv, split_path)
from core.errors import BadSettingError
from core.metrics import classification_metrics
from core.tasks.tweets.models import load_tokenizer
from core.tasks.tweets.rows import TweetRow
from core.engine.encoder_cache import EncoderCache
from core.engine.task import EvalResult, ProgressFn, TaskRun

DEFAULT_MAX_LENGTH = 128
TRAIN_CHUNK_ROWS = 16  # CPU: rows per encoder forward inside a training batch (length-sorted chunks)
_INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass
class TweetSplit:
    """Tweets and their encoding: ``input_ids``/``attention_mask``/``token_type_ids`` (N, L), ``labels`` (N,)."""

    tweets: list[Tweet]
    encoding: dict[str, torch.Tensor]
    source: str
    lengths: torch.Tensor = field(init=False)  # (N,) real tokens per tweet (right padding)

    def __post_init__(self):
        self.lengths = self.encoding["attention_mask"].sum(dim=1)

    def __len__(self) -> int:
        return len(self.tweets)

    @property
    def labels(self) -> torch.Tensor:
        return self.encoding["labels"]


class TweetTask(TaskRun):
    task = NAME

    def __init__(self, cfg, device):
        super().__init__(cfg, device)
        self.splits: dict[str, TweetSplit] = {}
        self.labels: list[str] = list(LABELS)
        self.cache: EncoderCache | None = None
        self._tokenizer = None

    # -- model ----------------------------------------------------------------------------------------------
    def build_model(self, labels=None):
        if labels is not None and list(labels) != list(LABELS):
            raise BadSettingError(f"Tweet models predict the labels {list(LABELS)}, not {list(labels)}.")
        request = self._build_request(len(LABELS))
        spec = self.spec
        model = spec.build(spec, request)
        self._check_max_length(model.encoder.config.max_position_embeddings)
        self.tokenizer()  # fail now, not at the first prediction, when no tokenizer is available
        # Dropout's RNG is seeded by the engine (core.engine.fit.train) for new runs and restored on resume.
        return self._finish_model(model)

    @property
    def max_length(self) -> int:
        return self.cfg.max_length or DEFAULT_MAX_LENGTH

    def tokenizer(self):
        """The model's tokenizer (loaded once); ``.transfer_lab_source`` says where it came from."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.cfg.model)
        return self._tokenizer

    # -- data -----------------------------------------------------------------------------------------------
    def load_data(self, splits=("train", "val", "test")):
        cfg = self.cfg
        wanted: dict[str, tuple[list[Tweet], str]] = {}
        if "train" in splits:
            wanted["train"] = (limit_tweets(load_split("train", cfg.data_dir), cfg.train_limit, cfg.seed),
                               str(split_path("train", cfg.data_dir)))
        if "val" in splits and cfg.val_fraction > 0:
            wanted["val"] = (limit_tweets(load_split("val", cfg.data_dir), cfg.eval_limit, cfg.seed),
                             str(split_path("val", cfg.data_dir)))
        if "test" in splits:
            if cfg.data_file:
                tweets, source = load_tweets_csv(cfg.data_file), str(cfg.data_file)
            else:
                tweets, source = load_split("test", cfg.data_dir), str(split_path("test", cfg.data_dir))
            wanted["test"] = (limit_tweets(tweets, cfg.eval_limit, cfg.seed), source)
        for name, (tweets, source) in wanted.items():
            encoding = encode_tweets(tweets, self.tokenizer(), max_length=self.max_length)
            self.splits[name] = TweetSplit(tweets, encoding, source)

    def describe(self):
        return {
            "labels": list(LABELS),
            "data": {name: {"n": len(s), "source": s.source,
                            "label_counts": {lab: int((s.labels == i).sum()) for i, lab in enumerate(LABELS)}}
                     for name, s in self.splits.items()},
            "tokenizer": getattr(self.tokenizer(), "transfer_lab_source", "unknown"),
            "max_length": self.max_length,
        }

    # -- encoder features -----------------------------------------------------------------------------------
    def _inputs(self, split: TweetSplit, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """Encoder inputs of rows ``idx``, each (b, T) trimmed to the longest real length among them."""
        t = int(split.lengths[idx].max())
        return {k: split.encoding[k][idx, :t].to(self.device) for k in _INPUT_KEYS if k in split.encoding}

    def _encoder_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.model.encoder.parameters())

    def _live_features(self, split: TweetSplit, idx: torch.Tensor, chunk_rows: int) -> torch.Tensor:
        """Encoder outputs of rows ``idx`` in their order: (B, H), or (B, T_b, H) padded to the longest row.

        The encoder runs on length-sorted chunks of ``chunk_rows`` rows so that short tweets are not padded to the
        longest one of the batch."""
        order = torch.argsort(split.lengths[idx], descending=True, stable=True)
        grad = torch.is_grad_enabled() and not self._encoder_frozen()
        with torch.set_grad_enabled(grad):
            outs = [self.model.encoder_outputs(**self._inputs(split, idx[order[i:i + chunk_rows]]))
                    for i in range(0, len(idx), chunk_rows)]
        if self.model.feature_kind == "sequence":
            longest = outs[0].shape[1]  # the first chunk holds the longest rows
            outs = [F.pad(o, (0, 0, 0, longest - o.shape[1])) for o in outs]
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(len(order))
        return torch.cat(outs)[inverse.to(self.device)]

    def _features(self, name: str, idx: torch.Tensor, chunk_rows: int) -> torch.Tensor:
        if self.cache is not None and name in self.cache.features:
            return self.cache.gather(name, idx)
        return self._live_features(self.splits[name], idx, chunk_rows)

    def _head(self, name: str, idx: torch.Tensor, chunk_rows: int) -> dict:
        """The model's forward on rows ``idx`` of a split: ``logits``, ``probs`` and ``loss`` (mean BCE)."""
        split = self.splits[name]
        feats = self._features(name, idx, chunk_rows)
        mask = split.encoding["attention_mask"][idx, :int(split.lengths[idx].max())].to(self.device)
        return self.model.forward_head(feats, mask, split.labels[idx].to(self.device))

    def _length_order(self, split: TweetSplit) -> torch.Tensor:
        return torch.argsort(split.lengths, descending=True, stable=True)

    # -- feature cache --------------------------------------------------------------------------------------
    def prepare_training(self, progress: ProgressFn | None = None) -> dict:
        self.cache = None
        if not self.cfg.feature_cache or self.cfg.strategy != "feature_extraction":
            return {"feature_cache": None}
        self.model.eval()
        names = [s for s in ("train", "val", "test") if s in self.splits]
        self.cache, facts = EncoderCache.build(
            self.model.feature_kind, {s: self.splits[s].lengths for s in names},
            self.model.encoder.config.hidden_size,
            lambda name, idx: self.model.encoder_outputs(**self._inputs(self.splits[name], idx)),
            self.cfg.eval_batch_size, self.device, self.cfg.cache_max_gb, progress)
        return facts

    # -- training -------------------------------------------------------------------------------------------
    def train_batches(self, epoch):
        """Random batches of tweets of similar length (groups of 50 batches sorted by length, as transformers'
        LengthGroupedSampler): a batch is trimmed to its longest tweet, so at batch 16 the encoder reads about half
        the tokens of plain random batches (bench/bench_tweets_trainer.py counts them)."""
        return self.length_grouped_batches(epoch, self.splits["train"].lengths)

    def train_step(self, batch):
        chunk = TRAIN_CHUNK_ROWS if self.device.type == "cpu" else len(batch)
        out = self._head("train", batch, chunk)
        labels = self.splits["train"].labels[batch].to(out["logits"].device)
        correct = int(((out["logits"] > 0).float() == labels).sum())
        return out["loss"], correct, len(batch)

    # -- evaluation -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def logits_for(self, split: str, progress: ProgressFn | None = None) -> torch.Tensor:
        """(N,) float32 logits (log-odds of real) of a split, in the split's order."""
        data = self.splits[split]
        self.model.eval()
        logits = torch.empty(len(data))
        order = self._length_order(data)
        bs = self.cfg.eval_batch_size
        for i in range(0, len(data), bs):
            idx = order[i:i + bs]
            logits[idx] = self._head(split, idx, len(idx))["logits"].float().cpu()
            if progress:
                progress(f"eval:{split}", min(i + bs, len(data)), len(data))
        return logits

    def evaluate(self, split, progress=None):
        data = self.splits[split]
        logits = self.logits_for(split, progress)
        y = data.labels
        loss = float(F.binary_cross_entropy_with_logits(logits, y)) if len(data) else float("nan")
        probs = torch.sigmoid(logits)  # P(real)
        pred = (logits > 0).long()
        metrics = classification_metrics(y.long().tolist(), pred.tolist(), list(LABELS),
                                         positive_scores=probs.tolist())
        metrics["loss"] = loss
        predictions = []
        if split == "test":
            for i, tweet in enumerate(data.tweets):
                p = int(pred[i])
                predictions.append(TweetRow(
                    id=tweet.id, index=i, text=tweet.text, label=tweet.label, label_name=LABELS[tweet.label],
                    prediction=p, prediction_name=LABELS[p], probability_real=round(float(probs[i]), 6),
                    correct=tweet.label == p))
        return EvalResult(metrics, predictions)

    # -- inference ------------------------------------------------------------------------------------------
    def predict_text(self, text: str) -> dict:
        """Real or fake for one tweet; BadInputError for empty text. Text longer than ``max_length`` tokens is
        truncated (``"truncated": True``).

        >>> task.predict_text("Wash your hands 🧼")   # doctest: +SKIP
        {'label': 'real', 'probability_real': 0.93, 'probability_fake': 0.07, 'truncated': False, 'tokens': 8, ...}
        """
        return self.predict_texts([text])[0]

    @torch.no_grad()
    def predict_texts(self, texts: list[str]) -> list[dict]:
        """``predict_text`` for many tweets in one forward pass (padded to the longest; the attention mask hides
        the padding, so each answer equals the one-tweet answer up to float rounding). BadInputError for an
        empty tweet: callers that must not fail the whole batch check each text with ``clean_tweet`` first."""
        if self.model is None:
            raise BadSettingError("Build or load a tweet model before predicting.")
        if not texts:
            return []
        cleaned = [clean_tweet(t) for t in texts]  # BadInputError: "The tweet is empty: ..."
        tokenizer = self.tokenizer()
        n_tokens = [len(ids) for ids in tokenizer(cleaned, truncation=False, verbose=False)["input_ids"]]
        enc = encode_tweets(cleaned, tokenizer, max_length=self.max_length, clean=False)
        lengths = enc["attention_mask"].sum(dim=1)
        t = int(lengths.max())
        self.model.eval()
        out = self.model(**{k: enc[k][:, :t].to(self.device) for k in _INPUT_KEYS if k in enc})
        logits = out["logits"].float().cpu().reshape(-1).tolist()
        probs = out["probs"].float().cpu().reshape(-1).tolist()
        return [{"label": LABELS[int(logit > 0)], "probability_real": p, "probability_fake": 1.0 - p,
                 "truncated": n > self.max_length, "tokens": int(length), "max_length": self.max_length}
                for logit, p, n, length in zip(logits, probs, n_tokens, lengths.tolist())]

    def predict_one(self, inputs: dict, top_k: int = 5) -> dict:
        return self.predict_text(inputs["text"])
