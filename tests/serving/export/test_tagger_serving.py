"""A token classifier exported with its ``tag`` signature and served by a real ``tfxformers serve`` with batching.

The tagger is a tiny BERT with an untrained head over five BIO tags (training would only cost time: the
checks are equalities). Checked: the exported signature equals the Keras model, also when TF Serving's
batcher pads a row with its first element; the metadata carries what a client needs (labels, scheme,
framing, window length); and ``tag_texts`` fed by the server's REST ``:predict`` gives the same entities
and character offsets as in process, on accents, emoji, a URL and a text longer than one window, with
concurrent requests of different lengths batched together; and the proxy's ``:tag`` over this batching server
(whose answers to calls batched with wider ones come back padded wider) gives the same entities.
"""
from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tfxformers.testing import (TINY_NER_LABELS, make_tiny_tagger, rest_tag_predict, start_model_server, start_proxy,
                                stop_model_server, stop_process)

LABELS = list(TINY_NER_LABELS)
MAX_LENGTH = 24
TEXTS = ["Zoë met Maria at the Café de Flore in Paris 🙂", "Heading to https://example.com with @paulwalk",
         "the plot was good", " ".join(["the acting was good but the script was weak and slow"] * 4)]


@pytest.fixture(scope="module")
def tagger(tiny_bert_dir, tmp_path_factory):
    from tfxformers.models.tagging.model import load_tagger
    from tfxformers.serving.export.trained import export_model

    root = tmp_path_factory.mktemp("tagger_serving")
    make_tiny_tagger(tiny_bert_dir, root / "run", labels=LABELS, max_length=MAX_LENGTH, overlap=4)
    export_model(root / "run", "ner", root / "models")
    server, grpc_port, rest_port = start_model_server(root / "models", enable_batching=True)
    try:
        yield {"trained": load_tagger(root / "run"), "version": root / "models" / "ner" / "1", "rest_port": rest_port,
               "grpc_port": grpc_port, "root": root}
    finally:
        stop_model_server(server)


def test_the_tag_signature_equals_the_keras_model_also_padded_by_the_batcher(tagger):
    import tensorflow as tf

    from tfxformers.models.tagging import features
    from tfxformers.models.tagging.inference import window_rows

    trained = tagger["trained"]
    rows, _ = window_rows(trained, TEXTS)
    assert len(rows) > len(TEXTS)  # the long text takes several windows
    width = features.padded_width(max(len(r) for r in rows))
    ids, mask = features.pad_rows(rows, 0, width), features.pad_rows([[1] * len(r) for r in rows], 0, width)
    loaded = tf.saved_model.load(str(tagger["version"]))
    served = loaded.signatures["tag"](input_ids=tf.constant(ids), attention_mask=tf.constant(mask))["logits"].numpy()
    local = np.asarray(trained.keras_model({"input_ids": ids, "attention_mask": mask}, training=False))
    assert served.shape == (len(rows), width, len(LABELS))
    for i, row in enumerate(rows):
        np.testing.assert_allclose(served[i, :len(row)], local[i, :len(row)], atol=1e-5)
    # The batcher pads with each tensor's first element ([CLS], mask 1): the real positions must not change.
    padded_ids = np.concatenate([ids, np.full((len(rows), 8), ids[0, 0], np.int32)], axis=1)
    padded_mask = np.concatenate([mask, np.ones((len(rows), 8), np.int32)], axis=1)
    again = loaded.signatures["tag"](input_ids=tf.constant(padded_ids), attention_mask=tf.constant(padded_mask))
    for i, row in enumerate(rows):
        np.testing.assert_allclose(again["logits"].numpy()[i, :len(row)], served[i, :len(row)], atol=1e-5)
    info = json.loads((tagger["version"] / "assets.extra" / "tfxformers.json").read_text())
    assert info["kind"] == "tagger" and info["task"] == "ner" and info["scheme"] == "BIO"
    assert info["label_names"] == LABELS and info["max_length"] == MAX_LENGTH and info["overlap"] == 4
    assert info["prefix_ids"] == trained.info["prefix_ids"] and info["suffix_ids"] == trained.info["suffix_ids"]
    assert (tagger["version"] / "batching_params.pbtxt").is_file()
    assert (tagger["version"] / "assets.extra" / "tf_serving_warmup_requests").is_file()


