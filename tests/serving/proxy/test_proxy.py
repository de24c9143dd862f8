"""The tokenizer proxy end to end: real ``tfxformers serve`` and ``tfxformers proxy`` processes on free
127.0.0.1 ports, tiny exported models, every endpoint over both the gRPC and the REST backend, answers
compared with the Keras models, then health and metrics, a new version, a frozen server and a restarted one."""
from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from pathlib import Path

import httpx
import numpy as np
import pytest

from tfxformers.cli import main

TEXTS = ["a brilliant and moving film", "boring , dull and far too long", "the plot", "Fun!"]
TIMEOUT = 3.0  # the proxies' --timeout (tests/serving/conftest.py)
LONG_TEXT = " ".join(f"the acting was good but the script was {w} and slow" for w in ("weak", "flat", "dull", "weak", "flat"))


def _post(proxy, path: str, body, timeout: float = 30) -> httpx.Response:
    response = httpx.post(proxy["url"] + path, json=body, timeout=timeout)
    assert "Traceback" not in response.text
    return response


def _keras_probabilities(classifier_dir, texts):
    from tfxformers.models.artifacts import load_trained
    from tfxformers.models.tokenization import softmax
    from tfxformers.models.tokenization import tokenize_batch

    trained = load_trained(classifier_dir)
    features = tokenize_batch(trained.tokenizer, texts, 32)
    return softmax(np.asarray(trained.keras_model(features, training=False))), trained


def test_classify_equals_the_keras_model(proxy, proxy_models):
    response = _post(proxy, "/v1/models/sentiment:classify", {"texts": TEXTS})
    assert response.status_code == 200, response.text
    answer = response.json()
    expected, model = _keras_probabilities(proxy_models["classifier"], TEXTS)
    assert answer["model"] == "sentiment" and answer["version"] == 1
    labels = model.label_names
    for result, row in zip(answer["results"], expected):
        np.testing.assert_allclose([result["probabilities"][label] for label in labels], row, atol=1e-5)
        assert result["label"] == labels[int(row.argmax())]
        assert result["probability"] == pytest.approx(float(row.max()), abs=1e-5)
        assert result["windows"] == 1


def test_long_text_is_windowed_and_combined_not_cut(proxy, proxy_models):
    from tfxformers.models.artifacts import load_trained
    from tfxformers.serving.proxy.text import window_starts

    tokenizer = load_trained(proxy_models["classifier"]).tokenizer
    body = tokenizer(LONG_TEXT, add_special_tokens=False)["input_ids"]
    starts = window_starts(len(body), 30, 32)
    assert len(starts) > 1
    windows = [tokenizer.decode(body[s:s + 30]) for s in starts]
    response = _post(proxy, "/v1/models/sentiment:classify", {"texts": [LONG_TEXT, "fun"]})
    assert response.status_code == 200, response.text
    answer = response.json()
    result = answer["results"][0]
    assert result["windows"] == len(starts) and result["tokens"] == len(body) + 2
    assert "weighted mean" in answer["combine"]
    per_window, model = _keras_probabilities(proxy_models["classifier"], windows)
    weights = np.asarray([len(body[s:s + 30]) for s in starts], dtype=np.float64)
    expected = (per_window * weights[:, None]).sum(0) / weights.sum()
    np.testing.assert_allclose([result["probabilities"][label] for label in model.label_names], expected, atol=1e-5)


def test_embed_equals_the_encoder(proxy, proxy_models):
    from tfxformers.models.encoders import bert
    from tfxformers.models.classification import transfer

    response = _post(proxy, "/v1/models/encoder:embed", {"texts": TEXTS})
    assert response.status_code == 200, response.text
    answer = response.json()
    encoder, tokenizer = bert.load_bert_encoder(proxy_models["encoder"]), bert.load_bert_tokenizer(proxy_models["encoder"])
    expected = transfer.encode_features(encoder, tokenizer, TEXTS, max_length=256, progress=False)
    assert answer["dimension"] == expected.shape[1] and answer["windows"] == [1] * len(TEXTS)
    np.testing.assert_allclose(np.asarray(answer["embeddings"]), expected, atol=1e-5)


def test_generate_greedy_equals_hf_and_sampling_is_seeded(proxy, proxy_models):
    from tfxformers.models.artifacts import load_trained

    response = _post(proxy, "/v1/models/emma:generate", {"prompt": "Emma walked to", "max_new_tokens": 8})
    assert response.status_code == 200, response.text
    answer = response.json()
    model = load_trained(proxy_models["gpt2"])
    ids = np.asarray([model.tokenizer("Emma walked to")["input_ids"]], dtype=np.int32)
    reference = model.keras_model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=model.tokenizer.pad_token_id,
                                           eos_token_id=model.tokenizer.eos_token_id).numpy()[0, ids.shape[1]:]
    n = answer["num_generated"]
    assert 1 <= n <= 8 and answer["token_ids"] == reference[:n].tolist() and answer["prompt_tokens"] == ids.shape[1]
    assert answer["text"] == model.tokenizer.decode(reference[:n], skip_special_tokens=True)
    sample = {"prompt": "Emma", "max_new_tokens": 8, "strategy": "sample", "temperature": 1.5, "top_k": 50,
              "top_p": 0.95, "seed": 7}
    first, again = (_post(proxy, "/v1/models/emma:generate", sample).json() for _ in range(2))
    assert first["token_ids"] == again["token_ids"] and first["seed"] == 7 and first["strategy"] == "sample"


