"""The embedded TF-Serving-compatible server, through the official gRPC stubs and plain HTTP only.

One tiny classifier is trained and exported per module; one server (in-process, free 127.0.0.1 ports)
serves it for most tests, a second one serves a config file with specific versions and labels, and
the CLI is exercised as a real subprocess.
"""
from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.parse
from http.client import HTTPConnection
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
TEXTS = ["a brilliant and moving film", "boring , dull and far too long and the plot was a mess", "the plot"]


# ---------------------------------------------------------------------------------------------- helpers

def http(port: int, method: str, path: str, body=None, raw: bytes | None = None):
    """(status, parsed JSON or text) for one plain HTTP request."""
    connection = HTTPConnection("127.0.0.1", port, timeout=30)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    connection.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
    answer = connection.getresponse()
    text = answer.read().decode()
    connection.close()
    try:
        return answer.status, json.loads(text)
    except json.JSONDecodeError:
        return answer.status, text


def grpc_stubs(port: int):
    import grpc
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return prediction_service_pb2_grpc.PredictionServiceStub(channel), model_service_pb2_grpc.ModelServiceStub(channel)


def predict_request(features: dict, name="sentiment", version=None, label=None, signature=""):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    for key, value in features.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request


def outputs_of(response) -> dict:
    import tensorflow as tf

    return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}


