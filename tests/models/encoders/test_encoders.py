"""The encoder registry and the five families (BERT, RoBERTa, DistilBERT, ELECTRA, MPNet) on tiny random checkpoints:
TF-free family questions, Hub ids refused at once, loading safetensors / tf_model.h5 / task-head checkpoints,
partial mode's block slicing, and the in-graph byte-level BPE against the Hugging Face tokenizer."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tfxformers.errors import UserError
from tfxformers.testing import TINY_FAMILIES, make_tiny_checkpoint, requires_real

TEXTS = ["a charming funny film", "the plot is a tedious mess and the acting is flat", "Emma loved it!"]


def test_registry_answers_without_tensorflow(tmp_path):
    code = ("import sys; from tfxformers.models import encoders as e; "
            "s = e.spec_for({'model_type': 'roberta', 'max_position_embeddings': 514}); "
            "print(s.tokenizer_kind, s.uses_token_type_ids, e.max_input_tokens({'model_type': 'roberta', "
            "'max_position_embeddings': 514}), 'tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["byte_bpe", "False", "512", "False"]
    from tfxformers.models import encoders

    assert [encoders.spec_for(t).tokenizer_kind for t in TINY_FAMILIES] == ["wordpiece", "byte_bpe", "wordpiece", "wordpiece",
                                                                              "wordpiece"]
    with pytest.raises(UserError, match="'gpt2' .* not supported"):
        encoders.spec_for({"model_type": "gpt2"})


def test_hub_id_fails_at_once_with_one_line(capsys, tmp_path):
    from tfxformers.cli import main
    from tfxformers.models import encoders

    with pytest.raises(UserError, match=r"'roberta-base'.*Hub id.*--local-dir DIR.*--encoder DIR"):
        encoders.resolve_checkpoint("roberta-base")
    with pytest.raises(UserError, match="neither 'minilm', 'mpnet' nor a checkpoint directory"):
        encoders.resolve_checkpoint(str(tmp_path / "missing"))
    csv = tmp_path / "d.csv"
    csv.write_text("text,label\n" + "".join(f"t{i},{'ab'[i % 2]}\n" for i in range(20)))
    assert main(["train", "classifier", "--data", str(csv), "--encoder", "distilbert-base-uncased",
                 "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "distilbert-base-uncased" in err and "--encoder DIR" in err


def _outputs(encoder, tokenizer):
    from tfxformers.models.encoders.base import call_main_layer, main_layer

    batch = tokenizer(TEXTS, padding=True, return_tensors="np")
    return call_main_layer(main_layer(encoder), batch["input_ids"], batch["attention_mask"],
                           training=False).last_hidden_state.numpy()


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_every_weights_format_and_head_checkpoint_loads_the_same_weights(family, tmp_path):
    from tfxformers.models import encoders
    from tfxformers.models.encoders import base
    from tfxformers.models.encoders.base import model_from_config

    paths = {(head, fmt): make_tiny_checkpoint(tmp_path / f"{head}-{fmt}", family, head=head, weights_format=fmt)
             for head, fmt in ((False, "safetensors"), (False, "h5"), (True, "safetensors"), (True, "h5"))}
    tokenizer = encoders.load_tokenizer(paths[False, "safetensors"])
    out = {key: _outputs(base.load_encoder(path), tokenizer) for key, path in paths.items()}
    # Same seed, same class: the safetensors (PyTorch names, converted) and h5 (Keras names) copies agree.
    np.testing.assert_allclose(out[False, "safetensors"], out[False, "h5"], atol=1e-5)
    np.testing.assert_allclose(out[True, "safetensors"], out[True, "h5"], atol=1e-5)
    random = model_from_config(base.load_encoder(paths[False, "h5"]).config)
    assert np.abs(_outputs(random, tokenizer) - out[False, "h5"]).max() > 1e-3  # the loads were not random
    assert encoders.spec_for(paths[True, "h5"]).model_type == family


def test_roberta_specials_positions_and_no_token_types(tmp_path):
    from tfxformers.models import encoders

    path = make_tiny_checkpoint(tmp_path / "r", "roberta")
    tokenizer = encoders.load_tokenizer(path)
    ids = tokenizer("a charming film")["input_ids"]
    assert (ids[0], ids[-1], tokenizer.pad_token_id) == (0, 2, 1) and tokenizer.sep_token_id == 2
    assert encoders.max_input_tokens(encoders.read_config(path)) == 128
    assert encoders.input_names(path, use_token_type_ids=True) == ["input_ids", "attention_mask"]
    assert encoders.input_names(make_tiny_checkpoint(tmp_path / "e", "electra"), True)[-1] == "token_type_ids"


@pytest.mark.parametrize("family", ["roberta", "distilbert", "electra", "mpnet"])
def test_partial_mode_cached_lower_layers_equal_the_full_classifier(family, tmp_path):
    """Partial mode's per-family slicing: embeddings + bottom layers cached, top layers through the shared
    blocks, gives the full classifier's logits."""
    import tensorflow as tf

    from tfxformers.models import encoders
    from tfxformers.models.encoders import base
    from tfxformers.models.classification import partial
    from tfxformers.models.tokenization import tokenize_batch

    path = make_tiny_checkpoint(tmp_path / family, family)
    encoder, tokenizer = base.load_encoder(path), encoders.load_tokenizer(path)
    classifier = base.build_classifier(encoder, 2, compile=False)
    model = partial.build_partial_model(classifier, encoder, 1, compile=False)
    states = partial.encode_hidden_states(encoder, tokenizer, TEXTS, frozen_depth=1, max_length=32,
                                          dtype="float32", progress=False)
    hidden, mask = states.padded(range(len(TEXTS)), 16)
    via_cache = model({"hidden_states": tf.constant(hidden), "attention_mask": tf.constant(mask)}, training=False)
    full = classifier(tokenize_batch(tokenizer, TEXTS, max_length=32), training=False)
    np.testing.assert_allclose(via_cache.numpy(), full.numpy(), atol=1e-4)
    # Attention maps (the attention view asks the registry for them): one per block, rows sum to 1.
    from tfxformers.models.encoders.base import call_main_layer, main_layer

    batch = tokenize_batch(tokenizer, TEXTS, max_length=32)
    attentions = call_main_layer(main_layer(encoder), batch["input_ids"], batch["attention_mask"], training=False,
                                 output_attentions=True).attentions
    assert len(attentions) == encoders.num_layers(encoder.config)
    np.testing.assert_allclose(attentions[-1].numpy().sum(-1), 1.0, atol=1e-5)


