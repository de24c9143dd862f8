"""Bad requests against `tfxformers serve`, over REST and over gRPC (official stubs): each is refused with
TF Serving's status and a message that says what is wrong, and the server answers a good request after it.

One server (a real subprocess, so that a crash fails the test instead of the test run) serves a tiny
classifier and a tiny GPT-2 (context 32) with small limits, so that requests at and just over each limit
stay cheap: --max-rows 8, --max-tokens 200, --max-request-bytes 65536, --max-response-values 12000 (one
row of 32 GPT-2 logits over a vocabulary of about 300), and the versions' own maximum positions (128 for
the classifier, 32 for GPT-2) as sequence limits.
"""
from __future__ import annotations

import json
from http.client import HTTPConnection

import numpy as np
import pytest

MAX_ROWS, MAX_TOKENS, MAX_BYTES, MAX_VALUES = 8, 200, 65536, 12000
GEN = {"max_new_tokens": 4, "strategy": 0, "temperature": 1.0, "top_k": 0, "top_p": 1.0, "seed": 0,
       "num_return_sequences": 1, "num_beams": 1, "length_penalty": 1.0, "early_stopping": 0}
PROMPT = [[5, 6, 7]]
FLOAT_INPUTS = ("temperature", "top_p", "length_penalty")


def generate(input_ids=PROMPT, **change):
    """A generate request: every option one value per row (models/lm/generate.py)."""
    rows = len(input_ids)
    inputs = {"input_ids": input_ids, "prompt_length": [len(row) for row in input_ids]}
    inputs.update({name: [value] * rows for name, value in {**GEN, **change}.items()})
    return "emma", "generate", inputs


def classify(rows, length, mask_shape=None):
    ids = [[2] + [5] * (length - 2) + [3] for _ in range(rows)] if length >= 2 else [[2] * length] * rows
    mask_rows, mask_length = mask_shape or (rows, length)
    return "sentiment", "serving_default", {"input_ids": ids, "attention_mask": [[1] * mask_length] * mask_rows}


def gpt2_logits(rows, length, mask_length=None):
    return "emma", "serving_default", {"input_ids": [[5] * length] * rows,
                                       "attention_mask": [[1] * (mask_length or length)] * rows}


# (case id, request, message the answer must hold); every one is INVALID_ARGUMENT / HTTP 400.
BAD = [
    ("max_new_tokens int32 max", generate(max_new_tokens=2147483647),
     "max_new_tokens is 2147483647; it must be between 1 and 29: the context of 32 tokens"),
    ("max_new_tokens just over the context", generate(max_new_tokens=30), "max_new_tokens is 30; it must be between 1 and 29"),
    ("max_new_tokens 0", generate(max_new_tokens=0), "max_new_tokens is 0; it must be between 1 and 29"),
    ("prompt fills the context", generate(input_ids=[[5] * 32], max_new_tokens=1),
     "the prompt has 32 tokens, which leaves no room to generate in a context of 32 tokens"),
    ("empty prompt", generate(input_ids=[[]]), "input 'input_ids' holds no tokens"),
    ("temperature 0 with sampling", generate(strategy=1, temperature=0.0),
     "assertion failed: [generate: temperature must be > 0 when sampling (strategy 1), got] [0]"),
    ("top_p 0", generate(top_p=0.0), "generate: top_p must be in (0, 1]"),
    ("top_p over 1", generate(top_p=1.5), "generate: top_p must be in (0, 1] (1 = off), got] [1.5]"),
    ("unknown strategy", generate(strategy=3), "generate: strategy must be 0 (greedy), 1 (sample) or 2 (beam), got] [3]"),
    ("more sequences than beams", generate(strategy=2, num_beams=2, num_return_sequences=3),
     "generate: num_return_sequences must be <= num_beams"),
    ("generate beams x tokens just over", generate(input_ids=PROMPT * 2, strategy=2, num_beams=4, max_new_tokens=23),
     f"2 rows x 4 sequences of 3 + 23 tokens is more than {MAX_TOKENS} tokens per request (--max-tokens)"),
    ("negative top_k", generate(top_k=-1), "generate: top_k must be >= 0"),
    ("generate rows x tokens just over", generate(input_ids=PROMPT * 8, max_new_tokens=23),
     f"8 rows of 3 + 23 tokens is more than {MAX_TOKENS} tokens per request (--max-tokens)"),
    ("generate rows just over", generate(input_ids=PROMPT * 9), f"has 9 rows; the limit is {MAX_ROWS} per request"),
    ("classifier rows just over", classify(9, 4), f"has 9 rows; the limit is {MAX_ROWS} per request (--max-rows)"),
    ("classifier sequence just over", classify(1, 129),
     "input 'input_ids' has 129 tokens per row; the limit is 128 (this version's max_positions"),
    ("classifier tokens just over", classify(3, 67),
     f"the request holds 3 rows of 67 tokens = 201 tokens; the limit is {MAX_TOKENS} per request (--max-tokens)"),
    ("mask longer than its ids", classify(1, 3, mask_shape=(1, 4)),
     "input 'attention_mask' has shape [1, 4] but 'input_ids' has shape [1, 3]; they must be the same"),
    ("one mask row for two rows of ids", classify(2, 3, mask_shape=(1, 3)),
     "input 'attention_mask' has shape [1, 3] but 'input_ids' has shape [2, 3]"),
    ("gpt2 logits mask longer than its ids", gpt2_logits(1, 3, mask_length=5),
     "input 'attention_mask' has shape [1, 5] but 'input_ids' has shape [1, 3]"),
    ("gpt2 logits sequence just over", gpt2_logits(1, 33), "has 33 tokens per row; the limit is 32"),
    ("gpt2 logits answer too large", gpt2_logits(2, 32),
     f"values; the limit is {MAX_VALUES} per request (--max-response-values): send fewer rows or tokens"),
]