def wait_until(condition, timeout=60.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def add_version(model_dir: Path, source: Path, version: int) -> Path:
    """Drop a copy of a version in atomically, as the exporter does (hidden temp dir, then rename)."""
    staging = model_dir / f".export-{version}-copy"
    shutil.copytree(source, staging)
    final = model_dir / str(version)
    staging.rename(final)
    return final


# ---------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def export_v1(trained_dir, tmp_path_factory) -> Path:
    from tfxformers.serving.export.trained import export_model

    return export_model(trained_dir, "sentiment", tmp_path_factory.mktemp("exports"))


@pytest.fixture(scope="module")
def tokenizer(trained_dir):
    from tfxformers.models.artifacts import load_trained

    return load_trained(trained_dir).tokenizer


@pytest.fixture(scope="module")
def features(tokenizer):
    from tfxformers.models.tokenization import tokenize_batch

    return tokenize_batch(tokenizer, TEXTS, 32)


@pytest.fixture(scope="module")
def expected(export_v1, features):
    import tensorflow as tf

    serve = tf.saved_model.load(str(export_v1)).signatures["serving_default"]
    out = serve(**{k: tf.constant(v) for k, v in features.items()})
    return {k: v.numpy() for k, v in out.items()}


@pytest.fixture(scope="module")
def model_base(export_v1, tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("serving_models")
    (base / "sentiment").mkdir()
    add_version(base / "sentiment", export_v1, 1)
    return base


@pytest.fixture(scope="module")
def server(model_base):
    from tfxformers.serving.server.server import ModelServer

    srv = ModelServer(model_base=model_base, grpc_port=0, rest_port=0, host="127.0.0.1",
                      monitoring_config_file=ROOT / "deploy" / "monitoring.config", file_system_poll_wait_seconds=0.2)
    srv.start()
    yield srv
    srv.stop()


# ---------------------------------------------------------------------------------------------- predict

def test_rest_predict_row_format(server, features, expected):
    instances = [{k: v[i].tolist() for k, v in features.items()} for i in range(len(TEXTS))]
    status, answer = http(server.rest_port, "POST", "/v1/models/sentiment:predict", {"instances": instances})
    assert status == 200, answer
    predictions = answer["predictions"]
    assert len(predictions) == len(TEXTS) and set(predictions[0]) == {"probabilities", "label_id"}
    np.testing.assert_allclose([p["probabilities"] for p in predictions], expected["probabilities"], atol=1e-6)
    assert [p["label_id"] for p in predictions] == expected["label_id"].tolist()


def test_rest_predict_columnar_format_version_and_signature(server, features, expected):
    body = {"signature_name": "serving_default", "inputs": {k: v.tolist() for k, v in features.items()}}
    status, answer = http(server.rest_port, "POST", "/v1/models/sentiment/versions/1:predict", body)
    assert status == 200, answer
    np.testing.assert_allclose(answer["outputs"]["probabilities"], expected["probabilities"], atol=1e-6)
    assert answer["outputs"]["label_id"] == expected["label_id"].tolist()


def test_rest_single_input_signature_and_string_outputs(server):
    """tfxformers_metadata: one input (plain row values) and string outputs (plain JSON strings)."""
    status, answer = http(server.rest_port, "POST", "/v1/models/sentiment:predict",
                          {"signature_name": "tfxformers_metadata", "instances": [0, 0]})
    assert status == 200, answer
    assert len(answer["predictions"]) == 2
    meta = json.loads(answer["predictions"][0]["metadata_json"])
    assert meta["label_names"] == ["neg", "pos"] and meta["kind"] == "classifier"
    status, answer = http(server.rest_port, "POST", "/v1/models/sentiment:predict",
                          {"signature_name": "tfxformers_metadata", "inputs": [7]})
    assert status == 200 and json.loads(answer["outputs"]["metadata_json"][0])["name"] == "sentiment"


def test_float_format_is_tf_servings():
    from tfxformers.serving.server.rest_codec import format_float

    assert format_float(np.float32(0.5), True) == "0.5"
    assert format_float(np.float32(2.0), True) == "2.0"
    assert format_float(np.float32(0.1), True) == "0.1"
    assert format_float(np.float32(0.7310586), True) == "0.731058598"
    assert format_float(np.float32(9000000), True) == "9e+06"
    assert format_float(float("nan"), True) == "NaN"


def test_rest_b64_string_inputs_are_decoded():
    from tensorflow.core.framework import types_pb2

    from tfxformers.serving.server.rest_codec import json_to_ndarray

    array = json_to_ndarray([{"b64": "aGVsbG8="}, "plain"], types_pb2.DT_STRING)
    assert array.tolist() == [b"hello", b"plain"]


def test_grpc_predict_matches_the_signature(server, features, expected):
    prediction, _ = grpc_stubs(server.grpc_port)
    response = prediction.Predict(predict_request(features), timeout=30)
    assert response.model_spec.name == "sentiment" and response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"
    out = outputs_of(response)
    np.testing.assert_allclose(out["probabilities"], expected["probabilities"], atol=1e-6)
    np.testing.assert_array_equal(out["label_id"], expected["label_id"])
    # TF Serving answers with typed value fields, not tensor_content
    assert len(response.outputs["probabilities"].float_val) == expected["probabilities"].size
    filtered = prediction.Predict(predict_request(features, version=1), timeout=30)
    assert set(filtered.outputs) == {"probabilities", "label_id"}


# ---------------------------------------------------------------------------------------------- status, metadata

def test_rest_status_like_tf_serving(server):
    for path in ("/v1/models/sentiment", "/v1/models/sentiment/versions/1"):
        status, answer = http(server.rest_port, "GET", path)
        assert status == 200, answer
        assert answer == {"model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}


def test_grpc_status_and_metadata(server):
    from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

    prediction, model = grpc_stubs(server.grpc_port)
    status = model.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "sentiment"}))
    assert [(s.version, s.state, s.status.error_code) for s in status.model_version_status] == [
        (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE, 0)]
    meta = prediction.GetModelMetadata(get_model_metadata_pb2.GetModelMetadataRequest(
        model_spec={"name": "sentiment"}, metadata_field=["signature_def"]))
    assert meta.model_spec.name == "sentiment" and meta.model_spec.version.value == 1
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert meta.metadata["signature_def"].Unpack(signatures)
    serving = signatures.signature_def["serving_default"]
    assert set(serving.inputs) == {"input_ids", "attention_mask"}
    assert set(serving.outputs) == {"probabilities", "label_id"}
    assert [d.size for d in serving.inputs["input_ids"].tensor_shape.dim] == [-1, -1]
    assert "tfxformers_metadata" in signatures.signature_def


