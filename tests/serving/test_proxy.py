"""The tokenizer proxy end to end: real ``tfxformers serve`` and ``tfxformers proxy`` processes on free
127.0.0.1 ports, tiny exported models, every endpoint over both the gRPC and the REST backend, answers
compared with the Keras models, then bad input, a new version, a frozen server and a restarted one."""
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
from tfxformers.testing import free_port, make_tiny_bert_checkpoint, start_process, stop_process, tfxformers_command

TEXTS = ["a brilliant and moving film", "boring , dull and far too long", "the plot", "Fun!"]
LONG_TEXT = " ".join(f"the acting was good but the script was {w} and slow" for w in ("weak", "flat", "dull", "weak", "flat"))
TIMEOUT = 3.0  # the proxies' --timeout
LIMITS = ["--max-texts", "8", "--max-chars", "4000", "--max-windows", "6", "--max-new-tokens", "16"]


@pytest.fixture(scope="module")
def trained(tiny_bert_dir, tiny_reviews_csv, tmp_path_factory):
    """A tiny trained classifier, a tiny GPT-2 and the tiny BERT as an encoder, exported into one model base."""
    from tfxformers.models.classifier_train import ClassifierTrainConfig, train_classifier

    root = tmp_path_factory.mktemp("proxy")
    classifier = root / "clf"
    train_classifier(ClassifierTrainConfig(
        data=str(tiny_reviews_csv), text_column="review", label_column="sentiment", encoder=str(tiny_bert_dir),
        mode="finetune", output=str(classifier), epochs=1, batch_size=16, max_length=32, verbose=0))
    corpus = root / "corpus.txt"
    corpus.write_text("\n\n".join(f"Emma walked to Highbury on day {i} and met Mr Knightley there." for i in range(200)))
    gpt2 = root / "gpt2"
    assert main(["train", "gpt2", "--corpus", str(corpus), "--output", str(gpt2), "--preset", "tiny",
                 "--vocab-size", "300", "--block-size", "32", "--epochs", "1"]) == 0
    # Encoder exports take 256 tokens (export_encoder's default max_length), more than tiny_bert_dir's 128
    # positions, so the encoder here is a tiny BERT with 256.
    encoder = make_tiny_bert_checkpoint(root / "encoder_checkpoint", max_position_embeddings=256)
    base = root / "models"
    for model, name in ((classifier, "sentiment"), (gpt2, "emma"), (encoder, "encoder")):
        assert main(["export", "--model", str(model), "--name", name, "--model-base", str(base)]) == 0
    return {"classifier": classifier, "gpt2": gpt2, "encoder": encoder, "base": base, "root": root}


