"""What can be checked of the proxy's container here (no Docker engine): the compose file, the Dockerfile's
paths and module set, the pinned requirements, and the committed gRPC descriptors."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line)
        if match:
            pins[_norm(match.group(1))] = match.group(2)
    return pins


def _installed(name: str) -> bool:
    import importlib.metadata

    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _dockerfile_copies() -> list[tuple[list[str], str]]:
    copies = []
    for line in (ROOT / "Dockerfile.proxy").read_text().splitlines():
        if line.startswith("COPY "):
            *sources, target = line.split()[1:]
            copies.append((sources, target))
    return copies


def test_compose_file_runs_serving_and_proxy_on_the_documented_ports():
    from tfxformers.serving.proxy.settings import ProxySettings

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"serving", "proxy"}
    assert services["serving"]["ports"] == ["8500:8500", "8501:8501"]
    assert services["proxy"]["ports"] == ["8000:8000"]
    for service in services.values():
        assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
    environment = services["proxy"]["environment"]
    settings = ProxySettings(**{k[len("TFXFORMERS_"):].lower(): v for k, v in environment.items()})
    assert settings.backend == "grpc://serving:8500" and settings.backend_kind == "grpc"
    assert services["proxy"]["depends_on"] == ["serving"]


def _base_python() -> str:
    """The X.Y of the image's ``FROM python:X.Y-slim``."""
    found = re.findall(r"^FROM python:(3\.\d+)-slim$", (ROOT / "Dockerfile.proxy").read_text(), re.M)
    assert len(found) == 1, found
    return found[0]


def test_dockerfile_is_slim_non_root_and_copies_existing_paths():
    text = (ROOT / "Dockerfile.proxy").read_text()
    # Issue 12: the proxy runs the current stack's Python, and its pins were resolved for that Python.
    assert _base_python() == "3.12"
    resolved_for = re.search(r"--python-version (\S+)", (ROOT / "requirements" / "proxy.txt").read_text())
    assert resolved_for and resolved_for.group(1) == _base_python()
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and user[-1] not in ("root", "0")
    instructions = "\n".join(line for line in text.lower().splitlines() if not line.startswith("#"))
    assert "tensorflow" not in instructions and "pip install --no-deps -r /tmp/proxy.txt" in instructions
    for sources, _ in _dockerfile_copies():
        for source in sources:
            assert (ROOT / source).exists(), source


