"""Scores of token classification, computed here (no seqeval / conlleval dependency).

- ``entity_scores(gold, predicted)``: entity-level precision / recall / F1 per type and micro-averaged, the
  CoNLL-2000 ``conlleval`` definition: an entity counts as found only when its type and its first and last
  word are all right; entities are read from BIO tags by ``decode.bio_entities`` (an ``I-`` without ``B-``
  starts an entity, as conlleval reads it).
- ``tag_scores(gold, predicted)``: token accuracy and per-tag precision / recall / F1 (POS).

Both take lists of sentences, each a list of tag strings (a predicted ``None``, a word the model could not
read, is simply wrong).
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

from tfxformers.models.tagging.decode import bio_entities


def _prf(correct: int, predicted: int, gold: int) -> dict:
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": gold, "predicted": predicted}


def _check_lengths(gold: Sequence[Sequence], predicted: Sequence[Sequence]) -> None:
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted")
    for i, (g, p) in enumerate(zip(gold, predicted)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")


def entity_scores(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str | None]]) -> dict:
    """``{"micro": {precision, recall, f1, support, predicted}, "per_type": {type: {...}}, "token_accuracy"}``."""
    _check_lengths(gold, predicted)
    correct, found, wanted = Counter(), Counter(), Counter()
    tokens = right = 0
    for g, p in zip(gold, predicted):
        gold_entities = set(bio_entities(g))
        predicted_entities = set(bio_entities(p))
        wanted.update(kind for kind, _, _ in gold_entities)
        found.update(kind for kind, _, _ in predicted_entities)
        correct.update(kind for kind, _, _ in gold_entities & predicted_entities)
        tokens += len(g)
        right += sum(a == b for a, b in zip(g, p))
    types = sorted(set(wanted) | set(found))
    return {"micro": _prf(sum(correct.values()), sum(found.values()), sum(wanted.values())),
            "per_type": {t: _prf(correct[t], found[t], wanted[t]) for t in types},
            "token_accuracy": right / tokens if tokens else 0.0, "sentences": len(gold), "tokens": tokens}


def tag_scores(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str | None]]) -> dict:
    """``{"token_accuracy", "macro_f1", "per_tag": {tag: {precision, recall, f1, support, predicted}}}``."""
    _check_lengths(gold, predicted)
    correct, found, wanted = Counter(), Counter(), Counter()
    for g, p in zip(gold, predicted):
        for a, b in zip(g, p):
            wanted[a] += 1
            found[b] += 1
            correct[a] += a == b
    tokens = sum(wanted.values())
    tags = sorted(t for t in set(wanted) | set(found) if t is not None)
    per_tag = {t: _prf(correct[t], found[t], wanted[t]) for t in tags}
    gold_tags = [t for t in tags if wanted[t]]
    return {"token_accuracy": sum(correct.values()) / tokens if tokens else 0.0,
            "macro_f1": sum(per_tag[t]["f1"] for t in gold_tags) / len(gold_tags) if gold_tags else 0.0,
            "per_tag": per_tag, "sentences": len(gold), "tokens": tokens}


def score(task: str, gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str | None]]) -> dict:
    """``entity_scores`` for ``ner``, ``tag_scores`` for ``pos``, with the headline figure as ``score``."""
    if task == "ner":
        result = entity_scores(gold, predicted)
        return {"task": task, "score": result["micro"]["f1"], "score_name": "entity micro-F1", **result}
    result = tag_scores(gold, predicted)
    return {"task": task, "score": result["token_accuracy"], "score_name": "token accuracy", **result}
