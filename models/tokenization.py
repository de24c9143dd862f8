"""Tokenize texts once and feed Keras batches padded to length buckets, not to a fixed 256 or 512.

``make_dataset`` returns a ``tf.data.Dataset`` of ``({input_ids, attention_mask[, token_type_ids]},
label)`` batches. Examples of similar length are batched together (sorted within a window of shuffled
examples), and each batch is padded to the smallest bucket of ``models.buckets`` that holds its longest
example, so most of the compute goes to real tokens while graphs see only a handful of shapes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from tfxformers.models.buckets import DEFAULT_BUCKETS, buckets_up_to, bucket_length

SORT_WINDOW_BATCHES = 50


@dataclass
class Encoded:
    """Token ids per text (no padding), and how many texts were cut at ``max_length``."""

    ids: list[list[int]]
    truncated: int
    max_length: int
    pad_id: int

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.ids), dtype=np.int64, count=len(self.ids))


def encode_texts(tokenizer, texts: Sequence[str], max_length: int = 128) -> Encoded:
    full = tokenizer(list(texts), add_special_tokens=True, truncation=False, padding=False,
                     return_attention_mask=False, return_token_type_ids=False, verbose=False)["input_ids"]
    truncated = sum(len(ids) > max_length for ids in full)
    sep = tokenizer.sep_token_id
    ids = []
    for seq in full:
        if len(seq) > max_length:
            # Keep the closing [SEP]: the exported graph and the proxy rely on it to find the end.
            seq = seq[: max_length - 1] + ([sep] if sep is not None else [seq[-1]])
        ids.append(seq)
    return Encoded(ids, truncated, max_length, tokenizer.pad_token_id or 0)


def pad_to(ids: Sequence[Sequence[int]], width: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    out = np.full((len(ids), width), pad_id, dtype=np.int32)
    mask = np.zeros((len(ids), width), dtype=np.int32)
    for row, seq in enumerate(ids):
        n = min(len(seq), width)
        out[row, :n] = seq[:n]
        mask[row, :n] = 1
    return out, mask


def plan_batches(lengths: np.ndarray, batch_size: int, shuffle: bool, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Index batches: shuffled (if asked), then sorted by length inside windows, then batch order shuffled."""
    order = rng.permutation(len(lengths)) if shuffle else np.arange(len(lengths))
    window = batch_size * SORT_WINDOW_BATCHES
    batches = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def epoch_plans(lengths: np.ndarray, batch_size: int, shuffle: bool, seed: int | None,
                start: tuple[int, int] = (0, 0)):
    """A function giving, call after call, the index batches of epoch ``start[0]``, then the next epoch, ...

    Each epoch's order depends only on ``(seed, epoch)``, so a run resumed by Keras' ``BackupAndRestore``
    at ``start = (epoch, step)`` (``multiworker.resume_start``) sees the batches the uninterrupted run saw.
    Keras runs that first epoch from ``step`` on but reads a fresh iterator from its beginning, so the
    first epoch is rotated to begin at ``step``; its first ``step`` batches come last and are never read
    (they keep the dataset's cardinality the same every epoch).
    """
    first_epoch, first_step = start
    next_epoch = [first_epoch]

    def plan() -> list[np.ndarray]:
        epoch = next_epoch[0]
        next_epoch[0] += 1
        rng = np.random.default_rng((seed or 0) + epoch) if shuffle else None
        batches = plan_batches(lengths, batch_size, shuffle, rng)
        skip = first_step if epoch == first_epoch else 0
        return batches[skip:] + batches[:skip]

    return plan


def make_dataset(encoded: Encoded, labels: np.ndarray | None = None, *, batch_size: int = 32,
                 buckets: Sequence[int] = DEFAULT_BUCKETS, shuffle: bool = False, seed: int = 0,
                 use_token_type_ids: bool = False, start: tuple[int, int] = (0, 0)):
    """A tf.data pipeline of bucket-padded batches; reshuffled every epoch when ``shuffle``.

    ``start``: the (epoch, step) a resumed ``fit`` continues at (``multiworker.resume_start``); see
    ``epoch_plans``.
    """
    import tensorflow as tf

    buckets = buckets_up_to(encoded.max_length, buckets)
    lengths = encoded.lengths
    plan = epoch_plans(lengths, batch_size, shuffle, seed, start)

    def generate():
        for index in plan():
            width = bucket_length(int(lengths[index].max()), buckets)
            ids, mask = pad_to([encoded.ids[i] for i in index], width, encoded.pad_id)
            features = {"input_ids": ids, "attention_mask": mask}
            if use_token_type_ids:
                features["token_type_ids"] = np.zeros_like(ids)
            if labels is None:
                yield features
            else:
                yield features, labels[index].astype(np.int64)

    spec = {"input_ids": tf.TensorSpec((None, None), tf.int32), "attention_mask": tf.TensorSpec((None, None), tf.int32)}
    if use_token_type_ids:
        spec["token_type_ids"] = tf.TensorSpec((None, None), tf.int32)
    signature = spec if labels is None else (spec, tf.TensorSpec((None,), tf.int64))
    steps = len(plan_batches(lengths, batch_size, False, None))
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return dataset.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(2)


