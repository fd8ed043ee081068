"""Subword tokens merged back into words, scores summed (so the total attribution is kept).

Two conventions are recognised from the token strings: WordPiece (BERT, MiniLM: a continuation starts with
``##``) and SentencePiece (XLM-R, e5, ALBERT: a word starts with ``▁``). Special tokens stay words of their own.

>>> merge_subwords(["[CLS]", "was", "##h", "hands", "[SEP]"], [0.0, 0.25, 0.5, 1.0, 0.0], [1, 0, 0, 0, 1])
(['[CLS]', 'wash', 'hands', '[SEP]'], [0.0, 0.75, 1.0, 0.0], [[0], [1, 2], [3], [4]])
"""
from __future__ import annotations

from typing import Sequence

SP_MARK = "\u2581"  # SentencePiece's word-start mark


def word_groups(tokens: Sequence[str], special: Sequence[bool | int]) -> list[list[int]]:
    """Token positions grouped into words, in order."""
    sentencepiece = any(t.startswith(SP_MARK) for t in tokens)
    groups: list[list[int]] = []
    for i, token in enumerate(tokens):
        if special[i]:
            groups.append([i])
            continue
        starts_word = token.startswith(SP_MARK) if sentencepiece else not token.startswith("##")
        previous_special = bool(groups) and bool(special[groups[-1][0]])
        if starts_word or not groups or previous_special:
            groups.append([i])
        else:
            groups[-1].append(i)
    return groups


def _word_text(pieces: list[str]) -> str:
    text = "".join(p[2:] if p.startswith("##") else p for p in pieces)
    return text.replace(SP_MARK, " ").strip() or text


def merge_subwords(tokens: Sequence[str], scores: Sequence[float], special: Sequence[bool | int]
                   ) -> tuple[list[str], list[float], list[list[int]]]:
    """(words, summed scores, token positions per word)."""
    groups = word_groups(tokens, special)
    words = [_word_text([tokens[i] for i in g]) for g in groups]
    sums = [float(sum(float(scores[i]) for i in g)) for g in groups]
    return words, sums, groups
