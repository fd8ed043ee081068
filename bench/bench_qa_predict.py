"""Per-question latency of our QA predict path against transformers' question-answering pipeline, in one process.

    TRANSFER_LAB_OFFLINE=1 .venv/bin/python bench/bench_qa_predict.py [--questions 30] [--run RUN]
        [--max-length 384] [--doc-stride 128] [--warmup 3] [--data-dir ../shared/datasets]

Ours: ``QATask.answer(question, context, top_k)`` on the task that ``PredictorCache().get("model:e5_small")``
builds (or ``get(RUN)`` for a fine-tuned e5_small run given with ``--run``), exactly as the app answers.

Peer: the same weights as a ``transformers.BertForQuestionAnswering`` -- our e5 encoder's state dict loaded into
its ``bert`` and our head's ``Linear(hidden, 2)`` copied into its ``qa_outputs`` (our head's dropout is off at
eval) -- with the same tokenizer, window length and stride, ``handle_impossible_answer=True`` and
``max_answer_len`` = our decoder's 30 tokens, ``align_to_words=False`` (answers cut at token offsets, as ours;
``--align-to-words`` restores the pipeline's default). Before timing, both models' start/end logits are
compared on one window. Where transformers still has ``pipeline("question-answering")`` (before 5.3) the peer
is that pipeline. transformers 5.3 removed it (the pinned 5.23 has none), so there the peer is a restatement of
what that pipeline did per question: tokenise into un-padded windows, one model forward per window, mask
non-passage tokens, softmax, null score = min over windows of p_start[CLS] * p_end[CLS], best span by the
product of probabilities among spans of at most ``max_answer_len`` tokens, "" when the null score wins.
The JSON says which peer ran.

Questions: ``--questions`` PQuAD test questions (``core.tasks.qa.data.limit_examples``, seed 0: answerable and
unanswerable). After ``--warmup`` questions on each side (not timed), the two sides answer each question in
turn, alternating which goes first. Prints one JSON line.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TRANSFER_LAB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from core.tasks.qa.data import limit_examples, load_pquad  # noqa: E402
from core.store.predictors import PredictorCache  # noqa: E402
from core.tasks.qa.task import make_split  # noqa: E402

MAX_ANSWER_TOKENS = 30  # core.tasks.qa.decoding's default, which QATask.answer uses


def as_bert_qa(task):
    """A BertForQuestionAnswering holding copies of our QAModel's encoder weights and span head, in eval mode."""
    from transformers import BertForQuestionAnswering

    ours = task.model
    if ours.family != "bert":
        raise SystemExit(f"This benchmark wraps BERT-family encoders (e5_small); {ours.spec_name} is {ours.family}.")
    config = copy.deepcopy(ours.encoder.config)
    config.num_labels = 2
    peer = BertForQuestionAnswering(config)
    peer.bert.load_state_dict(ours.encoder.state_dict(), strict=True)  # raises unless every tensor fits
    peer.qa_outputs.load_state_dict(ours.head.qa_outputs.state_dict())
    return peer.eval()


@torch.no_grad()
def logits_gap(task, peer, question: str, context: str) -> dict:
    """Largest |difference| of start and end logits between our model and the peer on the question's first window."""
    from core.tasks.qa.data import QAExample

    split = make_split([QAExample("check", "", context, question, (), True)], task.tokenizer(), task.max_length,
                       task.cfg.doc_stride, "check")
    n = int(split.lengths[0])
    inputs = {k: split.windows[k][:1, :n] for k in ("input_ids", "attention_mask", "token_type_ids")
              if k in split.windows}
    task.model.eval()
    ours = task.model.forward_head(task.model.encoder_outputs(**inputs))
    theirs = peer(**inputs)
    gap_start = float((ours["start_logits"] - theirs.start_logits).abs().max())
    gap_end = float((ours["end_logits"] - theirs.end_logits).abs().max())
    return {"window_tokens": n, "max_abs_start_logit_gap": gap_start, "max_abs_end_logit_gap": gap_end,
            "logits_agree": max(gap_start, gap_end) < 1e-4}


