"""Serving under change: versions pushed into a running ``tfxformers serve`` while 8 clients send requests
without pause (2 over gRPC, 2 over REST, 2 through a gRPC-backed proxy, 2 through a REST-backed proxy), and
the proxies while that server drains after SIGTERM.

Issue 23, TF Serving's availability-preserving policy: a new version is loaded before the old one is
unloaded, so no request fails, and every answer names the version that computed it (gRPC
``PredictResponse.model_spec.version``, REST the ``X-Model-Version`` header beside TF Serving's JSON, the
proxy its ``version`` field). A broken version (a truncated ``saved_model.pb``, a directory of garbage) is
reported by the status APIs with the reason while the old version keeps serving; a version copied file by
file (its directory appears before its files) is loaded only whole, warm-up records included. Versions are
pushed the way the pipeline's Pusher does it (``pipeline/components.py``): copied under a hidden name
beside the versions, then renamed into place. The last test drains the same server, so it runs last.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
import uuid
from http.client import HTTPConnection
from pathlib import Path

import httpx
import numpy as np
import pytest

# The swap is the manager's scheduling (settle, load before unload, status), the same Python on both stacks;
# loading and answering with each stack's TensorFlow is what the other server tests run on both. So: once,
# on the current stack (the test budget has no room for its 30 s of servers twice).
pytestmark = pytest.mark.once

POLL_SECONDS = 0.5  # the server's --file-system-poll-wait-seconds
TEXTS = ["a brilliant and moving film", "boring , dull and far too long"]
HOLD_SECONDS = 4.0  # the slow request that keeps the server draining in the last test


# ---------------------------------------------------------------------------------------------- helpers

def push(model_dir: Path, source: Path, version: int) -> Path:
    """What the Pusher does: copy under a hidden name beside the versions, then one rename into place."""
    staging = model_dir / f".push-{uuid.uuid4().hex[:12]}"
    shutil.copytree(source, staging)
    final = model_dir / str(version)
    os.rename(staging, final)
    return final


def _status(rest_port: int, name: str = "sentiment") -> dict[int, dict]:
    connection = HTTPConnection("127.0.0.1", rest_port, timeout=10)
    connection.request("GET", f"/v1/models/{name}")
    answer = json.loads(connection.getresponse().read())
    connection.close()
    return {int(s["version"]): s for s in answer["model_version_status"]}


def _until(condition, timeout: float, what: str, clients=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    seen = f"; answers {len(clients.answers)}, failures {clients.failures[:3]}" if clients else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}{seen}")


class Clients:
    """8 threads sending requests without pause; each answer is (kind, version, time sent), each failure
    (kind, what went wrong)."""

    KINDS = ("grpc", "rest", "proxy-grpc", "proxy-rest")

    def __init__(self, grpc_port, rest_port, proxies, features):
        self.grpc_port, self.rest_port, self.proxies = grpc_port, rest_port, proxies
        self.features = features
        self.answers, self.failures = [], []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(kind,), daemon=True)
                        for kind in self.KINDS for _ in range(2)]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def _run(self, kind: str) -> None:
        send = {"grpc": self._grpc, "rest": self._rest}.get(kind) or self._proxy(kind.split("-")[1])
        while not self.stop.is_set():
            sent = time.monotonic()
            try:
                self.answers.append((kind, send(), sent))
            except Exception as exc:  # noqa: BLE001  (every failure fails the test)
                self.failures.append((kind, repr(exc)[:300]))

    def _grpc(self):
        if not hasattr(self._local(), "stub"):
            import grpc
            import tensorflow as tf
            from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

            request = predict_pb2.PredictRequest()
            request.model_spec.name = "sentiment"
            for key, value in self.features.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            self._local().request = request
            self._local().stub = prediction_service_pb2_grpc.PredictionServiceStub(
                grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}"))
        response = self._local().stub.Predict(self._local().request, timeout=30)
        assert len(response.outputs["probabilities"].float_val) == 2 * len(TEXTS)
        return response.model_spec.version.value

    def _rest(self):
        local = self._local()
        if getattr(local, "connection", None) is None:
            local.connection = HTTPConnection("127.0.0.1", self.rest_port, timeout=30)
            local.body = json.dumps({"inputs": {k: v.tolist() for k, v in self.features.items()}})
        local.connection.request("POST", "/v1/models/sentiment:predict", body=local.body,
                                 headers={"Content-Type": "application/json"})
        answer = local.connection.getresponse()
        text = answer.read()
        if answer.status != 200:
            raise AssertionError(f"REST {answer.status}: {text[:200]!r}")
        assert set(json.loads(text)) == {"outputs"}  # TF Serving's answer, unchanged
        if answer.getheader("Connection", "").lower() == "close":
            local.connection.close()
            local.connection = None
        return int(answer.getheader("X-Model-Version"))

    def _proxy(self, backend: str):
        def send():
            local = self._local()
            if getattr(local, "client", None) is None:
                local.client = httpx.Client(base_url=self.proxies[backend], timeout=30)
            response = local.client.post("/v1/models/sentiment:classify", json={"texts": TEXTS})
            if response.status_code != 200:
                raise AssertionError(f"proxy {response.status_code}: {response.text[:200]}")
            return response.json()["version"]
        return send

    _locals = threading.local()

    def _local(self):
        return self._locals

    def versions(self, kind=None, sent_after=0.0) -> set[int]:
        return {v for k, v, t in list(self.answers) if (kind is None or k == kind) and t >= sent_after}

    def seen_by_every_kind(self, version: int, sent_after: float = 0.0) -> bool:
        return all(version in self.versions(kind, sent_after) for kind in self.KINDS)


# ---------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def export(trained_dir, tmp_path_factory) -> Path:
    from tfxformers.serving.export.trained import export_model

    return export_model(trained_dir, "sentiment", tmp_path_factory.mktemp("swap_exports"))


@pytest.fixture(scope="module")
def features(trained_dir):
    from tfxformers.models.artifacts import load_trained
    from tfxformers.models.tokenization import tokenize_batch

    return tokenize_batch(load_trained(trained_dir).tokenizer, TEXTS, 32)


@pytest.fixture(scope="module")
def served(export, tmp_path_factory):
    """One ``tfxformers serve`` process (sentiment version 1 and the slow model) and a proxy per backend."""
    from tfxformers.testing import start_model_server, start_proxy, stop_process, write_slow_saved_model

    base = tmp_path_factory.mktemp("swap_models")
    (base / "sentiment").mkdir()
    push(base / "sentiment", export, 1)
    write_slow_saved_model(base / "slow" / "1")
    server, grpc_port, rest_port = start_model_server(base, file_system_poll_wait_seconds=POLL_SECONDS,
                                                      drain_grace_seconds=30)
    proxies = {}
    try:
        for kind, backend in (("grpc", f"grpc://127.0.0.1:{grpc_port}"), ("rest", f"http://127.0.0.1:{rest_port}")):
            proxies[kind] = start_proxy(backend, models="sentiment",
                                        extra_args=["--status-refresh", "0.2", "--timeout", "10"])
        yield {"server": server, "grpc_port": grpc_port, "rest_port": rest_port, "base": base,
               "proxies": {kind: url for kind, (_, url) in proxies.items()}}
    finally:
        for process, _ in proxies.values():
            stop_process(process)
        if server.poll() is None:
            server.kill()
            server.wait()
    for process, _ in proxies.values():
        log = Path(process.log_path).read_text(errors="replace")
        assert "Traceback" not in log, log[-3000:]


def _clients(served, features) -> Clients:
    return Clients(served["grpc_port"], served["rest_port"], served["proxies"], features)


def _server_log(served) -> str:
    return Path(served["server"].log_path).read_text(errors="replace")


# ---------------------------------------------------------------------------------------------- tests

def test_a_pushed_version_replaces_the_old_one_under_load_with_no_failed_request(served, export, features):
    with _clients(served, features) as clients:
        _until(lambda: clients.seen_by_every_kind(1), 30, "every kind of client answered by version 1", clients)
        push(served["base"] / "sentiment", export, 2)
        states = _until(lambda: (s := _status(served["rest_port"]))[1]["state"] == "END" and s, 60,
                        "version 1 unloaded")
        unloaded = time.monotonic()
        _until(lambda: clients.seen_by_every_kind(2, sent_after=unloaded), 30,
               "every kind of client answered by version 2 after version 1 was unloaded")
    assert not clients.failures, clients.failures[:5]
    assert states[2]["state"] == "AVAILABLE" and states[1]["status"]["error_code"] == "OK", states
    assert clients.versions() == {1, 2}
    for kind in Clients.KINDS:  # each path saw the swap, and nothing sent after the unload met version 1
        assert clients.versions(kind) == {1, 2}, kind
        assert clients.versions(kind, sent_after=unloaded) == {2}, kind
    log = _server_log(served)
    assert log.index("model sentiment version 2 AVAILABLE") < log.index("model sentiment version 1 unloaded")


def test_broken_versions_are_reported_and_the_old_one_keeps_serving(served, export, features):
    model_dir = served["base"] / "sentiment"
    truncated = model_dir / ".push-truncated"
    shutil.copytree(export, truncated)
    pb = truncated / "saved_model.pb"
    pb.write_bytes(pb.read_bytes()[: pb.stat().st_size // 2])
    garbage = model_dir / ".push-garbage"
    garbage.mkdir()
    (garbage / "saved_model.pb").write_bytes(np.random.default_rng(0).bytes(4096))
    (garbage / "variables").write_bytes(b"not a directory")
    with _clients(served, features) as clients:
        _until(lambda: clients.seen_by_every_kind(2), 30, "every kind of client answered by version 2")
        os.rename(truncated, model_dir / "3")
        os.rename(garbage, model_dir / "4")
        states = _until(lambda: all(v in (s := _status(served["rest_port"])) and s[v]["state"] == "END"
                                    for v in (3, 4)) and s, 60, "versions 3 and 4 reported")
        time.sleep(2 * POLL_SECONDS)  # more polls: the failed versions are not tried again, 2 stays
    assert not clients.failures, clients.failures[:5]
    assert clients.versions() == {2}
    assert states[2]["state"] == "AVAILABLE"
    for version in (3, 4):
        status = states[version]["status"]
        assert status["error_code"] != "OK", states
        assert status["error_message"].startswith(f"Failed to load servable version {version} of sentiment: ")
    assert "cannot parse" in states[3]["status"]["error_message"] + states[4]["status"]["error_message"]
    import grpc
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    stub = model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(f"127.0.0.1:{served['grpc_port']}"))
    answer = stub.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(
        model_spec={"name": "sentiment", "version": {"value": 3}}), timeout=10).model_version_status[0]
    assert answer.state == get_model_status_pb2.ModelVersionStatus.END and answer.status.error_code != 0
    assert answer.status.error_message == states[3]["status"]["error_message"]
    assert _server_log(served).count("model sentiment version 3 failed to load") == 1  # not retried every poll
    shutil.rmtree(model_dir / "3")
    shutil.rmtree(model_dir / "4")


def test_a_version_copied_file_by_file_is_loaded_only_whole(served, export, features):
    """The directory appears first, then its files in chunks (a plain recursive copy), the warm-up records
    last: the server must not load it before it is complete (it would serve it without its warm-up)."""
    final = served["base"] / "sentiment" / "5"
    files = sorted((p for p in export.rglob("*") if p.is_file()),
                   key=lambda p: (p.name == "tf_serving_warmup_requests", "assets.extra" in p.parts, str(p)))
    with _clients(served, features) as clients:
        final.mkdir()
        for source in files:
            target = final / source.relative_to(export)
            target.parent.mkdir(parents=True, exist_ok=True)
            data = source.read_bytes()
            with open(target, "wb") as out:
                for start in range(0, max(len(data), 1), max(len(data) // 2, 1)):
                    out.write(data[start:start + max(len(data) // 2, 1)])
                    out.flush()
                    time.sleep(0.05)
        _until(lambda: _status(served["rest_port"]).get(5, {}).get("state") == "AVAILABLE", 60, "version 5 loaded")
        done = time.monotonic()
        _until(lambda: clients.seen_by_every_kind(5, sent_after=done), 30, "every kind of client on version 5")
    assert not clients.failures, clients.failures[:5]
    assert clients.versions() == {2, 5}
    log = _server_log(served)
    assert "model sentiment version 5 failed to load" not in log, log[-3000:]
    line = next(l for l in log.splitlines() if "model sentiment version 5 AVAILABLE" in l)
    assert "3 warm-up records replayed" in line, line


def test_proxies_answer_503_with_retry_after_while_the_server_drains(served):
    """Last: it ends the server. A slow request holds the drain open; meanwhile every proxy route that
    reaches the server answers 503 with the server's reason and Retry-After, not 500 or 502."""
    held = []

    def slow_request():
        connection = HTTPConnection("127.0.0.1", served["rest_port"], timeout=60)
        connection.request("POST", "/v1/models/slow:predict", body=json.dumps({"inputs": {"seconds": [HOLD_SECONDS]}}),
                           headers={"Content-Type": "application/json"})
        answer = connection.getresponse()
        held.append((answer.status, answer.read().decode()))

    for url in served["proxies"].values():  # both proxies have the served version and its tokenizer
        assert httpx.post(url + "/v1/models/sentiment:classify", json={"texts": TEXTS}, timeout=10).status_code == 200
    holder = threading.Thread(target=slow_request)
    holder.start()
    time.sleep(0.5)
    served["server"].send_signal(signal.SIGTERM)
    started = time.monotonic()
    time.sleep(0.3)
    assert httpx.get(f"http://127.0.0.1:{served['rest_port']}/readyz", timeout=5).status_code == 503
    for kind, url in served["proxies"].items():
        # The served version's :classify, and a model the proxy has not met yet (its metadata fetch).
        for path, body in (("/v1/models/sentiment:classify", {"texts": TEXTS}),
                           ("/v1/models/slow:classify", {"texts": TEXTS})):
            response = httpx.post(url + path, json=body, timeout=10)
            assert response.status_code == 503, (kind, path, response.status_code, response.text)
            answer = response.json()
            assert "shutting down" in answer["error"] and answer["kind"] == "backend_unavailable", (kind, answer)
            assert response.headers["retry-after"] == "1", (kind, dict(response.headers))
    assert time.monotonic() - started < HOLD_SECONDS - 1, "the machine is too slow for this test's timing"
    holder.join(60)
    assert held and held[0][0] == 200, held  # the request in flight was answered
    assert served["server"].wait(60) == 0
