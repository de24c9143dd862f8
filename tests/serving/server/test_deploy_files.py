"""Deployment files parse as the messages TensorFlow Serving reads, and the Dockerfile copies real paths.

``models.config`` is parsed with the ``tensorflow-serving-api`` proto. That package does not ship the
BatchingParameters and MonitoringConfig messages; ``tfxformers.serving.server.config.config_messages``
declares them with the field names, numbers and types of TF Serving's ``session_bundle_config.proto`` and
``monitoring_config.proto`` (the embedded server reads the same files with them), so a misspelt or
mistyped field fails to parse exactly as it would in the server.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from google.protobuf import text_format

ROOT = Path(__file__).resolve().parents[3]


def test_models_config_parses_as_model_server_config():
    from tensorflow_serving.config import model_server_config_pb2

    config = text_format.Parse((ROOT / "deploy" / "models.config").read_text(), model_server_config_pb2.ModelServerConfig())
    names = [c.name for c in config.model_config_list.config]
    assert names == ["sentiment"]
    assert config.model_config_list.config[0].base_path == "/models/sentiment"
    assert config.model_config_list.config[0].model_version_policy.HasField("latest")


def test_batching_and_monitoring_files_parse():
    from tfxformers.serving.server.config import config_messages

    messages = config_messages()
    batching_cls, monitoring_cls = messages["BatchingParameters"], messages["MonitoringConfig"]
    batching = text_format.Parse((ROOT / "deploy" / "batching_parameters.txt").read_text(), batching_cls())
    assert batching.max_batch_size.value == 32 and batching.pad_variable_length_inputs
    assert max(batching.allowed_batch_sizes) == batching.max_batch_size.value  # TF Serving requires this
    monitoring = text_format.Parse((ROOT / "deploy" / "monitoring.config").read_text(), monitoring_cls())
    assert monitoring.prometheus_config.enable
    assert monitoring.prometheus_config.path == "/monitoring/prometheus/metrics"
    with pytest.raises(text_format.ParseError):  # the check is real: a typo does not parse
        text_format.Parse("max_batch_sise { value: 3 }", batching_cls())


def test_dockerfile_copies_paths_that_exist_or_that_make_demo_writes():
    from tfxformers.demo.common import DEMO_MODEL_BASE

    dockerfile = (ROOT / "Dockerfile.serving").read_text()
    assert re.search(r"^FROM tensorflow/serving:\$\{TF_SERVING_VERSION\}\$\{VARIANT\}", dockerfile, re.M)
    # The default release is serving/export/release.py's (tests/serving/export/test_tfserving_release.py).
    assert "ARG TF_SERVING_VERSION=2.20.0" in dockerfile and "ARG VARIANT=-gpu" in dockerfile
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M)
    assert "EXPOSE 8500 8501" in dockerfile
    sources = []
    for line in re.findall(r"^COPY (.+)$", dockerfile, re.M):
        sources += line.split()[:-1]
    assert sources
    for source in sources:
        if source.rstrip("/") == DEMO_MODEL_BASE:
            continue  # written by `make demo` (tfxformers demo exports there)
        assert (ROOT / source).exists(), source
    for flag in ("--model_config_file=/config/models.config", "--enable_batching=true",
                 "--enable_per_model_batching_parameters=true",
                 "--batching_parameters_file=/config/batching_parameters.txt",
                 "--monitoring_config_file=/config/monitoring.config"):
        assert flag in dockerfile
