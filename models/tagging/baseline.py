"""The floor every tagger is compared with: the most frequent tag of each word in the training split.

A word seen in training gets its most frequent tag there (exact form first, then lower-cased). An unseen
word gets, for NER, ``O``; for POS, a tag guessed from its shape: a number ``CD``, punctuation its own
tag when the training data has one for that character (else ``SYM``), a capitalised word ``NNP``, then
suffixes (``-ing`` VBG, ``-ed`` VBN, ``-ly`` RB, ``-s`` NNS, ``-able``/``-ous``/``-ful``/``-ive``/``-al``
JJ), else ``NN``. Pure Python: ``tfxformers train tagger`` records it beside the model's scores in
``metrics.json``; the benchmark prints both.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Sequence

_SUFFIXES = (("ing", "VBG"), ("ed", "VBN"), ("ly", "RB"), ("able", "JJ"), ("ous", "JJ"), ("ful", "JJ"),
             ("ive", "JJ"), ("al", "JJ"), ("s", "NNS"))


class MostFrequentTagger:
    """``fit(sentences_of_words, sentences_of_tags)`` then ``predict(sentences_of_words)``."""

    def __init__(self, task: str):
        self.task = task
        self.exact: dict[str, str] = {}
        self.lower: dict[str, str] = {}
        self.labels: set[str] = set()

    def fit(self, words: Sequence[Sequence[str]], tags: Sequence[Sequence[str]]) -> "MostFrequentTagger":
        exact, lower = defaultdict(Counter), defaultdict(Counter)
        for sentence, sentence_tags in zip(words, tags):
            for word, tag in zip(sentence, sentence_tags):
                exact[word][tag] += 1
                lower[word.lower()][tag] += 1
                self.labels.add(tag)
        # Ties go to the tag seen first in the corpus's order of counting: Counter.most_common is stable.
        self.exact = {w: c.most_common(1)[0][0] for w, c in exact.items()}
        self.lower = {w: c.most_common(1)[0][0] for w, c in lower.items()}
        return self

    def tag_word(self, word: str) -> str:
        if word in self.exact:
            return self.exact[word]
        if word.lower() in self.lower:
            return self.lower[word.lower()]
        return self.unseen(word)

    def unseen(self, word: str) -> str:
        if self.task == "ner":
            return "O"
        if re.fullmatch(r"[\d.,:/-]*\d[\d.,:/-]*", word):
            return "CD"
        if not any(c.isalnum() for c in word):
            return word if word in self.labels else "SYM"
        if word[0].isupper():
            return "NNP"
        lowered = word.lower()
        for suffix, tag in _SUFFIXES:
            if lowered.endswith(suffix) and len(lowered) > len(suffix) + 2:
                return tag
        return "NN"

    def predict(self, words: Sequence[Sequence[str]]) -> list[list[str]]:
        return [[self.tag_word(w) for w in sentence] for sentence in words]