def _wait(predicate, timeout: float, what: str, process=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {process.returncode}:\n{_log(process)}")
        if predicate():
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not happen within {timeout} s\n{_log(process) if process else ''}")


def _log(process) -> str:
    return Path(process.log_path).read_text(errors="replace")[-4000:]


def _served(rest_port: int, name: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/v1/models/{name}", timeout=2) as answer:
            return any(s["state"] == "AVAILABLE" for s in json.loads(answer.read())["model_version_status"])
    except Exception:
        return False


def _start(command: list[str], log_path: Path):
    return start_process(command, log_path)


def _stop(process) -> None:
    stop_process(process)


class ModelServer:
    """``tfxformers serve`` on fixed ports, so that it can be stopped and started again where the proxies look."""

    def __init__(self, base: Path, log_dir: Path):
        self.base, self.log_dir = base, log_dir
        self.grpc_port, self.rest_port = free_port(), free_port()
        self.process = None

    def start(self):
        self.process = _start(tfxformers_command() + [
            "serve", "--model-base", str(self.base), "--host", "127.0.0.1", "--grpc-port", str(self.grpc_port),
            "--rest-port", str(self.rest_port), "--file-system-poll-wait-seconds", "0.5"], self.log_dir / "serve.log")
        _wait(lambda: all(_served(self.rest_port, n) for n in ("sentiment", "emma", "encoder")), 180,
              "the model server serving every model", self.process)

    def stop(self):
        _stop(self.process)


@pytest.fixture(scope="module")
def server(trained):
    server = ModelServer(trained["base"], trained["root"])
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxies(server, trained):
    """One proxy per backend kind, started with -X importtime so that a test can prove TensorFlow never loaded."""
    started = {}
    try:
        for kind, backend in (("grpc", f"grpc://127.0.0.1:{server.grpc_port}"),
                              ("rest", f"http://127.0.0.1:{server.rest_port}")):
            port = free_port()
            t0 = time.time()
            process = _start([tfxformers_command()[0], "-X", "importtime", *tfxformers_command()[1:], "proxy",
                              "--backend", backend, "--port", str(port), "--timeout", str(TIMEOUT),
                              "--status-refresh", "0.5", *LIMITS], trained["root"] / f"proxy-{kind}.log")
            url = f"http://127.0.0.1:{port}"
            _wait(lambda: _healthy(url), 60, f"the {kind} proxy answering /healthz", process)
            started[kind] = {"url": url, "process": process, "startup_seconds": time.time() - t0}
        yield started
    finally:
        for proxy in started.values():
            _stop(proxy["process"])


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(params=["grpc", "rest"])
def proxy(request, proxies):
    return proxies[request.param]


def _post(proxy, path: str, body, timeout: float = 30) -> httpx.Response:
    response = httpx.post(proxy["url"] + path, json=body, timeout=timeout)
    assert "Traceback" not in response.text
    return response


def _keras_probabilities(classifier_dir, texts):
    from tfxformers.models.artifacts import load_trained
    from tfxformers.models.classifier_train import softmax
    from tfxformers.models.tokenization import tokenize_batch

    trained = load_trained(classifier_dir)
    features = tokenize_batch(trained.tokenizer, texts, 32)
    return softmax(np.asarray(trained.keras_model(features, training=False))), trained


def test_classify_equals_the_keras_model(proxy, trained):
    response = _post(proxy, "/v1/models/sentiment:classify", {"texts": TEXTS})
    assert response.status_code == 200, response.text
    answer = response.json()
    expected, model = _keras_probabilities(trained["classifier"], TEXTS)
    assert answer["model"] == "sentiment" and answer["version"] == 1
    labels = model.label_names
    for result, row in zip(answer["results"], expected):
        np.testing.assert_allclose([result["probabilities"][label] for label in labels], row, atol=1e-5)
        assert result["label"] == labels[int(row.argmax())]
        assert result["probability"] == pytest.approx(float(row.max()), abs=1e-5)
        assert result["windows"] == 1


def test_long_text_is_windowed_and_combined_not_cut(proxy, trained):
    from tfxformers.models.artifacts import load_trained
    from tfxformers.serving.proxy.text import window_starts

    tokenizer = load_trained(trained["classifier"]).tokenizer
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
    per_window, model = _keras_probabilities(trained["classifier"], windows)
    weights = np.asarray([len(body[s:s + 30]) for s in starts], dtype=np.float64)
    expected = (per_window * weights[:, None]).sum(0) / weights.sum()
    np.testing.assert_allclose([result["probabilities"][label] for label in model.label_names], expected, atol=1e-5)


def test_embed_equals_the_encoder(proxy, trained):
    from tfxformers.models import bert, transfer

    response = _post(proxy, "/v1/models/encoder:embed", {"texts": TEXTS})
    assert response.status_code == 200, response.text
    answer = response.json()
    encoder, tokenizer = bert.load_bert_encoder(trained["encoder"]), bert.load_bert_tokenizer(trained["encoder"])
    expected = transfer.encode_features(encoder, tokenizer, TEXTS, max_length=256, progress=False)
    assert answer["dimension"] == expected.shape[1] and answer["windows"] == [1] * len(TEXTS)
    np.testing.assert_allclose(np.asarray(answer["embeddings"]), expected, atol=1e-5)


def test_generate_greedy_equals_hf_and_sampling_is_seeded(proxy, trained):
    from tfxformers.models.artifacts import load_trained

    response = _post(proxy, "/v1/models/emma:generate", {"prompt": "Emma walked to", "max_new_tokens": 8})
    assert response.status_code == 200, response.text
    answer = response.json()
    model = load_trained(trained["gpt2"])
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


@pytest.mark.parametrize("path,body,status,needle", [
    ("/v1/models/sentiment:classify", {"texts": []}, 422, "texts"),
    ("/v1/models/sentiment:classify", {}, 422, "texts: Field required"),
    ("/v1/models/sentiment:classify", {"texts": ["ok", 3]}, 422, "texts[1]"),
    ("/v1/models/sentiment:classify", {"texts": "not a list"}, 422, "texts"),
    ("/v1/models/sentiment:classify", {"texts": ["x"] * 9}, 413, "limit is 8"),
    ("/v1/models/sentiment:classify", {"texts": ["x" * 3000, "y" * 1500]}, 413, "4500 characters"),
    ("/v1/models/sentiment:classify", {"texts": [LONG_TEXT * 3]}, 413, "windows"),
    ("/v1/models/nothing:classify", {"texts": ["x"]}, 404, "nothing"),
    ("/v1/models/bad%20name:classify", {"texts": ["x"]}, 404, "not served"),
    ("/v1/models/emma:classify", {"texts": ["x"]}, 400, "use :generate"),
    ("/v1/models/sentiment:embed", {"texts": ["x"]}, 400, "use :classify"),
    ("/v1/models/emma:generate", {"prompt": ""}, 422, "prompt"),
    ("/v1/models/emma:generate", {"prompt": "Emma", "max_new_tokens": 17}, 413, "limit is 16"),
    ("/v1/models/emma:generate", {"prompt": "Emma", "strategy": "beam"}, 422, "strategy"),
    ("/v1/models/emma:generate", {"prompt": "Emma " * 40, "max_new_tokens": 8}, 413, "context"),
    ("/v1/models/sentiment:predict", {"texts": ["x"]}, 404, "Not Found"),
])
def test_bad_input_gets_a_clear_error(proxy, path, body, status, needle):
    response = _post(proxy, path, body)
    assert response.status_code == status, response.text
    answer = response.json()
    assert needle in answer["error"] and answer["kind"]


def test_malformed_json_is_422(proxy):
    response = httpx.post(proxy["url"] + "/v1/models/sentiment:classify", content=b"{texts:", timeout=10,
                          headers={"content-type": "application/json"})
    assert response.status_code == 422 and "Traceback" not in response.text


def test_health_ready_metrics_and_openapi(proxy):
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
    assert {"/v1/models/{name}:classify", "/v1/models/{name}:generate", "/v1/models/{name}:embed"} <= set(spec["paths"])
    assert httpx.get(proxy["url"] + "/docs").status_code == 200


def test_a_new_version_is_noticed_and_its_tokenizer_fetched(proxies, trained):
    assert main(["export", "--model", str(trained["classifier"]), "--name", "sentiment",
                 "--model-base", str(trained["base"])]) == 0
    for proxy in proxies.values():
        def on_version_2():
            answer = _post(proxy, "/v1/models/sentiment:classify", {"texts": TEXTS[:1]})
            return answer.status_code == 200 and answer.json()["version"] == 2
        _wait(on_version_2, 60, "the proxy answering from version 2")


def test_frozen_server_gives_504_in_time_then_recovers(proxies, server):
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        for proxy in proxies.values():
            started = time.time()
            response = _post(proxy, "/v1/models/sentiment:classify", {"texts": TEXTS[:1]})
            elapsed = time.time() - started
            assert response.status_code == 504, response.text
            assert "within 3 s" in response.json()["error"] and elapsed < TIMEOUT + 1.5
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    for proxy in proxies.values():
        _wait(lambda: _post(proxy, "/v1/models/sentiment:classify", {"texts": TEXTS[:1]}).status_code == 200, 30,
              "recovery after the server thawed")


def test_stopped_server_gives_503_and_a_restarted_one_is_used_again(proxies, server):
    server.stop()
    for proxy in proxies.values():
        started = time.time()
        response = _post(proxy, "/v1/models/sentiment:classify", {"texts": TEXTS[:1]})
        assert response.status_code == 503, response.text
        assert "cannot reach the model server" in response.json()["error"] and time.time() - started < TIMEOUT + 1.5
        assert httpx.get(proxy["url"] + "/readyz", params={"model": "sentiment"}, timeout=10).status_code == 503
    server.start()
    for proxy in proxies.values():
        _wait(lambda: _post(proxy, "/v1/models/sentiment:classify", {"texts": TEXTS[:1]}).status_code == 200, 30,
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