BPE_TEXTS = ["Hello world", "it's   a  test\n\n ok", "  leading", "trailing  ", "Ünïcödé café — naïve ½ 日本語",
             "a\u00a0b \t c", "don't I'LL 123abc 4.5", "", "x" * 80, "The plot is a tedious mess; the acting: flat.",
             "tedious tedious tedioustedious!!", "\n", " "]


def _bpe_mismatches(tokenizer, texts, max_length):
    import tensorflow as tf

    from tfxformers.pipeline.classifier.signatures import in_graph_tokenizer

    graph = in_graph_tokenizer(tokenizer, max_length, "byte_bpe")
    fn = tf.function(graph, input_signature=[tf.TensorSpec([None], tf.string)])
    bad = []
    for start in range(0, len(texts), 256):
        chunk = texts[start:start + 256]
        ids, mask = (t.numpy() for t in fn(tf.constant(chunk)))
        expected = tokenizer(chunk, truncation=True, max_length=max_length)["input_ids"]
        bad += [(text, want) for text, row, m, want in zip(chunk, ids, mask, expected) if row[:m.sum()].tolist() != want]
    return bad


def test_in_graph_byte_level_bpe_equals_hugging_face_on_the_tiny_tokenizer(tmp_path):
    from tfxformers.models import encoders

    tokenizer = encoders.load_tokenizer(make_tiny_checkpoint(tmp_path / "r", "roberta"))
    assert _bpe_mismatches(tokenizer, BPE_TEXTS + TEXTS, 24) == []