def test_generate_takes_a_list_of_prompts(proxy):
    """Prompts of different lengths in one call: each answered as if alone (prompt i seeded with seed + i),
    several sequences per prompt, beam search."""
    prompts = ["Emma walked to", "Mr", "Emma walked to Highbury on day"]
    options = {"max_new_tokens": 6, "strategy": "sample", "temperature": 1.4, "seed": 20, "num_return_sequences": 2}
    together = _post(proxy, "/v1/models/emma:generate", {"prompts": prompts, **options})
    assert together.status_code == 200, together.text
    answer = together.json()
    assert [r["prompt"] for r in answer["results"]] == prompts and "text" not in answer
    for i, prompt in enumerate(prompts):
        alone = _post(proxy, "/v1/models/emma:generate", {"prompts": [prompt], **options, "seed": 20 + i}).json()
        assert answer["results"][i] == alone["results"][0], prompt
        assert len(answer["results"][i]["sequences"]) == 2
    beams = _post(proxy, "/v1/models/emma:generate", {"prompts": prompts[:2], "strategy": "beam", "num_beams": 3,
                                                      "num_return_sequences": 3, "max_new_tokens": 5}).json()
    for result in beams["results"]:
        scores = [s["score"] for s in result["sequences"]]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True), result


TAG_TEXTS = ["Zoë met Maria at the Café de Flore in Paris 🙂", "Heading to https://example.com with @paulwalk",
             "the plot \u200b thickens", " ".join(["the acting was good but the script was weak and slow"] * 4)]


def _items(result: dict) -> list[tuple]:
    items = result.get("entities", result.get("tokens"))
    return [(i.get("entity", i.get("tag")), i["start"], i["end"], i["text"]) for i in items]


@pytest.mark.parametrize("model", ["tagger", "pos"])
def test_tag_equals_tfxformers_tag_in_process_for_every_aggregation(proxy, proxy_models, model):
    from tfxformers.models.tagging.inference import tag_texts
    from tfxformers.models.tagging.model import load_tagger

    trained = load_tagger(proxy_models[model])
    by_aggregation = {}
    for aggregation in ("first", "average", "max"):
        response = _post(proxy, f"/v1/models/{model}:tag", {"texts": TAG_TEXTS, "aggregation": aggregation})
        assert response.status_code == 200, response.text
        answer = response.json()
        assert (answer["model"], answer["version"], answer["aggregation"]) == (model, 1, aggregation)
        assert (answer["task"], answer["scheme"]) == (("ner", "BIO") if model == "tagger" else ("pos", "tags"))
        expected = tag_texts(trained, TAG_TEXTS, aggregation=aggregation)
        for text, got, want in zip(TAG_TEXTS, answer["results"], expected):
            assert _items(got) == _items(want)
            assert all(text[start:end] == piece for _, start, end, piece in _items(got))
            got_scores = [i["score"] for i in got.get("entities", got.get("tokens"))]
            want_scores = [i["score"] for i in want.get("entities", want.get("tokens"))]
            np.testing.assert_allclose(got_scores, want_scores, atol=2e-4)
            assert (got["words"], got["windows"]) == (want["words"], want["windows"])
        assert answer["results"][3]["windows"] > 1  # the long text was windowed, not cut
        by_aggregation[aggregation] = [_items(r) for r in answer["results"]]
    found = sum(len(items) for items in by_aggregation["first"])
    assert found > 0, "the tiny tagger found nothing: the comparison above proved little"
    if model == "pos":  # every word has a tag; the zero-width character, no piece of its own, has none
        tokens = by_aggregation["first"][2]
        assert [t[3] for t in tokens] == ["the", "plot", "\u200b", "thickens"] and tokens[2][0] is None
    assert by_aggregation["average"] != by_aggregation["first"] or by_aggregation["max"] != by_aggregation["first"]


