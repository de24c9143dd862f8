"""Words, word pieces, windows and spans for token classification: pure Python, no NumPy, no TensorFlow.

The in-process tagger (``models.tagging.inference``) and the tokenizer proxy (which gets the logits from TF
Serving, and has neither NumPy nor TensorFlow) share every step here, so both tag a text the same way:

1. ``split_words(text)``: the words of a raw text as ``(start, end)`` character spans (the corpora's
   tokenisation: ``@user``, URLs, ``#tags``, numbers, words with their clitics ``'s`` / ``n't`` split off,
   each punctuation mark and each emoji a word of its own). Training data gives its words instead; their
   spans come from ``join_words``.
2. ``word_pieces(word_spans, piece_offsets)``: the word pieces of the tokenizer's output that overlap each
   word; the first one carries the word's label (``first_pieces``; -1: the word tokenizes to nothing, e.g.
   a lone zero-width character; it is tagged ``O`` / ``None``).
3. ``plan_windows(word_first, n_pieces, ...)``: windows of at most ``max_pieces`` pieces that begin and end
   on word boundaries, consecutive windows sharing about ``overlap`` pieces (``plan_text`` does 2 and 3).
4. ``merge_windows(...)``: the logit rows of each word's pieces, each from the window in which the piece sits
   furthest from an edge (a word cut off by a window's end is read from the next window, with its context);
   ``word_tags`` turns them into one tag per word by an ``AGGREGATIONS`` rule (``first``: the first piece's,
   as trained; ``average``: the mean of the pieces' probabilities; ``max``: the most confident piece's).
5. ``bio_entities(tags)``: entity spans from BIO tags by the CoNLL rules (an ``I-`` without ``B-`` starts
   an entity, a change of type ends one); ``entities_with_offsets`` puts character offsets on them.
"""
from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Sequence

IGNORE = -100  # the label of pieces that carry no word's label (continuations, specials, padding)
DEFAULT_OVERLAP = 32
AGGREGATIONS = ("first", "average", "max")
# A word's letter case, which uncased tokenizers (MiniLM's, MPNet's) drop: an optional model input (``shape_ids``,
# one per piece, the shape of the word the piece is in; 0 for special tokens and padding), ``--word-shape``.
SHAPES = ("special", "lower", "title", "upper", "uncased")
SHAPE_INPUT = "shape_ids"

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


def word_pieces(word_spans: Sequence[tuple[int, int]], piece_offsets: Sequence[tuple[int, int]]) -> list[list[int]]:
    """The indices of the pieces overlapping each word, in order (empty for a word no piece covers).

    ``piece_offsets`` are the tokenizer's character offsets of the text's pieces (no special tokens); a piece
    with an empty span covers nothing. A piece overlapping two words (``don`` of ``do|n't``) belongs to both:
    the earlier word's label wins in training; in tagging both words read its logits."""
    result: list[list[int]] = []
    piece, n = 0, len(piece_offsets)
    for ws, we in word_spans:
        while piece < n and (piece_offsets[piece][1] <= ws or piece_offsets[piece][0] == piece_offsets[piece][1]):
            piece += 1  # pieces wholly before this word (or empty) cannot be its first
        covering, j = [], piece
        while j < n and piece_offsets[j][0] < we:
            if piece_offsets[j][0] != piece_offsets[j][1] and piece_offsets[j][1] > ws:
                covering.append(j)
            j += 1
        result.append(covering)
    return result


def first_pieces(word_spans: Sequence[tuple[int, int]], piece_offsets: Sequence[tuple[int, int]]) -> list[int]:
    """``[n_words]`` index of the first piece overlapping each word (-1 for a word no piece covers)."""
    return [pieces[0] if pieces else -1 for pieces in word_pieces(word_spans, piece_offsets)]


def piece_labels(word_first: Sequence[int], word_labels: Sequence[int], n_pieces: int) -> list[int]:
    """``[n_pieces]`` labels for training: each word's label on its first piece, ``IGNORE`` elsewhere."""
    labels = [IGNORE] * n_pieces
    for piece, label in zip(word_first, word_labels):
        if piece >= 0 and labels[piece] == IGNORE:
            labels[piece] = int(label)
    return labels


