"""A lexical question-answering baseline, so reader scores on SQuAD have a floor computed in this repository.

The SQuAD paper (Rajpurkar et al. 2016, section 5) adapts the sliding-window baseline of Richardson et al.
(2013): keep the answer candidates whose sentence (the candidate left out) overlaps the question most in
unigrams and bigrams, then pick among them by the sliding-window score. Its candidates are the constituents
of a parse tree; there is no parser here, so the candidates are the word spans of up to ``MAX_SPAN`` words
that neither start nor end with a stop word or punctuation and repeat no question word. Plain n-gram
candidates give the sliding window a bias to long spans that constituents do not have, so the choice among
the best sentence's spans is made with these lexical signals instead:

- nearness: each question word found in the sentence adds its IDF, divided by 1 + its distance in words
  from the span (the distance-based part of Richardson et al.'s "SW+D");
- the answer type the question words ask for (``how many``: a span that starts with a number; ``when`` /
  ``what year``: one holding a year or month; ``who`` / ``whose`` / ``where``: a whole run of capitalised
  words, not cut inside a name);
- a length prior (answers are short: SQuAD 1.1's median is 2 words);
- no span runs across a comma, semicolon, colon, bracket or quote.

Sentences are chosen by the IDF-weighted overlap of their words with the question's, plus a bonus per
shared bigram. IDF is counted over the contexts being answered (no answers are looked at), so the baseline
needs no training data. The weights were set on every 40th training question (2,190), never on dev.
Pure Python, no TensorFlow: ``predict(examples)`` answers SQuAD 1.1's 10,570 dev questions in about 5 s, with
exact match 18.5 and F1 28.1 (the SQuAD paper's sliding window: 13.2 / 20.2; its logistic regression: 40.0 / 51.0)::

    from tfxformers.models.qa import baseline, squad
    dev, _ = squad.load("squad-dev")
    baseline.evaluate(dev)      # {"exact_match": ..., "f1": ..., "total": 10570, ...}
"""
from __future__ import annotations

import math
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from tfxformers.models.qa import metrics

MAX_SPAN = 6
_TOKEN = re.compile(r"\w+(?:[-'’.]\w+)*|[^\w\s]")
_SENTENCE_END = {".", "!", "?"}
STOP_WORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her here
hers herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off
on once only or other our ours out over own same she should so some such than that the their theirs them then
there these they this those through to too under until up very was we were what when where which while who whom
whose why will with would you your yours yourself s t did does called named known one many much
""".split())
_MONTHS = frozenset("january february march april may june july august september october november december".split())
_NUMBER_WORDS = frozenset("""zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen
sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million
billion trillion half dozen percent""".split())

# Weights of the span score (set on training questions; see the module docstring).
BIGRAM_BONUS = 1.0
TYPE_BONUS = 6.0
LENGTH_PENALTY = 0.2
_BREAKS = frozenset(",;:()[]\"“”")


@dataclass
class _Context:
    text: str
    spans: list[tuple[int, int]]  # character offsets of each word
    words: list[str]  # lower-cased
    stems: list[str]
    sentences: list[tuple[int, int]]  # word ranges [start, end)


def _stem(word: str) -> str:
    word = word.lower().replace("’", "'")
    if word.endswith("'s"):
        word = word[:-2]
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _is_content(word: str) -> bool:
    return word not in STOP_WORDS and any(ch.isalnum() for ch in word)


def _tokenize(text: str) -> _Context:
    matches = list(_TOKEN.finditer(text))
    words = [m.group().lower() for m in matches]
    sentences, start = [], 0
    for i, word in enumerate(words):
        if word in _SENTENCE_END:
            sentences.append((start, i + 1))
            start = i + 1
    if start < len(words):
        sentences.append((start, len(words)))
    return _Context(text, [m.span() for m in matches], words, [_stem(w) for w in words], sentences)


def answer_type(question: str) -> str:
    """``number``, ``date``, ``name`` or ``other``: what the question's wh-words ask for."""
    q = question.lower()
    if re.search(r"\bhow (many|much|long|old|far|large|big|tall|high)\b|\bwhat (percentage|percent|number|amount)\b", q):
        return "number"
    if re.search(r"\bwhen\b|\bwhat (year|decade|century|date|month|day|time)\b|\bwhich (year|century)\b|\bin what year\b", q):
        return "date"
    if re.search(r"\bwho\b|\bwhom\b|\bwhose\b|\bwhere\b", q):
        return "name"
    return "other"