def test_rest_metadata_like_tf_serving(server):
    status, answer = http(server.rest_port, "GET", "/v1/models/sentiment/versions/1/metadata")
    assert status == 200, answer
    assert answer["model_spec"] == {"name": "sentiment", "signature_name": "", "version": "1"}
    serving = answer["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert serving["inputs"]["input_ids"]["dtype"] == "DT_INT32"
    assert serving["outputs"]["probabilities"]["dtype"] == "DT_FLOAT"
    assert serving["method_name"] == "tensorflow/serving/predict"


# ---------------------------------------------------------------------------------------------- errors

def _row(features, i=0, **extra):
    row = {k: v[i].tolist() for k, v in features.items()}
    row.update(extra)
    return row


@pytest.mark.parametrize("method,path,body,status,text", [
    ("POST", "/v1/models/nothing:predict", {"instances": [[1]]}, 404, "Servable not found for request: Latest(nothing)"),
    ("POST", "/v1/models/sentiment/versions/9:predict", {"instances": [[1]]}, 404,
     "Servable not found for request: Specific(sentiment, 9)"),
    ("POST", "/v1/models/sentiment/labels/nope:predict", {"instances": [[1]]}, 400,
     "Unrecognized servable version label: nope"),
    ("GET", "/v1/models/nothing", None, 404, "Could not find any versions of model nothing"),
    ("GET", "/v1/models/sentiment/versions/9", None, 404, "Could not find version 9 of model sentiment"),
    ("GET", "/v1/models/nothing/metadata", None, 404, "Servable not found"),
    ("POST", "/v1/models/sentiment:predict", "BAD_JSON", 400, "JSON Parse error"),
    ("POST", "/v1/models/sentiment:predict", "EMPTY", 400, "The document is empty"),
    ("POST", "/v1/models/sentiment:predict", {"signature_name": "nope", "instances": [[1]]}, 400,
     'Serving signature name: "nope" not found in signature def'),
    ("POST", "/v1/models/sentiment:predict", "WRONG_NAME", 400, "does not have named input: input_idz"),
    ("POST", "/v1/models/sentiment:predict", "WRONG_DTYPE", 400, "is not of expected type: int32"),
    ("POST", "/v1/models/sentiment:predict", "RAGGED", 400, "Expecting tensor size: 32 but got: 2"),
    ("POST", "/v1/models/sentiment:predict", {"foo": 1}, 400, "Missing 'inputs' or 'instances' key"),
    ("POST", "/v1/models/sentiment:predict", {"inputs": {"input_ids": [[1]]}}, 400,
     "Missing named input: attention_mask"),
    ("POST", "/v1/models/sentiment:predict", {"instances": [], }, 400, "No values in 'instances' array"),
    ("POST", "/v1/models/sentiment", {"instances": [[1]]}, 400, "Malformed request: POST /v1/models/sentiment"),
    ("POST", "/v1/models/sentiment:classify", {"examples": []}, 501, "classify"),
])
def test_rest_errors(server, features, method, path, body, status, text):
    raw = None
    if body == "BAD_JSON":
        raw = b'{"instances": [1, 2'
    elif body == "EMPTY":
        raw = b""
    elif body == "WRONG_NAME":
        row = _row(features)
        row["input_idz"] = row.pop("input_ids")
        body = {"instances": [row]}
    elif body == "WRONG_DTYPE":
        body = {"instances": [_row(features, input_ids=[0.5] * len(features["input_ids"][0]))]}
    elif body == "RAGGED":
        body = {"instances": [_row(features), _row(features, input_ids=[2, 3], attention_mask=[1, 1])]}
    got_status, answer = http(server.rest_port, method, path, body, raw=raw)
    assert got_status == status, answer
    assert set(answer) == {"error"} and text in answer["error"], answer


def test_rest_unknown_path_is_404(server):
    assert http(server.rest_port, "GET", "/v2/whatever")[0] == 404


def test_grpc_errors(server, features):
    import grpc
    from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2,
                                         model_management_pb2)

    prediction, model = grpc_stubs(server.grpc_port)

    def code_of(call, request):
        with pytest.raises(grpc.RpcError) as info:
            call(request, timeout=30)
        return info.value.code(), info.value.details()

    assert code_of(prediction.Predict, predict_request(features, name="nothing"))[0] == grpc.StatusCode.NOT_FOUND
    assert code_of(prediction.Predict, predict_request(features, version=9)) == (
        grpc.StatusCode.NOT_FOUND, "Servable not found for request: Specific(sentiment, 9)")
    assert code_of(prediction.Predict, predict_request(features, label="nope"))[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(prediction.Predict, predict_request(features, signature="nope")) == (
        grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "nope" not found.')
    wrong_name = {"input_idz": features["input_ids"], "attention_mask": features["attention_mask"]}
    code, details = code_of(prediction.Predict, predict_request(wrong_name))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "Sent extra: {input_idz}" in details
    wrong_dtype = {"input_ids": features["input_ids"].astype(np.float32), "attention_mask": features["attention_mask"]}
    code, details = code_of(prediction.Predict, predict_request(wrong_dtype))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "int32" in details and "float32" in details
    wrong_rank = {"input_ids": features["input_ids"][0], "attention_mask": features["attention_mask"][0]}
    assert code_of(prediction.Predict, predict_request(wrong_rank))[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(prediction.Classify, classification_pb2.ClassificationRequest())[0] == grpc.StatusCode.UNIMPLEMENTED
    from tensorflow_serving.apis import regression_pb2

    assert code_of(prediction.Regress, regression_pb2.RegressionRequest())[0] == grpc.StatusCode.UNIMPLEMENTED
    assert code_of(model.HandleReloadConfigRequest,  # relative base paths need a config file's directory
                   model_management_pb2.ReloadConfigRequest(config={"model_config_list": {"config": [
                       {"name": "x", "base_path": "relative/x"}]}}))[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(prediction.GetModelMetadata, get_model_metadata_pb2.GetModelMetadataRequest(
        model_spec={"name": "sentiment"}))[0] == grpc.StatusCode.INVALID_ARGUMENT  # no metadata_field
    assert code_of(model.GetModelStatus, get_model_status_pb2.GetModelStatusRequest(
        model_spec={"name": "nothing"}))[0] == grpc.StatusCode.NOT_FOUND


# ---------------------------------------------------------------------------------------------- versions

def test_new_version_while_requests_flow_then_corrupt_then_removed(server, model_base, export_v1, features, expected):
    """v2 dropped in under load: no failed request, v2 answers afterwards and v1 is unloaded. A corrupt v3
    is reported (END + error) while v2 keeps serving. Removing v2 from disk brings v1 back."""
    prediction, model = grpc_stubs(server.grpc_port)
    failures, versions_seen, stop = [], set(), threading.Event()

    def grpc_client():
        while not stop.is_set():
            try:
                versions_seen.add(prediction.Predict(predict_request(features), timeout=30).model_spec.version.value)
            except Exception as exc:  # noqa: BLE001  (any failure fails the test)
                failures.append(repr(exc))

    def rest_client():
        body = {"inputs": {k: v.tolist() for k, v in features.items()}}
        while not stop.is_set():
            status, answer = http(server.rest_port, "POST", "/v1/models/sentiment:predict", body)
            if status != 200:
                failures.append(answer)

    clients = [threading.Thread(target=grpc_client), threading.Thread(target=rest_client)]
    for c in clients:
        c.start()
    try:
        time.sleep(0.3)
        add_version(model_base / "sentiment", export_v1, 2)
        wait_until(lambda: 2 in versions_seen, what="version 2 answering")
        time.sleep(0.3)
    finally:
        stop.set()
        for c in clients:
            c.join()
    assert not failures, failures[:3]
    response = prediction.Predict(predict_request(features), timeout=30)
    assert response.model_spec.version.value == 2
    np.testing.assert_allclose(outputs_of(response)["probabilities"], expected["probabilities"], atol=1e-6)
    status, answer = http(server.rest_port, "GET", "/v1/models/sentiment")
    assert [(s["version"], s["state"]) for s in answer["model_version_status"]] == [("1", "END"), ("2", "AVAILABLE")]

    broken = model_base / "sentiment" / ".export-3-broken"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"this is not a SavedModel")
    broken.rename(model_base / "sentiment" / "3")

    def version_3_state():
        code, answer = http(server.rest_port, "GET", "/v1/models/sentiment/versions/3")
        return answer["model_version_status"][0] if code == 200 and \
            answer["model_version_status"][0]["state"] == "END" else None

    state = wait_until(version_3_state, what="version 3 reported")
    assert state["status"]["error_code"] != "OK" and "Failed to load servable version 3" in state["status"]["error_message"]
    assert prediction.Predict(predict_request(features), timeout=30).model_spec.version.value == 2
    assert http(server.rest_port, "POST", "/v1/models/sentiment/versions/3:predict",
                {"instances": [_row(features)]})[0] == 404
    from tensorflow_serving.apis import get_model_status_pb2

    status_3 = model.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(
        model_spec={"name": "sentiment", "version": {"value": 3}})).model_version_status[0]
    assert status_3.state == get_model_status_pb2.ModelVersionStatus.END and status_3.status.error_code != 0

    shutil.rmtree(model_base / "sentiment" / "3")
    shutil.rmtree(model_base / "sentiment" / "2")
    wait_until(lambda: prediction.Predict(predict_request(features), timeout=30).model_spec.version.value == 1,
               what="version 1 serving again after version 2 was removed")
    states = {s["version"]: s["state"] for s in http(server.rest_port, "GET", "/v1/models/sentiment")[1]["model_version_status"]}
    assert states["2"] == "END" and states["1"] == "AVAILABLE"


# ---------------------------------------------------------------------------------------------- warm-up, metrics

def test_warmup_replayed_and_metrics_endpoint(server, model_base, features):
    prediction, _ = grpc_stubs(server.grpc_port)
    prediction.Predict(predict_request(features), timeout=30)
    http(server.rest_port, "POST", "/v1/models/nothing:predict", {"instances": [[1]]})
    status, text = http(server.rest_port, "GET", "/monitoring/prometheus/metrics")
    assert status == 200
    lines = text.splitlines()
    version_1 = str((model_base / "sentiment" / "1").resolve())
    warm = [l for l in lines if l.startswith(":tensorflow:serving:model_warmup_records_read{")
            and version_1 + '"' in l and 'status="OK"' in l]
    assert warm and float(warm[0].split()[-1]) >= 3, "three warm-up records (one per length bucket) replayed"
    ok = [l for l in lines if l.startswith(':tensorflow:serving:request_count{model_name="sentiment",status="OK"}')]
    assert ok and float(ok[0].split()[-1]) >= 1
    assert any(l.startswith(':tensorflow:serving:request_count{model_name="nothing",status="NOT_FOUND"}') for l in lines)
    assert any(l.startswith(":tensorflow:serving:request_latency_bucket{") and 'entrypoint="GRPC"' in l for l in lines)
    assert any(l.startswith(":tfxformers:serving:model_version_state{") and 'state="AVAILABLE"' in l
               and l.endswith(" 1.0") for l in lines)
    assert any(l.startswith(":tensorflow:cc:saved_model:load_attempt_count{") for l in lines)


# ---------------------------------------------------------------------------------------------- config file

def test_config_file_specific_versions_and_labels(export_v1, features, tmp_path):
    """specific versions + labels from a config file; the file is re-polled (labels move, versions change);
    a gRPC reload that labels an unavailable version is FAILED_PRECONDITION."""
    import grpc
    from google.protobuf import text_format
    from tensorflow_serving.apis import get_model_status_pb2, model_management_pb2
    from tensorflow_serving.config import model_server_config_pb2

    from tfxformers.serving.server.server import ModelServer

    models = tmp_path / "models" / "clf"
    models.mkdir(parents=True)
    for version in (1, 2, 3):
        add_version(models, export_v1, version)
    config = tmp_path / "models.config"
    config.write_text("""
model_config_list {
  config {
    name: "clf"
    base_path: "models/clf"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 1 versions: 2 } }
    version_labels { key: "stable" value: 1 }
    version_labels { key: "canary" value: 2 }
  }
}
""")
    srv = ModelServer(model_config_file=config, grpc_port=0, rest_port=0, host="127.0.0.1",
                      file_system_poll_wait_seconds=0, model_config_file_poll_wait_seconds=0.2)
    srv.start()
    try:
        body = {"instances": [_row(features)]}
        assert http(srv.rest_port, "POST", "/v1/models/clf/labels/stable:predict", body)[0] == 200
        status, answer = http(srv.rest_port, "GET", "/v1/models/clf")
        assert [(s["version"], s["state"]) for s in answer["model_version_status"]] == [
            ("1", "AVAILABLE"), ("2", "AVAILABLE")]  # 3 is on disk but not in the policy
        prediction, model = grpc_stubs(srv.grpc_port)
        assert prediction.Predict(predict_request(features, name="clf", label="stable")).model_spec.version.value == 1
        assert prediction.Predict(predict_request(features, name="clf", label="canary")).model_spec.version.value == 2
        assert prediction.Predict(predict_request(features, name="clf")).model_spec.version.value == 2
        assert http(srv.rest_port, "POST", "/v1/models/clf/versions/3:predict", body)[0] == 404
        assert http(srv.rest_port, "POST", "/v1/models/clf/labels/beta:predict", body)[0] == 400
        status = model.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(
            model_spec={"name": "clf", "version": {"value": 2}}))
        assert [s.version for s in status.model_version_status] == [2]

        config.write_text(config.read_text().replace("versions: 1 versions: 2", "versions: 2 versions: 3")
                          .replace('key: "stable" value: 1', 'key: "stable" value: 2')
                          .replace('key: "canary" value: 2', 'key: "canary" value: 3'))
        wait_until(lambda: prediction.Predict(predict_request(features, name="clf", label="canary")
                                              ).model_spec.version.value == 3, what="the re-read config applied")
        assert prediction.Predict(predict_request(features, name="clf", label="stable")).model_spec.version.value == 2
        states = {s["version"]: s["state"] for s in http(srv.rest_port, "GET", "/v1/models/clf")[1]["model_version_status"]}
        assert states == {"1": "END", "2": "AVAILABLE", "3": "AVAILABLE"}

        bad = text_format.Parse(config.read_text().replace('value: 3', 'value: 7'),
                                model_server_config_pb2.ModelServerConfig())
        bad.model_config_list.config[0].base_path = str(models)
        with pytest.raises(grpc.RpcError) as info:
            model.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=bad), timeout=60)
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert prediction.Predict(predict_request(features, name="clf", label="canary")).model_spec.version.value == 3
    finally:
        srv.stop()


