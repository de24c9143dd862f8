"""SQuAD-format data, and question + context -> overlapping encoder windows with character offsets.

One window is ``[CLS] question [SEP] context tokens [SEP]`` (``token_type_ids`` 0 then 1; RoBERTa's
``<s> question </s></s> context </s>``), at most
``max_seq_len`` tokens. A context too long for one window is split into several whose context parts
share ``doc_stride`` tokens (the meaning Hugging Face's tokenizers and QA pipeline give it: the overlap,
not the step; capped at half the room a window has, so windows always advance by at least half). Each
window keeps, for every position, the character span of the context that token came from (``None`` for
the question and special tokens), so a predicted span maps back to the exact substring of the original
context, whatever the tokenizer's normalisation (lower-casing, accents) did.

Training answers are mapped to token positions through those offsets: a window holding the whole answer
labels its first and last token, any other window labels ``[CLS]`` (position 0: "not in this window"),
as do unanswerable (SQuAD v2.0) questions.

Pure Python with the ``tokenizers`` library only: ``tfxformers answer`` and the proxy's ``:answer`` both
plan windows here, so both send the model the same rows.
"""
from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from tfxformers.errors import UserError
from tfxformers.models.buckets import DEFAULT_BUCKETS, bucket_length, buckets_up_to
from tfxformers.models.texts import BLANK, is_blank
from tfxformers.models.windows import window_starts

MAX_SEQ_LEN = 384
DOC_STRIDE = 128
MAX_QUESTION_TOKENS = 64
# The fewest context tokens a window may hold; a longer question is cut to leave them.
MIN_CONTEXT_TOKENS = 8


class ContextTooLong(UserError):
    """The context needs more windows than the caller allows (the proxy answers 413)."""


@dataclass
class QAExample:
    """One question about one context; ``answers`` are ``(text, char start)``, empty when unanswerable."""

    id: str
    question: str
    context: str
    answers: list[tuple[str, int]] = field(default_factory=list)
    title: str = ""

    @property
    def is_impossible(self) -> bool:
        return not self.answers


@dataclass
class QAWindow:
    """One row for the model. ``offsets[p]`` is the context's ``(start, end)`` characters of position
    ``p``, or ``None`` for question and special tokens; ``start_position``/``end_position`` are the
    training labels (0 = ``[CLS]``: no answer in this window)."""

    example_index: int
    input_ids: list[int]
    token_type_ids: list[int]
    offsets: list[tuple[int, int] | None]
    start_position: int = 0
    end_position: int = 0

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class Specials:
    """The special tokens of a window: ``[CLS] q [SEP] c [SEP]`` (WordPiece families) or
    ``<s> q </s></s> c </s>`` (RoBERTa's byte-level BPE: ``pair_seps`` 2)."""

    cls_id: int
    sep_id: int
    pad_id: int = 0
    pair_seps: int = 1

    @classmethod
    def of(cls, tokenizer) -> "Specials":
        """Read them from a ``tokenizers.Tokenizer``."""
        for cls_token, sep_token, pad_token, pair_seps in (("[CLS]", "[SEP]", "[PAD]", 1), ("<s>", "</s>", "<pad>", 2)):
            ids = [tokenizer.token_to_id(t) for t in (cls_token, sep_token, pad_token)]
            if ids[0] is not None and ids[1] is not None:
                return cls(ids[0], ids[1], ids[2] or 0, pair_seps)
        raise UserError("the tokenizer has neither [CLS]/[SEP] nor <s>/</s> tokens; question answering needs "
                        "one of those to join question and context")

    @classmethod
    def from_metadata(cls, metadata: dict) -> "Specials":
        return cls(int(metadata["cls_id"]), int(metadata["sep_id"]), int(metadata.get("pad_id") or 0),
                   int(metadata.get("pair_seps") or 1))


