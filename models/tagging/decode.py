"""Words, word pieces, windows and spans for token classification: pure Python + NumPy, no TensorFlow.

The in-process tagger (``models.tagging.inference``) and the tokenizer proxy (which gets the logits from TF
Serving) share every step here, so both tag a text the same way:

1. ``split_words(text)``: the words of a raw text as ``(start, end)`` character spans (the corpora's
   tokenisation: ``@user``, URLs, ``#tags``, numbers, words with their clitics ``'s`` / ``n't`` split off,
   each punctuation mark and each emoji a word of its own). Training data gives its words instead; their
   spans come from ``join_words``.
2. ``first_pieces(word_spans, piece_offsets)``: which word piece of the tokenizer's output carries each
   word's label: the first piece overlapping the word (-1: the word tokenizes to nothing, e.g. a lone
   zero-width character; it is tagged ``O`` / ``None``).
3. ``plan_windows(word_first, n_pieces, ...)``: windows of at most ``max_pieces`` pieces that begin and end
   on word boundaries, consecutive windows sharing about ``overlap`` pieces.
4. ``merge_windows(...)``: one logit row per word, from the window in which the word sits furthest from an
   edge (a word cut off by a window's end is read from the next window, where it has its context).
5. ``bio_entities(tags)``: entity spans from BIO tags by the CoNLL rules (an ``I-`` without ``B-`` starts
   an entity, a change of type ends one); ``entities_with_offsets`` puts character offsets on them.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Sequence

import numpy as np

IGNORE = -100  # the label of pieces that carry no word's label (continuations, specials, padding)

# One alternative per kind of word, tried in order. Clitics are split off as the Penn Treebank does.
_WORD = re.compile(r"""
    (?:https?://|www\.)\S+                       # URLs, whole
  | [@#]\w+                                     # @user, #hashtag
  | (?:[^\W\d_]\.){2,}                            # U.S., e.g.
  | (?:Mr|Mrs|Ms|Dr|St|Jr|Inc|Co|Corp|Ltd|vs)\.    # abbreviations the treebanks keep whole
  | \d+(?:[.,:/]\d+)*                            # numbers, times, dates, 1,000.5
  | \w+(?=n't\b)                                 # do|n't
  | n't\b
  | '(?:s|re|ve|ll|d|m|S|RE|VE|LL|D|M)\b           # 's 're 've 'll 'd 'm
  | [^\W\d_]\w*(?:-\w+)*                           # words (letters first), hyphenated ones whole
  | \w+                                         # anything else made of word characters (_x, 3rd)
  | [^\s\w]                                      # any other single character: punctuation, emoji, symbols
""", re.VERBOSE | re.UNICODE)


def split_words(text: str) -> list[tuple[int, int]]:
    """The words of ``text`` as ``(start, end)`` character offsets, in order; whitespace is never a word.

    An emoji with its modifiers (skin tone, variation selector, zero-width joiner sequences) is one word."""
    spans: list[tuple[int, int]] = []
    for match in _WORD.finditer(text):
        start, end = match.span()
        if spans and _joins_previous(text, start, spans[-1][1]):
            spans[-1] = (spans[-1][0], end)
            continue
        spans.append((start, end))
    return spans


def _joins_previous(text: str, start: int, previous_end: int) -> bool:
    """A mark, modifier or joiner that belongs to the character just before it (no space in between)."""
    if start != previous_end or start == 0:
        return False
    char = text[start]
    category = unicodedata.category(char)
    return (category in ("Mn", "Me", "Sk") and char not in "^`") or char in "\u200d\ufe0f\ufe0e" \
        or "\U0001F3FB" <= char <= "\U0001F3FF" or text[start - 1] == "\u200d"


def join_words(words: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """A text for already-split words (the corpora's): the words joined by single spaces, and their spans."""
    spans, position = [], 0
    for word in words:
        spans.append((position, position + len(word)))
        position += len(word) + 1
    return " ".join(words), spans


def first_pieces(word_spans: Sequence[tuple[int, int]], piece_offsets: Sequence[tuple[int, int]]) -> np.ndarray:
    """``[n_words]`` index of the first piece overlapping each word (-1 for a word no piece covers).

    ``piece_offsets`` are the tokenizer's character offsets of the text's pieces (no special tokens); a piece
    with an empty span covers nothing. A piece overlapping two words (``don`` of ``do|n't``) is the first piece
    of both: the earlier word's label wins in training; in tagging both words read its logits."""
    result = np.full(len(word_spans), -1, dtype=np.int64)
    piece = 0
    n = len(piece_offsets)
    for w, (ws, we) in enumerate(word_spans):
        while piece < n and (piece_offsets[piece][1] <= ws or piece_offsets[piece][0] == piece_offsets[piece][1]):
            piece += 1  # pieces wholly before this word (or empty) cannot be its first
        if piece < n and piece_offsets[piece][0] < we:
            result[w] = piece
    return result


def piece_labels(word_first: np.ndarray, word_labels: Sequence[int], n_pieces: int) -> np.ndarray:
    """``[n_pieces]`` labels for training: each word's label on its first piece, ``IGNORE`` elsewhere."""
    labels = np.full(n_pieces, IGNORE, dtype=np.int64)
    for piece, label in zip(word_first, word_labels):
        if piece >= 0 and labels[piece] == IGNORE:
            labels[piece] = label
    return labels


@dataclass(frozen=True)
class Window:
    """Pieces ``[start, end)`` of a text's piece sequence, fed to the model framed by its special tokens."""
    start: int
    end: int


def plan_windows(word_first: np.ndarray, n_pieces: int, max_pieces: int, overlap: int) -> list[Window]:
    """Windows of at most ``max_pieces`` pieces covering all ``n_pieces``, each beginning at a word's first
    piece (a word longer than a window is cut, the only case a window starts or ends inside a word), and the
    next one beginning at the first word starting at or after ``end - overlap``."""
    if max_pieces < 1:
        raise ValueError("max_pieces must be at least 1")
    overlap = max(0, min(overlap, max_pieces // 2))
    starts = sorted({int(p) for p in word_first if p >= 0} | {0})
    if n_pieces <= max_pieces:
        return [Window(0, n_pieces)]
    windows, start = [], 0
    while True:
        limit = start + max_pieces
        if limit >= n_pieces:
            windows.append(Window(start, n_pieces))
            return windows
        # End on the last word boundary inside the window, unless that would leave the window empty.
        end = max((s for s in starts if start < s <= limit), default=limit)
        windows.append(Window(start, end))
        follow = next((s for s in starts if s >= end - overlap and s > start), end)
        start = follow


def merge_windows(windows: Sequence[Window], window_logits: Sequence[np.ndarray], word_first: np.ndarray,
                  num_labels: int) -> np.ndarray:
    """``[n_words, num_labels]`` logits: each word's first piece read from the window in which it is furthest
    from an edge; zeros for a word no piece covers. ``window_logits[i]`` is ``[end - start, num_labels]``
    (the special tokens' rows already dropped)."""
    out = np.zeros((len(word_first), num_labels), dtype=np.float32)
    for w, piece in enumerate(word_first):
        if piece < 0:
            continue
        best, best_margin = None, -1
        for i, window in enumerate(windows):
            if window.start <= piece < window.end:
                margin = min(piece - window.start, window.end - 1 - piece)
                if margin > best_margin:
                    best, best_margin = i, margin
        out[w] = np.asarray(window_logits[best])[piece - windows[best].start]
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def word_tags(word_logits: np.ndarray, word_first: np.ndarray, label_names: Sequence[str],
              empty_tag: str | None) -> tuple[list[str | None], list[float]]:
    """Each word's best tag and its probability; ``empty_tag`` (``O`` for NER) for words no piece covers."""
    probabilities = softmax(np.asarray(word_logits, dtype=np.float64)) if len(word_logits) else np.zeros((0, 1))
    tags, scores = [], []
    for w, piece in enumerate(word_first):
        if piece < 0:
            tags.append(empty_tag)
            scores.append(0.0)
        else:
            best = int(probabilities[w].argmax())
            tags.append(label_names[best])
            scores.append(float(probabilities[w, best]))
    return tags, scores


def _split_tag(tag: str | None) -> tuple[str, str]:
    if not tag or tag == "O" or "-" not in tag:
        return "O", ""
    prefix, _, kind = tag.partition("-")
    return (prefix if prefix in ("B", "I") else "O"), kind


def bio_entities(tags: Sequence[str | None]) -> list[tuple[str, int, int]]:
    """``(type, first_word, end_word)`` spans of BIO tags, by conlleval's rules: an entity starts at ``B-X``,
    or at ``I-X`` after ``O`` or after another type (an ill-formed ``I-`` is an entity, not dropped), and
    ends before ``O``, ``B-`` or a change of type."""
    entities, start, kind = [], None, ""
    for i, tag in enumerate([*tags, "O"]):
        prefix, this = _split_tag(tag)
        continues = prefix == "I" and start is not None and this == kind
        if start is not None and not continues:
            entities.append((kind, start, i))
            start = None
        if prefix in ("B", "I") and not continues:
            start, kind = i, this
    return entities


def entities_with_offsets(text: str, word_spans: Sequence[tuple[int, int]], tags: Sequence[str | None],
                          scores: Sequence[float]) -> list[dict]:
    """Entities as ``{"type", "text", "start", "end", "score"}``: character offsets into ``text`` (``text[start:end]``
    is the entity), the score the mean probability of its words' tags."""
    out = []
    for kind, first, end in bio_entities(tags):
        start, stop = word_spans[first][0], word_spans[end - 1][1]
        out.append({"type": kind, "text": text[start:stop], "start": start, "end": stop,
                    "score": round(float(np.mean(scores[first:end])), 4)})
    return out


def tokens_with_offsets(text: str, word_spans: Sequence[tuple[int, int]], tags: Sequence[str | None],
                        scores: Sequence[float]) -> list[dict]:
    """Every word as ``{"text", "tag", "start", "end", "score"}`` (POS output)."""
    return [{"text": text[s:e], "tag": tag, "start": s, "end": e, "score": round(float(score), 4)}
            for (s, e), tag, score in zip(word_spans, tags, scores)]