def test_bad_server_options_are_user_errors(tmp_path, capsys):
    from tfxformers.cli import main

    assert main(["serve", "--model-base", str(tmp_path / "missing")]) == 2
    assert "error:" in capsys.readouterr().err
    bad = tmp_path / "bad.config"
    bad.write_text("model_config_list { config { nme: 'x' } }")
    assert main(["serve", "--model-config-file", str(bad)]) == 2
    assert "ModelServerConfig" in capsys.readouterr().err
    (tmp_path / "m").mkdir()
    assert main(["serve", "--model-base", str(tmp_path / "m"), "--batching-parameters-file", str(bad)]) == 2
    assert "--enable-batching" in capsys.readouterr().err
    assert main(["serve", "--model-base", str(tmp_path / "m"), "--enable-batching",
                 "--batching-parameters-file", str(bad)]) == 2
    assert "BatchingParameters" in capsys.readouterr().err
    assert main(["serve", "--model-base", str(tmp_path / "m"), "--grpc-port", "70000"]) == 2
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["serve", "--model-base", str(tmp_path / "m"), "--host", "127.0.0.1", "--grpc-port", "0",
                     "--rest-port", str(taken.getsockname()[1])]) == 2
    assert "cannot listen" in capsys.readouterr().err
    labelled = tmp_path / "labelled.config"
    labelled.write_text('model_config_list { config { name: "x" base_path: "m" version_labels { key: "stable" '
                        'value: 5 } } }')
    assert main(["serve", "--model-config-file", str(labelled), "--grpc-port", "0", "--rest-port", "0",
                 "--host", "127.0.0.1"]) == 2
    assert "not currently available" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- CLI subprocess

