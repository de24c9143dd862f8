"""Token classification without TensorFlow: words, word-piece alignment, windows, BIO decoding, the CoNLL
metrics on hand-computed cases, the baseline and the corpus parsers (all pure Python / NumPy, fast)."""
from __future__ import annotations

import numpy as np
import pytest

from tfxformers.errors import UserError
from tfxformers.models.data import tagged
from tfxformers.models.tagging import decode, metrics
from tfxformers.models.tagging.baseline import MostFrequentTagger


@pytest.fixture(scope="module")
def wordpiece(tmp_path_factory):
    """The tiny vocabulary's fast WordPiece tokenizer (letters and ##letters, so unknown words split per letter)."""
    from transformers import BertTokenizerFast

    from tfxformers.testing import tiny_vocab

    vocab = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab.write_text("\n".join(tiny_vocab()) + "\n", encoding="utf-8")
    return BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)


def align(tokenizer, text):
    spans = decode.split_words(text)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return spans, encoded["offset_mapping"], decode.first_pieces(spans, encoded["offset_mapping"])


def test_split_words_keeps_users_urls_emoji_and_clitics():
    text = "@paulwalk It's gr8 at https://t.co/x1?a=2 👍🏽 don't #win ❤️ café"
    words = [text[s:e] for s, e in decode.split_words(text)]
    assert words == ["@paulwalk", "It", "'s", "gr8", "at", "https://t.co/x1?a=2", "👍🏽", "do", "n't", "#win", "❤️", "café"]


def test_a_word_in_five_pieces_is_labelled_on_its_first_piece(wordpiece):
    spans, offsets, first = align(wordpiece, "the xqzvw film")
    assert len(offsets) == 7  # the, x ##q ##z ##v ##w, film
    assert first == [0, 1, 6]
    assert decode.word_pieces(spans, offsets) == [[0], [1, 2, 3, 4, 5], [6]]
    labels = decode.piece_labels(first, [3, 4, 5], len(offsets))
    assert labels == [3, 4, -100, -100, -100, -100, 5]


def test_a_word_that_tokenizes_to_nothing_gets_the_empty_tag(wordpiece):
    text = "good \u200b film"  # a zero-width space is a word of its own that the normalizer removes
    spans, offsets, first = align(wordpiece, text)
    assert [text[s:e] for s, e in spans] == ["good", "\u200b", "film"]
    assert first == [0, -1, 1]
    tags, scores = decode.word_tags([[[0.0, 5.0]], [], [[5.0, 0.0]]], ["O", "B-x"], "O")
    assert tags == ["B-x", "O", "O"] and scores[1] == 0.0


def test_offsets_are_exact_on_accents_emoji_and_urls(wordpiece):
    text = "Zoë vit à Montréal 😀 @user_1 http://x.io/é"
    spans, offsets, first = align(wordpiece, text)
    assert min(first) >= 0  # the emoji is [UNK] but still a piece
    for (s, e), piece in zip(spans, first):
        ps, pe = offsets[piece]
        assert s <= ps < e, (text[s:e], text[ps:pe])
    entities = decode.entities_with_offsets(text, spans, ["B-person", "O", "O", "B-geo-loc", "O", "B-person", "O"],
                                            [0.9] * 7)
    assert [(e["text"], text[e["start"]:e["end"]]) for e in entities] == [("Zoë", "Zoë"), ("Montréal", "Montréal"),
                                                                         ("@user_1", "@user_1")]


def test_ill_formed_bio_follows_conlleval():
    tags = ["I-per", "I-per", "O", "B-loc", "I-org", "I-org", "B-loc", "B-loc", "I-loc", None]
    assert decode.bio_entities(tags) == [("per", 0, 2), ("loc", 3, 4), ("org", 4, 6), ("loc", 6, 7), ("loc", 7, 9)]
    assert decode.bio_entities(["O", "O"]) == []


def test_windows_that_cut_an_entity_are_merged_from_the_central_window():
    # 10 one-piece words, windows of 4 pieces sharing 2: [0,4) [2,6) [4,8) [6,10).
    first = list(range(10))
    windows = decode.plan_windows(first, 10, 4, 2)
    assert [(w.start, w.end) for w in windows] == [(0, 4), (2, 6), (4, 8), (6, 10)]
    labels = ["O", "B-x", "I-x"]
    # Each window is right only about the pieces away from its edges: the entity (words 3-5) crosses two window ends.
    truth = [0, 0, 0, 1, 2, 2, 0, 0, 0, 0]
    logits = []
    for w in windows:
        rows = np.zeros((w.end - w.start, 3))
        for i, piece in enumerate(range(w.start, w.end)):
            central = 0 < i < (w.end - w.start) - 1 or piece in (0, 9)
            rows[i, truth[piece] if central else 0] = 5.0
        logits.append(rows)
    merged = decode.merge_windows(windows, logits, [[p] for p in first])
    tags, _ = decode.word_tags(merged, labels, "O")
    assert decode.bio_entities(tags) == [("x", 3, 6)]