class RemovedPipelinePeer:
    """What ``pipeline("question-answering", handle_impossible_answer=True)`` did for one question, for
    transformers releases that no longer have it: un-padded windows, one forward each, probability decoding."""

    def __init__(self, model, tokenizer, max_seq_len: int, doc_stride: int, max_answer_len: int,
                 align_to_words: bool):
        self.model, self.tokenizer = model, tokenizer
        self.max_seq_len, self.doc_stride, self.max_answer_len = max_seq_len, doc_stride, max_answer_len
        self.align_to_words = align_to_words
        self.keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in tokenizer.model_input_names]

    @torch.no_grad()
    def __call__(self, question: str, context: str) -> dict:
        enc = self.tokenizer(question, context, truncation="only_second", max_length=self.max_seq_len,
                             stride=self.doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True)
        best = {"score": -1.0, "start": 0, "end": 0, "answer": ""}
        null_score = float("inf")
        for w in range(len(enc["input_ids"])):
            inputs = {k: torch.tensor([enc[k][w]]) for k in self.keys if k in enc}
            out = self.model(**inputs)
            passage = np.array([s == 1 for s in enc.sequence_ids(w)])  # (T,) tokens an answer may use
            cls = enc["input_ids"][w].index(self.tokenizer.cls_token_id)
            allowed = passage.copy()
            allowed[cls] = True  # the null answer lives on [CLS]
            p_start = _masked_softmax(out.start_logits[0].numpy(), allowed)  # (T,)
            p_end = _masked_softmax(out.end_logits[0].numpy(), allowed)
            null_score = min(null_score, float(p_start[cls] * p_end[cls]))
            p_start[cls] = p_end[cls] = 0.0
            spans = np.triu(np.outer(p_start, p_end))  # (T, T): end >= start
            spans = np.tril(spans, self.max_answer_len - 1)  # and at most max_answer_len tokens
            s, e = np.unravel_index(int(np.argmax(spans)), spans.shape)
            if passage[s] and passage[e] and spans[s, e] > best["score"]:
                start, end = self._chars(enc, w, int(s), int(e))
                best = {"score": float(spans[s, e]), "start": start, "end": end, "answer": context[start:end]}
        if null_score > best["score"]:
            return {"score": null_score, "start": 0, "end": 0, "answer": ""}
        return best

    def _chars(self, enc, w: int, s: int, e: int) -> tuple[int, int]:
        offsets = enc["offset_mapping"][w]
        if not self.align_to_words:
            return offsets[s][0], offsets[e][1]
        words = enc.word_ids(w)
        first = next(i for i, wid in enumerate(words) if wid == words[s])
        last = max(i for i, wid in enumerate(words) if wid == words[e])
        return offsets[first][0], offsets[last][1]


