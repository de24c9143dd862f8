"""The data layer: fixed splits, user data and its errors, the R reader, and the real fetched sources."""
from __future__ import annotations

import json
import struct
import zlib
from collections import Counter

import numpy as np
import pytest

from tfxformers.cli import main
from tfxformers.errors import UserError
from tfxformers.models.data.classification import assign_splits, load_classification
from tfxformers.models.data.corpus import load_corpus
from tfxformers.models.data.sources import minilm_dir
from tfxformers.models.data.rdata_reader import parse_serialization, read_lazyload_db
from tfxformers.testing import requires_real


def _csv(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_splits_are_deterministic_disjoint_and_stratified():
    texts = [f"text number {i}" for i in range(1000)]
    labels = ["a" if i % 4 else "b" for i in range(1000)]
    first = assign_splits(texts, labels)
    # Same answer when the rows come in another order: the split depends on each text, not its position.
    reversed_assignment = assign_splits(texts[::-1], labels[::-1])[::-1]
    assert first == reversed_assignment
    counts = Counter(zip(first, labels))
    for label, total in (("a", 750), ("b", 250)):
        assert counts[("train", label)] == round(total * 0.8)
        assert counts[("validation", label)] == round(total * 0.1)
        assert counts[("test", label)] == total - round(total * 0.8) - round(total * 0.1)


def test_user_csv_loads_with_named_columns(tmp_path):
    rows = "\n".join(f'"review {i}",{"pos" if i % 3 else "neg"}' for i in range(60))
    path = _csv(tmp_path, "body,stars\n" + rows + "\n")
    data = load_classification(path, text_column="body", label_column="stars")
    assert data.label_names == ["neg", "pos"]
    assert len(data.train) + len(data.validation) + len(data.test) == 60
    assert not set(data.train.texts) & set(data.test.texts)
    assert data.train.labels.dtype == np.int64


def test_user_jsonl_honours_split_column(tmp_path):
    lines = [json.dumps({"text": f"t{i}", "label": i % 2, "split": ["train", "validation", "test"][i % 3]})
             for i in range(30)]
    data = load_classification(_csv(tmp_path, "\n".join(lines), "d.jsonl"))
    assert (len(data.train), len(data.validation), len(data.test)) == (10, 10, 10)
    assert data.test.texts and all(int(t[1:]) % 3 == 2 for t in data.test.texts)


@pytest.mark.parametrize(
    "content, args, message",
    [
        (None, [], "not found"),
        ("", [], "is empty"),
        ("text,label\n", [], "no rows"),
        ("body,label\nhello,a\n", [], "no column 'text'; its columns are: body, label"),
        ("text,label\nhello,a\nworld,a\nagain,a\n", [], "a classifier needs at least two classes"),
        ("text,label\nhello,a\n,b\n", [], "row 3 has an empty 'text'"),
    ],
)
def test_bad_data_exits_2_with_a_message(tmp_path, capsys, content, args, message):
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_text(content)
    code = main(["train", "classifier", "--data", str(path), "--output", str(tmp_path / "out"), *args])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert not (tmp_path / "out").exists()


def test_undecodable_bytes_name_the_line(tmp_path, capsys):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"text,label\nfine,a\nalso fine,b\ncaf\xe9,a\n")
    assert main(["train", "classifier", "--data", str(path), "--output", str(tmp_path / "o")]) == 2
    assert "line 4 is not valid UTF-8" in capsys.readouterr().err


def test_bad_jsonl_line_is_named(tmp_path):
    path = _csv(tmp_path, '{"text": "a", "label": 1}\n{"text": oops}\n', "d.jsonl")
    with pytest.raises(UserError, match="line 2 is not valid JSON"):
        load_classification(path)


def test_unknown_builtin_and_corpus_errors(tmp_path):
    with pytest.raises(UserError, match="unknown data set"):
        load_classification("no_such_set")
    with pytest.raises(UserError, match="empty"):
        load_corpus(_csv(tmp_path, "   \n\n", "empty.txt"))
    (tmp_path / "bin.txt").write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(UserError, match="binary"):
        load_corpus(tmp_path / "bin.txt")


