"""The SQuAD v1.1 exact match and F1 (``metrics.score_v1``) on the edge cases where the official v1.1 script's
definition is easy to get wrong, and where it differs from the v2.0 script's (``metrics.score``)."""
from __future__ import annotations

import pytest

from tfxformers.models.qa import metrics


@pytest.mark.parametrize("text, normalised", [
    ("The  Moon!", "moon"),
    ("an apple a day", "apple day"),
    ("Anna's theatre", "annas theatre"),  # articles only as whole words
    ("Arab–Israeli", "arab–israeli"),  # string.punctuation is ASCII: the official script keeps an en dash
    ("\tU.S.\n", "us"),
])
def test_normalisation_is_the_official_one(text, normalised):
    assert metrics.normalize_answer(text) == normalised


def test_the_best_reference_counts_and_f1_counts_repeated_words_once_each():
    golds = {"q1": ["Denver Broncos", "Broncos"], "q2": ["red dog house"], "q3": ["cat"]}
    scores = metrics.score_v1({"q1": "the Broncos", "q2": "the big red dog", "q3": "cat cat"}, golds)
    # q1 exact (against "Broncos"); q2: 2 shared of 3 and 3 words: F1 2/3; q3: precision 1/2, recall 1: F1 2/3.
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3 + 2 / 3) / 3)
    assert scores["total"] == 3 and scores["metric"].startswith("SQuAD v1.1")


def test_a_gold_answer_that_normalises_to_nothing_is_scored_as_the_v1_1_script_scores_it():
    # Three SQuAD 1.1 dev questions have a gold "." beside real answers.
    golds = {"q": ["renewal of hostilities", "."]}
    assert metrics.score_v1({"q": ""}, golds)["exact_match"] == 100.0  # "" == normalised "."
    assert metrics.score_v1({"q": ","}, golds)["f1"] == 0.0  # F1 with no shared word is 0, also for empty vs empty
    assert metrics.score_v1({"q": "renewal"}, golds)["f1"] == pytest.approx(50.0)  # precision 1, recall 1/3
    # The v2.0 definition drops such answers (and counts a question left with none as unanswerable).
    assert metrics.score({"q": ""}, golds)["exact_match"] == 0.0
    assert metrics.score({"q": ""}, {"q": ["."]})["f1"] == 100.0
    assert metrics.score_v1({"q": ""}, {"q": ["."]})["f1"] == 0.0


def test_a_question_without_a_prediction_scores_zero_and_still_counts():
    scores = metrics.score_v1({"a": "Paris"}, {"a": ["Paris"], "b": ["."]})
    assert scores["total"] == 2 and scores["exact_match"] == 50.0 and scores["f1"] == 50.0
