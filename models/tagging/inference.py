"""Tag texts in process: words -> windows -> the Keras model's logits -> merged words -> entities or tags.

``tag_texts(trained, texts)`` is the library call behind ``tfxformers tag`` and the notebook: for each text
``{"text", "task", "entities": [...]}`` (NER: ``type``, ``text``, ``start``, ``end``, ``score``) or
``{"text", "task", "tokens": [...]}`` (POS: every word with ``tag``), offsets into the original text.
``tag_words`` tags sentences already split into words (evaluation on the corpora). The proxy gets the same
logits from TF Serving and runs the same ``decode`` functions on them.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from tfxformers.errors import UserError
from tfxformers.models.tagging import decode, features
from tfxformers.models.texts import BLANK, is_blank

PREDICT_BATCH = 32


def framing(trained) -> tuple[list[int], list[int]]:
    return list(trained.info["prefix_ids"]), list(trained.info["suffix_ids"])


def predict_window_logits(model, rows: Sequence[Sequence[int]], *, pad_id: int, input_names: Sequence[str],
                          shapes: Sequence[Sequence[int]] | None = None,
                          batch_size: int = PREDICT_BATCH) -> list[np.ndarray]:
    """``[len(row), num_labels]`` logits per row, ``batch_size`` rows (sorted by length) per model call."""
    out: list[np.ndarray | None] = [None] * len(rows)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    for first in range(0, len(order), batch_size):
        chunk = order[first:first + batch_size]
        width = features.padded_width(max(len(rows[i]) for i in chunk))
        inputs = features.model_inputs([rows[i] for i in chunk], None if shapes is None else [shapes[i] for i in chunk],
                                       pad_id, width, input_names)
        logits = np.asarray(model(inputs, training=False))
        for row, i in enumerate(chunk):
            out[i] = logits[row, :len(rows[i])]
    return out


def reads_shapes(trained) -> bool:
    return decode.SHAPE_INPUT in trained.input_names


def plan_rows(trained, plans: Sequence[features.TextPlan]) -> tuple[list[list[int]], list[list[int]] | None]:
    """The id rows the model reads for ``plans`` (one per window, framed by the model's special ids, in order),
    and their ``shape_ids`` rows if the model reads them (else None)."""
    prefix, suffix = framing(trained)
    windows = [(plan, window) for plan in plans for window in plan.windows]
    rows = [features.window_ids(plan, window, prefix, suffix) for plan, window in windows]
    if not reads_shapes(trained):
        return rows, None
    return rows, [features.window_shapes(plan, window, prefix, suffix) for plan, window in windows]


def window_rows(trained, texts: Sequence[str]) -> tuple[list[list[int]], list[list[int]] | None]:
    """The rows (ids, and shapes or None) ``tag_texts`` sends to the model (or to ``predict``) for raw ``texts``."""
    return plan_rows(trained, _plans(trained, list(texts), [decode.split_words(t) for t in texts], None))


def _tag_plans(trained, plans: Sequence[features.TextPlan], predict=None,
               aggregation: str = "first") -> list[tuple[list, list]]:
    """``(tags, scores)`` per plan's words; ``predict(rows, shapes)`` gives each id row's logits (default: the
    Keras model's; a served model's through TF Serving's API gives the same answers, see ``tag_texts``)."""
    prefix, suffix = framing(trained)
    rows, shapes = plan_rows(trained, plans)
    if predict is None:
        logits = predict_window_logits(trained.keras_model, rows, pad_id=int(trained.info["pad_id"]),
                                       input_names=trained.input_names, shapes=shapes)
    else:
        logits = [np.asarray(lg) for lg in predict(rows, shapes)]
    framing_lengths, results, at = (len(prefix), len(suffix)), [], 0
    for plan in plans:
        count = len(plan.windows)
        results.append(decode.plan_tags(plan, logits[at:at + count], framing_lengths, trained.label_names,
                                        trained.info.get("empty_tag"), aggregation))
        at += count
    return results


def _plans(trained, texts, spans, overlap: int | None):
    prefix, suffix = framing(trained)
    max_length = trained.max_length
    chosen = trained.info.get("overlap", features.default_overlap(max_length)) if overlap is None else overlap
    per_window = features.pieces_per_window(max_length, prefix, suffix)
    if chosen < 0 or chosen > per_window // 2:
        raise UserError(f"--overlap must be between 0 and {per_window // 2} pieces for this model's windows of "
                        f"{per_window} (got {chosen})")
    return features.plan_texts(trained.tokenizer, texts, spans, max_length=max_length, overlap=chosen,
                               prefix=prefix, suffix=suffix)


def tag_words(trained, sentences: Sequence[Sequence[str]], overlap: int | None = None) -> list[list[str | None]]:
    """Tags of sentences already split into words (the corpora's), one per word."""
    joined = [decode.join_words(words) for words in sentences]
    plans = _plans(trained, [t for t, _ in joined], [s for _, s in joined], overlap)
    return [tags for tags, _ in _tag_plans(trained, plans)]


def tag_texts(trained, texts: Sequence[str], overlap: int | None = None, predict=None,
              aggregation: str = "first") -> list[dict]:
    """Entities (NER) or tagged words (POS) of raw texts, with character offsets into each text. ``predict``
    (``(id rows, shape rows or None)`` -> ``[len(row), num_labels]`` logits each) replaces the in-process model,
    e.g. by an exported version's ``tag`` signature behind a model server; ``aggregation``
    (``decode.AGGREGATIONS``) is how a word's pieces give its tag."""
    if aggregation not in decode.AGGREGATIONS:
        raise UserError(f"--aggregation must be one of {', '.join(decode.AGGREGATIONS)} (got {aggregation!r})")
    for i, text in enumerate(texts):
        if not isinstance(text, str) or is_blank(text):
            raise UserError(f"text {i + 1} is empty: it {BLANK}")
    spans = [decode.split_words(text) for text in texts]
    plans = _plans(trained, list(texts), spans, overlap)
    task = trained.info["task"]
    return [{"text": text, "task": task, **decode.plan_answer(task, plan, tags, scores)}
            for text, plan, (tags, scores) in zip(texts, plans, _tag_plans(trained, plans, predict, aggregation))]
