"""The official SQuAD exact-match and F1, with the official answer normalisation.

Both compare normalised answers: lower-cased, punctuation removed, the articles ``a``/``an``/``the``
removed, whitespace collapsed. A prediction is scored against every gold answer of its question and
keeps the best score. For SQuAD v2.0 an unanswerable question's gold answer is the empty string, so
predicting nothing there scores 1 and predicting anything scores 0 (and vice versa).
Pure Python, no TensorFlow.
"""
from __future__ import annotations

import collections
import re
import string
from typing import Iterable, Mapping

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> int:
    return int(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        # Empty vs empty is a match (an unanswerable question answered with nothing); else nothing overlaps.
        return float(pred_tokens == gold_tokens)
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def score(predictions: Mapping[str, str], golds: Mapping[str, Iterable[str]]) -> dict:
    """``{"exact_match", "f1"}`` in percent (as the official script prints them) over the questions of
    ``golds`` (``id -> gold answer texts``, empty for unanswerable), plus the split by answerability.
    A question without a prediction counts as answered with the empty string."""
    totals = {"all": [0, 0.0, 0], "has_answer": [0, 0.0, 0], "no_answer": [0, 0.0, 0]}
    for qid, answers in golds.items():
        answers = [a for a in answers if normalize_answer(a)] or [""]
        prediction = predictions.get(qid, "")
        em = max(exact_match(prediction, a) for a in answers)
        f = max(f1(prediction, a) for a in answers)
        for key in ("all", "has_answer" if answers != [""] else "no_answer"):
            totals[key][0] += em
            totals[key][1] += f
            totals[key][2] += 1
    out = {}
    for key, (em, f, n) in totals.items():
        if n:
            prefix = "" if key == "all" else key + "_"
            out[prefix + "exact_match"] = 100.0 * em / n
            out[prefix + "f1"] = 100.0 * f / n
            out[prefix + "total"] = n
    return out


def score_v1(predictions: Mapping[str, str], golds: Mapping[str, Iterable[str]]) -> dict:
    """The numbers of the official SQuAD v1.1 script (``evaluate-v1.1.py``), for data where every question
    has an answer. It differs from ``score`` (the v2.0 script) on gold answers that normalise to nothing
    (SQuAD 1.1 dev has three, each a lone "."): they stay in the max, an empty prediction matches them
    exactly, and F1 against them, or of an empty prediction, is 0. A question without a prediction scores 0."""
    em = f = 0.0
    for qid, answers in golds.items():
        if qid not in predictions:
            continue
        prediction = predictions[qid]
        answers = list(answers)
        em += max((exact_match(prediction, a) for a in answers), default=0)
        if normalize_answer(prediction):
            f += max((f1(prediction, a) if normalize_answer(a) else 0.0 for a in answers), default=0.0)
    n = len(golds)
    return {"exact_match": 100.0 * em / n if n else 0.0, "f1": 100.0 * f / n if n else 0.0, "total": n,
            "metric": "SQuAD v1.1 (official evaluate-v1.1.py)"}
