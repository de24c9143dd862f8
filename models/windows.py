"""Texts longer than a model's ``max_length``: overlapping token windows, and window scores back to one
score per text. One implementation for ``tfxformers predict`` and the proxy.

A text that fits is one window (``[CLS] text [SEP]``, as in training). A longer one is not cut: its tokens
(without specials) are split into windows of ``max_length - 2`` tokens, neighbours sharing ``overlap``
tokens (at most half a window), each wrapped in ``[CLS] ... [SEP]``, the last one flush with the end.
Each window is scored separately and the text's score is the mean of its window scores weighted by how
many of the text's tokens each window holds (``COMBINE``).

Pure Python on purpose: the proxy imports it and must start without TensorFlow or numpy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

COMBINE = "token-weighted mean of window probabilities"
COMBINE_EMBEDDING = "token-weighted mean of window embeddings"


@dataclass
class Window:
    text_index: int
    ids: list[int]
    weight: int  # tokens of the text it holds
    text_tokens: int  # tokens of the whole text, special tokens included


def max_overlap(max_length: int) -> int:
    """The most tokens neighbouring windows of ``max_length`` can share: half a window's body (more is cut to it)."""
    return max(0, (max_length - 2) // 2)


def check_overlap(overlap: int, max_length: int, option: str = "--window-overlap") -> str | None:
    """The message refusing an ``overlap`` windows of ``max_length`` tokens cannot honour, or None."""
    limit = max_overlap(max_length)
    if overlap <= limit:
        return None
    return (f"{option} {overlap} is more than windows of this model's {max_length} tokens can share: neighbours share "
            f"at most half a window, so it must lie between 0 and {limit}")


def window_starts(length: int, body: int, overlap: int) -> list[int]:
    """Start offsets of windows of ``body`` tokens covering ``length`` tokens, the last one flush with the end."""
    if length <= body:
        return [0]
    stride = max(1, body - min(overlap, body // 2))
    starts = list(range(0, length - body, stride))
    starts.append(length - body)
    return starts


def text_windows(text_index: int, body_ids: Sequence[int], max_length: int, overlap: int, cls_id: int,
                 sep_id: int, text_tokens: int) -> list[Window]:
    """The ``[CLS] ... [SEP]`` windows of one long text, from its tokens without special tokens."""
    body = max_length - 2
    return [Window(text_index, [cls_id, *body_ids[start:start + body], sep_id], len(body_ids[start:start + body]),
                   text_tokens)
            for start in window_starts(len(body_ids), body, overlap)]


def combine(windows: list[Window], scores: list[list[float]], n_texts: int) -> tuple[list[list[float]], list[int]]:
    """One score vector per text: the token-weighted mean over its windows; also windows per text."""
    totals: list[list[float] | None] = [None] * n_texts
    weights = [0] * n_texts
    counts = [0] * n_texts
    for window, score in zip(windows, scores):
        w = max(window.weight, 1)
        acc = totals[window.text_index]
        if acc is None:
            totals[window.text_index] = [w * s for s in score]
        else:
            for j, s in enumerate(score):
                acc[j] += w * s
        weights[window.text_index] += w
        counts[window.text_index] += 1
    return [[v / weights[i] for v in totals[i]] for i in range(n_texts)], counts
