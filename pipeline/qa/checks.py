"""What makes a SQuAD question unusable, said per question: the content check of the QA pipeline's gate.

``question_problems(row)`` lists what is wrong with one question written by ``pipeline.qa.data`` (a missing
``id`` / ``context`` / ``question``, an empty context or question, no answers, an answer without text or
``answer_start``, an answer that is not at its ``answer_start``: the context slice differs from the answer
text); ``problem_report(...)`` turns the faulty questions into the lines the run stops with, at most
``SHOWN`` of them, then "and N more". Pure Python: ``pipeline.qa.components.QAExampleGate`` calls it on
the examples ExampleGen wrote, and tests call it directly.
"""
from __future__ import annotations

from tfxformers.pipeline.qa.data import ANSWER_START, ANSWER_TEXT, CONTEXT, ID, POSITION, QUESTION

SHOWN = 10
_QUOTE = 40


def _quoted(text: str) -> str:
    return repr(text if len(text) <= _QUOTE else text[:_QUOTE] + "...")


def question_problems(row: dict) -> list[str]:
    """What is wrong with one question (empty when nothing is)."""
    problems = [f"missing '{key}'" for key in (ID, CONTEXT, QUESTION) if row.get(key) is None]
    context = row.get(CONTEXT)
    if context is not None and not context.strip():
        problems.append("empty context")
    if row.get(QUESTION) is not None and not row[QUESTION].strip():
        problems.append("empty question")
    texts, starts = row.get(ANSWER_TEXT) or [], row.get(ANSWER_START) or []
    if not texts and not starts:
        problems.append("no answers")
    elif len(texts) != len(starts):
        problems.append(f"{len(texts)} answer texts but {len(starts)} answer_start values")
        return problems
    for i, (text, start) in enumerate(zip(texts, starts), 1):
        if not text.strip():
            problems.append(f"answer {i} has no text")
        elif start < 0:
            problems.append(f"answer {i} {_quoted(text)} has no 'answer_start' (missing, negative or not an integer)")
        elif context is not None and context.strip() and context[start:start + len(text)] != text:
            found = context[start:start + len(text)]
            where = f"the context there reads {_quoted(found)}" if found else f"the context is {len(context)} characters"
            problems.append(f"answer {i} {_quoted(text)} is not at answer_start {start} ({where})")
    return problems


def question_name(row: dict) -> str:
    return f"question {row[ID]!r}" if row.get(ID) is not None else "a question without an id"


def faulty_questions(rows: list[dict], split: str) -> list[str]:
    """One line per faulty question of a split: who it is, where it is in the file, what is wrong."""
    lines = []
    for row in rows:
        problems = question_problems(row)
        if problems:
            lines.append(f"{question_name(row)} ({split} split, {row.get(POSITION, '?')}): {'; '.join(problems)}")
    return lines


def problem_report(lines: list[str], shown: int = SHOWN) -> list[str]:
    """At most ``shown`` lines, then one saying how many more there are."""
    if len(lines) <= shown:
        return list(lines)
    return lines[:shown] + [f"and {len(lines) - shown} more"]
