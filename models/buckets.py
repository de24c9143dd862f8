"""Sequence-length buckets shared by training, export warm-up and the tokenizer proxy (pure Python).

Padding every example to 256 or 512 tokens wastes most of the compute on short texts; padding each batch
to its own longest length gives TF Serving (and XLA) a new shape for almost every request. Padding each
batch to the smallest of a few fixed lengths that fits is the compromise: little waste, few shapes.
This module must not import TensorFlow: the proxy uses it.
"""
from __future__ import annotations

from typing import Sequence

DEFAULT_BUCKETS: tuple[int, ...] = (16, 32, 64, 128, 256)
# The --max-length a classifier may train with (train classifier, pipeline run): below 8 a text is little
# more than its special tokens; 512 is the most positions the built-in encoder families have.
MAX_LENGTH_RANGE: tuple[int, int] = (8, 512)


def bucket_length(length: int, buckets: Sequence[int] = DEFAULT_BUCKETS) -> int:
    """The smallest bucket that holds ``length`` tokens (the largest bucket if none does)."""
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    for bucket in sorted(buckets):
        if length <= bucket:
            return bucket
    return max(buckets)


def buckets_up_to(max_length: int, buckets: Sequence[int] = DEFAULT_BUCKETS) -> tuple[int, ...]:
    """The buckets below ``max_length``, plus ``max_length`` itself as the last one."""
    kept = tuple(b for b in sorted(buckets) if b < max_length)
    return kept + (max_length,)


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int, buckets: Sequence[int] = DEFAULT_BUCKETS):
    """Right-pad token id lists to one bucket length; returns (ids, mask) as lists of lists."""
    width = bucket_length(max((len(s) for s in sequences), default=0), buckets)
    ids, mask = [], []
    for seq in sequences:
        seq = list(seq)[:width]
        padding = width - len(seq)
        ids.append(seq + [pad_id] * padding)
        mask.append([1] * len(seq) + [0] * padding)
    return ids, mask