def _masked_softmax(logits: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    x = np.where(allowed, logits, -10000.0).astype(np.float64)
    x = np.exp(x - x.max())
    return x / x.sum()


def make_peer(task, peer_model, args):
    """(callable(question, context) -> answer string, description)."""
    from transformers.pipelines import SUPPORTED_TASKS

    tokenizer = task.tokenizer()
    if "question-answering" in SUPPORTED_TASKS:
        from transformers import pipeline

        pipe = pipeline("question-answering", model=peer_model, tokenizer=tokenizer, device=-1)
        kwargs = dict(handle_impossible_answer=True, max_seq_len=task.max_length, doc_stride=task.cfg.doc_stride,
                      max_answer_len=MAX_ANSWER_TOKENS, align_to_words=args.align_to_words)
        return (lambda q, c: pipe(question=q, context=c, **kwargs)["answer"],
                "transformers pipeline('question-answering')")
    peer = RemovedPipelinePeer(peer_model, tokenizer, task.max_length, task.cfg.doc_stride, MAX_ANSWER_TOKENS,
                               args.align_to_words)
    return (lambda q, c: peer(q, c)["answer"],
            "transformers has no question-answering pipeline (removed in 5.3): BertForQuestionAnswering + the "
            "removed pipeline's per-question steps restated here (un-padded windows, one forward each, softmax "
            "span decoding, handle_impossible_answer)")


def _answer_at_zero(result: dict) -> str:
    """What QATask.answer would have said with a null threshold of 0: its best span when that span's softmax
    share beats the no-answer share (i.e. best span score > null score), else ""."""
    alternatives = result["alternatives"]
    if alternatives and alternatives[0]["probability"] > result["no_answer_probability"]:
        return alternatives[0]["text"]
    return ""


def timed(fn, *args) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*args)
    return (time.perf_counter() - t0) * 1000.0, out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--questions", type=int, default=30)
    p.add_argument("--run", default=None, help="a fine-tuned e5_small run (folder or id) instead of model:e5_small")
    p.add_argument("--top-k", type=int, default=1, help="alternatives QATask.answer returns (the pipeline: 1)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--align-to-words", action="store_true", help="the pipeline's default word alignment")
    p.add_argument("--data-dir", default=None, help="folder holding pquad/ (default: $TRANSFER_LAB_DATA, "
                                                    "else ../shared/datasets)")
    args = p.parse_args()
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    load_before = os.getloadavg()[0]
    ref = args.run or "model:e5_small"
    task = PredictorCache().get(ref)
    if task.spec.name != "e5_small":
        raise SystemExit(f"--run must be an e5_small run; {ref} is {task.spec.name}.")
    examples = limit_examples(load_pquad("test", args.data_dir), args.questions + args.warmup, seed=0)
    warm, timed_examples = examples[:args.warmup], examples[args.warmup:]
    peer_model = as_bert_qa(task)
    check = logits_gap(task, peer_model, timed_examples[0].question, timed_examples[0].context)
    peer, peer_name = make_peer(task, peer_model, args)

    def ours(q: str, c: str) -> dict:
        return task.answer(q, c, top_k=args.top_k)

    for ex in warm:
        ours(ex.question, ex.context)
        peer(ex.question, ex.context)
    ms_ours, ms_peer, same, same_stripped, same_at_zero, windows = [], [], 0, 0, 0, 0
    abstained = {"ours": 0, "peer": 0}
    for i, ex in enumerate(timed_examples):
        order = [("ours", ours), ("peer", peer)] if i % 2 == 0 else [("peer", peer), ("ours", ours)]
        answers = {}
        for name, fn in order:
            ms, answers[name] = timed(fn, ex.question, ex.context)
            (ms_ours if name == "ours" else ms_peer).append(ms)
        full = answers["ours"]
        answers["ours"] = full["answer"]
        same_at_zero += _answer_at_zero(full).strip() == answers["peer"].strip()
        for name in abstained:
            abstained[name] += answers[name] == ""
        same += answers["ours"] == answers["peer"]
        same_stripped += answers["ours"].strip() == answers["peer"].strip()
        windows += len(make_split([ex], task.tokenizer(), task.max_length, task.cfg.doc_stride, "count"))
    n = len(timed_examples)
    result = {
        "ours_mean_ms": round(statistics.mean(ms_ours), 1), "ours_median_ms": round(statistics.median(ms_ours), 1),
        "peer_mean_ms": round(statistics.mean(ms_peer), 1), "peer_median_ms": round(statistics.median(ms_peer), 1),
        "peer_over_ours_mean_ratio": round(statistics.mean(ms_peer) / statistics.mean(ms_ours), 2),
        "peer_over_ours_median_ratio": round(statistics.median(ms_peer) / statistics.median(ms_ours), 2),
        "questions": n, "windows": windows, "unanswerable": sum(ex.is_impossible for ex in timed_examples),
        "answers_identical_fraction": round(same / n, 3),
        "answers_identical_after_strip_fraction": round(same_stripped / n, 3),
        # The pipeline has no tuned threshold: it abstains when the null score beats the best span (threshold 0).
        "answers_identical_after_strip_at_our_threshold_0_fraction": round(same_at_zero / n, 3),
        "ours_no_answer": abstained["ours"], "peer_no_answer": abstained["peer"],
        "logit_check": check,
        "peer": peer_name,
        "ours": f"QATask.answer via PredictorCache().get({ref!r}), top_k={args.top_k}",
        "model": ref, "weights": task.model.weights_source,
        "head": "fine-tuned (--run)" if args.run else "untrained span head (registry model, seed 0)",
        "null_threshold": task.null_threshold, "max_seq_len": task.max_length, "doc_stride": task.cfg.doc_stride,
        "max_answer_len": MAX_ANSWER_TOKENS, "align_to_words": args.align_to_words, "warmup_questions": len(warm),
        "torch_threads": torch.get_num_threads(), "load_average_1min_at_start": round(load_before, 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
                   f"transformers {__import__('transformers').__version__}, cuda {torch.cuda.is_available()}",
    }
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
