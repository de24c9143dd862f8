"""Classifier exports: versions, signatures equal to the Keras model, TF Serving padding, TF1 loader."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tfxformers.cli import main

TEXTS = ["a brilliant and moving film", "boring , dull and far too long", "the plot"]


@pytest.fixture(scope="module")
def exported(trained_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("serving_models")
    assert main(["export", "--model", str(trained_dir), "--name", "sentiment", "--model-base", str(base)]) == 0
    return base / "sentiment" / "1"


def _keras_probabilities(trained_dir, features):
    from tfxformers.models.artifacts import load_trained
    from tfxformers.models.tokenization import softmax

    trained = load_trained(trained_dir)
    return softmax(np.asarray(trained.keras_model(features, training=False))), trained


def test_signature_matches_the_keras_model(trained_dir, exported):
    import tensorflow as tf

    from tfxformers.models.tokenization import tokenize_batch

    from tfxformers.models.artifacts import load_trained

    features = tokenize_batch(load_trained(trained_dir).tokenizer, TEXTS, 32)
    expected, _ = _keras_probabilities(trained_dir, features)
    serve = tf.saved_model.load(str(exported)).signatures["serving_default"]
    out = serve(input_ids=tf.constant(features["input_ids"]), attention_mask=tf.constant(features["attention_mask"]))
    np.testing.assert_allclose(out["probabilities"].numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(out["label_id"].numpy(), expected.argmax(-1))


def test_tf_serving_style_padding_does_not_change_answers(trained_dir, exported):
    """TF Serving's batcher pads with each tensor's first element: [CLS] ids and mask 1."""
    import tensorflow as tf

    from tfxformers.models.artifacts import load_trained
    from tfxformers.models.tokenization import tokenize_batch

    tokenizer = load_trained(trained_dir).tokenizer
    features = tokenize_batch(tokenizer, TEXTS, 32)
    serve = tf.saved_model.load(str(exported)).signatures["serving_default"]
    plain = serve(input_ids=tf.constant(features["input_ids"]), attention_mask=tf.constant(features["attention_mask"]))
    extra = 16
    ids = np.pad(features["input_ids"], ((0, 0), (0, extra)), constant_values=features["input_ids"][0, 0])
    mask = np.pad(features["attention_mask"], ((0, 0), (0, extra)), constant_values=features["attention_mask"][0, 0])
    width = features["input_ids"].shape[1]
    ids[:, :width][features["input_ids"] == tokenizer.pad_token_id] = features["input_ids"][0, 0]  # own padding too
    mask[:, :width][features["attention_mask"] == 0] = 1
    padded = serve(input_ids=tf.constant(ids), attention_mask=tf.constant(mask))
    np.testing.assert_allclose(padded["probabilities"].numpy(), plain["probabilities"].numpy(), atol=1e-5)
    # Without the in-graph rule the same padding changes the answer: the test can fail.
    from tfxformers.models.tokenization import softmax

    model = load_trained(trained_dir).keras_model
    naive = softmax(np.asarray(model({"input_ids": ids, "attention_mask": mask}, training=False)))
    assert np.abs(naive - plain["probabilities"].numpy()).max() > 1e-4


def test_versions_are_numbered_and_immutable(trained_dir, exported, capsys):
    base = exported.parent.parent
    assert main(["export", "--model", str(trained_dir), "--name", "sentiment", "--model-base", str(base)]) == 0
    assert sorted(p.name for p in (base / "sentiment").iterdir()) == ["1", "2"]  # no temp dirs left
    assert main(["export", "--model", str(trained_dir), "--name", "sentiment", "--model-base", str(base),
                 "--version", "2"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["export", "--model", str(base / "nothing"), "--name", "x", "--model-base", str(base)]) == 2


def test_saved_model_cli_lists_the_signatures(exported):
    cli = Path(sys.executable).with_name("saved_model_cli")
    shown = subprocess.run([str(cli), "show", "--dir", str(exported), "--all"], capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr[-1000:]
    for text in ("signature_def['serving_default']", "signature_def['tfxformers_metadata']",
                 "inputs['input_ids']", "outputs['probabilities']", "shape: (-1, -1)"):
        assert text in shown.stdout


def test_tf1_session_loader_with_the_serve_tag(trained_dir, exported):
    """What TF Serving's C++ loader does: load the MetaGraph tagged 'serve' and run the signature."""
    import tensorflow as tf

    from tfxformers.models.artifacts import load_trained
    from tfxformers.models.tokenization import tokenize_batch

    features = tokenize_batch(load_trained(trained_dir).tokenizer, TEXTS, 32)
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(exported))
        signature = meta.signature_def["serving_default"]
        out = session.run(signature.outputs["probabilities"].name, feed_dict={
            signature.inputs["input_ids"].name: features["input_ids"],
            signature.inputs["attention_mask"].name: features["attention_mask"]})
    expected = tf.saved_model.load(str(exported)).signatures["serving_default"](
        input_ids=tf.constant(features["input_ids"]), attention_mask=tf.constant(features["attention_mask"]))
    np.testing.assert_allclose(out, expected["probabilities"].numpy(), atol=1e-6)


