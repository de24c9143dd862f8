"""SQuAD files whose meaning would be guessed are refused, naming the question (issue 23's audit).

``"is_impossible": "no"`` was read as true (a non-empty string), and a repeated question id was scored
once (answers are matched by id), both without a word. No TensorFlow here.
"""
from __future__ import annotations

import pytest

from tfxformers.errors import UserError
from tfxformers.models.qa.features import parse_squad


def _squad(*qas) -> dict:
    return {"version": "v2.0", "data": [{"title": "t", "paragraphs": [
        {"context": "The oven is hot at 350 degrees F.", "qas": list(qas)}]}]}


def _question(qid: str, **extra) -> dict:
    return {"id": qid, "question": "How hot?", "answers": [{"text": "350 degrees F", "answer_start": 19}], **extra}


@pytest.mark.parametrize("value", ["no", "false", 0, 1, None])
def test_is_impossible_must_be_a_json_boolean(value):
    with pytest.raises(UserError, match=r"data\[0\]\.paragraphs\[0\]\.qas\[0\]: 'is_impossible' must be true or false"):
        parse_squad(_squad(_question("a", is_impossible=value)), "f.json")


def test_a_boolean_is_impossible_still_reads_as_before():
    examples, _ = parse_squad(_squad(_question("a", is_impossible=False),
                                     {"id": "b", "question": "Who?", "answers": [], "is_impossible": True}), "f.json")
    assert [e.is_impossible for e in examples] == [False, True]
    assert examples[0].answers == [("350 degrees F", 19)]


def test_a_repeated_question_id_is_refused_naming_both_places():
    with pytest.raises(UserError) as caught:
        parse_squad(_squad(_question("dup"), _question("x"), _question("dup")), "f.json")
    message = str(caught.value)
    assert message.startswith("f.json: data[0].paragraphs[0].qas[2]: question id 'dup' is also the id of "
                              "data[0].paragraphs[0].qas[0]"), message
