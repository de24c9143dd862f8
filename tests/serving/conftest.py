"""Serving fixtures shared by the export, server and bad-input tests: one tiny GPT-2 per test session.

The proxy modules (``proxy/test_proxy.py``, ``proxy/test_proxy_bad_input.py``) share more: tiny exported
models (a classifier, that GPT-2, an encoder), one real ``tfxformers serve`` over them and one real
``tfxformers proxy`` per backend kind (gRPC, REST), session-scoped so the exports and start-ups are paid once.
``test_proxy.py`` stops, freezes and restarts the server and adds a version; each of those tests leaves
it serving again, so later modules see a working server.
"""
from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import httpx
import pytest

from tfxformers.testing import free_port, make_tiny_bert_checkpoint, start_process, stop_process, tfxformers_command


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory):
    """A tiny GPT-2 trained-model directory (2 layers, context 32), trained for one epoch on a toy corpus."""
    from tfxformers.cli import main
    from tfxformers.testing import built_once

    def build(tmp):
        corpus = tmp / "corpus.txt"
        corpus.write_text("\n\n".join(f"Emma walked to Highbury on day {i} and met Mr Knightley there." for i in range(200)))
        assert main(["train", "gpt2", "--corpus", str(corpus), "--output", str(tmp / "gpt2"), "--preset", "tiny",
                     "--vocab-size", "300", "--block-size", "32", "--epochs", "1"]) == 0

    return built_once(tmp_path_factory, "gpt2", build) / "gpt2"


@pytest.fixture(scope="session")
def tiny_gpt2_base(tiny_gpt2_dir, tmp_path_factory):
    """A model base holding that GPT-2 exported as ``emma`` version 1 (read-only: copy it to change it)."""
    from tfxformers.cli import main
    from tfxformers.testing import built_once

    def build(base):
        assert main(["export", "--model", str(tiny_gpt2_dir), "--name", "emma", "--model-base", str(base)]) == 0

    return built_once(tmp_path_factory, "gpt2_models", build)


PROXY_TIMEOUT = 3.0  # the proxies' --timeout
PROXY_LIMITS = ["--max-texts", "8", "--max-chars", "4000", "--max-windows", "6", "--max-new-tokens", "16"]
PROXY_MODELS = ("sentiment", "emma", "encoder", "tagger", "pos", "plain")


@pytest.fixture(scope="session")
def proxy_models(trained_dir, tiny_gpt2_dir, tiny_bert_dir, tmp_path_factory):
    """The tiny trained classifier, the tiny GPT-2, a tiny BERT as an encoder and two tiny taggers (NER, and
    POS reading word shapes; untrained heads, windows of 24 pieces), exported into one model base."""
    from tfxformers.cli import main
    from tfxformers.testing import make_tiny_tagger

    root = tmp_path_factory.mktemp("proxy")
    # Encoder exports take 256 tokens (export_encoder's default max_length), more than tiny_bert_dir's 128
    # positions, so the encoder here is a tiny BERT with 256.
    encoder = make_tiny_bert_checkpoint(root / "encoder_checkpoint", max_position_embeddings=256)
    tagger = make_tiny_tagger(tiny_bert_dir, root / "tagger")
    pos = make_tiny_tagger(tiny_bert_dir, root / "pos", task="pos", labels=("DT", "NN", "NNP", "VBZ", "JJ", "."),
                           word_shape=True)
    base = root / "models"
    for model, name in ((trained_dir, "sentiment"), (tiny_gpt2_dir, "emma"), (encoder, "encoder"), (tagger, "tagger"),
                        (pos, "pos")):
        assert main(["export", "--model", str(model), "--name", name, "--model-base", str(base)]) == 0
    _write_plain_saved_model(base / "plain" / "1")
    return {"classifier": trained_dir, "gpt2": tiny_gpt2_dir, "encoder": encoder, "tagger": tagger, "pos": pos,
            "base": base, "root": root}


def _write_plain_saved_model(path: Path) -> None:
    """A SavedModel that TF Serving serves but tfxformers did not export (no ``tfxformers_metadata``): what a
    proxy pointed at someone else's model meets."""
    import tensorflow as tf

    module = tf.Module()
    module.scale = tf.Variable(2.0)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def double(x):
        return {"y": x * module.scale}

    tf.saved_model.save(module, str(path), signatures={"serving_default": double})


def wait_until(predicate, timeout: float, what: str, process=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {process.returncode}:\n{process_log(process)}")
        if predicate():
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not happen within {timeout} s\n{process_log(process) if process else ''}")


@pytest.fixture(scope="session")
def wait_for():
    """``wait_until`` for test modules (under --import-mode=importlib they cannot import from a conftest)."""
    return wait_until


def process_log(process) -> str:
    return Path(process.log_path).read_text(errors="replace")[-4000:]


def _served(rest_port: int, name: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/v1/models/{name}", timeout=2) as answer:
            return any(s["state"] == "AVAILABLE" for s in json.loads(answer.read())["model_version_status"])
    except Exception:
        return False


class ServerProcess:
    """``tfxformers serve`` on fixed ports, so that it can be stopped and started again where the proxies look."""

    def __init__(self, base: Path, log_dir: Path):
        self.base, self.log_dir = base, log_dir
        self.grpc_port, self.rest_port = free_port(), free_port()
        self.process = None

    def start(self):
        self.process = start_process(tfxformers_command() + [
            "serve", "--model-base", str(self.base), "--host", "127.0.0.1", "--grpc-port", str(self.grpc_port),
            "--rest-port", str(self.rest_port), "--file-system-poll-wait-seconds", "0.5"], self.log_dir / "serve.log")
        wait_until(lambda: all(_served(self.rest_port, n) for n in PROXY_MODELS), 180,
                   "the model server serving every model", self.process)

    def stop(self):
        stop_process(self.process)


@pytest.fixture(scope="session")
def proxy_server(proxy_models):
    server = ServerProcess(proxy_models["base"], proxy_models["root"])
    server.start()
    yield server
    server.stop()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def proxies(proxy_server, proxy_models):
    """One proxy per backend kind, started with -X importtime so that a test can prove TensorFlow never loaded."""
    started = {}
    try:
        for kind, backend in (("grpc", f"grpc://127.0.0.1:{proxy_server.grpc_port}"),
                              ("rest", f"http://127.0.0.1:{proxy_server.rest_port}")):
            port = free_port()
            t0 = time.time()
            process = start_process([tfxformers_command()[0], "-X", "importtime", *tfxformers_command()[1:], "proxy",
                                     "--backend", backend, "--port", str(port), "--timeout", str(PROXY_TIMEOUT),
                                     "--status-refresh", "0.5", *PROXY_LIMITS], proxy_models["root"] / f"proxy-{kind}.log")
            url = f"http://127.0.0.1:{port}"
            wait_until(lambda: _healthy(url), 60, f"the {kind} proxy answering /healthz", process)
            started[kind] = {"kind": kind, "url": url, "process": process, "startup_seconds": time.time() - t0}
        yield started
    finally:
        for proxy in started.values():
            stop_process(proxy["process"])


@pytest.fixture(params=["grpc", "rest"])
def proxy(request, proxies):
    """Each proxy in turn: a test taking it runs over the gRPC and the REST backend."""
    return proxies[request.param]