@pytest.mark.real
@requires_real("gpt2_bpe", "rotten_tomatoes")
def test_in_graph_byte_level_bpe_equals_hugging_face_on_the_whole_rotten_tomatoes_test_split():
    """RoBERTa's BPE is GPT-2's (same merges): the real 50k vocabulary on every test text."""
    from transformers import RobertaTokenizerFast

    from tfxformers.models.data.classification import load_classification
    from tfxformers.models.data.sources import gpt2_bpe_dir

    directory = gpt2_bpe_dir()
    tokenizer = RobertaTokenizerFast(vocab_file=str(directory / "vocab.json"), merges_file=str(directory / "merges.txt"))
    texts = load_classification("rotten_tomatoes").test.texts
    assert len(texts) > 1000
    assert _bpe_mismatches(tokenizer, BPE_TEXTS + texts, 128) == []


def test_a_roberta_checkpoint_exports_as_a_sentence_encoder(tmp_path):
    """``tfxformers export --model CHECKPOINT``: the embed signature equals the masked mean of the main layer,
    and the metadata names the family and its 512-of-514-style position limit."""
    import json

    import tensorflow as tf

    from tfxformers.models import encoders
    from tfxformers.models.encoders import base
    from tfxformers.models.encoders.base import call_main_layer, main_layer, masked_mean
    from tfxformers.serving.export.trained import export_model

    path = make_tiny_checkpoint(tmp_path / "r", "roberta", head=True)
    version = export_model(path, "roberta_encoder", tmp_path / "models")
    info = json.loads((version / "assets.extra" / "tfxformers.json").read_text())
    assert (info["model_type"], info["tokenizer_kind"], info["max_positions"], info["pad_id"]) == \
        ("roberta", "byte_bpe", 128, 1)
    encoder, tokenizer = base.load_encoder(path), encoders.load_tokenizer(path)
    batch = tokenizer(TEXTS, padding=True, return_tensors="np")
    ids, mask = tf.constant(batch["input_ids"], tf.int32), tf.constant(batch["attention_mask"], tf.int32)
    expected = masked_mean(tf, call_main_layer(main_layer(encoder), ids, mask, training=False).last_hidden_state, mask)
    got = tf.saved_model.load(str(version)).signatures["embed"](input_ids=ids, attention_mask=mask)["embedding"]
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-5)


@pytest.mark.parametrize("family,mode", [("distilbert", "hub"), ("roberta", "frozen")])
def test_frozen_and_hub_modes_train_and_export_for_other_families(family, mode, tiny_reviews_csv, tmp_path):
    """Hub mode's encoder SavedModel without a pooler (DistilBERT), frozen mode's feature cache with RoBERTa's
    pad id: each trains, reloads and exports to the same answers."""
    import tensorflow as tf

    from tfxformers.models.artifacts import load_trained
    from tfxformers.models.classification.train import ClassifierTrainConfig, train_classifier
    from tfxformers.models.tokenization import tokenize_batch
    from tfxformers.serving.export.trained import export_model

    checkpoint = make_tiny_checkpoint(tmp_path / "checkpoint", family)
    metrics = train_classifier(ClassifierTrainConfig(
        data=str(tiny_reviews_csv), text_column="review", label_column="sentiment", encoder=str(checkpoint),
        mode=mode, output=str(tmp_path / "run"), epochs=1, batch_size=32, max_length=32, limit_train=64, verbose=0))
    assert metrics["mode"] == mode
    trained = load_trained(tmp_path / "run")
    features = tokenize_batch(trained.tokenizer, TEXTS, max_length=32)
    expected = tf.nn.softmax(trained.keras_model(features, training=False)).numpy()
    version = export_model(tmp_path / "run", family, tmp_path / "models")
    got = tf.saved_model.load(str(version)).signatures["serving_default"](
        input_ids=tf.constant(features["input_ids"]), attention_mask=tf.constant(features["attention_mask"]))
    np.testing.assert_allclose(got["probabilities"].numpy(), expected, atol=1e-5)