AT_LIMIT = [
    ("classifier rows at the limit", classify(MAX_ROWS, 4)),
    ("classifier sequence at the limit", classify(1, 128)),
    ("classifier tokens at the limit", classify(2, 100)),
    ("generate up to the context", generate(max_new_tokens=29)),
    ("generate rows x tokens at the limit", generate(input_ids=PROMPT * 8, max_new_tokens=22)),
    ("gpt2 logits sequence at the limit", gpt2_logits(1, 32)),
]


# ---------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def server(trained_dir, tiny_gpt2_base, tmp_path_factory):
    from tfxformers.serving.export.trained import export_model
    from tfxformers.testing import start_model_server, stop_model_server

    base = tmp_path_factory.mktemp("bad_input_models")
    export_model(trained_dir, "sentiment", base)
    (base / "emma").symlink_to(tiny_gpt2_base / "emma", target_is_directory=True)
    process, grpc_port, rest_port = start_model_server(
        base, file_system_poll_wait_seconds=0, max_rows=MAX_ROWS, max_tokens=MAX_TOKENS, max_request_bytes=MAX_BYTES,
        max_response_values=MAX_VALUES)
    yield process
    stop_model_server(process)


def post(port: int, model: str, body=None, raw: bytes | None = None):
    """(status, parsed JSON answer) of one REST :predict."""
    connection = HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("POST", f"/v1/models/{model}:predict", body=raw if raw is not None else json.dumps(body))
    answer = connection.getresponse()
    status, text = answer.status, answer.read()
    connection.close()
    return status, json.loads(text)


def rest_body(signature: str, inputs: dict) -> dict:
    return {"signature_name": signature, "inputs": inputs}


def grpc_request(model: str, signature: str, inputs: dict):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = model, signature
    for name, value in inputs.items():
        array = np.asarray(value, np.float32 if name in FLOAT_INPUTS else np.int32)
        request.inputs[name].CopyFrom(tf.make_tensor_proto(array, shape=array.shape))
    return request


@pytest.fixture(scope="module")
def stub(server):
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
    channel.close()


def assert_still_serves(server, stub=None):
    assert server.poll() is None, "the server process is gone"
    model, signature, inputs = generate()
    if stub is None:
        status, answer = post(server.rest_port, model, rest_body(signature, inputs))
        assert status == 200, answer
        assert len(answer["outputs"]["output_ids"][0][0]) == GEN["max_new_tokens"]
    else:
        response = stub.Predict(grpc_request(model, signature, inputs), timeout=60)
        assert len(response.outputs["output_ids"].int_val) == GEN["max_new_tokens"]


# ---------------------------------------------------------------------------------------------- REST

