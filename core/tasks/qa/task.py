"""Persian extractive question answering (PQuAD, SQuAD 2.0 format) with the registry's QA models.

Data. Train: PQuAD's train split when it is available (a local ``pquad/Train.json``, or the Hub when there is no
local folder and the Hub answers), else -- the usual case here, where only Validation.json and Test.json are on
disk -- PQuAD's validation split; limited to ``train_limit`` questions by ``seed`` (answerable share kept).
Val: whole passages held out of those training questions (``val_fraction`` of them, at most ``VAL_MAX_QUESTIONS``
so that per-epoch validation stays cheap); holding out passages, not single questions, keeps the model from
having read a validation passage in training. Test: PQuAD's Test.json, or ``data_file`` (any SQuAD 2.0 JSON),
limited to ``eval_limit``. Every question becomes one or more token windows
(:func:`core.tasks.qa.data.prepare_windows`, ``max_length`` = ``cfg.max_length`` or 384, overlap ``cfg.doc_stride``).

Padding. PQuAD passages are short (multilingual-e5's tokenizer: 188 tokens on average, at most 404), so nearly
every question is one window and most of a 384-token window is padding. Every forward is therefore trimmed to the
longest real window among its rows, evaluation walks each split in length order, and training batches are drawn
by length groups (:meth:`QATask.train_batches`), so a batch holds windows of similar length. The loss does not
mask padding (the standard SQuAD loss), so it depends a little on how much padding a batch keeps; in particular
the feature cache pads with zero vectors where the live encoder has its outputs at [PAD] tokens, which changes
the padding logits, not the real tokens' ones.

The "no answer" threshold. After every epoch the val split is decoded, and the null threshold that maximises
its F1 (:func:`core.tasks.qa.decoding.best_threshold`) is stored in the model's ``null_threshold`` buffer, so it is
saved with the weights of the checkpoint that follows and a reopened run answers with it; test metrics use it
(0.0 when there is no val split). metrics.json reports it as ``null_threshold``.

Memory of full fine-tuning. Most of a QA encoder's parameters are its word embeddings (e5_small: 96M of 118M,
250,037 rows), yet a run's windows use a few thousand tokens. Without weight decay the rows no training window uses
get zero gradients and never move, so the table trains only the used rows
(``core.tasks.qa.models.TrainedRowsEmbedding``, on whenever the strategy trains the table and ``weight_decay`` is
0): the same training without the table's dense gradient and the optimizer state for it (1.15 GB in float32 for
e5_small with AdamW), and checkpoints that hold the used rows only. Activations (about 385 MB per 384-token
window for e5_small in training) are what ``micro_batch`` divides; ``QAModel.set_activation_checkpointing`` trades
them for a second forward pass.

Frozen-part cache (``feature_cache=True``). ``feature_extraction``: the encoder's last hidden states of every real
token of the train and val windows, computed once before the first epoch; epochs train the head alone.
``last_block`` with a BERT-like encoder (BERT, e5, XLM-R): the input of the last layer instead, so an epoch runs
one layer and the head. Tokens are stored back to back, (total real tokens, H), with per-window offsets
(:class:`core.engine.encoder_cache.EncoderCache`): 2,000 PQuAD questions at max_length 384 are 415,133 real tokens, i.e.
415,133 x 384 x 4 = 638 MB in float32 for e5_small (H=384) and 1.28 GB for a base model (H=768). dtype: float32
when train+val fit in 1 GiB that way (cached and uncached training are then the same computation up to float
rounding), else float16 (half the memory; features rounded to ~3 significant digits). A cache over
``cache_max_gb`` is skipped. The test split is not cached: it is evaluated once, so caching would not save
anything, and evaluating it live is what makes ``evaluate_run`` reproduce a run's test metrics exactly.

>>> run = train(TrainConfig(task="qa", model="e5_small", strategy="last_block", train_limit=2000))  # doctest: +SKIP
>>> run, task = load_run_task(str(run.path))                                                      # doctest: +SKIP
>>> task.answer("پایتخت ایران کجاست؟", "تهران پایتخت ایران است.")["answer"]                         # doctest: +SKIP
'تهران'
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from core.tasks.qa import NAME
from core.tasks.qa.data import (PQUAD_FILES, QAExample, limit_examples, load_pquad, load_squad_json,
                          prepare_windows)
from core.errors import BadInputError, BadSettingError, DataNotFoundError, RunNotFoundError
from core.paths import data_dir as resolve_data_dir
from core.weights import hub_available
from core.tasks.qa.metrics import exact_match, f1_score, gold_answers, squad_v2_scores
from core.tasks.qa.models import load_qa_tokenizer
from core.tasks.qa.decoding import QAPrediction, answer_at_threshold, best_threshold, decode_predictions
from core.tasks.qa.rows import QARow
from core.engine.task import EvalResult, ProgressFn, TaskRun
from core.engine.encoder_cache import EncoderCache

DEFAULT_MAX_LENGTH = 384
VAL_MAX_QUESTIONS = 200  # per-epoch validation stays cheap (about 200 windows)
LENGTH_GROUP_BATCHES = 50  # training batches drawn from one length-sorted group of shuffled windows
CONTEXT_CHARS = 300  # passage characters kept per row of predictions.jsonl
_INPUT_KEYS = ("input_ids", "attention_mask", "token_type_ids")
ANSWER_PHASE = "answer:windows"  # the phase name answer() passes to its progress callback


@dataclass
class QASplit:
    """Questions and their token windows.

    ``windows``: ``input_ids``/``attention_mask`` (and ``token_type_ids``) (W, L), ``start_positions``/
    ``end_positions`` (W,). ``offsets[w]`` are window w's passage offsets cut to its real length (None for
    question, special and padding tokens); ``example_index[w]`` is its question's position in ``examples``.
    """

    examples: list[QAExample]
    windows: dict[str, torch.Tensor]
    offsets: list[list]
    example_index: list[int]
    cls_index: list[int]
    source: str
    lengths: torch.Tensor = field(init=False)  # (W,) real tokens per window (right padding)

    def __post_init__(self):
        self.lengths = self.windows["attention_mask"].sum(dim=1)

    def __len__(self) -> int:  # windows: what batches index
        return len(self.example_index)


def make_split(examples: Sequence[QAExample], tokenizer, max_length: int, stride: int, source: str) -> QASplit:
    """Cut questions into windows (:func:`core.tasks.qa.data.prepare_windows`) and hold them as tensors."""
    w = prepare_windows(examples, tokenizer, max_length=max_length, stride=stride)
    windows = {k: torch.tensor(w[k], dtype=torch.long) for k in (*_INPUT_KEYS, "start_positions", "end_positions")
               if k in w}
    lengths = windows["attention_mask"].sum(dim=1).tolist()
    offsets = [o[:n] for o, n in zip(w["offset_mapping"], lengths)]
    return QASplit(list(examples), windows, offsets, list(w["example_index"]), list(w["cls_index"]), source)


def hold_out_passages(examples: Sequence[QAExample], n_val: int, seed: int) -> tuple[list[QAExample], list[QAExample]]:
    """(train, val): whole passages, picked in a seeded random order, go to val until it holds ``n_val``
    questions (a passage that would overshoot is skipped). Both keep the original order.

    >>> train, val = hold_out_passages(examples, 200, seed=0)     # doctest: +SKIP
    >>> len(val), {e.context for e in train} & {e.context for e in val}   # doctest: +SKIP
    (200, set())
    """
    if n_val <= 0:
        return list(examples), []
    per_passage = Counter(ex.context for ex in examples)
    passages = list(per_passage)
    random.Random(seed).shuffle(passages)
    chosen, count = set(), 0
    for passage in passages:
        if count + per_passage[passage] <= n_val:
            chosen.add(passage)
            count += per_passage[passage]
        if count == n_val:
            break
    return [ex for ex in examples if ex.context not in chosen], [ex for ex in examples if ex.context in chosen]


class QATask(TaskRun):
    task = NAME

    def __init__(self, cfg, device):
        super().__init__(cfg, device)
        self.splits: dict[str, QASplit] = {}
        self.cache: EncoderCache | None = None
        self.cache_mode: str | None = None  # "features" | "prefix" | None
        self._tokenizer = None

    # -- model ----------------------------------------------------------------------------------------------
    def build_model(self, labels=None):
        request = self._build_request(self.task_spec.num_outputs)
        spec = self.spec
        model = spec.build(spec, request)
        self._check_max_length(model.max_positions)
        self.tokenizer()  # fail now, not at the first question, when no tokenizer is available
        model = self._finish_model(model)
        if self._trains_used_rows_only():
            split = self.splits["train"]
            model.train_rows_only(split.windows["input_ids"][split.windows["attention_mask"].bool()])
        return model

    def set_activation_checkpointing(self, on: bool) -> None:
        """The encoder keeps only each layer's input in a training forward and recomputes the layer in the
        backward pass (QAModel.set_activation_checkpointing): the same gradients, dropout draws included, for one
        more forward pass of compute and one layer's activations instead of all of them."""
        self.model.set_activation_checkpointing(on)

    def _trains_used_rows_only(self) -> bool:
        """Whether the word embeddings train only the rows the training windows use (TrainedRowsEmbedding): when
        the strategy trains the table, the train split is loaded (a training run, not a reopened one) and there is
        no weight decay, which alone would move the rows no window uses."""
        table = self.model.word_embeddings()
        return (isinstance(table, torch.nn.Embedding) and table.weight.requires_grad and "train" in self.splits
                and not self.cfg.weight_decay)

    def parameter_counts(self) -> dict[str, int]:
        """Trainable and total parameters; with TrainedRowsEmbedding the trained rows count once in the total
        (they are rows of the table) and the table's other rows as frozen."""
        counts = super().parameter_counts()
        rows = self.model.trained_rows
        if rows is not None:
            counts["total"] -= rows.trained_rows.numel()
        return counts

    def load_state(self, tensors, fingerprint=None):
        """Weights saved by a run whose word embeddings trained a subset of their rows carry that subset
        (``...trained_ids``): the same TrainedRowsEmbedding is put in place before they are loaded."""
        names = {m: n for n, m in self.model.named_modules()}
        key = f"{names[self.model.word_embeddings()]}.trained_ids"
        if key in tensors:
            rows = self.model.trained_rows
            if rows is None:
                self.model.train_rows_only(tensors[key])
            elif not torch.equal(rows.trained_ids.cpu(), tensors[key].cpu()):
                raise RunNotFoundError("The saved weights train other word-embedding rows than this run's "
                                       "training windows use (the training data changed), so they cannot be "
                                       "loaded.")
        super().load_state(tensors, fingerprint)

    @property
    def max_length(self) -> int:
        return self.cfg.max_length or DEFAULT_MAX_LENGTH

    @property
    def null_threshold(self) -> float:
        """The "no answer" threshold in use (tuned on val; saved with the weights)."""
        return float(self.model.null_threshold)

    def tokenizer(self):
        """The model's fast tokenizer (loaded once); ``.transfer_lab_source`` says where it came from."""
        if self._tokenizer is None:
            self._tokenizer = load_qa_tokenizer(self.cfg.model)
        return self._tokenizer

    # -- data -----------------------------------------------------------------------------------------------
    def _training_pool(self) -> tuple[list[QAExample], str]:
        """PQuAD train where it can be had (local Train.json, or the Hub without a local folder), else validation."""
        folder = resolve_data_dir(self.cfg.data_dir) / "pquad"
        local_train = (folder / PQUAD_FILES["train"]).is_file()
        hub_train = not folder.is_dir() and self.cfg.data_dir is None and hub_available()
        if local_train or hub_train:
            try:
                return load_pquad("train", self.cfg.data_dir), "PQuAD train"
            except DataNotFoundError:
                if local_train:
                    raise
        return load_pquad("validation", self.cfg.data_dir), f"PQuAD validation ({folder / PQUAD_FILES['validation']})"

    def load_data(self, splits=("train", "val", "test")):
        cfg = self.cfg
        wanted: dict[str, tuple[list[QAExample], str]] = {}
        if "train" in splits or "val" in splits:
            pool, source = self._training_pool()
            if cfg.train_limit:
                pool = limit_examples(pool, cfg.train_limit, cfg.seed)
            n_val = min(VAL_MAX_QUESTIONS, round(len(pool) * cfg.val_fraction)) if "val" in splits else 0
            train, val = hold_out_passages(pool, n_val, cfg.seed)
            if "train" in splits:
                wanted["train"] = (train, source)
            if val:
                wanted["val"] = (val, f"{source}, passages held out of the training questions")
        if "test" in splits:
            if cfg.data_file:
                test, source = load_squad_json(cfg.data_file), str(cfg.data_file)
            else:
                folder = resolve_data_dir(cfg.data_dir) / "pquad"
                test, source = load_pquad("test", cfg.data_dir), f"PQuAD test ({folder / PQUAD_FILES['test']})"
            if cfg.eval_limit:
                test = limit_examples(test, cfg.eval_limit, cfg.seed)
            wanted["test"] = (test, source)
        for name, (examples, source) in wanted.items():
            if not examples:
                raise DataNotFoundError(f"The {name} split has no questions.")
            self.splits[name] = make_split(examples, self.tokenizer(), self.max_length, self.cfg.doc_stride, source)

    def describe(self):
        return {
            "data": {name: {"questions": len(s.examples), "unanswerable": sum(e.is_impossible for e in s.examples),
                            "windows": len(s), "source": s.source}
                     for name, s in self.splits.items()},
            "tokenizer": getattr(self.tokenizer(), "transfer_lab_source", "unknown"),
            "max_length": self.max_length,
            "doc_stride": self.cfg.doc_stride,
            **self._rows_facts(),
            "null_threshold": "tuned on the val split after every epoch; saved with the weights (buffer "
                              "null_threshold) and reported in metrics.json",
        }

    def _rows_facts(self) -> dict:
        rows = self.model.trained_rows if self.model is not None else None
        if rows is None:
            return {}
        return {"word_embeddings": {
            "trained_rows": len(rows.trained_ids), "rows": rows.num_embeddings,
            "why": "only the rows the training windows use train (TrainedRowsEmbedding): without weight decay "
                   "the others get zero gradients and never move, so this is the same training with less memory"}}

    # -- forward pieces -------------------------------------------------------------------------------------
    def _inputs(self, split: QASplit, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """Encoder inputs of windows ``idx``, each (b, T) trimmed to the longest real window among them."""
        t = int(split.lengths[idx].max())
        return {k: split.windows[k][idx, :t].to(self.device) for k in _INPUT_KEYS if k in split.windows}

    def _hidden(self, name: str, idx: torch.Tensor) -> torch.Tensor:
        """(b, T, H) last hidden states of windows ``idx``, from the cache where it holds them."""
        split = self.splits[name]
        if self.cache is not None and name in self.cache.features:
            states = self.cache.gather(name, idx).to(self.device)  # (b, T, H), T = longest real window
            if self.cache_mode == "features":
                return states
            mask = split.windows["attention_mask"][idx, :states.shape[1]].to(self.device)
            return self.model.forward_last(states, mask)
        return self.model.encoder_outputs(**self._inputs(split, idx))

    def _forward(self, name: str, idx: torch.Tensor) -> dict:
        """``start_logits``/``end_logits`` (b, T) and ``loss`` for windows ``idx`` of a split."""
        split = self.splits[name]
        hidden = self._hidden(name, idx)
        return self.model.forward_head(hidden, split.windows["start_positions"][idx].to(self.device),
                                       split.windows["end_positions"][idx].to(self.device), split.lengths[idx])

    def _length_order(self, split: QASplit) -> torch.Tensor:
        return torch.argsort(split.lengths, descending=True, stable=True)

    # -- feature cache --------------------------------------------------------------------------------------
    def _cache_mode(self) -> str | None:
        if not self.cfg.feature_cache:
            return None
        if self.cfg.strategy == "feature_extraction":
            return "features"
        if self.cfg.strategy == "last_block" and self.model.splittable:
            return "prefix"
        return None

    def prepare_training(self, progress: ProgressFn | None = None) -> dict:
        self.cache, self.cache_mode = None, None
        mode = self._cache_mode()
        if mode is None:
            return {"feature_cache": None}
        self.model.eval()
        frozen = self.model.encoder_outputs if mode == "features" else self.model.forward_prefix
        names = [s for s in ("train", "val") if s in self.splits]
        self.cache, facts = EncoderCache.build(
            "sequence", {s: self.splits[s].lengths for s in names}, self.model.hidden_size,
            lambda name, idx: frozen(**self._inputs(self.splits[name], idx)),
            self.cfg.eval_batch_size, self.device, self.cfg.cache_max_gb, progress)
        if self.cache is not None:
            self.cache_mode = mode
            facts["feature_cache"]["mode"] = mode
        return facts

    # -- training -------------------------------------------------------------------------------------------
    def train_batches(self, epoch):
        """Batches of window indices, deterministic in (seed, epoch), grouped by length: the epoch's shuffled
        windows (:meth:`epoch_order`) are cut into groups of ``LENGTH_GROUP_BATCHES`` batches, each group is
        sorted by length and cut into batches, and the batches are shuffled. A batch then holds windows of similar
        length, so trimming it to its longest window wastes little: with plain random batches of 8 (16) windows,
        37% (48%) of the encoder's tokens on 2,000 PQuAD questions at max_length 384 would be padding."""
        return self.length_grouped_batches(epoch, self.splits["train"].lengths, LENGTH_GROUP_BATCHES)

    def train_step(self, batch):
        """Loss (batch mean), windows whose start and end tokens are both right, windows."""
        split = self.splits["train"]
        out = self._forward("train", batch)
        start_ok = out["start_logits"].argmax(-1).cpu() == split.windows["start_positions"][batch]
        end_ok = out["end_logits"].argmax(-1).cpu() == split.windows["end_positions"][batch]
        return out["loss"], int((start_ok & end_ok).sum()), len(batch)

    # -- evaluation -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def logits_for(self, split: str, progress: ProgressFn | None = None
                   ) -> tuple[list[np.ndarray], list[np.ndarray], float]:
        """Per window (in the split's order) float32 start and end logits over its real tokens, and the mean
        loss over windows."""
        data = self.splits[split]
        self.model.eval()
        starts: list[np.ndarray | None] = [None] * len(data)
        ends: list[np.ndarray | None] = [None] * len(data)
        order = self._length_order(data)
        bs, loss_sum = self.cfg.eval_batch_size, 0.0
        for i in range(0, len(data), bs):
            idx = order[i:i + bs]
            out = self._forward(split, idx)
            loss_sum += float(out["loss"]) * len(idx)
            s, e = out["start_logits"].float().cpu().numpy(), out["end_logits"].float().cpu().numpy()
            for j, w in enumerate(idx.tolist()):
                n = int(data.lengths[w])
                starts[w], ends[w] = s[j, :n], e[j, :n]
            if progress:
                progress(f"eval:{split}", min(i + bs, len(data)), len(data))
        return starts, ends, loss_sum / max(1, len(data))

    def _decode(self, data: QASplit, starts, ends, threshold: float, top_k: int = 5) -> list[QAPrediction]:
        return decode_predictions(starts, ends, data.offsets, data.example_index,
                                  [ex.context for ex in data.examples], data.cls_index, threshold=threshold,
                                  top_k=top_k)

    def tune_null_threshold(self, examples: Sequence[QAExample], predictions: Sequence[QAPrediction]) -> float:
        """The threshold that maximises F1 on these questions; stored in the model (saved with its weights)."""
        f1_if_answered = [f1_score(p.alternatives[0].text if p.alternatives else "", gold_answers(ex))
                          for ex, p in zip(examples, predictions)]
        choice = best_threshold([p.score_diff for p in predictions], [ex.is_impossible for ex in examples],
                                f1_if_answered)
        self.model.null_threshold.fill_(choice.threshold)
        return self.null_threshold  # as stored (float32), so val, test and a reopened run use the same number

    def evaluate(self, split, progress=None):
        data = self.splits[split]
        starts, ends, loss = self.logits_for(split, progress)
        if split == "val":  # tune the threshold here, then answer with it
            preds = self._decode(data, starts, ends, threshold=0.0)
            threshold = self.tune_null_threshold(data.examples, preds)
        else:
            threshold = self.null_threshold
            preds = self._decode(data, starts, ends, threshold=threshold)
        answers = [answer_at_threshold(p, threshold) for p in preds]
        metrics = squad_v2_scores({ex.id: a for ex, a in zip(data.examples, answers)}, data.examples)
        metrics.update(loss=loss, null_threshold=threshold, answered=sum(bool(a) for a in answers),
                       windows=len(data))
        predictions = []
        if split == "test":
            for ex, p, text in zip(data.examples, preds, answers):
                golds = gold_answers(ex)
                predictions.append(QARow(
                    id=ex.id, index=len(predictions), question=ex.question, context=ex.context[:CONTEXT_CHARS],
                    context_truncated=len(ex.context) > CONTEXT_CHARS, answers=golds, prediction=text,
                    start_char=p.start_char if text else -1, probability=round(p.probability, 5),
                    no_answer_probability=round(p.no_answer_probability, 5), is_impossible=ex.is_impossible,
                    exact=exact_match(text, golds), f1=f1_score(text, golds)))
        return EvalResult(metrics, predictions)

    # -- inference ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def _window_logits(self, data: QASplit, progress: ProgressFn | None = None
                       ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per window of ``data`` (in its order) float32 start and end logits over its real tokens, read in
        batches of ``eval_batch_size`` in length order; ``progress(ANSWER_PHASE, windows read, windows)`` before
        the first batch and after each."""
        self.model.eval()
        starts: list[np.ndarray | None] = [None] * len(data)
        ends: list[np.ndarray | None] = [None] * len(data)
        order = self._length_order(data)
        bs = self.cfg.eval_batch_size
        if progress is not None:  # not truthiness: a callable may be falsy (gr.Progress has __len__, 0 when idle)
            progress(ANSWER_PHASE, 0, len(data))
        for i in range(0, len(data), bs):
            idx = order[i:i + bs]
            out = self.model.forward_head(self.model.encoder_outputs(**self._inputs(data, idx)))
            s, e = out["start_logits"].float().cpu().numpy(), out["end_logits"].float().cpu().numpy()
            for j, w in enumerate(idx.tolist()):
                n = int(data.lengths[w])
                starts[w], ends[w] = s[j, :n], e[j, :n]
            if progress is not None:
                progress(ANSWER_PHASE, min(i + bs, len(data)), len(data))
        return starts, ends

    @torch.no_grad()
    def answer(self, question: str, context: str, top_k: int = 5, progress: ProgressFn | None = None) -> dict:
        """The answer to one question about one passage (any length: long passages are read in windows).

        ``progress``: called as ``progress(ANSWER_PHASE, done, total)`` with the windows read so far, once with
        ``done`` 0 before the first batch and after every batch of ``eval_batch_size`` windows, so a UI can say
        "window 12 of 150" while a long passage is read; it does not change the answer.
        Returns ``answer`` ("" when the model abstains), ``has_answer``, ``start_char``/``end_char`` (-1 when
        none), ``probability``, ``no_answer_probability``, ``alternatives`` (the ``top_k`` best spans, also when
        it abstains), ``message`` (a sentence when there is no answer), ``null_threshold`` and ``windows``.
        BadInputError for an empty question or passage, or a question too long for a window.

        >>> task.answer("پایتخت ایران کجاست؟", "تهران پایتخت ایران است.")["answer"]   # doctest: +SKIP
        'تهران'
        """
        if self.model is None:
            raise BadSettingError("Build or load a QA model before asking it questions.")
        if not isinstance(question, str) or not question.strip():
            raise BadInputError("The question is empty; type a question to ask about the passage.")
        if not isinstance(context, str) or not context.strip():
            raise BadInputError("The passage is empty; paste the text in which to look for the answer.")
        if not isinstance(top_k, int) or top_k < 1:
            raise BadSettingError(f"top_k must be a whole number of at least 1; got {top_k}.")
        example = QAExample("question", "", context, question, (), True)
        data = make_split([example], self.tokenizer(), self.max_length, self.cfg.doc_stride, "user input")
        starts, ends = self._window_logits(data, progress)
        threshold = self.null_threshold
        p = self._decode(data, starts, ends, threshold=threshold, top_k=top_k)[0]
        result = {
            "answer": p.answer, "has_answer": p.has_answer, "start_char": p.start_char,
            "end_char": p.start_char + len(p.answer) if p.has_answer else -1,
            "probability": p.probability, "no_answer_probability": p.no_answer_probability,
            "alternatives": [{"text": c.text, "start_char": c.start_char, "probability": c.probability}
                             for c in p.alternatives],
            "message": "", "null_threshold": threshold, "windows": len(data),
        }
        if not p.has_answer:
            result["message"] = (f"The model finds no answer to this question in the passage (no-answer "
                                 f"probability {p.no_answer_probability:.2f}).")
        return result

    def predict_one(self, inputs: dict, top_k: int = 5) -> dict:
        return self.answer(inputs["question"], inputs["context"], top_k=top_k)