@dataclass(frozen=True)
class Window:
    """Pieces ``[start, end)`` of a text's piece sequence, fed to the model framed by its special tokens."""
    start: int
    end: int


def plan_windows(word_first: Sequence[int], n_pieces: int, max_pieces: int, overlap: int) -> list[Window]:
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


def pieces_per_window(max_length: int, prefix: Sequence[int], suffix: Sequence[int]) -> int:
    return max(1, max_length - len(prefix) - len(suffix))


def default_overlap(max_length: int) -> int:
    """32 pieces, or a quarter of a short window."""
    return min(DEFAULT_OVERLAP, max(0, max_length // 4))


@dataclass
class TextPlan:
    """One text cut for the model: its words, their pieces, and the windows the pieces are read in."""
    text: str
    word_spans: list[tuple[int, int]]
    word_first: list[int]         # [n_words] first piece of each word, -1 if none
    piece_ids: list[int]          # the text's pieces, no special tokens
    windows: list[Window]
    word_pieces: list[list[int]]  # [n_words] every piece overlapping each word
    piece_shapes: list[int]       # [n_pieces] the SHAPES index of the word each piece begins in


def word_shape(word: str) -> int:
    """The ``SHAPES`` index of a word: ``lower`` (``film``), ``title`` (``Paris``, ``McDonald``, ``I``), ``upper``
    (``NASA``, two or more capitals and no small letter), ``uncased`` (no cased letter: ``42``, ``,``, ``東京``)."""
    cased = [c for c in word if c.isupper() or c.islower()]
    if not cased:
        return 4
    if not cased[0].isupper():
        return 1
    return 3 if len(cased) > 1 and all(c.isupper() for c in cased) else 2


def plan_text(text: str, word_spans: Sequence[tuple[int, int]], piece_ids: Sequence[int],
              piece_offsets: Sequence[tuple[int, int]], per_window: int, overlap: int) -> TextPlan:
    """The plan of one text from its tokenizer output (ids and offsets of its pieces, no special tokens)."""
    pieces = word_pieces(word_spans, piece_offsets)
    first = [p[0] if p else -1 for p in pieces]
    windows = plan_windows(first, len(piece_ids), per_window, overlap)
    shapes = [4] * len(piece_ids)  # a piece outside every word (none, normally) is uncased
    for (start, end), covering in reversed(list(zip(word_spans, pieces))):  # a shared piece: the earlier word's
        for piece in covering:
            shapes[piece] = word_shape(text[start:end])
    return TextPlan(text, list(word_spans), first, list(piece_ids), windows, pieces, shapes)


def merge_windows(windows: Sequence[Window], window_logits: Sequence, word_pieces: Sequence[Sequence[int]]) -> list[list]:
    """Per word, the logit rows of its pieces (``word_pieces``, e.g. only each word's first piece), each read from
    the window in which that piece is furthest from an edge. ``window_logits[i]`` holds ``end - start`` rows (the
    special tokens' rows already dropped)."""
    chosen: dict[int, object] = {}
    out = []
    for pieces in word_pieces:
        rows = []
        for piece in pieces:
            if piece not in chosen:
                best, best_margin = None, -1
                for i, window in enumerate(windows):
                    if window.start <= piece < window.end:
                        margin = min(piece - window.start, window.end - 1 - piece)
                        if margin > best_margin:
                            best, best_margin = i, margin
                chosen[piece] = window_logits[best][piece - windows[best].start]
            rows.append(chosen[piece])
        out.append(rows)
    return out


def window_ids(plan: TextPlan, window: Window, prefix: Sequence[int], suffix: Sequence[int]) -> list[int]:
    """The ids the model reads for one window: the framing ids around the window's pieces."""
    return [*prefix, *plan.piece_ids[window.start:window.end], *suffix]


def window_shapes(plan: TextPlan, window: Window, prefix: Sequence[int], suffix: Sequence[int]) -> list[int]:
    """The ``shape_ids`` row matching ``window_ids``: 0 for the framing ids."""
    return [0] * len(prefix) + plan.piece_shapes[window.start:window.end] + [0] * len(suffix)


def plan_tags(plan: TextPlan, window_logits: Sequence, framing: tuple[int, int], label_names: Sequence[str],
              empty_tag: str | None, aggregation: str = "first") -> tuple[list[str | None], list[float]]:
    """``(tags, scores)`` of a plan's words from the logits of its windows' ``window_ids`` rows (one row of
    logits per id); ``framing`` is ``(len(prefix), len(suffix))``, whose rows are dropped."""
    n_prefix, n_suffix = framing
    inner = [logits[n_prefix:len(logits) - n_suffix] for logits in window_logits]
    pieces = plan.word_pieces if aggregation != "first" else [[p] if p >= 0 else [] for p in plan.word_first]
    return word_tags(merge_windows(plan.windows, inner, pieces), label_names, empty_tag, aggregation)


def plan_answer(task: str, plan: TextPlan, tags: Sequence[str | None], scores: Sequence[float]) -> dict:
    """What ``tfxformers tag`` and the proxy's ``:tag`` say about one text: its word and window counts, and its
    ``entities`` (NER) or every word as ``tokens`` (POS), with character offsets into the text."""
    result = {"words": len(plan.word_spans), "windows": len(plan.windows)}
    if task == "ner":
        result["entities"] = entities_with_offsets(plan.text, plan.word_spans, tags, scores)
    else:
        result["tokens"] = tokens_with_offsets(plan.text, plan.word_spans, tags, scores)
    return result


def softmax(row) -> list[float]:
    values = [float(x) for x in row]
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


def _best(probabilities: Sequence[float]) -> int:
    return max(range(len(probabilities)), key=probabilities.__getitem__)  # the first of equal maxima


def word_tags(word_rows: Sequence[Sequence], label_names: Sequence[str], empty_tag: str | None,
              aggregation: str = "first") -> tuple[list[str | None], list[float]]:
    """Each word's tag and its probability from the logit rows of its pieces (``merge_windows``): ``first``
    reads the first row only (the piece the model was trained to label), ``average`` the mean of the rows'
    probabilities, ``max`` the row with the most probable tag. A word without rows gets ``empty_tag`` (``O``
    for NER) and score 0."""
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {', '.join(AGGREGATIONS)} (got {aggregation!r})")
    tags, scores = [], []
    for rows in word_rows:
        if not len(rows):
            tags.append(empty_tag)
            scores.append(0.0)
            continue
        if aggregation == "first":
            probabilities = softmax(rows[0])
        elif aggregation == "average":
            each = [softmax(row) for row in rows]
            probabilities = [sum(column) / len(each) for column in zip(*each)]
        else:
            probabilities = max((softmax(row) for row in rows), key=max)
        best = _best(probabilities)
        tags.append(label_names[best])
        scores.append(probabilities[best])
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
    """Entities as ``{"entity", "text", "start", "end", "score"}``: character offsets into ``text`` (``text[start:end]``
    is the entity), the score the mean probability of its words' tags."""
    out = []
    for kind, first, end in bio_entities(tags):
        start, stop = word_spans[first][0], word_spans[end - 1][1]
        out.append({"entity": kind, "text": text[start:stop], "start": start, "end": stop,
                    "score": round(sum(scores[first:end]) / (end - first), 4)})
    return out


def tokens_with_offsets(text: str, word_spans: Sequence[tuple[int, int]], tags: Sequence[str | None],
                        scores: Sequence[float]) -> list[dict]:
    """Every word as ``{"text", "tag", "start", "end", "score"}`` (POS output)."""
    return [{"text": text[s:e], "tag": tag, "start": s, "end": e, "score": round(float(score), 4)}
            for (s, e), tag, score in zip(word_spans, tags, scores)]