def tokenize_batch(tokenizer, texts: Sequence[str], max_length: int = 128,
                   buckets: Sequence[int] = DEFAULT_BUCKETS, use_token_type_ids: bool = False) -> dict:
    """One batch of texts as bucket-padded int32 numpy inputs (for predict / evaluate)."""
    encoded = encode_texts(tokenizer, texts, max_length)
    width = bucket_length(int(encoded.lengths.max()) if len(texts) else 1, buckets_up_to(max_length, buckets))
    ids, mask = pad_to(encoded.ids, width, encoded.pad_id)
    features = {"input_ids": ids, "attention_mask": mask}
    if use_token_type_ids:
        features["token_type_ids"] = np.zeros_like(ids)
    return features


def predict_logits(model, tokenizer, texts: Sequence[str], *, max_length: int = 128, batch_size: int = 64,
                   buckets: Sequence[int] = DEFAULT_BUCKETS, use_token_type_ids: bool = False) -> np.ndarray:
    """Logits for many texts (each cut at ``max_length``), in the input order, batched by length for speed."""
    encoded = encode_texts(tokenizer, texts, max_length)
    return logits_for_ids(model, encoded.ids, encoded.pad_id, max_length=max_length, batch_size=batch_size,
                          buckets=buckets, use_token_type_ids=use_token_type_ids)


def logits_for_ids(model, ids: Sequence[Sequence[int]], pad_id: int, *, max_length: int = 128, batch_size: int = 64,
                   buckets: Sequence[int] = DEFAULT_BUCKETS, use_token_type_ids: bool = False) -> np.ndarray:
    """Logits for token-id rows of at most ``max_length`` ids, in the input order, batched by length."""
    out = None
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    for index in plan_batches(lengths, batch_size, False, None):
        width = bucket_length(int(lengths[index].max()), buckets_up_to(max_length, buckets))
        batch, mask = pad_to([ids[i] for i in index], width, pad_id)
        features = {"input_ids": batch, "attention_mask": mask}
        if use_token_type_ids:
            features["token_type_ids"] = np.zeros_like(batch)
        logits = np.asarray(model(features, training=False))
        if out is None:
            out = np.zeros((len(ids), logits.shape[-1]), dtype=np.float32)
        out[index] = logits
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def text_windows(tokenizer, texts: Sequence[str], max_length: int, overlap: int):
    """Each text as one window, or (longer than ``max_length`` tokens) as overlapping windows (``models.windows``)."""
    from tfxformers.models import windows

    full = tokenizer(list(texts), add_special_tokens=True, truncation=False, padding=False,
                     return_attention_mask=False, return_token_type_ids=False, verbose=False)["input_ids"]
    out = []
    for index, ids in enumerate(full):
        if len(ids) <= max_length:
            out.append(windows.Window(index, list(ids), len(ids), len(ids)))
            continue
        body = tokenizer(texts[index], add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        out.extend(windows.text_windows(index, body, max_length, overlap, tokenizer.cls_token_id,
                                        tokenizer.sep_token_id, len(ids)))
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of logits, computed stably."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def windowed_probabilities(model, tokenizer, texts: Sequence[str], *, max_length: int = 128, overlap: int = 32,
                           buckets: Sequence[int] = DEFAULT_BUCKETS) -> tuple[np.ndarray, list[int], list[int]]:
    """Class probabilities per text, long texts scored in windows and combined as the proxy does; also the
    number of windows and of tokens per text."""
    from tfxformers.models import windows

    planned = text_windows(tokenizer, texts, max_length, overlap)
    logits = logits_for_ids(model, [w.ids for w in planned], tokenizer.pad_token_id or 0, max_length=max_length,
                            buckets=buckets)
    combined, counts = windows.combine(planned, softmax(logits).tolist(), len(texts))
    tokens = [0] * len(texts)
    for w in planned:
        tokens[w.text_index] = w.text_tokens
    return np.asarray(combined, dtype=np.float32), counts, tokens