def test_user_corpus_is_split_by_position(tmp_path):
    paragraphs = [f"Paragraph {i} " + "word " * 50 for i in range(200)]
    corpus = load_corpus(_csv(tmp_path, "\n\n".join(paragraphs), "book.txt"))
    assert corpus.train and corpus.validation and corpus.test
    joined = "".join(corpus.train + corpus.validation + corpus.test)
    assert sum(len(p) for p in paragraphs) <= len(joined)
    # Held-out parts are whole blocks of consecutive paragraphs, not scattered lines.
    numbers = [int(p.split()[1]) for p in corpus.validation[0].split("\n\n")]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))


def _xdr_string_vector(values):
    body = struct.pack(">i", 16) + struct.pack(">i", len(values))
    for v in values:
        raw = v.encode()
        body += struct.pack(">i", 0x00040009) + struct.pack(">i", len(raw)) + raw
    header = b"X\n" + struct.pack(">iii", 3, 0x040201, 0x030500) + struct.pack(">i", 5) + b"UTF-8"
    return header + body


def test_r_reader_parses_a_character_vector():
    assert parse_serialization(_xdr_string_vector(["Emma Woodhouse", "handsome, clever"])) == [
        "Emma Woodhouse", "handsome, clever"]


def test_r_reader_reads_a_lazyload_db(tmp_path):
    obj = _xdr_string_vector(["CHAPTER I", "text"])
    blob = struct.pack(">i", len(obj)) + zlib.compress(obj)
    (tmp_path / "x.rdb").write_bytes(blob)
    # Index: list(variables = list(emma = c(0, len)), ...), names attribute on the list.
    header = b"X\n" + struct.pack(">iii", 2, 0x040201, 0x020300)

    def ints(values):
        return struct.pack(">ii", 13, len(values)) + b"".join(struct.pack(">i", v) for v in values)

    def names_attr(names):
        out = struct.pack(">i", 0x00000402) + struct.pack(">i", 1) + struct.pack(">i", 0x00040009)
        out += struct.pack(">i", 5) + b"names" + struct.pack(">ii", 16, len(names))
        for n in names:
            out += struct.pack(">ii", 0x00040009, len(n)) + n.encode()
        return out + struct.pack(">i", 254)

    variables = struct.pack(">ii", 0x213, 1) + ints([0, len(blob)]) + names_attr(["emma"])
    index = header + struct.pack(">ii", 0x213, 1) + variables + names_attr(["variables"])
    (tmp_path / "x.rdx").write_bytes(struct.pack(">i", len(index)) + zlib.compress(index))
    assert read_lazyload_db(tmp_path / "x.rdb", tmp_path / "x.rdx") == {"emma": ["CHAPTER I", "text"]}


@pytest.mark.real
@requires_real("rotten_tomatoes", "bbc_news", "tweets", "austen")
def test_real_sources_have_their_documented_sizes():
    rt = load_classification("rotten_tomatoes")
    assert rt.label_names == ["rotten", "fresh"]
    assert len(rt.train) + len(rt.validation) + len(rt.test) == 12808
    all_labels = np.concatenate([rt.train.labels, rt.validation.labels, rt.test.labels])
    assert (all_labels == 1).sum() == 7403 and (all_labels == 0).sum() == 5405
    bbc = load_classification("bbc_news")
    assert len(bbc.label_names) == 5 and len(bbc.train) + len(bbc.validation) + len(bbc.test) == 2225
    tweets = load_classification("tweets")
    assert tweets.label_names == ["negative", "neutral", "positive"]
    assert len(tweets.train) + len(tweets.validation) + len(tweets.test) == 38158
    emma = load_corpus("emma")
    assert sum(emma.characters().values()) >= 880_000
    assert len(emma.train) + len(emma.validation) + len(emma.test) == 55  # chapters
    assert all(ch.startswith("CHAPTER") for ch in emma.validation + emma.test)


def test_missing_weights_point_to_fetch(tmp_path):
    with pytest.raises(UserError, match="tfxformers data fetch minilm"):
        minilm_dir(home=tmp_path)
