"""Texts -> word pieces -> windows, for training and tagging (a tokenizer, NumPy; no TensorFlow).

``plan_texts(tokenizer, texts, word_spans, max_length=..., overlap=...)`` tokenizes each whole text once
(no special tokens, with character offsets) and hands the pieces to ``decode.plan_text`` (each word's pieces,
windows on word boundaries); ``window_ids`` frames a window with the tokenizer's special tokens. Training
adds labels (``labelled_windows``); tagging runs the model on the windows and merges them back
(``models.tagging.inference``). The proxy calls ``decode.plan_text`` itself, with its ``tokenizers.Tokenizer``'s
offsets and the ``prefix_ids`` / ``suffix_ids`` of the export's metadata.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from tfxformers.models.tagging import decode
# The plan itself is pure Python in decode, where the proxy (no NumPy) builds it from its own tokenizer.
from tfxformers.models.tagging.decode import (DEFAULT_OVERLAP, SHAPE_INPUT, TextPlan, default_overlap,  # noqa: F401
                                              pieces_per_window, window_ids, window_shapes)


def plan_texts(tokenizer, texts: Sequence[str], word_spans: Sequence[Sequence[tuple[int, int]]], *, max_length: int,
               overlap: int, prefix: Sequence[int], suffix: Sequence[int], batch: int = 256) -> list[TextPlan]:
    """One ``TextPlan`` per text (tokenized ``batch`` texts per call of the fast tokenizer)."""
    plans = []
    per_window = pieces_per_window(max_length, prefix, suffix)
    for first in range(0, len(texts), batch):
        chunk = list(texts[first:first + batch])
        encoded = tokenizer(chunk, add_special_tokens=False, return_offsets_mapping=True,
                            return_attention_mask=False, return_token_type_ids=False)
        for i, text in enumerate(chunk):
            plans.append(decode.plan_text(text, word_spans[first + i], encoded["input_ids"][i],
                                          encoded["offset_mapping"][i], per_window, overlap))
    return plans


def labelled_windows(plans: Sequence[TextPlan], word_labels: Sequence[Sequence[int]], prefix: Sequence[int],
                     suffix: Sequence[int]) -> tuple[list[list[int]], list[list[int]], list[list[int]]]:
    """Training rows: ``(ids, labels, shapes)`` per window, each word's label on its first piece, ``IGNORE``
    elsewhere (a word in the overlap of two windows is learnt in both)."""
    all_ids, all_labels, all_shapes = [], [], []
    for plan, labels in zip(plans, word_labels):
        pieces = decode.piece_labels(plan.word_first, labels, len(plan.piece_ids))
        for window in plan.windows:
            all_ids.append(window_ids(plan, window, prefix, suffix))
            all_shapes.append(window_shapes(plan, window, prefix, suffix))
            all_labels.append([decode.IGNORE] * len(prefix) + pieces[window.start:window.end]
                              + [decode.IGNORE] * len(suffix))
    return all_ids, all_labels, all_shapes


def model_inputs(rows: Sequence[Sequence[int]], shapes: Sequence[Sequence[int]] | None, pad_id: int, width: int,
                 input_names: Sequence[str]) -> dict[str, np.ndarray]:
    """The padded int32 arrays a tagger reads for id rows (and their shape rows, if it takes ``shape_ids``)."""
    inputs = {"input_ids": pad_rows(rows, pad_id, width),
              "attention_mask": pad_rows([[1] * len(r) for r in rows], 0, width)}
    if SHAPE_INPUT in input_names:
        if shapes is None:
            raise ValueError("this tagger reads shape_ids: give the shape rows of the id rows")
        inputs[SHAPE_INPUT] = pad_rows(shapes, 0, width)
    return {n: inputs[n] for n in input_names}


def pad_rows(rows: Sequence[Sequence[int]], pad_value: int, width: int | None = None) -> np.ndarray:
    width = width or max((len(r) for r in rows), default=1)
    out = np.full((len(rows), width), pad_value, dtype=np.int32)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return out


def padded_width(longest: int, step: int = 16) -> int:
    """Batches padded to a multiple of 16 pieces: few distinct shapes, little wasted padding."""
    return max(step, -(-longest // step) * step)
