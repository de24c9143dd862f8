"""Broken encoder checkpoints (issue 23) get one ``UserError`` naming the file and the field, never a
traceback from transformers or an encoder silently built from nonsense sizes.

Each case is a copy of a tiny random checkpoint with one thing wrong, as a user's hand-edited or
half-copied checkpoint would be; one goes through ``tfxformers train classifier`` to show the CLI's
``error:`` line and exit code 2 before any data is encoded.
"""
from __future__ import annotations

import json
import shutil

import pytest

from tfxformers.cli import main
from tfxformers.errors import UserError
from tfxformers.models import encoders
from tfxformers.models.encoders import base
from tfxformers.testing import make_tiny_checkpoint, write_two_class_reviews


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    return {family: make_tiny_checkpoint(root / family, family) for family in ("bert", "roberta")}


def _variant(tiny, tmp_path, family, config=None, remove=()):
    directory = tmp_path / f"{family}-broken"
    shutil.copytree(tiny[family], directory)
    if config:
        values = json.loads((directory / "config.json").read_text())
        values.update(config)
        (directory / "config.json").write_text(json.dumps(values))
    for name in remove:
        (directory / name).unlink()
    return directory


@pytest.mark.parametrize("config, message", [
    ({"hidden_size": 17}, r"config.json: hidden_size 17 is not a multiple of num_attention_heads 2"),
    ({"num_hidden_layers": -2}, r"config.json: num_hidden_layers must be an integer of at least 1 \(got -2\)"),
    ({"num_attention_heads": 0}, r"config.json: num_attention_heads must be an integer of at least 1"),
    ({"intermediate_size": "32"}, r"config.json: intermediate_size must be an integer"),
])
def test_impossible_sizes_are_refused_naming_the_field(tiny, tmp_path, config, message):
    directory = _variant(tiny, tmp_path, "bert", config)
    with pytest.raises(UserError, match=message):
        base.load_config(directory)
    with pytest.raises(UserError, match=message):
        base.load_encoder(directory)


def test_a_vocab_size_other_than_the_weights_names_the_field(tiny, tmp_path):
    directory = _variant(tiny, tmp_path, "bert", {"vocab_size": 50})
    with pytest.raises(UserError, match=r"config.json: vocab_size is 50 but .*model.safetensors's word_embeddings "
                                        r"has \d+ rows"):
        base.load_encoder(directory)
    with pytest.raises(UserError, match=r"config.json: vocab_size 50 is smaller than the tokenizer's \d+ tokens"):
        encoders.load_tokenizer(directory)


def test_a_bert_config_over_roberta_files_is_refused(tiny, tmp_path):
    directory = _variant(tiny, tmp_path, "roberta", {"model_type": "bert", "architectures": ["BertModel"]})
    with pytest.raises(UserError, match=r"config.json: model_type 'bert' takes a WordPiece tokenizer, but the "
                                        r"checkpoint's tokenizer is byte-level BPE"):
        encoders.load_tokenizer(directory)
    # weights saved from a task head carry their family's prefix: named too
    import safetensors.numpy

    state = safetensors.numpy.load_file(str(directory / "model.safetensors"))
    safetensors.numpy.save_file({"roberta." + k: v for k, v in state.items()}, str(directory / "model.safetensors"))
    with pytest.raises(UserError, match=r"model.safetensors holds roberta weights but .*config.json says "
                                        r"model_type 'bert'"):
        base.load_encoder(directory)


def test_a_roberta_checkpoint_without_merges_is_refused(tiny, tmp_path):
    directory = _variant(tiny, tmp_path, "roberta", remove=("merges.txt", "tokenizer.json"))
    with pytest.raises(UserError, match=r"has vocab.json but not both vocab.json and merges.txt"):
        encoders.load_tokenizer(directory)


def test_the_cli_prints_one_error_line(tiny, tmp_path, capsys):
    directory = _variant(tiny, tmp_path, "bert", {"hidden_size": 17})
    data = write_two_class_reviews(tmp_path / "reviews.csv", {"train": 4, "validation": 2, "test": 2})
    code = main(["train", "classifier", "--data", str(data), "--encoder", str(directory), "--epochs", "1",
                 "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [f"error: {directory / 'config.json'}: hidden_size 17 is not a multiple of "
                                        "num_attention_heads 2 (each attention head takes an equal share of the "
                                        "hidden size)"]
