"""Texts -> token windows -> bucket-padded backend batches, and window scores -> one score per text.

A text that fits the export's ``max_length`` is one window, tokenized exactly as in training by the
version's own ``tokenizer.json`` (``[CLS] text [SEP]`` for WordPiece families, ``<s> text </s>`` for
RoBERTa's byte-level BPE: the export's ``tokenizer_kind``; ``cls_id`` / ``sep_id`` / ``pad_id`` come from
its metadata, so no family is special-cased here). A longer one is not cut: its tokens (without specials) are split into windows of
``max_length - 2`` tokens, neighbours sharing ``overlap`` tokens, each wrapped in ``[CLS] ... [SEP]``.
A ``--window-overlap`` over half a window of a model is cut to half a window for that model (the flag is one for
every model), said once per served version in the proxy's log. Each window is scored separately and the text's score is the mean of its window scores weighted by
how many of the text's tokens each window holds (``COMBINE``). Batches are padded to the smallest of the
export's length buckets that fits, so TF Serving's batcher never has to pad anything itself.
"""
from __future__ import annotations

import logging

from tfxformers.models.buckets import bucket_length, buckets_up_to
# The window plan and the combination live in models.windows, shared with `tfxformers predict`.
from tfxformers.models.windows import (COMBINE, COMBINE_EMBEDDING, Window, check_overlap, combine, max_overlap,
                                       text_windows, window_starts)
from tfxformers.serving.proxy import errors

log = logging.getLogger("tfxformers.proxy")

__all__ = ["COMBINE", "COMBINE_EMBEDDING", "TextEncoder", "Window", "combine", "window_starts"]


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
        # Exports before the encoder registry have no tokenizer_kind; they were all BERT (WordPiece).
        self.tokenizer_kind = metadata.get("tokenizer_kind") or "wordpiece"
        self._overlap_said = False

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
            self._say_if_cut(overlap)
            body_ids = self.tokenizer.encode(texts[index], add_special_tokens=False).ids
            starts = window_starts(len(body_ids), self.max_length - 2, overlap)
            if len(starts) > max_windows:
                raise errors.TooLarge(
                    f"texts[{index}] is {len(body_ids)} tokens and would need {len(starts)} windows of "
                    f"{self.max_length}; the limit is {max_windows} windows per text")
            windows.extend(text_windows(index, body_ids, self.max_length, overlap, self.cls_id, self.sep_id, len(ids)))
        return windows

    def _say_if_cut(self, overlap: int) -> None:
        problem = None if self._overlap_said else check_overlap(overlap, self.max_length)
        if problem:
            self._overlap_said = True
            log.warning("%s; windows of this model share %d tokens (the proxy's --window-overlap is one for every "
                        "model)", problem, max_overlap(self.max_length))

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
