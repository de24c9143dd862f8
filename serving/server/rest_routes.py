"""The REST routes of the embedded model server: TF Serving's ``/v1/models/...`` API, dispatched to the manager.

Paths, error texts and HTTP statuses follow tensorflow/serving ``model_servers/http_rest_api_handler.cc``
and ``http_server.cc``:

* ``GET /v1/models/NAME[/versions/V|/labels/L]``: GetModelStatusResponse as JSON (all fields printed);
* ``GET .../metadata``: ``{"model_spec": ..., "metadata": {"signature_def": SignatureDefMap}}``;
* ``POST /v1/models/NAME[/versions/V|/labels/L]:predict`` (``rest_codec.py`` has the body and answer formats);
  the answer's JSON is TF Serving's, which names no version, so the version that computed it is in the
  ``X-Model-Version`` header (gRPC's PredictResponse carries it in ``model_spec.version``): during a
  version swap a client can tell which version answered;
* errors: ``{"error": "<message>"}`` with the HTTP status of the gRPC code (404 NOT_FOUND, 400
  INVALID_ARGUMENT / FAILED_PRECONDITION, 503 UNAVAILABLE, 501 UNIMPLEMENTED, 500 otherwise); a body over
  ``--max-request-bytes`` is 413 without being read (``limits.py`` has every request limit);
* ``GET <prometheus path>`` (``--monitoring-config-file``): Prometheus text exposition;
* ``GET /readyz`` (this server's own): 200 when every model has an AVAILABLE version, 503 once a drain
  started (SIGTERM) or while a model has none.

``RestApi.handle(method, path, body, headers)`` returns (status, content type, body) and adds answer headers
to ``headers``; ``rest_server.py`` is the HTTP plumbing around it.
"""
from __future__ import annotations

import json
import re
import time
import urllib.parse

from tfxformers.serving.server.admission import DRAIN_MESSAGE, Admission
from tfxformers.serving.server.errors import ServingError
from tfxformers.serving.server.limits import ServerLimits, check_shapes, check_values
from tfxformers.serving.server.rest_codec import metadata_json, outputs_to_json, parse_predict_body, status_json
from tfxformers.serving.server.status import model_metadata, model_status


PREDICT_RE = re.compile(r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
                        re.IGNORECASE)
VERSION_HEADER = "X-Model-Version"  # not TF Serving's: the version that answered a :predict
READY_PATH = "/readyz"  # not TF Serving's: for load balancers and Kubernetes readiness probes
STATUS_RE = re.compile(r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
                       re.IGNORECASE)