@pytest.mark.parametrize("case,request_,message", BAD, ids=[c for c, _, _ in BAD])
def test_rest_refuses(server, case, request_, message):
    model, signature, inputs = request_
    status, answer = post(server.rest_port, model, rest_body(signature, inputs))
    assert (status, set(answer)) == (400, {"error"}), answer
    assert message in answer["error"]
    assert_still_serves(server)


@pytest.mark.parametrize("case,request_", AT_LIMIT, ids=[c for c, _ in AT_LIMIT])
def test_rest_serves_requests_at_each_limit(server, case, request_):
    model, signature, inputs = request_
    status, answer = post(server.rest_port, model, rest_body(signature, inputs))
    assert status == 200, answer
    outputs = answer["outputs"]  # a single-output signature answers the bare tensor
    first = outputs if isinstance(outputs, list) else next(iter(outputs.values()))
    assert len(first) == len(inputs["input_ids"])


ROW_FORMAT_BAD = [
    ("rows just over", [{"input_ids": [2, 5, 3], "attention_mask": [1, 1, 1]}] * (MAX_ROWS + 1),
     f"has {MAX_ROWS + 1} rows; the limit is {MAX_ROWS} per request (--max-rows)"),
    ("mask longer than its ids", [{"input_ids": [2, 5, 3], "attention_mask": [1, 1, 1, 1]}],
     "input 'attention_mask' has shape [1, 4] but 'input_ids' has shape [1, 3]"),
    ("sequence just over", [{"input_ids": [2] * 129, "attention_mask": [1] * 129}], "129 tokens per row; the limit is 128"),
]


@pytest.mark.parametrize("case,instances,message", ROW_FORMAT_BAD, ids=[c for c, _, _ in ROW_FORMAT_BAD])
def test_rest_row_format_refuses(server, case, instances, message):
    """The same limits hold for TF Serving's row format ("instances"), checked before the rows are stacked."""
    status, answer = post(server.rest_port, "sentiment", {"instances": instances})
    assert status == 400 and message in answer["error"], answer
    assert_still_serves(server)


def test_rest_body_limit(server):
    """413 at one byte over --max-request-bytes (never read or parsed), served at exactly the limit."""
    model, signature, inputs = classify(1, 3)
    body = json.dumps(rest_body(signature, inputs)).encode()
    at_limit = body + b" " * (MAX_BYTES - len(body))
    status, answer = post(server.rest_port, model, raw=at_limit)
    assert status == 200, answer
    status, answer = post(server.rest_port, model, raw=at_limit + b" ")
    assert status == 413
    assert answer == {"error": f"the request body is {MAX_BYTES + 1} bytes; the limit is {MAX_BYTES} bytes "
                               "(--max-request-bytes)"}
    assert_still_serves(server)


def test_rest_body_limit_with_expect_100_continue(server):
    """A client that asks first (curl does for bodies over 1 MiB) gets the 413 before it sends the body."""
    import socket

    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=30) as connection:
        connection.sendall(f"POST /v1/models/sentiment:predict HTTP/1.1\r\nHost: test\r\nContent-Length: {MAX_BYTES + 1}"
                           "\r\nExpect: 100-continue\r\n\r\n".encode())
        answer = b""
        while chunk := connection.recv(65536):  # the server closes the connection after its answer
            answer += chunk
        head, _, body = answer.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 413") and "Connection: close" in head
    assert json.loads(body) == {"error": f"the request body is {MAX_BYTES + 1} bytes; the limit is {MAX_BYTES} bytes "
                                         "(--max-request-bytes)"}
    assert_still_serves(server)


def test_rest_twelve_thousand_rows_of_a_hundred_tokens(server):
    """The request that once grew the server to every byte of the machine: refused by its size."""
    model, signature, inputs = classify(12_000, 100)
    status, answer = post(server.rest_port, model, rest_body(signature, inputs))
    assert status == 413 and "(--max-request-bytes)" in answer["error"]
    assert_still_serves(server)


def test_rest_json_nested_too_deeply(server):
    status, answer = post(server.rest_port, "sentiment", raw=b"[" * 50_000)
    assert (status, answer) == (400, {"error": "JSON Parse error: the document is nested too deeply"})
    assert_still_serves(server)


# ---------------------------------------------------------------------------------------------- gRPC

