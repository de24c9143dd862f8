"""Clients for TensorFlow Serving's two APIs, behind one small interface the rest of the proxy uses.

``GrpcBackend`` calls ``PredictionService/Predict`` and ``ModelService/GetModelStatus`` on one reused
``grpc.aio`` channel (messages from ``protos.py``, so no TensorFlow); ``RestBackend`` calls
``/v1/models/...`` with one reused ``httpx.AsyncClient``. Both take a ``Deadline``: every call gets the
time left of the request's budget, and failures become the proxy's errors (unreachable -> 503, past
the deadline -> 504, unknown model -> 404, any other server error -> 502) with a message a user can act on.
"""
from __future__ import annotations

import time
from typing import Any, Callable
from urllib.parse import quote, urlsplit

from tfxformers.serving.proxy import errors

# (dtype, value): dtype "DT_INT32" / "DT_FLOAT"; value a list of equal-length rows, a list, or a scalar.
Inputs = dict[str, tuple[str, Any]]
Observer = Callable[[str, float, str], None]


class Deadline:
    """The time budget of one proxy request, shared by all its backend calls."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise errors.BackendTimeout(f"the model server did not answer within {self.seconds:g} s")
        return left


class Backend:
    """What the proxy needs from TF Serving; subclasses speak gRPC or REST."""

    kind = "abstract"

    def __init__(self, url: str, observe: Observer | None = None):
        self.url = url
        self._observe = observe or (lambda method, seconds, outcome: None)

    async def start(self) -> None:
        """Open the connection (inside the running event loop)."""

    async def close(self) -> None:
        """Close it."""

    async def versions(self, name: str, deadline: Deadline) -> dict[int, str]:
        """Version -> state name (``AVAILABLE``, ``LOADING``, ...) of every version the server knows."""
        raise NotImplementedError

    async def predict(self, name: str, version: int, signature: str, inputs: Inputs, outputs: list[str],
                      deadline: Deadline) -> dict[str, Any]:
        """Run one signature of one version; answers the named outputs as nested Python lists."""
        raise NotImplementedError

    def _timed(self, method: str, started: float, outcome: str) -> None:
        self._observe(method, time.perf_counter() - started, outcome)


class GrpcBackend(Backend):
    kind = "grpc"

    def __init__(self, url: str, observe: Observer | None = None):
        super().__init__(url, observe)
        parts = urlsplit(url)
        self.target = f"{parts.hostname}:{parts.port}"
        self._channel = None

    async def start(self) -> None:
        import grpc

        from tfxformers.serving.proxy import protos

        m = protos.messages()
        self._grpc = grpc
        self._channel = grpc.aio.insecure_channel(self.target, options=[
            # tokenizer.json answers are a few MB; gRPC's default limit is 4 MB.
            ("grpc.max_receive_message_length", 256 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            # After the server comes back, reconnect within about a second instead of gRPC's default
            # exponential backoff of up to two minutes, so the proxy recovers by itself.
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.min_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 1000),
            ("grpc.keepalive_time_ms", 30_000),
        ])
        self._predict = self._channel.unary_unary(
            protos.PREDICT_METHOD, request_serializer=m.PredictRequest.SerializeToString,
            response_deserializer=m.PredictResponse.FromString)
        self._status = self._channel.unary_unary(
            protos.GET_MODEL_STATUS_METHOD, request_serializer=m.GetModelStatusRequest.SerializeToString,
            response_deserializer=m.GetModelStatusResponse.FromString)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    def _error(self, exc, name: str, deadline: Deadline, during_predict: bool) -> errors.ProxyError:
        code = exc.code()
        codes = self._grpc.StatusCode
        details = exc.details() or code.name
        if code == codes.DEADLINE_EXCEEDED:
            return errors.BackendTimeout(f"the model server did not answer within {deadline.seconds:g} s")
        if code in (codes.UNAVAILABLE, codes.CANCELLED):
            return errors.BackendUnavailable(f"cannot reach the model server at {self.url}: {details}")
        if code == codes.NOT_FOUND:
            if during_predict:
                return errors.VersionGone(f"model {name!r}: {details}")
            return errors.ModelNotFound(f"model {name!r} is not served by {self.url}")
        return errors.BackendFailed(f"the model server answered {code.name}: {details}")

    async def _call(self, method: str, rpc, request, name: str, deadline: Deadline):
        """One timed backend RPC within the request's deadline; gRPC errors become proxy errors."""
        started = time.perf_counter()
        try:
            response = await rpc(request, timeout=deadline.remaining())
        except self._grpc.aio.AioRpcError as exc:
            self._timed(method, started, exc.code().name.lower())
            raise self._error(exc, name, deadline, during_predict=method == "predict") from None
        self._timed(method, started, "ok")
        return response

    async def versions(self, name: str, deadline: Deadline) -> dict[int, str]:
        from tfxformers.serving.proxy import protos

        m = protos.messages()
        request = m.GetModelStatusRequest()
        request.model_spec.name = name
        response = await self._call("status", self._status, request, name, deadline)
        return {int(s.version): m.state_name.get(s.state, str(s.state)) for s in response.model_version_status}

    async def predict(self, name, version, signature, inputs, outputs, deadline):
        from tfxformers.serving.proxy import protos

        m = protos.messages()
        request = m.PredictRequest()
        request.model_spec.name = name
        request.model_spec.version.value = version
        request.model_spec.signature_name = signature
        for key, (dtype, value) in inputs.items():
            if isinstance(value, list) and value and isinstance(value[0], list):
                tensor = protos.tensor_proto(value, dtype)
            elif isinstance(value, list):
                tensor = protos.vector_proto(value, dtype)
            else:
                tensor = protos.scalar_proto(value, dtype)
            request.inputs[key].CopyFrom(tensor)
        request.output_filter.extend(outputs)
        response = await self._call("predict", self._predict, request, name, deadline)
        missing = [key for key in outputs if key not in response.outputs]
        if missing:
            raise errors.BackendFailed(f"signature {signature!r} of {name!r} returned no {', '.join(missing)}")
        return {key: protos.from_tensor_proto(response.outputs[key]) for key in outputs}