class RestApi:
    """Dispatches one HTTP request to the manager; returns (status, content type, body)."""

    def __init__(self, manager, metrics, prometheus_path: str | None, limits=None, admission=None):
        self.manager, self.metrics, self.prometheus_path = manager, metrics, prometheus_path
        self.limits = limits if limits is not None else ServerLimits()
        self.admission = admission if admission is not None else Admission(self.limits.max_tokens)

    def refuse_body(self, method: str, raw_path: str, length: int) -> tuple[int, str, bytes]:
        """413 for a body over --max-request-bytes, answered from its Content-Length alone: the body is
        neither read nor parsed (JSON parsing takes several times the body in memory)."""
        path = urllib.parse.urlsplit(raw_path).path
        m = PREDICT_RE.fullmatch(path)
        model_name = self._name(m.group(1)) if m else ""
        self.metrics.request(model_name, "RESOURCE_EXHAUSTED", m.group(4).lower() if m else method.lower(), "REST",
                             None)
        message = (f"the request body is {length} bytes; the limit is {self.limits.max_request_bytes} bytes "
                   "(--max-request-bytes)")
        return 413, "application/json", json.dumps({"error": message}).encode()

    def handle(self, method: str, raw_path: str, body: bytes, headers: dict | None = None) -> tuple[int, str, bytes]:
        path = urllib.parse.urlsplit(raw_path).path
        if self.prometheus_path is not None and path == self.prometheus_path and method == "GET":
            return 200, "text/plain; version=0.0.4; charset=utf-8", self.metrics.exposition()
        if path == READY_PATH and method == "GET":
            return self._ready()
        if not re.fullmatch(r"/v1/.*", path, re.IGNORECASE):
            return 404, "text/html", b"<HTML><HEAD>\n<TITLE>Not Found</TITLE>\n</HEAD><BODY>\n<H1>Not Found</H1>\n</BODY></HTML>\n"
        started = time.perf_counter()
        model_name, api = "", method.lower()
        try:
            if method == "POST" and (m := PREDICT_RE.fullmatch(path)):
                model_name, api = self._name(m.group(1)), m.group(4).lower()
                version, label = self._version(m.group(2)), self._label(m.group(3))
                if api != "predict":
                    raise ServingError("UNIMPLEMENTED", f"{api} is not supported by this server; use :predict")
                out, answered_by = self._predict(model_name, version, label, body)
                if headers is not None:
                    headers[VERSION_HEADER] = str(answered_by)
            elif method == "GET" and (m := STATUS_RE.fullmatch(path)):
                model_name = self._name(m.group(1) or "")
                version, label = self._version(m.group(2)), self._label(m.group(3))
                if m.group(4):
                    api = "GetModelMetadata"
                    out = self._metadata(model_name, version, label)
                else:
                    api = "GetModelStatus"
                    out = self._status(model_name, version, label)
            else:
                raise ServingError("INVALID_ARGUMENT", f"Malformed request: {method} {path}")
        except ServingError as exc:
            self.metrics.request(model_name, exc.code, api, "REST", None)
            return exc.http_status, "application/json", json.dumps({"error": exc.message}).encode()
        self.metrics.request(model_name, "OK", api, "REST", time.perf_counter() - started)
        return 200, "application/json", out.encode()

    @staticmethod
    def _name(text: str) -> str:
        return urllib.parse.unquote(text)

    @staticmethod
    def _version(text):
        if not text:
            return None
        try:
            return int(text)
        except ValueError:
            raise ServingError("INVALID_ARGUMENT", f"Failed to convert version: {text} to numeric.") from None

    @staticmethod
    def _label(text):
        return urllib.parse.unquote(text) if text else None

    def _predict(self, name, version, label, body) -> tuple[str, int]:
        resolved = []

        def infos(signature_name):  # TF Serving resolves the model after parsing the JSON body
            resolved.append(self.manager.resolve(name, version, label))
            return resolved[0].signature(signature_name, rest=True)[1].inputs

        def shapes_ok(signature_name, shapes):
            check_shapes(self.limits, resolved[0], resolved[0].signature(signature_name, rest=True)[0], shapes)

        signature_name, inputs, fmt = parse_predict_body(body, infos, shapes_ok)
        servable = resolved[0]
        tokens = check_values(self.limits, servable, servable.signature(signature_name, rest=True)[0], inputs)
        with self.admission.work(tokens):
            signature_name, outputs = servable.predict(signature_name, inputs)
        sig = servable.signature_defs[signature_name]
        return outputs_to_json(outputs, {k: sig.outputs[k].dtype for k in outputs}, fmt), servable.version

    def _ready(self) -> tuple[int, str, bytes]:
        """``GET /readyz``: 200 while every configured model has an AVAILABLE version and no drain started."""
        if self.admission.draining:
            return 503, "application/json", json.dumps({"error": DRAIN_MESSAGE}).encode()
        missing = [name for name in sorted(self.manager.configs)
                   if not any(state.state == "AVAILABLE" for state in self.manager.states.get(name, {}).values())]
        if missing:
            return 503, "application/json", json.dumps(
                {"error": f"no version AVAILABLE yet for: {', '.join(missing)}"}).encode()
        return 200, "application/json", json.dumps({"status": "ready"}).encode()

    def _status(self, name, version, label) -> str:
        from tensorflow_serving.apis import get_model_status_pb2

        request = _with_model_spec(get_model_status_pb2.GetModelStatusRequest(), name, version, label)
        return status_json(model_status(self.manager, request))

    def _metadata(self, name, version, label) -> str:
        from tensorflow_serving.apis import get_model_metadata_pb2

        request = _with_model_spec(get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"]),
                                   name, version, label)
        return metadata_json(model_metadata(self.manager, request))



def _with_model_spec(request, name, version, label):
    """Fill ``request.model_spec`` from a REST path, refusing what TF Serving's REST handler refuses."""
    if not name:
        raise ServingError("INVALID_ARGUMENT", "Missing model name in request.")
    if version is not None and label is not None:
        raise ServingError("INVALID_ARGUMENT", f"Both model version ({version}) and model version label "
                                               f"({label}) cannot be supplied.")
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    elif label is not None:
        request.model_spec.version_label = label
    return request