def test_metadata_signature_and_assets_carry_tokenizer_and_labels(trained_dir, exported):
    import tensorflow as tf
    from tokenizers import Tokenizer

    from tfxformers.models.artifacts import load_trained

    trained = load_trained(trained_dir)
    out = tf.saved_model.load(str(exported)).signatures["tfxformers_metadata"](probe=tf.constant([0, 0]))
    assert out["metadata_json"].shape == (2,)
    metadata = json.loads(out["metadata_json"].numpy()[0].decode())
    assert metadata["label_names"] == ["neg", "pos"] and metadata["version"] == 1
    assert metadata == json.loads((exported / "assets.extra" / "tfxformers.json").read_text())
    tokenizer = Tokenizer.from_str(out["tokenizer_json"].numpy()[0].decode())
    assert tokenizer.encode(TEXTS[0]).ids == trained.tokenizer(TEXTS[0])["input_ids"]
    assert (exported / "assets.extra" / "tokenizer" / "tokenizer.json").is_file()


def test_warmup_records_are_valid_requests(exported):
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    serve = tf.saved_model.load(str(exported)).signatures["serving_default"]
    records = list(tf.data.TFRecordDataset(str(exported / "assets.extra" / "tf_serving_warmup_requests")))
    assert 1 <= len(records) <= 1000
    widths = set()
    for record in records:
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        assert request.model_spec.name == "sentiment" and request.model_spec.signature_name == "serving_default"
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        widths.add(inputs["input_ids"].shape[1])
        serve(**{k: tf.constant(v) for k, v in inputs.items()})
    assert len(widths) >= 2  # several length buckets are warmed up


def test_gpt2_export_serves_logits_and_generates_in_graph(tiny_gpt2_dir, tiny_gpt2_base):
    """GPT-2: serving_default gives the model's logits; the generate signature decodes with no Python loop."""
    import tensorflow as tf

    from tfxformers.models.artifacts import load_trained

    model_dir = tiny_gpt2_dir
    version = tiny_gpt2_base / "emma" / "1"
    loaded = tf.saved_model.load(str(version))
    assert set(loaded.signatures) == {"serving_default", "generate", "tfxformers_metadata"}
    trained = load_trained(model_dir)
    ids = tf.constant([trained.tokenizer("Emma walked to")["input_ids"]], dtype=tf.int32)
    logits = loaded.signatures["serving_default"](input_ids=ids, attention_mask=tf.ones_like(ids))["logits"]
    np.testing.assert_allclose(logits.numpy(), trained.keras_model(ids).logits.numpy(), atol=1e-4)
    out = loaded.signatures["generate"](**_generate_args([ids.numpy()[0].tolist()], max_new_tokens=8))
    reference = trained.keras_model.generate(ids, max_new_tokens=8, do_sample=False,
                                             pad_token_id=trained.tokenizer.pad_token_id,
                                             eos_token_id=trained.tokenizer.eos_token_id).numpy()[0, ids.shape[1]:]
    n = int(out["num_generated"].numpy()[0, 0])
    np.testing.assert_array_equal(out["output_ids"].numpy()[0, 0, :n], reference[:n])
    assert out["output_ids"].shape == (1, 1, 8)
    meta = json.loads(loaded.signatures["tfxformers_metadata"](probe=tf.constant([0]))["metadata_json"].numpy()[0])
    assert meta["kind"] == "gpt2" and meta["eos_id"] == trained.tokenizer.eos_token_id