def test_cli_subprocess_serves_and_stops_on_sigterm(model_base, features, tmp_path):
    from tfxformers.testing import start_model_server, stop_model_server

    base = tmp_path / "sm"
    shutil.copytree(model_base, base)
    process, grpc_port, rest_port = start_model_server(base, monitoring_config_file=ROOT / "deploy" / "monitoring.config")
    try:
        prediction, _ = grpc_stubs(grpc_port)
        assert prediction.Predict(predict_request(features), timeout=30).outputs["probabilities"].float_val
        assert http(rest_port, "GET", "/monitoring/prometheus/metrics")[0] == 200
    finally:
        code = stop_model_server(process)
    log = Path(process.log_path).read_text()
    assert code == 0, log[-2000:]
    assert f"serving 1 models on gRPC 127.0.0.1:{grpc_port}, REST 127.0.0.1:{rest_port}" in log
    assert "Traceback" not in log


# ---------------------------------------------------------------------------------------------- batching

def test_batching_concurrent_different_lengths_give_unbatched_answers(model_base, tokenizer, expected, tmp_path):
    """Requests of different lengths are merged and padded with each tensor's first element ([CLS], mask 1),
    as TF Serving does; the export's [SEP]-bounded mask keeps every answer equal to the unbatched one."""
    from tfxformers.serving.server.server import ModelServer

    params = tmp_path / "batching.txt"
    params.write_text("max_batch_size { value: 8 }\nbatch_timeout_micros { value: 200000 }\n"
                      "num_batch_threads { value: 1 }\nmax_enqueued_batches { value: 10 }\n"
                      "allowed_batch_sizes: 4\nallowed_batch_sizes: 8\npad_variable_length_inputs: true\n")
    rows = [tokenizer(text)["input_ids"] for text in TEXTS]
    assert len({len(r) for r in rows}) == len(rows)  # every request has its own length
    srv = ModelServer(model_base=model_base, grpc_port=0, rest_port=0, host="127.0.0.1", enable_batching=True,
                      batching_parameters_file=params, monitoring_config_file=ROOT / "deploy" / "monitoring.config",
                      file_system_poll_wait_seconds=0)
    srv.start()
    try:
        prediction, _ = grpc_stubs(srv.grpc_port)
        answers, errors = {}, []
        barrier = threading.Barrier(len(rows) * 2)

        def call(i, repeat):
            ids = np.asarray([rows[i]], dtype=np.int32)
            barrier.wait()
            try:
                if repeat == 0:
                    out = outputs_of(prediction.Predict(predict_request(
                        {"input_ids": ids, "attention_mask": np.ones_like(ids)}), timeout=30))["probabilities"][0]
                else:
                    code, answer = http(srv.rest_port, "POST", "/v1/models/sentiment:predict",
                                        {"instances": [{"input_ids": rows[i], "attention_mask": [1] * len(rows[i])}]})
                    assert code == 200, answer
                    out = np.asarray(answer["predictions"][0]["probabilities"])
                answers[(i, repeat)] = out
            except Exception as exc:  # noqa: BLE001
                errors.append(repr(exc))

        threads = [threading.Thread(target=call, args=(i, r)) for i in range(len(rows)) for r in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        for (i, _), probabilities in answers.items():
            np.testing.assert_allclose(probabilities, expected["probabilities"][i], atol=1e-5)
        metrics = http(srv.rest_port, "GET", "/monitoring/prometheus/metrics")[1].splitlines()
        value = {l.split()[0]: float(l.split()[1]) for l in metrics if l.startswith(":tensorflow:serving:batching")}
        batches = value[":tensorflow:serving:batching_session:processed_batch_size_count"]
        assert batches < len(threads), "requests were merged into batches"
        assert value[':tensorflow:serving:batching_session:processed_batch_size_bucket{le="2.0"}'] < batches, \
            "batches were padded to an allowed size (4 or 8)"
    finally:
        srv.stop()
