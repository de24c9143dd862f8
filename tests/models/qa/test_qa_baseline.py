"""The lexical SQuAD baseline: answers by type and nearness on hand-made passages, and beats random spans on
real dev questions."""
from __future__ import annotations

import random
import re

import pytest

from tfxformers.models.qa import baseline, metrics
from tfxformers.models.qa.features import QAExample
from tfxformers.testing import requires_real

PASSAGE = ("Gustave Eiffel's company designed the tower. Construction of the Eiffel Tower was completed in 1889 "
           "for the World's Fair. The tower is 330 metres tall and has three levels for visitors.")


@pytest.mark.parametrize("question, answer", [
    ("When was the construction of the Eiffel Tower completed?", "1889"),
    ("How many levels does the tower have for visitors?", "three"),
    ("Whose company designed the tower?", "Gustave Eiffel's"),
])
def test_it_answers_with_the_type_the_question_asks_for_near_the_question_words(question, answer):
    model = baseline.LexicalBaseline([PASSAGE])
    assert model.answer(question, PASSAGE) == answer


def test_answers_are_substrings_of_their_context_and_never_repeat_question_words():
    examples = [QAExample("1", "What was completed in 1889?", PASSAGE, [("Construction of the Eiffel Tower", 45)]),
                QAExample("2", "unrelated words entirely", PASSAGE, [("330 metres", 130)])]
    predictions = baseline.predict(examples)
    assert all(predictions[e.id] and predictions[e.id] in PASSAGE for e in examples)
    assert "1889" not in predictions["1"] and "completed" not in predictions["1"]


def _random_spans(examples, seed=0):
    rng = random.Random(seed)
    out = {}
    for e in examples:
        words = list(re.finditer(r"\S+", e.context))
        first = rng.randrange(len(words))
        last = min(len(words) - 1, first + rng.randrange(baseline.MAX_SPAN))
        out[e.id] = e.context[words[first].start():words[last].end()]
    return out


@pytest.mark.real
@requires_real("squad")
def test_on_real_dev_questions_it_beats_random_spans_by_far():
    from tfxformers.models.qa import squad

    dev = squad.load("squad-dev")[0][:400]  # the first articles (Super Bowl 50, Warsaw, ...)
    golds = {e.id: [t for t, _ in e.answers] for e in dev}
    ours = metrics.score_v1(baseline.predict(dev), golds)
    chance = metrics.score_v1(_random_spans(dev), golds)
    assert ours["f1"] > 15 and ours["f1"] > 3 * chance["f1"], (ours, chance)
    assert ours["exact_match"] > 5 and ours["exact_match"] > 3 * chance["exact_match"], (ours, chance)
