"""A learnable span task made from real text, for proving the QA training path where no SQuAD data exists.

Each passage is a run of consecutive sentences of a real corpus (Austen chapters via
``models.data.corpus``). In ``spans`` of its sentences a few words later in the sentence are wrapped in
``[`` ``]``; the question quotes the first words of one of those sentences, and the answer is the marked
span of that sentence (without the brackets). Finding brackets alone is right only one time in
``spans``: the model has to find the quoted sentence in the passage and then the marked words after it,
which is what extractive QA asks of a model. Passages are longer than the windows the test trains with,
so some answers lie across a window boundary and are whole in only one of the windows.

Pure Python; ``squad_from_documents`` returns SQuAD v1.1 JSON, the format ``tfxformers train qa`` reads.
"""
from __future__ import annotations

import random
import re
from collections import Counter
from typing import Sequence

from tfxformers.models.qa.features import QAExample, to_squad

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")
_WORD = re.compile(r"[A-Za-z]+")


def sentences_of(document: str) -> list[str]:
    text = " ".join(document.split())
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


def _usable(sentence: str, quote_words: int, span_words: int, max_words: int = 24) -> bool:
    words = sentence.split()
    return (quote_words + span_words + 2 <= len(words) <= max_words
            and all(_WORD.fullmatch(w) for w in words[:quote_words + span_words + 2]))


BRACKETS = (("(", ")", "round"), ("[", "]", "square"), ("{", "}", "curly"), ("<", ">", "angle"))


def make_examples(documents: Sequence[str], count: int, *, seed: int = 0, sentences_per_passage: int = 5,
                  spans: int = 3, quote_words: int = 3, span_words: int = 2, style: str = "quote",
                  max_words: int = 30, prefix: str = "syn") -> list[QAExample]:
    """``count`` examples (one question per passage) from ``documents``.

    ``style="quote"``: every span is marked ``[ ]`` and the question quotes the first ``quote_words`` words
    of the target's sentence (the span follows them). ``style="brackets"``: each span has its own kind of
    brackets (round, square, curly, angle) and the question names the target's, e.g. "which words are in
    the curly brackets { } ?": a question a tiny model learns to use within seconds, where matching quoted
    words takes it far longer (measured: see docs of the learning test)."""
    if style not in ("quote", "brackets"):
        raise ValueError(f"unknown style {style!r}")
    if spans > len(BRACKETS) and style == "brackets":
        raise ValueError(f"at most {len(BRACKETS)} spans with style 'brackets'")
    rng = random.Random(seed)
    runs = []
    for document in documents:
        sentences = sentences_of(document)
        for start in range(0, len(sentences) - sentences_per_passage + 1, sentences_per_passage):
            run = sentences[start:start + sentences_per_passage]
            if sum(_usable(s, quote_words, span_words) for s in run) >= spans and all(len(s.split()) <= max_words for s in run):
                runs.append(run)
    if not runs:
        raise ValueError("no passage of the documents has enough usable sentences")
    rng.shuffle(runs)
    examples = []
    attempts = 0
    while len(examples) < count and attempts < count * 20:
        # Each passage once before any is reused: repeats let a small model memorise passages instead of
        # learning the task.
        run = list(runs[attempts % len(runs)])
        attempts += 1
        usable = [i for i, s in enumerate(run) if _usable(s, quote_words, span_words)]
        marked = sorted(rng.sample(usable, spans))
        quotes = [" ".join(run[i].split()[:quote_words]).lower() for i in marked]
        if len(set(quotes)) < len(quotes):
            continue  # two marked sentences open alike: the question would be ambiguous
        spans_text, kinds = {}, {}
        styles = rng.sample(BRACKETS, spans) if style == "brackets" else [BRACKETS[1]] * spans
        for i, (opening, closing, kind) in zip(marked, styles):
            words = run[i].split()
            at = quote_words if style == "quote" else rng.randrange(1, len(words) - span_words + 1)
            spans_text[i] = " ".join(words[at:at + span_words])
            kinds[i] = (opening, closing, kind)
            run[i] = " ".join([*words[:at], opening, spans_text[i], closing, *words[at + span_words:]])
        target = rng.choice(marked)
        context = " ".join(run)
        answer = spans_text[target]
        opening, closing, kind = kinds[target]
        sentence_start = context.index(run[target])
        answer_start = context.index(f"{opening} {answer} {closing}", sentence_start) + len(opening) + 1
        if style == "quote":
            question = " ".join(run[target].split()[:quote_words]) + " ?"
        else:
            question = f"which words are in the {kind} brackets {opening} {closing} ?"
        examples.append(QAExample(f"{prefix}-{len(examples)}", question, context, [(answer, answer_start)], title=prefix))
    return examples


def squad_from_documents(documents: Sequence[str], count: int, **kwargs) -> dict:
    return to_squad(make_examples(documents, count, **kwargs), version="v1.1")


def frequent_words(documents: Sequence[str], limit: int = 2000) -> list[str]:
    """The corpus' most frequent words, lower-cased: a vocabulary that keeps tiny test models' sequences short."""
    counts = Counter(w.lower() for d in documents for w in _WORD.findall(d))
    return [w for w, _ in counts.most_common(limit)]
