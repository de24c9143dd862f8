"""Texts -> token windows -> bucket-padded backend batches, and window scores -> one score per text.

A text that fits the export's ``max_length`` is one window, tokenized exactly as in training
(``[CLS] text [SEP]``). A longer one is not cut: its tokens (without specials) are split into windows of
``max_length - 2`` tokens, neighbours sharing ``overlap`` tokens, each wrapped in ``[CLS] ... [SEP]``.
Each window is scored separately and the text's score is the mean of its window scores weighted by
how many of the text's tokens each window holds (``COMBINE``). Batches are padded to the smallest of the
export's length buckets that fits, so TF Serving's batcher never has to pad anything itself.
"""
from __future__ import annotations

from dataclasses import dataclass

from tfxformers.models.buckets import bucket_length, buckets_up_to
from tfxformers.serving.proxy import errors

COMBINE = "token-weighted mean of window probabilities"
COMBINE_EMBEDDING = "token-weighted mean of window embeddings"


@dataclass
class Window:
    text_index: int
    ids: list[int]
    weight: int  # tokens of the text it holds
    text_tokens: int  # tokens of the whole text, special tokens included


def window_starts(length: int, body: int, overlap: int) -> list[int]:
    """Start offsets of windows of ``body`` tokens covering ``length`` tokens, the last one flush with the end."""
    if length <= body:
        return [0]
    stride = max(1, body - min(overlap, body // 2))
    starts = list(range(0, length - body, stride))
    starts.append(length - body)
    return starts


class TextEncoder:
    """One served version's tokenizer plus the export's length rules."""

    def __init__(self, tokenizer_json: str, metadata: dict):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_str(tokenizer_json)
        # The proxy decides about length itself (windows, buckets); the saved tokenizer must not.
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.max_length = int(metadata["max_length"])
        self.buckets = buckets_up_to(self.max_length, metadata.get("buckets") or [self.max_length])
        self.pad_id = int(metadata.get("pad_id") or 0)
        self.cls_id = metadata.get("cls_id")
        self.sep_id = metadata.get("sep_id")

    def windows(self, texts: list[str], overlap: int, max_windows: int) -> list[Window]:
        encodings = self.tokenizer.encode_batch(texts)
        windows: list[Window] = []
        for index, encoding in enumerate(encodings):
            ids = encoding.ids
            if len(ids) <= self.max_length:
                windows.append(Window(index, ids, len(ids), len(ids)))
                continue
            if self.cls_id is None or self.sep_id is None:
                raise errors.TooLarge(f"texts[{index}] is {len(ids)} tokens; this model takes at most {self.max_length}")
            body_ids = self.tokenizer.encode(texts[index], add_special_tokens=False).ids
            body = self.max_length - 2
            starts = window_starts(len(body_ids), body, overlap)
            if len(starts) > max_windows:
                raise errors.TooLarge(
                    f"texts[{index}] is {len(body_ids)} tokens and would need {len(starts)} windows of "
                    f"{self.max_length}; the limit is {max_windows} windows per text")
            for start in starts:
                chunk = body_ids[start:start + body]
                windows.append(Window(index, [self.cls_id, *chunk, self.sep_id], len(chunk), len(ids)))
        return windows

    def batches(self, windows: list[Window], max_batch_size: int) -> list[tuple[list[int], list[list[int]], list[list[int]]]]:
        """(window indices, input_ids, attention_mask) per backend call: windows grouped by bucket, each
        group cut to ``max_batch_size`` rows and padded to its bucket."""
        groups: dict[int, list[int]] = {}
        for i, window in enumerate(windows):
            groups.setdefault(bucket_length(len(window.ids), self.buckets), []).append(i)
        out = []
        for width in sorted(groups):
            members = groups[width]
            for start in range(0, len(members), max_batch_size):
                chunk = members[start:start + max_batch_size]
                ids = [windows[i].ids + [self.pad_id] * (width - len(windows[i].ids)) for i in chunk]
                mask = [[1] * len(windows[i].ids) + [0] * (width - len(windows[i].ids)) for i in chunk]
                out.append((chunk, ids, mask))
        return out


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