def _type_match(kind: str, context: _Context, first: int, last: int, sentence_start: int) -> bool:
    words = context.words[first:last + 1]
    if kind == "number":
        # The span starts at the number (a unit may follow it).
        return any(ch.isdigit() for ch in words[0]) or words[0] in _NUMBER_WORDS
    if kind == "date":
        return any(re.fullmatch(r"\d{3,4}s?", w) or w in _MONTHS for w in words)
    if kind == "name":
        # A whole run of capitalised words (a name is not cut short), not only capitalised because the sentence
        # starts there.
        def capital(i: int) -> bool:
            return 0 <= i < len(context.words) and context.text[context.spans[i][0]].isupper()

        whole = not capital(last + 1) and (first == sentence_start or not capital(first - 1))
        return whole and all(capital(i) for i in range(first, last + 1)) and (first > sentence_start or last > first)
    return False


class LexicalBaseline:
    """Answers questions about a fixed set of contexts (their IDF is counted once, at construction)."""

    def __init__(self, contexts: Sequence[str]):
        self._contexts = {c: _tokenize(c) for c in dict.fromkeys(contexts)}
        df = Counter(s for c in self._contexts.values() for s in set(c.stems))
        n = len(self._contexts)
        self._idf = {s: math.log((n + 1) / (count + 0.5)) for s, count in df.items()}
        self._default_idf = math.log((n + 1) / 0.5)

    def idf(self, stem: str) -> float:
        return self._idf.get(stem, self._default_idf)

    def answer(self, question: str, context: str) -> str:
        c = self._contexts.get(context) or _tokenize(context)
        q_words = [m.group().lower() for m in _TOKEN.finditer(question)]
        q_stems = {_stem(w) for w in q_words if _is_content(w)}
        q_bigrams = {(a, b) for a, b in zip(q_words, q_words[1:])}
        if not c.words:
            return ""
        best_sentence, best = c.sentences[0], -1.0
        for start, end in c.sentences:
            stems = set(c.stems[start:end])
            score = sum(self.idf(s) for s in q_stems & stems)
            score += BIGRAM_BONUS * sum((a, b) in q_bigrams for a, b in zip(c.words[start:end], c.words[start + 1:end]))
            if score > best:
                best_sentence, best = (start, end), score
        return self._best_span(c, best_sentence, q_stems, answer_type(question))

    def _best_span(self, c: _Context, sentence: tuple[int, int], q_stems: set[str], kind: str) -> str:
        start, end = sentence
        anchors = [(i, self.idf(c.stems[i])) for i in range(start, end) if c.stems[i] in q_stems]
        best_text, best = "", -math.inf
        for first in range(start, end):
            if not _is_content(c.words[first]) or c.stems[first] in q_stems:
                continue
            for last in range(first, min(end, first + MAX_SPAN)):
                if c.stems[last] in q_stems or c.words[last] in _BREAKS:
                    break  # a span never repeats a question word, nor runs across a clause break
                if not _is_content(c.words[last]):
                    continue
                near = sum(w / (1 + (first - i if i < first else i - last)) for i, w in anchors)
                score = near + TYPE_BONUS * _type_match(kind, c, first, last, start) - LENGTH_PENALTY * (last - first)
                if score > best:
                    best, best_text = score, c.text[c.spans[first][0]:c.spans[last][1]]
        return best_text


def predict(examples) -> dict[str, str]:
    """``id -> answer`` for ``features.QAExample``s."""
    model = LexicalBaseline([e.context for e in examples])
    return {e.id: model.answer(e.question, e.context) for e in examples}


def evaluate(examples) -> dict:
    """The official SQuAD v1.1 exact match and F1 of the baseline on ``examples``, and how long it took."""
    started = time.perf_counter()
    predictions = predict(examples)
    seconds = time.perf_counter() - started
    scores = metrics.score_v1(predictions, {e.id: [t for t, _ in e.answers] for e in examples})
    return {**scores, "seconds": round(seconds, 2), "baseline": "lexical (sentence overlap + nearness + answer type)"}