def _same(served: list[dict], local: list[dict]) -> None:
    for s, lo in zip(served, local, strict=True):
        assert s["windows"] == lo["windows"] and s["words"] == lo["words"]
        assert [(e["entity"], e["start"], e["end"], e["text"]) for e in s["entities"]] == \
            [(e["entity"], e["start"], e["end"], e["text"]) for e in lo["entities"]]
        for a, b in zip(s["entities"], lo["entities"]):
            assert a["score"] == pytest.approx(b["score"], abs=1e-4)
            assert s["text"][a["start"]:a["end"]] == a["text"]


def test_served_logits_give_the_same_entities_and_offsets_as_in_process(tagger):
    from tfxformers.models.tagging.inference import tag_texts

    trained = tagger["trained"]
    local = tag_texts(trained, TEXTS)
    assert sum(len(r["entities"]) for r in local) > 0  # a random head tags something: the check has content
    _same(tag_texts(trained, TEXTS, predict=rest_tag_predict(tagger["rest_port"], "ner")), local)


def test_concurrent_requests_of_different_lengths_through_the_batcher(tagger):
    from tfxformers.models.tagging.inference import tag_texts

    trained = tagger["trained"]
    predict = rest_tag_predict(tagger["rest_port"], "ner")
    expected = {i: tag_texts(trained, [t]) for i, t in enumerate(TEXTS)}
    got, errors = {}, []

    def one(i):
        try:
            got[i] = tag_texts(trained, [TEXTS[i % len(TEXTS)]], predict=predict)
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(repr(exc))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(got) == 8, errors
    for i, result in got.items():
        _same(result, expected[i % len(TEXTS)])


def test_the_proxy_over_a_batching_server_tags_as_in_process(tagger):
    import httpx

    from tfxformers.models.tagging.inference import tag_texts

    expected = tag_texts(tagger["trained"], TEXTS)
    proxy, url = start_proxy(f"grpc://127.0.0.1:{tagger['grpc_port']}", models="ner", log_path=tagger["root"] / "proxy.log")
    try:
        def post(_):
            return httpx.post(url + "/v1/models/ner:tag", json={"texts": TEXTS}, timeout=60)

        # One request's windows go out as concurrent calls of different padded lengths, and four requests at
        # once: the batcher joins calls, so rows come back padded to the widest.
        with ThreadPoolExecutor(4) as pool:
            responses = list(pool.map(post, range(4)))
    finally:
        stop_process(proxy)
    for response in responses:
        assert response.status_code == 200, response.text
        assert response.json()["predict_calls"] > 1
        _same([{"text": t, **r} for t, r in zip(TEXTS, response.json()["results"])], expected)


@pytest.mark.parametrize("inputs, status, words", [
    ({"input_ids": [[2, 5, 6, 3]], "attention_mask": [[1, 1, 1]]}, 400, "attention_mask"),  # mask of another shape
    ({"input_ids": [[2] + [5] * 300 + [3]], "attention_mask": [[1] * 302]}, 400, "positions"),  # past the encoder
    ({"input_ids": [[2, 5, 3]]}, 400, "attention_mask"),  # an input missing
    ({"input_ids": [["a", "b"]], "attention_mask": [[1, 1]]}, 400, ""),  # the wrong kind
])
def test_bad_tag_inputs_get_a_4xx_and_the_server_still_serves(tagger, inputs, status, words):
    import urllib.error
    import urllib.request

    body = json.dumps({"signature_name": "tag", "inputs": inputs}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{tagger['rest_port']}/v1/models/ner:predict", data=body,
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=60)
    message = json.loads(caught.value.read())["error"]
    assert caught.value.code == status and words in message and message, message
    [logits] = rest_tag_predict(tagger["rest_port"], "ner")([[2, 5, 6, 3]])  # still answering
    assert logits.shape == (4, len(LABELS))