def test_aggregation_first_average_and_max_read_a_words_pieces_as_documented():
    labels = ["O", "B-x", "I-x"]
    strong_o, weak_x, strong_x = [4.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 3.0, 0.0]  # p(top) 0.96, 0.58, 0.91
    rows = [[weak_x, strong_o, strong_o], [strong_o, strong_x, strong_x]]
    first, first_scores = decode.word_tags(rows, labels, "O", "first")
    average, average_scores = decode.word_tags(rows, labels, "O", "average")
    maximum, max_scores = decode.word_tags(rows, labels, "O", "max")
    assert first == ["B-x", "O"]     # the first piece decides
    assert average == ["O", "B-x"]   # two of the three pieces decide the mean
    assert maximum == ["O", "O"]     # the most confident piece is an O in both words
    p_o = decode.softmax(strong_o)
    assert max_scores[0] == pytest.approx(max(p_o)) and first_scores[0] == pytest.approx(max(decode.softmax(weak_x)))
    mean = [sum(c) / 3 for c in zip(*(decode.softmax(r) for r in rows[1]))]
    assert average_scores[1] == pytest.approx(max(mean)) and mean.index(max(mean)) == 1
    with pytest.raises(ValueError, match="first, average, max"):
        decode.word_tags(rows, labels, "O", "mean")


def test_a_piece_spanning_two_words_belongs_to_both():
    # Pieces "don" (0-3) and "'t" (3-5) against the words "do" (0-2) and "n't" (2-5).
    assert decode.word_pieces([(0, 2), (2, 5)], [(0, 3), (3, 5)]) == [[0], [0, 1]]
    assert decode.first_pieces([(0, 2), (2, 5)], [(0, 3), (3, 5)]) == [0, 0]
    assert decode.word_pieces([(0, 3), (4, 5)], [(0, 1), (1, 1), (1, 3), (6, 7)]) == [[0, 2], []]  # empty piece skipped


def test_word_shapes_and_the_shape_row_of_a_window():
    assert [decode.word_shape(w) for w in ("film", "Paris", "McDonald", "I", "NASA", "U.S.", "42", ",", "東京", "iPhone")] \
        == [1, 2, 2, 2, 3, 3, 4, 4, 4, 1]
    text = "Zoë saw NASA"
    plan = decode.plan_text(text, decode.split_words(text), [10, 11, 12, 13], [(0, 2), (2, 3), (4, 7), (8, 12)], 8, 2)
    assert plan.piece_shapes == [2, 2, 1, 3]
    assert decode.window_shapes(plan, plan.windows[0], [101], [102]) == [0, 2, 2, 1, 3, 0]


def test_windows_begin_on_word_boundaries_unless_a_word_is_longer_than_a_window():
    first = [0, 3, 5, 6]  # words of 3, 2, 1 and 4 pieces
    windows = decode.plan_windows(first, 10, 5, 1)
    assert all(w.end - w.start <= 5 for w in windows)
    assert [(w.start, w.end) for w in windows] == [(0, 5), (5, 10)]
    assert decode.plan_windows([0], 12, 5, 0)[0] == decode.Window(0, 5)  # one long word: cut


def test_entity_scores_hand_computed():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O", "O"]]  # PER right; LOC as ORG; ORG cut short
    scores = metrics.entity_scores(gold, pred)
    assert scores["micro"]["precision"] == pytest.approx(1 / 3)
    assert scores["micro"]["recall"] == pytest.approx(1 / 3)
    assert scores["per_type"]["PER"]["f1"] == 1.0
    assert scores["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1, "predicted": 0}
    assert scores["per_type"]["ORG"]["precision"] == 0.0 and scores["per_type"]["ORG"]["predicted"] == 2
    assert scores["token_accuracy"] == pytest.approx(5 / 7)


def test_tag_scores_hand_computed():
    scores = metrics.tag_scores([["DT", "NN", "VBZ"], ["NN"]], [["DT", "NN", "NN"], [None]])
    assert scores["token_accuracy"] == 0.5
    assert scores["per_tag"]["NN"]["precision"] == 0.5 and scores["per_tag"]["NN"]["recall"] == 0.5
    assert scores["per_tag"]["VBZ"]["recall"] == 0.0


def test_baseline_most_frequent_tag_and_unseen_rules():
    tagger = MostFrequentTagger("pos").fit([["The", "run", "run", "."], ["run"]], [["DT", "NN", "VB", "."], ["VB"]])
    assert tagger.predict([["the", "run", "Paris", "1,000", "walking", "blorp", ".", "%"]]) == \
        [["DT", "VB", "NNP", "CD", "VBG", "NN", ".", "SYM"]]
    assert MostFrequentTagger("ner").fit([["Paris"]], [["B-loc"]]).predict([["paris", "Rome"]]) == [["B-loc", "O"]]


def test_parsers_and_format_detection():
    conll = "Empire\tB-facility\nState\tI-facility\n\t\nhi\tO\n"
    assert tagged.parse_any(conll, "x") == [(["Empire", "State"], ["B-facility", "I-facility"]), (["hi"], ["O"])]
    assert tagged.parse_any("1/2/CD cup/NN ./.\n", "x") == [(["1/2", "cup", "."], ["CD", "NN", "."])]
    with pytest.raises(UserError, match="line 2 has no tag"):
        tagged.parse_conll("a\tO\nb\n", "f.conll")
    assert tagged.task_of([["O", "B-x", "I-x"]]) == "ner" and tagged.task_of([["NN"]]) == "pos"


def test_treebank_quotes_are_scored_as_written():
    from tfxformers.models.tagging.data import TaggedSplit, quotes_as_written

    split = TaggedSplit([["``", "Hi", ",", "''", "he", "said", "`", "ok", "'", "''", "'s"]],
                        [["``", "UH", ",", "''", "PRP", "VBD", "``", "UH", "''", "''", "POS"]])
    out = quotes_as_written(split)
    assert out.words == [['"', "Hi", ",", '"', "he", "said", "'", "ok", "'", '"', "'s"]]
    assert out.tags == [['"', "UH", ",", '"', "PRP", "VBD", '"', "UH", '"', '"', "POS"]]
    assert split.words[0][0] == "``"  # the input split is left as it was
