"""The opt-in ``attention`` signature of a classifier export and the proxy's ``:attention`` endpoint.

One tiny classifier exported twice (with and without ``--with-attention``), served by the embedded model
server in this process and a real ``tfxformers proxy`` subprocess on free 127.0.0.1 ports.
"""
from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from tfxformers.cli import main
from tfxformers.testing import start_proxy, stop_process

TEXTS = ["good", "the movie was very good and the plot was fun"]


@pytest.fixture(scope="module")
def model_base(trained_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("attention_models")
    assert main(["export", "--model", str(trained_dir), "--name", "looked", "--model-base", str(base),
                 "--with-attention"]) == 0
    assert main(["export", "--model", str(trained_dir), "--name", "plain", "--model-base", str(base)]) == 0
    return base


@pytest.fixture(scope="module")
def trained(trained_dir):
    from tfxformers.models import artifacts

    return artifacts.load_trained(trained_dir)


def _keras_attentions(trained, ids, mask):
    import tensorflow as tf

    from tfxformers.models.classification.attention import encoder_attentions, encoder_layer

    return np.asarray(encoder_attentions(encoder_layer(trained.keras_model), tf.constant(ids), tf.constant(mask)))


def test_exported_signature_equals_the_keras_model(model_base, trained):
    import tensorflow as tf

    from tfxformers.models.tokenization import tokenize_batch

    loaded = tf.saved_model.load(str(model_base / "looked" / "1"))
    assert set(loaded.signatures) >= {"serving_default", "tfxformers_metadata", "attention"}
    features = tokenize_batch(trained.tokenizer, TEXTS, max_length=32)  # padded: row 0 is mostly padding
    ids, mask = features["input_ids"], features["attention_mask"]
    out = loaded.signatures["attention"](input_ids=tf.constant(ids), attention_mask=tf.constant(mask))
    np.testing.assert_allclose(out["attentions"].numpy(), _keras_attentions(trained, ids, mask), atol=1e-5)
    served = loaded.signatures["serving_default"](input_ids=tf.constant(ids), attention_mask=tf.constant(mask))
    np.testing.assert_allclose(out["probabilities"].numpy(), served["probabilities"].numpy(), atol=1e-6)
    # TF Serving's batcher pads with the first element ([CLS], mask 1): the [SEP] rule still hides it.
    cls = ids[0, 0]
    batched_ids = np.where(mask == 1, ids, cls).astype(np.int32)
    again = loaded.signatures["attention"](input_ids=tf.constant(batched_ids),
                                           attention_mask=tf.constant(np.ones_like(mask)))
    real = mask[:, None, None, :, None].astype(bool) & mask[:, None, None, None, :].astype(bool)
    np.testing.assert_allclose(np.where(real, again["attentions"].numpy(), 0), np.where(real, out["attentions"].numpy(), 0),
                               atol=1e-5)  # rows of padded positions attend from another token, and mean nothing
    info = json.loads((model_base / "looked" / "1" / "assets.extra" / "tfxformers.json").read_text())
    assert info["signatures"]["attention"]["outputs"] == ["attentions", "probabilities"]


def test_a_roberta_export_gives_the_keras_weights_too(tmp_path):
    """Byte-level BPE, </s> as the end marker, pad id 1 and no token_type_ids: the signature still matches."""
    import tensorflow as tf

    from tfxformers.models import encoders
    from tfxformers.models.encoders import base
    from tfxformers.models.artifacts import TrainedModel
    from tfxformers.models.tokenization import tokenize_batch
    from tfxformers.serving.export.trained import export_trained
    from tfxformers.serving.export.attention import attention_signatures
    from tfxformers.testing import make_tiny_checkpoint

    checkpoint = make_tiny_checkpoint(tmp_path / "roberta", "roberta")
    encoder = base.load_encoder(checkpoint)
    tokenizer = encoders.load_tokenizer(checkpoint)
    info = {"kind": "classifier", "max_length": 32, "buckets": [16, 32], "input_names": ["input_ids", "attention_mask"],
            "encoder_config": json.loads(encoder.config.to_json_string())}
    trained = TrainedModel(tmp_path, info, base.build_classifier(encoder, 2, compile=False), tokenizer, ["neg", "pos"])
    path = export_trained(trained, "rob", tmp_path / "models",
                          extra_signatures=lambda model: attention_signatures(model, tokenizer.sep_token_id))
    features = tokenize_batch(tokenizer, TEXTS, max_length=32)
    ids, mask = features["input_ids"], features["attention_mask"]
    assert ids[0, 0] == tokenizer.bos_token_id and ids[0, -1] == tokenizer.pad_token_id == 1
    out = tf.saved_model.load(str(path)).signatures["attention"](input_ids=tf.constant(ids), attention_mask=tf.constant(mask))
    np.testing.assert_allclose(out["attentions"].numpy(), _keras_attentions(trained, ids, mask), atol=1e-5)


def test_default_export_stays_without_it(model_base):
    import tensorflow as tf

    assert "attention" not in tf.saved_model.load(str(model_base / "plain" / "1")).signatures
    info = json.loads((model_base / "plain" / "1" / "assets.extra" / "tfxformers.json").read_text())
    assert "attention" not in info["signatures"]


@pytest.fixture(scope="module")
def proxy_url(model_base):
    from tfxformers.serving.server.server import ModelServer

    server = ModelServer(model_base=str(model_base), grpc_port=0, rest_port=0, host="127.0.0.1").start()
    process = None
    try:
        process, url = start_proxy(f"grpc://127.0.0.1:{server.grpc_port}", models="looked,plain")
        yield url
    finally:
        if process is not None:
            stop_process(process)
        server.stop()


def test_proxy_answers_tokens_and_the_keras_weights(proxy_url, trained):
    text = TEXTS[1]
    answer = httpx.post(f"{proxy_url}/v1/models/looked:attention", json={"text": text}, timeout=30)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    encoding = trained.tokenizer(text)
    assert body["tokens"] == trained.tokenizer.convert_ids_to_tokens(encoding["input_ids"])
    ids = np.asarray([encoding["input_ids"]], dtype=np.int32)
    expected = _keras_attentions(trained, ids, np.ones_like(ids))[0]
    np.testing.assert_allclose(np.asarray(body["attentions"]), expected, atol=1e-5)
    assert (body["layers"], body["heads"]) == expected.shape[:2]
    one = httpx.post(f"{proxy_url}/v1/models/looked:attention", json={"text": text, "layer": 1, "head": 0}, timeout=30).json()
    np.testing.assert_allclose(np.asarray(one["attentions"]), expected[1, 0], atol=1e-5)
    assert one["label"] in trained.label_names and abs(sum(one["probabilities"].values()) - 1) < 1e-5


@pytest.mark.parametrize("model, body, status, kind", [
    ("plain", {"text": "good"}, 400, "wrong_model_kind"),
    ("looked", {"text": "good", "layer": 2}, 422, "invalid_input"),
    ("looked", {"text": "good", "layer": 0, "head": 9}, 422, "invalid_input"),
    ("looked", {"text": "good", "head": 0}, 422, "invalid_input"),
    ("looked", {"text": ""}, 422, "invalid_input"),
    ("looked", {"text": "good", "layers": 1}, 422, "invalid_input"),
    ("looked", {"text": "good " * 40}, 413, "too_large"),
    ("nosuch", {"text": "good"}, 404, "model_not_found"),
])
def test_proxy_bad_input_is_a_clear_4xx(proxy_url, model, body, status, kind):
    answer = httpx.post(f"{proxy_url}/v1/models/{model}:attention", json=body, timeout=30)
    assert answer.status_code == status, answer.text
    assert answer.json()["kind"] == kind


def test_export_with_attention_of_a_missing_model_is_one_error_line(tmp_path, capsys):
    assert main(["export", "--model", str(tmp_path / "nope"), "--name", "x", "--model-base", str(tmp_path),
                 "--with-attention"]) == 2
    assert capsys.readouterr().err.startswith("error: model directory not found")