def test_health_ready_metrics_and_openapi(proxy):
    # One refusal of each kind the metrics must count (the bad-input table is test_proxy_bad_input.py).
    assert _post(proxy, "/v1/models/sentiment:classify", {"texts": []}).status_code == 422
    assert _post(proxy, "/v1/models/sentiment:classify", {"texts": ["x"] * 9}).status_code == 413
    assert httpx.get(proxy["url"] + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(proxy["url"] + "/readyz", params={"model": ["sentiment", "emma"]}, timeout=10)
    assert ready.status_code == 200 and ready.json()["models"] == {"sentiment": 1, "emma": 1}
    assert httpx.get(proxy["url"] + "/readyz", params={"model": "nothing"}, timeout=10).status_code == 503
    assert httpx.get(proxy["url"] + "/readyz", timeout=10).status_code == 200
    metrics = httpx.get(proxy["url"] + "/metrics").text
    for needle in ('tfxformers_proxy_requests_total{method="POST",route="/v1/models/{name}:classify",status="200"}',
                   "tfxformers_proxy_request_seconds_bucket", 'tfxformers_proxy_backend_seconds_count{call="predict",outcome="ok"}',
                   'tfxformers_proxy_errors_total{kind="invalid_input"}', 'tfxformers_proxy_errors_total{kind="too_large"}'):
        assert needle in metrics
    spec = httpx.get(proxy["url"] + "/openapi.json").json()
    assert {"/v1/models/{name}:classify", "/v1/models/{name}:generate", "/v1/models/{name}:embed",
            "/v1/models/{name}:answer", "/v1/models/{name}:tag"} <= set(spec["paths"])
    assert httpx.get(proxy["url"] + "/docs").status_code == 200


def test_a_new_version_is_noticed_and_its_tokenizer_fetched(proxies, proxy_models, wait_for):
    assert main(["export", "--model", str(proxy_models["classifier"]), "--name", "sentiment",
                 "--model-base", str(proxy_models["base"])]) == 0
    for proxy in proxies.values():
        def on_version_2():
            answer = _post(proxy, "/v1/models/sentiment:classify", {"texts": TEXTS[:1]})
            return answer.status_code == 200 and answer.json()["version"] == 2
        wait_for(on_version_2, 60, "the proxy answering from version 2")


def test_frozen_server_gives_504_in_time_then_recovers(proxies, proxy_server, wait_for):
    os.kill(proxy_server.process.pid, signal.SIGSTOP)
    try:
        for proxy in proxies.values():
            started = time.time()
            response = _post(proxy, "/v1/models/sentiment:classify", {"texts": TEXTS[:1]})
            elapsed = time.time() - started
            assert response.status_code == 504, response.text
            assert "within 3 s" in response.json()["error"] and elapsed < TIMEOUT + 1.5
    finally:
        os.kill(proxy_server.process.pid, signal.SIGCONT)
    for proxy in proxies.values():
        wait_for(lambda: _post(proxy, "/v1/models/sentiment:classify", {"texts": TEXTS[:1]}).status_code == 200, 30,
              "recovery after the server thawed")


def test_killed_server_gives_503_and_a_restarted_one_is_used_again(proxies, proxy_server, wait_for):
    """SIGKILL, not a drain: /readyz must say 503 at once (it answered 200 from the registry's cached status for
    up to --status-refresh after the kill, issue 23), requests 503 with Retry-After, then recovery."""
    for proxy in proxies.values():  # each proxy has just seen the model AVAILABLE (its cache is fresh)
        assert httpx.get(proxy["url"] + "/readyz", params={"model": "sentiment"}, timeout=10).status_code == 200
    proxy_server.process.kill()
    proxy_server.process.wait()
    killed = time.monotonic()
    for kind, proxy in proxies.items():
        asked = time.monotonic() - killed
        ready = httpx.get(proxy["url"] + "/readyz", params={"model": "sentiment"}, timeout=10)
        assert asked < 0.5 and ready.status_code == 503, (kind, asked, ready.text)
        assert "cannot reach the model server" in ready.json()["error"] and ready.headers["retry-after"] == "1"
    for proxy in proxies.values():
        started = time.time()
        response = _post(proxy, "/v1/models/sentiment:classify", {"texts": TEXTS[:1]})
        assert response.status_code == 503, response.text
        assert "cannot reach the model server" in response.json()["error"] and time.time() - started < TIMEOUT + 1.5
        assert response.headers["retry-after"] == "1"
        assert httpx.get(proxy["url"] + "/readyz", params={"model": "sentiment"}, timeout=10).status_code == 503
    proxy_server.start()
    for proxy in proxies.values():
        wait_for(lambda: _post(proxy, "/v1/models/sentiment:classify", {"texts": TEXTS[:1]}).status_code == 200, 30,
              "recovery after the server restarted")
        assert httpx.get(proxy["url"] + "/readyz", params={"model": "sentiment"}, timeout=10).status_code == 200
        assert proxy["process"].poll() is None


def test_the_proxies_never_imported_tensorflow_and_started_fast(proxies):
    for kind, proxy in proxies.items():
        log = Path(proxy["process"].log_path).read_text(errors="replace")
        imported = [line.rsplit("|", 1)[1].strip() for line in log.splitlines() if line.startswith("import time:")]
        assert "tfxformers.serving.proxy.app" in imported and ("grpc" if kind == "grpc" else "httpx") in imported
        heavy = [m for m in imported if m.split(".")[0] in ("tensorflow", "tensorflow_serving", "keras", "tf_keras")]
        assert not heavy, f"{kind} proxy imported {heavy[:5]}"
        assert "Traceback" not in log
        assert proxy["startup_seconds"] < 15, proxy["startup_seconds"]
