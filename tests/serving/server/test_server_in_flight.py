"""Work in flight in ``tfxformers serve``: one token budget shared by REST and gRPC (a request that does not fit
waits a bounded time, then gets 429 / RESOURCE_EXHAUSTED), and the drain on SIGTERM (the predicts in flight
are all answered, new ones get 503 / UNAVAILABLE, ``/readyz`` answers 503 at once, the process exits 0).

Issue 23: nothing bounded the requests computed at once, and SIGTERM during REST predicts killed the server
with SIGSEGV while every in-flight request got "Remote end closed connection". The served model is a
SavedModel whose signature computes for as long as it is asked (a TensorFlow loop until ``tf.timestamp()``
has advanced by ``seconds``), so requests are in flight for a known time on any machine; each row of
``seconds`` counts as one token of work. One real server for both tests; the drain test stops it, so it runs last.
"""
from __future__ import annotations

import json
import re
import signal
import threading
import time
from http.client import HTTPConnection
from pathlib import Path

import numpy as np
import pytest

IN_FLIGHT = 4  # per transport
HOLD_SECONDS = 3.0  # longer than the 1 s gRPC stop grace the server had before the drain
MAX_TOKENS, WAIT_SECONDS = 64, 0.5


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from tfxformers.testing import start_model_server, write_slow_saved_model

    base = tmp_path_factory.mktemp("in_flight")
    write_slow_saved_model(base / "slow" / "1")
    process, _, _ = start_model_server(base, file_system_poll_wait_seconds=0, drain_grace_seconds=20,
                                       max_tokens=MAX_TOKENS, in_flight_tokens=MAX_TOKENS,
                                       in_flight_wait_seconds=WAIT_SECONDS)
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()


def _rest(port, path, body=None, timeout=60):
    connection = HTTPConnection("127.0.0.1", port, timeout=timeout)
    connection.request("POST" if body is not None else "GET", path,
                       body=json.dumps(body) if body is not None else None,
                       headers={"Content-Type": "application/json"} if body is not None else {})
    answer = connection.getresponse()
    status, text = answer.status, answer.read().decode()
    connection.close()
    return status, json.loads(text)


def _rest_predict(port, rows=1, seconds=0.0):
    """(status, answer) of a REST predict computing for ``seconds`` with ``rows`` tokens of work."""
    return _rest(port, "/v1/models/slow:predict", {"inputs": {"seconds": [seconds] * rows}})


def _grpc_request(rows=1, seconds=0.0):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "slow"
    request.inputs["seconds"].CopyFrom(tf.make_tensor_proto(np.full([rows], seconds, np.float32)))
    return request


def _stub(port):
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    return prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))


def test_one_budget_for_rest_and_grpc_then_429(server):
    import grpc

    holder = []
    thread = threading.Thread(target=lambda: holder.append(_rest_predict(server.rest_port, 40, HOLD_SECONDS)))
    thread.start()
    time.sleep(0.5)  # the REST request holds 40 of the 64 tokens for HOLD_SECONDS
    message = re.compile(r"the server is busy: 40 of 64 tokens are being computed \(--in-flight-tokens\) and this "
                         r"request's 40 did not fit within 0.5 s \(--in-flight-wait-seconds\); retry later")
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        _stub(server.grpc_port).Predict(_grpc_request(40), timeout=30)
    waited = time.monotonic() - started
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and message.fullmatch(info.value.details())
    assert WAIT_SECONDS <= waited < HOLD_SECONDS - 1, waited  # its bounded wait, not until the room came back
    status, answer = _rest_predict(server.rest_port, 40)
    assert status == 429 and message.fullmatch(answer["error"]), answer
    status, answer = _rest_predict(server.rest_port, 5)  # 5 tokens fit beside the 40
    assert status == 200, answer
    thread.join(30)
    assert holder and holder[0][0] == 200, holder
    assert _rest_predict(server.rest_port, 40)[0] == 200  # the budget is free again


def test_sigterm_drains_in_flight_requests_and_refuses_new_ones(server):
    import grpc
    import tensorflow as tf

    process, rest_port = server, server.rest_port
    stub = _stub(server.grpc_port)
    assert _rest(rest_port, "/readyz") == (200, {"status": "ready"})
    answers, errors = [], []

    def rest_client():
        try:
            status, answer = _rest_predict(rest_port, 1, HOLD_SECONDS)
            answers.append(("rest", status, answer["outputs"]["elapsed"][0] if status == 200 else answer))
        except Exception as exc:  # noqa: BLE001
            errors.append(f"REST: {exc!r}")

    def grpc_client():
        try:
            out = stub.Predict(_grpc_request(1, HOLD_SECONDS), timeout=60).outputs["elapsed"]
            answers.append(("grpc", 200, float(tf.make_ndarray(out)[0])))
        except Exception as exc:  # noqa: BLE001
            errors.append(f"gRPC: {exc!r}"[:300])

    threads = [threading.Thread(target=f) for f in (rest_client, grpc_client) for _ in range(IN_FLIGHT)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # all of them compute for HOLD_SECONDS
    process.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    status, answer = _rest(rest_port, "/readyz")
    assert status == 503 and "shutting down" in answer["error"]
    status, answer = _rest_predict(rest_port)
    assert status == 503 and "shutting down (SIGTERM)" in answer["error"], answer
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(_grpc_request(), timeout=30)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE and "shutting down (SIGTERM)" in info.value.details()
    assert time.monotonic() - started < HOLD_SECONDS, "the machine is too slow for this test's timing"
    for thread in threads:
        thread.join(60)
    code = process.wait(60)
    log = Path(process.log_path).read_text(errors="replace")
    assert not errors, errors
    assert len(answers) == 2 * IN_FLIGHT and all(status == 200 for _, status, _ in answers), answers
    assert all(elapsed >= HOLD_SECONDS for _, _, elapsed in answers), answers  # none was cut short
    assert code == 0, log[-3000:]
    drained = re.search(r"draining: (\d+) requests in progress", log)
    assert drained and int(drained.group(1)) >= 2 * IN_FLIGHT, log[-3000:]
    assert "Traceback" not in log and "Segmentation fault" not in log, log[-3000:]
