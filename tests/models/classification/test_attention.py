"""Attention maps of a tiny trained classifier: weights, rollout, word merging, the PNGs and the CLI."""
from __future__ import annotations

import numpy as np
import pytest

from tfxformers.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trained(trained_dir):
    from tfxformers.models import artifacts

    return artifacts.load_trained(trained_dir)


def test_every_head_row_sums_to_one_over_the_unmasked_tokens(trained):
    import tensorflow as tf

    from tfxformers.models.classification.attention import encoder_attentions, encoder_layer
    from tfxformers.models.tokenization import tokenize_batch

    features = tokenize_batch(trained.tokenizer, ["good", "the movie was very good and the plot was fun"], max_length=32)
    mask = features["attention_mask"]
    weights = np.asarray(encoder_attentions(encoder_layer(trained.keras_model), tf.constant(features["input_ids"]),
                                            tf.constant(mask)))
    config = trained.info["encoder_config"]
    assert weights.shape == (2, config["num_hidden_layers"], config["num_attention_heads"], 16, 16)
    keys = mask[:, None, None, None, :].astype(bool)  # [batch, 1, 1, 1, key]
    real_rows = mask[:, None, None, :].astype(bool)
    sums = (weights * keys).sum(axis=-1)
    np.testing.assert_allclose(sums[np.broadcast_to(real_rows, sums.shape)], 1.0, atol=1e-5)
    assert np.abs(weights * ~keys).max() < 1e-6  # padding gets no attention


def test_attention_for_text_matches_the_classifier_and_rolls_out(trained):
    from tfxformers.models.classification import attention
    from tfxformers.models.tokenization import predict_logits, softmax

    result = attention.attention_for_text(trained, "the movie was good")
    assert result.tokens[0] == "[CLS]" and result.tokens[-1] == "[SEP]"
    np.testing.assert_allclose(result.weights.sum(axis=-1), 1.0, atol=1e-5)
    expected = softmax(predict_logits(trained.keras_model, trained.tokenizer, ["the movie was good"], max_length=32))[0]
    np.testing.assert_allclose(result.probabilities, expected, atol=1e-5)

    flow = attention.rollout(result.weights)
    assert flow.shape == (result.layers, len(result.tokens), len(result.tokens))
    np.testing.assert_allclose(flow.sum(axis=-1), 1.0, atol=1e-9)
    # By hand for the first layer: heads averaged, identity averaged in, rows renormalised.
    first = 0.5 * result.weights[0].mean(axis=0) + 0.5 * np.eye(len(result.tokens))
    np.testing.assert_allclose(flow[0], first / first.sum(axis=-1, keepdims=True), atol=1e-6)
    np.testing.assert_allclose(flow[1], (0.5 * result.weights[1].mean(axis=0) + 0.5 * np.eye(len(result.tokens)))
                               @ flow[0], atol=1e-6)


def test_merging_word_pieces_sums_columns_and_averages_rows():
    from tfxformers.models.classification.attention import Attention, merge_words

    # [CLS] "un" "##fun" [SEP]: the word "unfun" is two pieces.
    weights = np.array([[[[0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25], [0.4, 0.3, 0.2, 0.1], [1, 0, 0, 0]]]])
    result = Attention(tokens=["[CLS]", "un", "##fun", "[SEP]"], weights=weights, text="unfun",
                       offsets=[(0, 0), (0, 2), (2, 5), (0, 0)], word_ids=[None, 0, 0, None])
    merged = merge_words(result)
    assert merged.tokens == ["[CLS]", "unfun", "[SEP]"]
    np.testing.assert_allclose(merged.weights[0, 0], [[0.1, 0.5, 0.4], [0.325, 0.5, 0.175], [1, 0, 0]])


def test_cli_writes_a_png_for_each_view(trained_dir, tmp_path, capsys):
    out = tmp_path / "maps"
    assert main(["attention", "--model", str(trained_dir), "the plot was dull and slow", "--layer", "1",
                 "--head", "1", "--merge-words", "--output", str(out)]) == 0
    for view in ("head", "grid", "rollout"):
        data = (out / f"{view}.png").read_bytes()
        assert data.startswith(PNG) and len(data) > 2000, view
    assert "rollout" in capsys.readouterr().out
    import json

    saved = json.loads((out / "attention.json").read_text())
    assert saved["tokens"][0] == "[CLS]" and len(saved["rollout_first_token"]) == saved["layers"]


@pytest.mark.parametrize("argv, message", [
    (["--layer", "7"], "--layer 7 is out of range: this model has layers 0..1"),
    (["--head", "2"], "--head 2 is out of range"),
    (["--layer", "-1"], "argument --layer"),
])
def test_bad_layer_or_head_is_one_error_line(trained_dir, tmp_path, capsys, argv, message):
    try:
        code = main(["attention", "--model", str(trained_dir), "good film", "--output", str(tmp_path / "x"), *argv])
    except SystemExit as exc:  # argparse refuses before the handler runs
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err, err
    assert not (tmp_path / "x" / "head.png").exists()


def test_a_directory_that_is_no_model_is_one_error_line(tmp_path, capsys):
    assert main(["attention", "--model", str(tmp_path), "good film"]) == 2
    assert "not a tfxformers model directory" in capsys.readouterr().err


@pytest.mark.parametrize("family, first", [("roberta", "<s>"), ("distilbert", "[CLS]"), ("electra", "[CLS]")])
def test_every_encoder_family_gives_maps_from_its_first_token(family, first, tmp_path):
    from tfxformers.models import encoders
    from tfxformers.models.encoders import base
    from tfxformers.models.artifacts import TrainedModel
    from tfxformers.models.classification import attention
    from tfxformers.testing import make_tiny_checkpoint

    checkpoint = make_tiny_checkpoint(tmp_path / family, family)
    encoder = base.load_encoder(checkpoint)
    model = base.build_classifier(encoder, 2, compile=False)
    trained = TrainedModel(tmp_path, {"kind": "classifier", "max_length": 32, "input_names": encoders.input_names(encoder)},
                           model, encoders.load_tokenizer(checkpoint), ["neg", "pos"])
    result = attention.attention_for_text(trained, "the movie was good")
    assert result.tokens[0] == first and (result.layers, result.heads) == (2, 2)
    np.testing.assert_allclose(result.weights.sum(axis=-1), 1.0, atol=1e-5)
    merged = attention.merge_words(result)
    assert "movie" in merged.tokens and merged.tokens[0] == first
    np.testing.assert_allclose(merged.weights.sum(axis=-1), 1.0, atol=1e-5)