def test_proxy_requirements_are_lock_pins_and_a_complete_closure():
    import importlib.metadata

    from packaging.requirements import Requirement

    # The image's Python is the current stack's, so its pins are current.lock's.
    pins, lock = _pins(ROOT / "requirements" / "proxy.txt"), _pins(ROOT / "requirements" / "current.lock")
    assert {name: lock.get(name) for name in pins} == pins
    direct = {_norm(line.strip()) for line in (ROOT / "requirements" / "proxy.in").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    assert direct <= set(pins), direct - set(pins)
    assert not any(name.startswith("tensorflow") or name in ("tf-keras", "tfx", "numpy", "transformers") for name in pins)
    installed = {name: importlib.metadata.version(name) for name in pins if _installed(name)}
    if installed != pins:
        # The closure is read from installed metadata, which only the current stack (the proxy image's
        # Python 3.12 set, current.lock) has at exactly these versions.
        pytest.skip("the installed packages are not current.lock's (legacy stack): closure not checkable")
    python = _base_python()
    env = {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
           "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
    missing = set()
    for name in pins:
        for requirement in importlib.metadata.distribution(name).requires or []:
            req = Requirement(requirement)
            if (req.marker is None or req.marker.evaluate(env)) and _norm(req.name) not in pins:
                missing.add(f"{req.name} (needed by {name})")
    assert not missing, "requirements/proxy.txt misses " + ", ".join(sorted(missing))


def test_the_image_layout_runs_the_proxy_without_tensorflow(tmp_path):
    """Lay the files out as the Dockerfile does, then build the app and serve requests from that copy alone."""
    for sources, target in _dockerfile_copies():
        if sources == ["requirements/proxy.txt"]:
            continue
        destination = tmp_path / target
        for source in sources:
            path = ROOT / source
            if path.is_dir():
                shutil.copytree(path, destination, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                destination.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, destination / path.name)
    script = f"""
import sys
import fastapi, uvicorn, grpc, google.protobuf, tokenizers, prometheus_client, pydantic_settings, httpx
from fastapi.testclient import TestClient
import tfxformers
assert tfxformers.__file__.startswith({str(tmp_path)!r}), tfxformers.__file__
from tfxformers.serving.proxy.app import create_app
from tfxformers.serving.proxy.settings import ProxySettings
app = create_app(ProxySettings(backend="grpc://127.0.0.1:9", timeout_seconds=2))
with TestClient(app) as client:
    assert client.get("/healthz").status_code == 200
    assert client.post("/v1/models/m:classify", json={{"texts": ["hello"]}}).status_code == 503
    assert client.post("/v1/models/m:tag", json={{"texts": ["hello"], "aggregation": "max"}}).status_code == 503
    assert client.get("/openapi.json").status_code == 200
own = [m.__file__ for n, m in sys.modules.items() if n.startswith("tfxformers") and getattr(m, "__file__", None)]
assert all(f.startswith({str(tmp_path)!r}) for f in own), own
heavy = sorted(n for n in sys.modules if n.split(".")[0] in ("tensorflow", "tensorflow_serving", "numpy", "transformers"))
assert not heavy, heavy
print("ok")
"""
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert ran.returncode == 0 and ran.stdout.strip() == "ok", ran.stderr[-3000:]
    shown = subprocess.run([sys.executable, "-m", "tfxformers.serving.proxy", "--help"], capture_output=True,
                           text=True, timeout=60, cwd=tmp_path, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert shown.returncode == 0 and "--backend" in shown.stdout, shown.stderr[-2000:]
    # A bad argument is refused before anything starts, with the modules the image carries (a helper the
    # CLI imports but the Dockerfile forgets would show up here as a traceback).
    refused = subprocess.run([sys.executable, "-m", "tfxformers.serving.proxy", "--port", "not-a-port"],
                             capture_output=True, text=True, timeout=60, cwd=tmp_path,
                             env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr[-2000:]
    assert refused.stderr.rstrip().splitlines()[-1].startswith(("error: ", "tfxformers-proxy: error: ")), refused.stderr


def _fields(descriptor_set_bytes: bytes) -> set[tuple]:
    from google.protobuf import descriptor_pb2

    fields = set()
    for file in descriptor_pb2.FileDescriptorSet.FromString(descriptor_set_bytes).file:
        def visit(prefix, messages):
            for message in messages:
                name = f"{prefix}.{message.name}"
                fields.update((name, f.name, f.number, f.type, f.label, f.type_name) for f in message.field)
                visit(name, message.nested_type)
        visit(file.package, file.message_type)
    return fields


def test_committed_grpc_descriptors_are_current():
    import base64
    import importlib.metadata

    lock = _pins(ROOT / "requirements" / "requirements.lock")
    if importlib.metadata.version("tensorflow-serving-api") == lock["tensorflow-serving-api"]:
        ran = subprocess.run([sys.executable, "-m", "tfxformers.serving.proxy.make_descriptors", "--check"],
                             capture_output=True, text=True, timeout=300)
        assert ran.returncode == 0, ran.stderr[-2000:]
        return
    # Another stack's tensorflow-serving-api (current.lock): the committed descriptors, generated from
    # requirements.lock's, must still be wire-compatible: every field the proxy knows, same number and type.
    from tfxformers.serving.proxy import _descriptors, make_descriptors

    committed = _fields(base64.b64decode(_descriptors.FILE_DESCRIPTOR_SET))
    installed = _fields(make_descriptors.file_descriptor_set_bytes())
    assert committed and not committed - installed, sorted(committed - installed)[:10]


def test_method_paths_and_messages_match_tensorflow_serving():
    from tensorflow_serving.apis import model_service_pb2, prediction_service_pb2, predict_pb2

    from tfxformers.serving.proxy import protos

    for module, service, method, path in [
        (prediction_service_pb2, "PredictionService", "Predict", protos.PREDICT_METHOD),
        (model_service_pb2, "ModelService", "GetModelStatus", protos.GET_MODEL_STATUS_METHOD),
    ]:
        descriptor = module.DESCRIPTOR.services_by_name[service].methods_by_name[method]
        assert path == f"/{descriptor.containing_service.full_name}/{descriptor.name}"
    m = protos.messages()
    ours = m.PredictRequest()
    ours.model_spec.name = "sentiment"
    ours.model_spec.version.value = 3
    ours.model_spec.signature_name = "serving_default"
    ours.inputs["input_ids"].CopyFrom(protos.tensor_proto([[101, 7, 102], [101, 102, 0]]))
    theirs = predict_pb2.PredictRequest.FromString(ours.SerializeToString())
    assert theirs.model_spec.version.value == 3 and theirs.model_spec.signature_name == "serving_default"


@pytest.mark.parametrize("dtype,rows", [("DT_INT32", [[1, -2, 3], [4, 5, 2**31 - 1]]), ("DT_FLOAT", [[0.5, -1.25]])])
def test_tensor_packing_matches_tensorflow(dtype, rows):
    import numpy as np
    import tensorflow as tf

    from tfxformers.serving.proxy import protos

    ours = protos.tensor_proto(rows, dtype)
    expected = np.asarray(rows, dtype=np.int32 if dtype == "DT_INT32" else np.float32)
    np.testing.assert_array_equal(tf.make_ndarray(tf.make_tensor_proto(expected).__class__.FromString(ours.SerializeToString())), expected)
    back = protos.from_tensor_proto(protos.messages().TensorProto.FromString(
        tf.make_tensor_proto(expected).SerializeToString()))
    assert back == rows
    strings = tf.make_tensor_proto(np.asarray([b"a", b"bc"], dtype=object))
    assert protos.from_tensor_proto(protos.messages().TensorProto.FromString(strings.SerializeToString())) == [b"a", b"bc"]