def fast_tokenizer(tokenizer):
    """A ``tokenizers.Tokenizer`` without truncation or padding, from a transformers tokenizer, a
    ``tokenizers.Tokenizer``, or a ``tokenizer.json`` string (left unchanged: a copy is made)."""
    from tokenizers import Tokenizer

    if isinstance(tokenizer, str):
        fast = Tokenizer.from_str(tokenizer)
    else:
        backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
        fast = Tokenizer.from_str(backend.to_str())
    fast.no_truncation()
    fast.no_padding()
    return fast


def check_window_settings(max_seq_len: int, doc_stride: int) -> None:
    if not isinstance(max_seq_len, int) or max_seq_len < MIN_CONTEXT_TOKENS + 4:
        raise UserError(f"--max-seq-len must be at least {MIN_CONTEXT_TOKENS + 4} (got {max_seq_len!r})")
    if not isinstance(doc_stride, int) or doc_stride < 0:
        raise UserError(f"--doc-stride must be >= 0 (got {doc_stride!r})")


def max_doc_stride(max_seq_len: int, pair_seps: int = 1) -> int:
    """The largest ``doc_stride`` any window of ``max_seq_len`` tokens can honour: half the context room beside
    a one-token question. More is never honoured (a refusal: ``check_doc_stride``); less is, except that a
    window beside a longer question shares at most half of its smaller room (``plan_windows``)."""
    return max(0, (max_seq_len - 1 - 2 - pair_seps) // 2)


def check_doc_stride(doc_stride: int, max_seq_len: int, pair_seps: int = 1, option: str = "--doc-stride") -> None:
    """``UserError`` with the range when a ``doc_stride`` given explicitly can never be honoured."""
    limit = max_doc_stride(max_seq_len, pair_seps)
    if doc_stride > limit:
        raise UserError(f"{option} {doc_stride} is more than windows of {max_seq_len} tokens can share: neighbours "
                        f"share at most half of a window's context, so it must lie between 0 and {limit} (less "
                        "for long questions)")


def question_token_limit(max_seq_len: int, max_question_tokens: int = MAX_QUESTION_TOKENS, pair_seps: int = 1) -> int:
    """How many of a question's tokens a window holds: ``max_question_tokens``, fewer when that would leave the
    context under ``MIN_CONTEXT_TOKENS``; the rest of a longer question is cut (callers say so)."""
    return min(max_question_tokens, max_seq_len - 2 - pair_seps - MIN_CONTEXT_TOKENS)


def default_doc_stride(max_seq_len: int) -> tuple[int, str | None]:
    """``DOC_STRIDE``, lowered to what windows of ``max_seq_len`` tokens of any tokenizer can honour (RoBERTa's
    two separators), with a note saying so when it was lowered; for callers that were not given one."""
    limit = max_doc_stride(max_seq_len, pair_seps=2)
    if DOC_STRIDE <= limit:
        return DOC_STRIDE, None
    return limit, (f"--doc-stride not given: {limit}, not the default {DOC_STRIDE}, which is more than windows of "
                   f"--max-seq-len {max_seq_len} tokens can share (at most half their context)")


def encode_context(tokenizer, context: str):
    """The context's tokens (no specials) and their character offsets."""
    encoding = tokenizer.encode(context, add_special_tokens=False)
    # A token covering no character (byte-level BPE's lone space after offset trimming) can neither start
    # nor end an answer: it gets no offsets, like question and special tokens.
    return encoding.ids, [tuple(o) if o[1] > o[0] else None for o in encoding.offsets]


def plan_windows(tokenizer, question: str, context: str, *, max_seq_len: int = MAX_SEQ_LEN,
                 doc_stride: int = DOC_STRIDE, max_question_tokens: int = MAX_QUESTION_TOKENS,
                 max_windows: int | None = None, specials: Specials | None = None, example_index: int = 0,
                 context_tokens=None) -> list[QAWindow]:
    """The windows of one question over one context (``tokenizer``: a ``tokenizers.Tokenizer``).

    ``max_windows`` bounds the work a caller accepts: more windows raise ``ContextTooLong`` before any
    window is built. ``context_tokens`` (ids, offsets) may be passed when one context has many questions.
    """
    if is_blank(question or ""):
        raise UserError(f"the question is empty: it {BLANK}")
    if is_blank(context or ""):
        raise UserError(f"the context is empty: it {BLANK}")
    check_window_settings(max_seq_len, doc_stride)
    specials = specials or Specials.of(tokenizer)
    q_ids = tokenizer.encode(question, add_special_tokens=False).ids
    if not q_ids:
        raise UserError("the question has no tokens (only spaces or characters the tokenizer drops)")
    q_ids = q_ids[:question_token_limit(max_seq_len, max_question_tokens, specials.pair_seps)]
    c_ids, c_offsets = context_tokens if context_tokens is not None else encode_context(tokenizer, context)
    if not c_ids:
        raise UserError("the context has no tokens (only spaces or characters the tokenizer drops)")
    room = max_seq_len - len(q_ids) - 2 - specials.pair_seps
    starts = window_starts(len(c_ids), room, doc_stride)
    if max_windows is not None and len(starts) > max_windows:
        raise ContextTooLong(f"the context is {len(c_ids)} tokens and needs {len(starts)} windows of {max_seq_len} "
                             f"tokens; the limit is {max_windows} windows")
    head = [specials.cls_id, *q_ids, *[specials.sep_id] * specials.pair_seps]
    windows = []
    for start in starts:
        body = c_ids[start:start + room]
        ids = head + body + [specials.sep_id]
        types = [0] * len(head) + [1] * (len(body) + 1)
        offsets = [None] * len(head) + c_offsets[start:start + len(body)] + [None]
        windows.append(QAWindow(example_index, ids, types, offsets))
    return windows


def answer_token_span(window: QAWindow, char_start: int, char_end: int) -> tuple[int, int] | None:
    """First and last positions of ``window`` covering context characters ``[char_start, char_end)``, or
    None unless the window holds the whole answer."""
    positions = [p for p, o in enumerate(window.offsets) if o is not None]
    if not positions or window.offsets[positions[0]][0] > char_start or window.offsets[positions[-1]][1] < char_end:
        return None
    first = next((p for p in positions if window.offsets[p][1] > char_start), None)
    last = next((p for p in reversed(positions) if window.offsets[p][0] < char_end), None)
    if first is None or last is None or first > last:
        return None
    return first, last


def label_windows(windows: list[QAWindow], example: QAExample) -> list[QAWindow]:
    """Set each window's start/end labels from the example's first answer (0, 0 where it is absent)."""
    if example.answers:
        text, start = example.answers[0]
        for window in windows:
            span = answer_token_span(window, start, start + len(text))
            window.start_position, window.end_position = span or (0, 0)
    return windows


@dataclass
class Features:
    windows: list[QAWindow]
    skipped: int  # examples whose answer no token covers (an answer of only spaces, say)
    truncated_questions: int


def build_features(tokenizer, examples: Sequence[QAExample], *, max_seq_len: int = MAX_SEQ_LEN,
                   doc_stride: int = DOC_STRIDE, max_question_tokens: int = MAX_QUESTION_TOKENS,
                   labelled: bool = True) -> Features:
    """Windows for every example (labelled for training when ``labelled``)."""
    specials = Specials.of(tokenizer)
    cache: dict[str, tuple] = {}
    windows: list[QAWindow] = []
    skipped = truncated = 0
    read = question_token_limit(max_seq_len, max_question_tokens, specials.pair_seps)
    for index, example in enumerate(examples):
        if example.context not in cache:
            cache[example.context] = encode_context(tokenizer, example.context)
        planned = plan_windows(tokenizer, example.question, example.context, max_seq_len=max_seq_len,
                               doc_stride=doc_stride, max_question_tokens=max_question_tokens, specials=specials,
                               example_index=index, context_tokens=cache[example.context])
        if len(tokenizer.encode(example.question, add_special_tokens=False).ids) > read:
            truncated += 1
        if labelled and example.answers:
            label_windows(planned, example)
            if not any(w.start_position for w in planned):
                skipped += 1
                continue
        windows.extend(planned)
    return Features(windows, skipped, truncated)


def window_buckets(max_seq_len: int) -> tuple[int, ...]:
    """Padding lengths for windows: the usual buckets below ``max_seq_len``, then ``max_seq_len``."""
    return buckets_up_to(max_seq_len, DEFAULT_BUCKETS)


def check_buckets(buckets: Sequence[int], max_seq_len: int) -> None:
    """Padding lengths must be positive, strictly increasing and end at ``max_seq_len`` (the longest window)."""
    values = list(buckets)
    if (not values or any(not isinstance(b, int) or b < 1 for b in values)
            or any(a >= b for a, b in zip(values, values[1:])) or values[-1] != max_seq_len):
        raise UserError(f"--buckets must be increasing lengths ending at --max-seq-len {max_seq_len} "
                        f"(got {' '.join(map(str, values)) or 'none'})")


def pad_windows(windows: Sequence[QAWindow], pad_id: int, max_seq_len: int,
                buckets: Sequence[int] | None = None) -> dict[str, list[list[int]]]:
    """The rows of one model call, padded to the smallest of ``buckets`` (default ``window_buckets``) that
    holds the longest window (pure Python; the proxy sends exactly these lists)."""
    return pad_to(windows, bucket_length(max(len(w) for w in windows), buckets or window_buckets(max_seq_len)), pad_id)


def pad_to(windows: Sequence[QAWindow], width: int, pad_id: int) -> dict[str, list[list[int]]]:
    """The three inputs of one call: windows right-padded to ``width`` (mask 0 and type 0 on padding)."""
    rows = {"input_ids": [], "attention_mask": [], "token_type_ids": []}
    for window in windows:
        padding = width - len(window)
        rows["input_ids"].append(window.input_ids + [pad_id] * padding)
        rows["attention_mask"].append([1] * len(window) + [0] * padding)
        rows["token_type_ids"].append(window.token_type_ids + [0] * padding)
    return rows


def padded_batch(windows: Sequence[QAWindow], pad_id: int, buckets: Sequence[int], input_names=None):
    """One training or validation batch: ``(inputs, labels)`` int32 numpy arrays, padded to the smallest of
    ``buckets`` that fits (its last bucket is the longest window); ``input_names`` picks the inputs a model
    takes (RoBERTa and DistilBERT take no ``token_type_ids``)."""
    import numpy as np

    rows = pad_windows(windows, pad_id, max(buckets), buckets)
    inputs = {k: np.asarray(v, dtype=np.int32) for k, v in rows.items() if input_names is None or k in input_names}
    labels = {"start_logits": np.asarray([w.start_position for w in windows], dtype=np.int32),
              "end_logits": np.asarray([w.end_position for w in windows], dtype=np.int32)}
    return inputs, labels


# ---------------------------------------------------------------------------------------------- SQuAD files


def _fix_answer(context: str, text: str, start) -> int | None:
    """The answer's start in ``context``: as given when it matches, else the nearest occurrence within a few
    characters (SQuAD files carry some off-by-one starts), else None."""
    if isinstance(start, int) and context[start:start + len(text)] == text:
        return start
    if not text:
        return None
    near = int(start) if isinstance(start, int) else 0
    hits = []
    at = context.find(text)
    while at != -1:
        hits.append(at)
        at = context.find(text, at + 1)
    hits = [h for h in hits if abs(h - near) <= 20]
    return min(hits, key=lambda h: abs(h - near)) if hits else None


def parse_squad(data, source: str = "the data") -> tuple[list[QAExample], int]:
    """SQuAD v1.1 / v2.0 JSON (already parsed) -> examples, and how many answers did not match their context
    (those answers are dropped; a question left without answers that is not marked impossible is dropped)."""
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise UserError(f"{source} is not SQuAD format: expected {{\"data\": [{{\"title\", \"paragraphs\": "
                        "[{\"context\", \"qas\": [...]}]}]}")
    examples: list[QAExample] = []
    mismatched = 0
    seen: dict[str, str] = {}  # question id -> where it first appeared: answers are scored by id
    for a, article in enumerate(data["data"]):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise UserError(f"{source}: data[{a}] has no 'paragraphs' list")
        for p, paragraph in enumerate(paragraphs):
            where = f"{source}: data[{a}].paragraphs[{p}]"
            context = paragraph.get("context") if isinstance(paragraph, dict) else None
            if not isinstance(context, str) or not context.strip():
                raise UserError(f"{where} has no 'context' text")
            qas = paragraph.get("qas")
            if not isinstance(qas, list):
                raise UserError(f"{where} has no 'qas' list")
            for q, qa in enumerate(qas):
                if not isinstance(qa, dict) or not isinstance(qa.get("question"), str) or not qa["question"].strip():
                    raise UserError(f"{where}.qas[{q}] has no 'question' text")
                qid = str(qa.get("id", f"{a}-{p}-{q}"))
                if qid in seen:
                    raise UserError(f"{where}.qas[{q}]: question id {qid!r} is also the id of {seen[qid]} "
                                    "(ids must be unique: answers are matched and scored by id)")
                seen[qid] = f"{where}.qas[{q}]".split(": ", 1)[-1]
                impossible = qa.get("is_impossible", False)
                if not isinstance(impossible, bool):
                    raise UserError(f"{where}.qas[{q}]: 'is_impossible' must be true or false, not {impossible!r}")
                answers = []
                for answer in ([] if impossible else qa.get("answers") or []):
                    text = answer.get("text") if isinstance(answer, dict) else None
                    start = _fix_answer(context, text, answer.get("answer_start")) if isinstance(text, str) else None
                    if start is None:
                        mismatched += 1
                    else:
                        answers.append((text, start))
                if not answers and not impossible:
                    continue
                examples.append(QAExample(qid, qa["question"], context, answers,
                                          str(article.get("title", ""))))
    if not examples:
        raise UserError(f"{source} holds no usable questions")
    return examples, mismatched


def load_squad(path: str | os.PathLike) -> tuple[list[QAExample], int]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not JSON ({exc})") from None
    return parse_squad(data, str(path))


def split_examples(examples: Sequence[QAExample], validation_fraction: float = 0.1,
                   seed: int = 42, source: str = "the data") -> tuple[list[QAExample], list[QAExample]]:
    """A seeded split by context, so no validation question shares its passage with a training one.

    Data with a single passage cannot be split so: its validation questions would be asked of the passage
    trained on (the scores a measure of memory, not of reading), so it is a ``UserError``. A split by question
    would leak the same way; a demanding user gives validation data or more passages instead."""
    if len({e.context for e in examples}) < 2:
        raise UserError(f"{source} has one passage, so validation questions held out from it would be about the "
                        "passage trained on: pass --eval-data (a SQuAD file with other passages, or the same file to "
                        "score on the training passage knowingly) or give more passages")

    def bucket(example: QAExample) -> float:
        return zlib.crc32(f"{seed}:{example.context}".encode("utf-8")) / 2**32

    train = [e for e in examples if bucket(e) >= validation_fraction]
    validation = [e for e in examples if bucket(e) < validation_fraction]
    if not validation or not train:  # tiny files: hold out the last context
        last = examples[-1].context
        train = [e for e in examples if e.context != last]
        validation = [e for e in examples if e.context == last]
    return train, validation


def to_squad(examples: Sequence[QAExample], version: str = "v2.0") -> dict:
    """Examples back to SQuAD JSON (one paragraph per distinct context), for generated data sets."""
    articles: dict[str, dict] = {}
    for example in examples:
        article = articles.setdefault(example.title or "untitled", {"title": example.title or "untitled",
                                                                     "paragraphs": []})
        paragraphs = article["paragraphs"]
        if not paragraphs or paragraphs[-1]["context"] != example.context:
            paragraphs.append({"context": example.context, "qas": []})
        paragraphs[-1]["qas"].append({"id": example.id, "question": example.question,
                                      "answers": [{"text": t, "answer_start": s} for t, s in example.answers],
                                      "is_impossible": example.is_impossible})
    return {"version": version, "data": list(articles.values())}
