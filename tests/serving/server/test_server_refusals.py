"""Requests `tfxformers serve` refuses cleanly, against one real server (a tiny classifier exported with
``--with-attention``, a small ``--max-response-values``):

* the ``attention`` signature's answer (rows x layers x heads x tokens^2 values) is held to
  ``--max-response-values`` over REST and gRPC, refused from the request's shape before the model runs
  (issue 23: a 37 KB REST request, 32 rows x 128 tokens, ran 126 s and answered 529 MB of JSON, because the
  limit counted only a dynamic second dimension as tokens);
* REST clients that send a byte a second are cut off after ``--rest-read-timeout-seconds`` and do not delay
  a normal request (issue 23: nothing bounded them);
* gRPC ``Classify`` (not implemented here) and bytes that are no PredictRequest answer UNIMPLEMENTED /
  INVALID_ARGUMENT with a message and leave no traceback in the server's log (issue 23: both did).
"""
from __future__ import annotations

import json
import threading
from http.client import HTTPConnection
from pathlib import Path

import numpy as np
import pytest

MAX_VALUES = 1000
READ_TIMEOUT, SLOW_CLIENTS = 2.0, 50


@pytest.fixture(scope="module")
def server(trained_dir, tmp_path_factory):
    from tfxformers.serving.export.attention import export_with_attention
    from tfxformers.testing import start_model_server, stop_model_server

    base = tmp_path_factory.mktemp("attention_limit")
    export_with_attention(trained_dir, "sentiment", base)
    process, _, _ = start_model_server(base, file_system_poll_wait_seconds=0, max_response_values=MAX_VALUES,
                                       monitoring_config_file=_monitoring(), rest_read_timeout_seconds=READ_TIMEOUT)
    yield process
    assert stop_model_server(process) == 0


def _monitoring():
    return Path(__file__).resolve().parents[3] / "deploy" / "monitoring.config"


def _get(port, path):
    connection = HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", path)
    text = connection.getresponse().read().decode()
    connection.close()
    return text


def _post(port, rows, tokens):
    ids = [[2] + [5] * (tokens - 2) + [3]] * rows
    body = {"signature_name": "attention", "inputs": {"input_ids": ids, "attention_mask": [[1] * tokens] * rows}}
    connection = HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("POST", "/v1/models/sentiment:predict", body=json.dumps(body),
                       headers={"Content-Type": "application/json"})
    answer = connection.getresponse()
    status, text = answer.status, answer.read().decode()
    connection.close()
    return status, json.loads(text)


def _grpc(port, rows, tokens):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "sentiment", "attention"
    ids = np.full((rows, tokens), 5, np.int32)
    ids[:, 0], ids[:, -1] = 2, 3
    request.inputs["input_ids"].CopyFrom(tf.make_tensor_proto(ids))
    request.inputs["attention_mask"].CopyFrom(tf.make_tensor_proto(np.ones_like(ids)))
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
    try:
        return grpc.StatusCode.OK, stub.Predict(request, timeout=60)
    except grpc.RpcError as exc:
        return exc.code(), exc.details()


def _model_runs(port) -> float:
    """How often the model ran (TF Serving's runtime latency histogram count)."""
    for line in _get(port, "/monitoring/prometheus/metrics").splitlines():
        if line.startswith(":tensorflow:serving:runtime_latency_count") and 'model_name="sentiment"' in line:
            return float(line.split()[-1])
    return 0.0


def test_attention_answers_are_held_to_max_response_values(server):
    import grpc

    rest, grpc_port = server.rest_port, server.grpc_port
    metadata = json.loads(_get(rest, "/v1/models/sentiment/metadata"))
    dims = metadata["metadata"]["signature_def"]["signature_def"]["attention"]["outputs"]["attentions"]["tensor_shape"]["dim"]
    layers, heads = int(dims[1]["size"]), int(dims[2]["size"])
    labels = 2

    def values(rows, tokens):
        return rows * layers * heads * tokens * tokens + rows * labels

    fits = max(t for t in range(2, 64) if values(1, t) <= MAX_VALUES)
    over_rows = next(r for r in range(1, 64) if values(r, fits) > MAX_VALUES)
    runs = _model_runs(rest)
    for rows, tokens in ((1, fits + 1), (over_rows, fits)):
        status, answer = _post(rest, rows, tokens)
        assert status == 400, answer
        assert answer["error"] == (f"the answer to {rows} rows of {tokens} tokens would hold {values(rows, tokens)} "
                                   f"values; the limit is {MAX_VALUES} per request (--max-response-values): send "
                                   "fewer rows or tokens")
        code, details = _grpc(grpc_port, rows, tokens)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and details == answer["error"]
    assert _model_runs(rest) == runs, "a refused request ran the model"
    status, answer = _post(rest, 1, fits)
    assert status == 200 and np.asarray(answer["outputs"]["attentions"]).shape == (1, layers, heads, fits, fits)
    code, response = _grpc(grpc_port, 1, fits)
    assert code == grpc.StatusCode.OK and len(response.outputs["attentions"].float_val) == values(1, fits) - labels


def test_grpc_classify_and_garbage_bytes_are_refused_without_a_traceback(server):
    import grpc
    from tensorflow_serving.apis import classification_pb2, prediction_service_pb2_grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "sentiment"
    with pytest.raises(grpc.RpcError) as info:
        stub.Classify(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert info.value.details() == "Classify is not supported by this server; use Predict"
    raw = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")  # bytes in, bytes out
    with pytest.raises(grpc.RpcError) as info:
        raw(b"\xff\xff\xff not a protocol buffer", timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == "the request of Predict does not parse as a tensorflow.serving.PredictRequest message"
    assert _post(server.rest_port, 1, 4)[0] == 200  # still serving
    log = Path(server.log_path).read_text(errors="replace")
    assert "Traceback" not in log and "Exception" not in log, log[-3000:]


def test_slow_rest_clients_are_cut_off_and_do_not_delay_others(server):
    import socket
    import statistics
    import time

    def latency():
        times = []
        for _ in range(5):
            started = time.perf_counter()
            assert _post(server.rest_port, 1, 4)[0] == 200
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    before = latency()
    request = (b"POST /v1/models/sentiment:predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Content-Length: 200\r\n\r\n")
    clients = [socket.create_connection(("127.0.0.1", server.rest_port), timeout=10) for _ in range(SLOW_CLIENTS)]
    cut = [False] * SLOW_CLIENTS
    stop = threading.Event()

    def trickle():  # one byte a second on every connection until the server closes it
        for i in range(len(request)):
            for n, client in enumerate(clients):
                if not cut[n]:
                    try:
                        client.sendall(request[i:i + 1])
                    except OSError:
                        cut[n] = True
            if stop.wait(1.0):
                return

    sender = threading.Thread(target=trickle)
    started = time.monotonic()
    sender.start()
    try:
        time.sleep(0.5)
        during = latency()
        assert during <= before + 0.1, (before, during)
        deadline = started + READ_TIMEOUT + 5
        for n, client in enumerate(clients):
            client.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                while client.recv(4096):  # the server's 400 or 408, if any, then the end of the connection
                    pass
                cut[n] = True
            except ConnectionError:
                cut[n] = True
            except OSError:  # timed out: still connected
                pass
        assert all(cut), f"{cut.count(False)} of {SLOW_CLIENTS} slow clients still connected after {READ_TIMEOUT + 5} s"
        assert time.monotonic() - started < READ_TIMEOUT + 5
    finally:
        stop.set()
        sender.join(5)
        for client in clients:
            client.close()
