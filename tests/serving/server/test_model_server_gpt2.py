"""A GPT-2 export through the embedded server: in-graph generation over gRPC and REST (every input with a
batch dimension, prompts of different lengths in one call), and under ``--enable-batching`` concurrent
generate requests answered with the same tokens as the same requests alone."""
from __future__ import annotations

import json
import threading
from http.client import HTTPConnection

import numpy as np
import pytest

PROMPTS = [[5, 6, 7], [9], [11, 12, 13, 14, 15, 16]]


@pytest.fixture(scope="module")
def gpt2_base(tiny_gpt2_base):
    return tiny_gpt2_base


@pytest.fixture(scope="module")
def loaded(gpt2_base):
    import tensorflow as tf

    return tf.saved_model.load(str(gpt2_base / "emma" / "1"))


def _inputs(prompts, **options) -> dict:
    from tfxformers.models.lm.generate import as_arrays, request_inputs

    return as_arrays(request_inputs(prompts, 0, **options))


def _direct(loaded, inputs) -> list:
    """Each row's sequences, cut at num_generated, from the SavedModel called in this process."""
    import tensorflow as tf

    out = loaded.signatures["generate"](**{k: tf.constant(v) for k, v in inputs.items()})
    return _sequences(out["output_ids"].numpy(), out["num_generated"].numpy())


def _sequences(ids, counts) -> list:
    ids, counts = np.asarray(ids), np.asarray(counts)
    return [[ids[i, j, :counts[i, j]].tolist() for j in range(ids.shape[1]) if counts[i, j]] for i in range(len(ids))]


def _grpc_request(inputs: dict):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "emma", "generate"
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


def test_generate_over_grpc_and_rest_with_ragged_prompts(gpt2_base, loaded):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from tfxformers.serving.server.server import ModelServer

    inputs = _inputs(PROMPTS, max_new_tokens=[6, 4, 5], strategy=[0, 1, 2], num_beams=[1, 1, 3],
                     num_return_sequences=[1, 2, 2], seed=3)
    expected = _direct(loaded, inputs)
    # A ragged call gives each row what the row gives alone.
    for i, prompt in enumerate(PROMPTS):
        assert expected[i] == _direct(loaded, {k: v[i:i + 1] for k, v in inputs.items()})[0]
    with ModelServer(model_base=gpt2_base, grpc_port=0, rest_port=0, host="127.0.0.1",
                     file_system_poll_wait_seconds=0) as server:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
        out = stub.Predict(_grpc_request(inputs), timeout=60).outputs
        assert _sequences(tf.make_ndarray(out["output_ids"]), tf.make_ndarray(out["num_generated"])) == expected
        # REST, columnar and row format (every input has a batch dimension now, so instances work).
        for body in ({"signature_name": "generate", "inputs": {k: v.tolist() for k, v in inputs.items()}},
                     {"signature_name": "generate", "instances": [{k: v[i].tolist() for k, v in inputs.items()}
                                                                  for i in range(len(PROMPTS))]}):
            connection = HTTPConnection("127.0.0.1", server.rest_port, timeout=60)
            connection.request("POST", "/v1/models/emma:predict", body=json.dumps(body))
            answer = connection.getresponse()
            payload = json.loads(answer.read())
            assert answer.status == 200, payload
            if "outputs" in payload:
                outputs = payload["outputs"]
                assert _sequences(outputs["output_ids"], outputs["num_generated"]) == expected
            else:
                rows = payload["predictions"]
                assert _sequences([r["output_ids"] for r in rows], [r["num_generated"] for r in rows]) == expected


def _batched_sizes(server) -> tuple[float, float]:
    """(batches run, batches of one task) from the server's processed_batch_size histogram."""
    count = ones = 0.0
    for line in server.metrics.exposition().decode().splitlines():
        if line.startswith(":tensorflow:serving:batching_session:processed_batch_size_count"):
            count = float(line.split()[-1])
        if line.startswith(':tensorflow:serving:batching_session:processed_batch_size_bucket{le="1.0"}'):
            ones = float(line.split()[-1])
    return count, ones


def test_concurrent_requests_under_batching_give_the_unbatched_tokens(gpt2_base, loaded, tmp_path):
    """TF Serving's batcher (first-element padding of input_ids included) merges concurrent calls of
    different prompt lengths, strategies and seeds; every caller gets its own unbatched tokens back."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from tfxformers.serving.server.server import ModelServer

    requests = [_inputs([PROMPTS[0]], max_new_tokens=6, strategy=1, seed=5, temperature=1.3),
                _inputs([PROMPTS[1], PROMPTS[2]], max_new_tokens=[3, 7], strategy=1, seed=8, num_return_sequences=2),
                _inputs([PROMPTS[2]], max_new_tokens=5),
                _inputs([PROMPTS[1]], max_new_tokens=4, strategy=2, num_beams=2),
                _inputs([[7, 7, 7, 7]], max_new_tokens=6, strategy=1, seed=5, top_k=5)]
    expected = [_direct(loaded, r) for r in requests]
    params = tmp_path / "batching.txt"
    # A long window so that the five calls meet in one batch; padding on, as deploy/batching_parameters.txt.
    params.write_text("max_batch_size { value: 16 }\nbatch_timeout_micros { value: 500000 }\n"
                      "num_batch_threads { value: 1 }\npad_variable_length_inputs: true\n")
    with ModelServer(model_base=gpt2_base, grpc_port=0, rest_port=0, host="127.0.0.1", enable_batching=True,
                     batching_parameters_file=params, file_system_poll_wait_seconds=0) as server:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
        before = _batched_sizes(server)
        answers = [None] * len(requests)

        def call(i):
            out = stub.Predict(_grpc_request(requests[i]), timeout=60).outputs
            answers[i] = _sequences(tf.make_ndarray(out["output_ids"]), tf.make_ndarray(out["num_generated"]))

        threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        after = _batched_sizes(server)
    assert answers == expected
    batches, single = after[0] - before[0], after[1] - before[1]
    assert batches < len(requests) and batches > single, "no two requests were merged: nothing was tested"