class RestBackend(Backend):
    kind = "rest"

    def __init__(self, url: str, observe: Observer | None = None):
        super().__init__(url, observe)
        self._client = None

    async def start(self) -> None:
        import httpx

        self._httpx = httpx
        self._client = httpx.AsyncClient(base_url=self.url, limits=httpx.Limits(
            max_connections=256, max_keepalive_connections=64))

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _call(self, method: str, path: str, name: str, deadline: Deadline, body: dict | None = None):
        httpx = self._httpx
        started = time.perf_counter()
        try:
            if body is None:
                response = await self._client.get(path, timeout=deadline.remaining())
            else:
                response = await self._client.post(path, json=body, timeout=deadline.remaining())
        except httpx.TimeoutException:
            self._timed(method, started, "deadline_exceeded")
            raise errors.BackendTimeout(f"the model server did not answer within {deadline.seconds:g} s") from None
        except httpx.TransportError as exc:
            self._timed(method, started, "unavailable")
            raise errors.BackendUnavailable(f"cannot reach the model server at {self.url}: "
                                            f"{type(exc).__name__} {exc}".strip()) from None
        self._timed(method, started, "ok" if response.status_code == 200 else f"http_{response.status_code}")
        try:
            payload = response.json()
        except ValueError:
            payload = {"error": response.text[:200]}
        if response.status_code == 200:
            return payload
        message = payload.get("error", response.reason_phrase) if isinstance(payload, dict) else str(payload)
        if response.status_code == 404:
            if body is not None:
                raise errors.VersionGone(f"model {name!r}: {message}")
            raise errors.ModelNotFound(f"model {name!r} is not served by {self.url}")
        if response.status_code == 503:
            raise errors.BackendUnavailable(f"the model server at {self.url} is unavailable: {message}")
        if response.status_code == 504:
            raise errors.BackendTimeout(f"the model server timed out: {message}")
        raise errors.BackendFailed(f"the model server answered {response.status_code}: {message}")

    async def versions(self, name: str, deadline: Deadline) -> dict[int, str]:
        payload = await self._call("status", f"/v1/models/{quote(name, safe='')}", name, deadline)
        try:
            return {int(s["version"]): str(s["state"]) for s in payload.get("model_version_status", [])}
        except (KeyError, TypeError, ValueError):
            raise errors.BackendFailed(f"unexpected status answer for {name!r}") from None

    async def predict(self, name, version, signature, inputs, outputs, deadline):
        body = {"signature_name": signature, "inputs": {key: value for key, (_, value) in inputs.items()}}
        path = f"/v1/models/{quote(name, safe='')}/versions/{int(version)}:predict"
        payload = await self._call("predict", path, name, deadline, body)
        answer = payload.get("outputs") if isinstance(payload, dict) else None
        # TF Serving drops the output names when a signature has only one output.
        if not isinstance(answer, dict) or not set(outputs) <= set(answer):
            if answer is not None and len(outputs) == 1 and not isinstance(answer, dict):
                answer = {outputs[0]: answer}
            else:
                raise errors.BackendFailed(f"signature {signature!r} of {name!r} returned no {', '.join(outputs)}")
        return {key: _unwrap_b64(answer[key]) for key in outputs}


def _unwrap_b64(value):
    """REST encodes binary strings as ``{"b64": ...}``; the proxy wants bytes or str either way."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        import base64

        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_unwrap_b64(v) for v in value]
    return value


def make_backend(url: str, observe: Observer | None = None) -> Backend:
    return GrpcBackend(url, observe) if url.startswith("grpc://") else RestBackend(url, observe)