def test_encoder_export_embeds_like_the_encoder(tiny_bert_dir, tmp_path):
    import tensorflow as tf

    from tfxformers.models.encoders import bert
    from tfxformers.models.classification import transfer

    assert main(["export", "--model", str(tiny_bert_dir), "--name", "encoder", "--model-base", str(tmp_path)]) == 0
    loaded = tf.saved_model.load(str(tmp_path / "encoder" / "1"))
    assert {"embed", "tfxformers_metadata"} <= set(loaded.signatures)
    encoder, tokenizer = bert.load_bert_encoder(tiny_bert_dir), bert.load_bert_tokenizer(tiny_bert_dir)
    expected = transfer.encode_features(encoder, tokenizer, TEXTS, max_length=32, progress=False)
    from tfxformers.models.tokenization import encode_texts, pad_to

    encoded = encode_texts(tokenizer, TEXTS, 32)
    ids, mask = pad_to(encoded.ids, 32, 0)
    out = loaded.signatures["embed"](input_ids=tf.constant(ids), attention_mask=tf.constant(mask))["embedding"]
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5)
    meta = json.loads((tmp_path / "encoder" / "1" / "assets.extra" / "tfxformers.json").read_text())
    assert meta["kind"] == "encoder" and meta["hidden_size"] == out.shape[1]


def _generate_args(prompts, **options) -> dict:
    import tensorflow as tf

    from tfxformers.models.lm.generate import as_arrays, request_inputs

    return {k: tf.constant(v) for k, v in as_arrays(request_inputs(prompts, 0, **options)).items()}


# The generate signature's own checks, as a raw TF Serving client reaches them (no server-side limits);
# every input has a batch dimension (one row here). The full list: tests/models/lm/test_gpt2_generate.py.
BAD_GENERATE_ARGS = [
    ({"max_new_tokens": 2147483647}, "max_new_tokens must be between 1 and the context minus the prompt length"),
    ({"max_new_tokens": 30}, "max_new_tokens must be between 1"),  # prompt 3 + 30 > context 32
    ({"max_new_tokens": 0}, "max_new_tokens must be between 1"),
    ({"strategy": 1, "temperature": 0.0}, "temperature must be > 0 when sampling"),
    ({"strategy": 1, "temperature": float("nan")}, "temperature must be > 0 when sampling"),
    ({"top_p": 0.0}, "top_p must be in (0, 1]"),
    ({"top_p": 1.5}, "top_p must be in (0, 1]"),
    ({"strategy": 3}, "strategy must be 0 (greedy), 1 (sample) or 2 (beam)"),
    ({"top_k": -1}, "top_k must be >= 0"),
    ({"prompt_length": [4]}, "prompt_length must be between 1 and the width of input_ids"),
    ({"seed": [1, 2]}, "seed must have one value per row of input_ids"),
]


@pytest.mark.parametrize("change,message", BAD_GENERATE_ARGS, ids=[str(c) for c, _ in BAD_GENERATE_ARGS])
def test_generate_signature_refuses_bad_arguments_in_graph(tiny_gpt2_base, change, message):
    import tensorflow as tf

    generate = _loaded(tiny_gpt2_base / "emma" / "1").signatures["generate"]
    args = _generate_args([[5, 6, 7]], **{"max_new_tokens": 4, **{k: v for k, v in change.items()
                                                                 if not isinstance(v, list)}})
    args.update({k: tf.constant(v) for k, v in change.items() if isinstance(v, list)})
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(message)):
        generate(**args)
    # At the edge of the context it generates: 3 prompt tokens + 29 = 32.
    assert generate(**_generate_args([[5, 6, 7]], max_new_tokens=29))["output_ids"].shape == (1, 1, 29)


def test_signatures_refuse_a_mask_that_disagrees_with_its_ids(tiny_gpt2_base, exported, tiny_bert_dir, tmp_path):
    """A mask longer than its ids, or one row of mask for several rows of ids, is an error, not a broadcast."""
    import tensorflow as tf

    assert main(["export", "--model", str(tiny_bert_dir), "--name", "encoder", "--model-base", str(tmp_path)]) == 0
    signatures = [(exported, "serving_default"), (tiny_gpt2_base / "emma" / "1", "serving_default"),
                  (tmp_path / "encoder" / "1", "embed")]
    ids = tf.constant([[2, 5, 3], [2, 6, 3]])
    for path, name in signatures:
        fn = _loaded(path).signatures[name]
        for mask in ([[1, 1, 1, 1], [1, 1, 1, 1]], [[1, 1, 1]]):
            with pytest.raises(tf.errors.InvalidArgumentError, match="attention_mask must have the shape of input_ids"):
                fn(input_ids=ids, attention_mask=tf.constant(mask))
        assert fn(input_ids=ids, attention_mask=tf.ones_like(ids))  # matching shapes still work


_LOADED = {}


def _loaded(path):
    """One tf.saved_model.load per version for the whole module (loading a GPT-2 export takes a second)."""
    import tensorflow as tf

    if str(path) not in _LOADED:
        _LOADED[str(path)] = tf.saved_model.load(str(path))
    return _LOADED[str(path)]
