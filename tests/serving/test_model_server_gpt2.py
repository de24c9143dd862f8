"""A GPT-2 export through the embedded server: in-graph generation over gRPC and REST (columnar, scalar
inputs), and TF Serving's batching rule that rejects scalar inputs."""
from __future__ import annotations

import json
from http.client import HTTPConnection

import numpy as np
import pytest

GEN_ARGS = {"max_new_tokens": 6, "strategy": 0, "temperature": 1.0, "top_k": 0, "top_p": 1.0, "seed": 0}


@pytest.fixture(scope="module")
def gpt2_base(tiny_gpt2_base):
    return tiny_gpt2_base


@pytest.fixture(scope="module")
def prompt(gpt2_base):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(gpt2_base / "emma" / "1"))
    meta = json.loads(loaded.signatures["tfxformers_metadata"](probe=tf.constant([0]))["metadata_json"].numpy()[0])
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(loaded.signatures["tfxformers_metadata"](probe=tf.constant([0]))["tokenizer_json"]
                                   .numpy()[0].decode())
    ids = np.asarray([tokenizer.encode("Emma walked to").ids], dtype=np.int32)
    args = {k: tf.constant(v, dtype=tf.float32 if isinstance(v, float) else tf.int32) for k, v in GEN_ARGS.items()}
    expected = loaded.signatures["generate"](input_ids=tf.constant(ids), **args)
    return ids, {k: v.numpy() for k, v in expected.items()}, meta


def _request(ids, signature):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "emma", signature
    request.inputs["input_ids"].CopyFrom(tf.make_tensor_proto(ids))
    if signature == "generate":
        for key, value in GEN_ARGS.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(np.asarray(value, np.float32 if isinstance(value, float)
                                                                         else np.int32)))
    else:
        request.inputs["attention_mask"].CopyFrom(tf.make_tensor_proto(np.ones_like(ids)))
    return request


def test_generate_over_grpc_and_rest(gpt2_base, prompt):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from tfxformers.serving.model_server import ModelServer

    ids, expected, meta = prompt
    with ModelServer(model_base=gpt2_base, grpc_port=0, rest_port=0, host="127.0.0.1",
                     file_system_poll_wait_seconds=0) as server:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
        out = stub.Predict(_request(ids, "generate"), timeout=60).outputs
        np.testing.assert_array_equal(tf.make_ndarray(out["output_ids"]), expected["output_ids"])
        np.testing.assert_array_equal(tf.make_ndarray(out["num_generated"]), expected["num_generated"])
        body = {"signature_name": "generate", "inputs": {"input_ids": ids.tolist(), **GEN_ARGS}}
        connection = HTTPConnection("127.0.0.1", server.rest_port, timeout=60)
        connection.request("POST", "/v1/models/emma:predict", body=json.dumps(body))
        answer = connection.getresponse()
        outputs = json.loads(answer.read())["outputs"]
        assert answer.status == 200
        assert outputs["output_ids"] == expected["output_ids"].tolist()
        logits = stub.Predict(_request(ids, "serving_default"), timeout=60).outputs["logits"]
        dims = [d.size for d in logits.tensor_shape.dim]
        assert dims[:2] == [1, ids.shape[1]] and len(logits.float_val) == dims[0] * dims[1] * dims[2]
        assert meta["kind"] == "gpt2"


def test_batching_rejects_scalar_inputs_like_tf_serving(gpt2_base, prompt):
    """TF Serving's batching session needs a batch dimension on every input, so `generate` (scalar
    max_new_tokens, ...) fails with --enable_batching; serving_default still works."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from tfxformers.serving.model_server import ModelServer

    ids, _, _ = prompt
    with ModelServer(model_base=gpt2_base, grpc_port=0, rest_port=0, host="127.0.0.1", enable_batching=True,
                     file_system_poll_wait_seconds=0) as server:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}"))
        with pytest.raises(grpc.RpcError) as info:
            stub.Predict(_request(ids, "generate"), timeout=60)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "at least one dimension" in info.value.details()
        assert stub.Predict(_request(ids, "serving_default"), timeout=60).outputs["logits"].float_val
