"""Start/end logits of a question's windows -> the n best answer spans, as character offsets into the context.

Shared by ``tfxformers answer`` and the proxy's ``:answer`` (pure Python: no TensorFlow, no numpy), so
both give the same answer for the same logits.

Per window, start and end logits are turned into probabilities by a softmax over the window's context
tokens and ``[CLS]`` (question and special tokens can never hold an answer, so they are left out rather
than merely penalised). A span is a start and an end token of the same window, end not before start, at
most ``max_answer_len`` tokens, scored ``p_start * p_end``; the ``n_best`` highest starts and ends of
each window are paired (the approach of the reference SQuAD post-processing). Spans found in several
overlapping windows are the same characters and are kept once, with their best score. The null answer
(``""``, start = end = 0) scores ``p_start[CLS] * p_end[CLS]`` at its lowest over the windows: the window
most sure that an answer is present decides; with ``handle_impossible_answer`` it competes with the spans.
"""
from __future__ import annotations

import heapq
import math
from typing import Sequence

N_BEST = 20
MAX_ANSWER_LEN = 15


def _softmax_over(logits: Sequence[float], positions: Sequence[int]) -> dict[int, float]:
    values = [float(logits[p]) for p in positions]
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return {p: e / total for p, e in zip(positions, exps)}


def decode_answers(context: str, windows, start_logits: Sequence[Sequence[float]],
                   end_logits: Sequence[Sequence[float]], *, top_k: int = 1, max_answer_len: int = MAX_ANSWER_LEN,
                   handle_impossible_answer: bool = False, n_best: int = N_BEST) -> list[dict]:
    """The ``top_k`` best answers ``{"answer", "score", "start", "end", "window"}``, best first.

    ``windows`` are ``features.QAWindow``s (only ``offsets`` is read); ``start_logits[i]`` and
    ``end_logits[i]`` are window ``i``'s logits (longer rows, e.g. padded ones, are fine). ``start``/``end``
    are character offsets: ``context[start:end] == answer``.
    """
    if top_k < 1:
        raise ValueError("top_k must be at least 1")
    if max_answer_len < 1:
        raise ValueError("max_answer_len must be at least 1")
    spans: dict[tuple[int, int], tuple[float, int]] = {}
    null_score = None
    for w, window in enumerate(windows):
        context_positions = [p for p, o in enumerate(window.offsets) if o is not None]
        if not context_positions:
            continue
        p_start = _softmax_over(start_logits[w], [0, *context_positions])
        p_end = _softmax_over(end_logits[w], [0, *context_positions])
        null = p_start[0] * p_end[0]
        null_score = null if null_score is None else min(null_score, null)
        starts = heapq.nlargest(n_best, context_positions, key=p_start.__getitem__)
        ends = heapq.nlargest(n_best, context_positions, key=p_end.__getitem__)
        for s in starts:
            for e in ends:
                if e < s or e - s + 1 > max_answer_len:
                    continue
                chars = (window.offsets[s][0], window.offsets[e][1])
                value = p_start[s] * p_end[e]
                if chars not in spans or value > spans[chars][0]:
                    spans[chars] = (value, w)
    ranked = [{"answer": context[a:b], "score": v, "start": a, "end": b, "window": w}
              for (a, b), (v, w) in spans.items()]
    if handle_impossible_answer and null_score is not None:
        ranked.append({"answer": "", "score": null_score, "start": 0, "end": 0, "window": None})
    # Ties (equal scores) are broken by position, so the order never depends on dictionary order.
    ranked.sort(key=lambda r: (-r["score"], r["start"], r["end"]))
    return ranked[:top_k]


def best_answer_text(answers: list[dict]) -> str:
    """The text of the best answer, or "" when there is none (what SQuAD scoring compares)."""
    return answers[0]["answer"] if answers else ""
