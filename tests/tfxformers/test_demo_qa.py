"""``tfxformers demo --task qa``'s own pieces: the articles it asks about and the sentence it prints per answer.

The pipeline, server and proxy it drives are tested in ``tests/pipeline/qa`` and ``tests/serving``; these
checks need no TensorFlow.
"""
from __future__ import annotations

import pytest

from tfxformers.demo.qa import ARTICLES, find_articles, sentence_around


def test_the_sentence_around_an_answer_is_cut_at_sentence_ends_and_keeps_non_ascii_text():
    text = "Zoë opened a café in Zürich. It serves crème brûlée at 7 °C! Nobody asked why.\nNext line."
    start = text.index("crème")
    assert sentence_around(text, start, start + len("crème brûlée")) == "It serves crème brûlée at 7 °C!"
    assert sentence_around(text, 0, 3) == "Zoë opened a café in Zürich."
    last = text.index("Next")
    assert sentence_around(text, last, last + 4) == "Next line."


def test_the_articles_are_found_by_their_title_line_and_a_missing_one_is_a_clear_error():
    from tfxformers.errors import UserError

    texts = [f"{title}\nBody of the article about {title}." for title in ARTICLES] + ["Other story\nText."]
    found = find_articles(texts)
    assert set(found) == set(ARTICLES) and all(found[t].startswith(t) for t in ARTICLES)
    with pytest.raises(UserError, match="no article titled .*data fetch bbc_news"):
        find_articles(texts[1:])


def test_every_question_has_an_expected_answer_in_its_article_when_the_data_is_fetched():
    from tfxformers.models.data.classification import load_classification

    try:
        data = load_classification("bbc_news")
    except Exception as exc:  # not fetched: make test fetches it, a bare checkout may not have
        pytest.skip(f"bbc_news not fetched: {exc}")
    articles = find_articles([*data.train.texts, *data.validation.texts, *data.test.texts])
    for title, questions in ARTICLES.items():
        for q in questions:
            assert q.expected in articles[title], (title, q)
        # Some answers sit in the last third of the article (what the issue asks the demo to show).
        assert any(articles[title].rfind(q.expected) > 2 * len(articles[title]) / 3 for q in questions), title