@pytest.mark.parametrize("case,request_,message", BAD, ids=[c for c, _, _ in BAD])
def test_grpc_refuses(server, stub, case, request_, message):
    import grpc

    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(grpc_request(*request_), timeout=60)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in info.value.details()
    assert_still_serves(server, stub)


@pytest.mark.parametrize("case,request_", AT_LIMIT, ids=[c for c, _ in AT_LIMIT])
def test_grpc_serves_requests_at_each_limit(server, stub, case, request_):
    response = stub.Predict(grpc_request(*request_), timeout=60)
    first = next(iter(response.outputs.values()))
    assert first.tensor_shape.dim[0].size == len(request_[2]["input_ids"])


def test_grpc_message_limit(server, stub):
    """gRPC itself refuses a message over --max-request-bytes (RESOURCE_EXHAUSTED), before it is parsed."""
    import grpc

    request = grpc_request(*classify(64, 128))  # 64 x 128 x 2 int32 values (tensor_content): just over 64 KiB
    assert MAX_BYTES < request.ByteSize() < 2 * MAX_BYTES
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(request, timeout=60)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"larger than max ({request.ByteSize()} vs. {MAX_BYTES})" in info.value.details()
    assert_still_serves(server, stub)


def test_grpc_tensor_declaring_more_values_than_it_carries(server, stub):
    """A TensorProto of shape [100000, 100000] with one value would be filled out to 40 GB by make_ndarray."""
    import grpc
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    request = grpc_request(*classify(1, 3))
    splat = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32, int_val=[1], tensor_shape=tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=100_000)] * 2))
    for name in ("input_ids", "attention_mask"):
        request.inputs[name].CopyFrom(splat)
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(request, timeout=60)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == (f"the request declares 20000000000 elements; the limit is {MAX_BYTES} "
                                    "(--max-request-bytes)")
    assert_still_serves(server, stub)


# ---------------------------------------------------------------------------------------------- flags

def test_serve_help_lists_the_limits_with_their_defaults(capsys):
    from tfxformers.cli import main

    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag, default in (("--max-request-bytes", "4194304"), ("--max-rows", "128"), ("--max-sequence-length", "512"),
                          ("--max-tokens", "16384"), ("--max-new-tokens", "1024"),
                          ("--max-response-values", "16777216")):
        assert flag in text and f"(default {default}" in text.split(flag, 2)[-1][:400], flag


@pytest.mark.parametrize("flag", ["--max-rows", "--max-request-bytes", "--max-sequence-length", "--max-tokens",
                                  "--max-new-tokens", "--max-response-values"])
def test_serve_refuses_a_limit_below_one(flag, tmp_path, capsys):
    from tfxformers.cli import main

    assert main(["serve", "--model-base", str(tmp_path), flag, "0"]) == 2
    assert f"error: {flag} must be a positive integer, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("flag,value,message", [
    ("--drain-grace-seconds", "-1", "must be >= 0"),
    ("--rest-read-timeout-seconds", "0", "must be > 0"),
    ("--in-flight-wait-seconds", "-2", "must be >= 0, got -2.0"),
    ("--in-flight-tokens", "0", "0 is below --max-tokens 16384: a request at the limit could never run"),
])
def test_serve_refuses_bad_load_flags_in_one_line(flag, value, message, tmp_path, capsys):
    """The drain, read-timeout and admission flags: exit 2 and one ``error:`` line naming the flag, before
    anything listens (issue 23's flags had these checks untested)."""
    from tfxformers.cli import main

    assert main(["serve", "--model-base", str(tmp_path), "--grpc-port", "0", "--rest-port", "0",
                 "--host", "127.0.0.1", flag, value]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"error: {flag} {message}"], err


@pytest.mark.parametrize("info,expected", [
    ({"max_positions": 512, "max_length": 128}, (512, "--max-sequence-length")),  # the cap equals the model's
    ({"max_positions": 128, "max_length": 32}, (128, "this version's max_positions in assets.extra/tfxformers.json")),
    ({"max_length": 32}, (32, "this version's max_length in assets.extra/tfxformers.json")),  # older exports
    ({"max_positions": 2048}, (512, "--max-sequence-length")),
    ({}, (512, "--max-sequence-length")),  # SavedModels not made here
])
def test_sequence_limit_of_a_version(info, expected):
    from tfxformers.serving.server.limits import ServerLimits, sequence_limit

    assert sequence_limit(ServerLimits(), info) == expected
