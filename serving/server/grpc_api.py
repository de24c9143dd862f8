"""gRPC front end of the embedded model server, on TF Serving's own service definitions.

Implements ``tensorflow.serving.PredictionService/Predict`` and ``GetModelMetadata`` and
``tensorflow.serving.ModelService/GetModelStatus`` with the servicer base classes of the installed
``tensorflow-serving-api``; Classify, Regress and MultiInference answer ``UNIMPLEMENTED`` with a message,
and bytes that do not parse as the request ``INVALID_ARGUMENT`` (``CleanFailures``), never a traceback in the log. Errors carry the status codes TF Serving uses. Unlike TF Serving,
a Predict is held to the server's request limits (``serving/server/limits.py``) before its tensors are decoded,
waits for its share of the in-flight budget and is refused with UNAVAILABLE during a drain (``admission.py``).
"""
from __future__ import annotations

import time
from concurrent import futures

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc

from tfxformers.errors import UserError
from tfxformers.serving.server.admission import Admission
from tfxformers.serving.server.config import configs_from_server_config
from tfxformers.serving.server.errors import ServingError
from tfxformers.serving.server.limits import ServerLimits, check_shapes, check_values
from tfxformers.serving.server.status import model_metadata, model_spec_choice, model_status, status_code_value
from tfxformers.serving.server.tensors import ndarray_to_proto, proto_to_ndarray


def _abort(context, exc: ServingError):
    context.abort(getattr(grpc.StatusCode, exc.code, grpc.StatusCode.UNKNOWN), exc.message)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, manager, metrics, limits=None, admission=None):
        self.manager, self.metrics = manager, metrics
        self.limits = limits if limits is not None else ServerLimits()
        self.admission = admission if admission is not None else Admission(self.limits.max_tokens)

    def Predict(self, request, context):
        try:
            with self.admission.request():
                return self._predict(request, context)
        except ServingError as exc:  # draining
            self.metrics.request(request.model_spec.name, exc.code, "Predict", "GRPC", None)
            _abort(context, exc)

    def _predict(self, request, context):
        started = time.perf_counter()
        name = request.model_spec.name
        try:
            version, label = model_spec_choice(request.model_spec)
            servable = self.manager.resolve(name, version, label)
            signature_name, sig = servable.signature(request.model_spec.signature_name)
            # The declared shapes are checked before any array is made: a TensorProto may declare a
            # shape far larger than the values it carries, and make_ndarray would fill it.
            check_shapes(self.limits, servable, signature_name,
                         {k: [d.size for d in v.tensor_shape.dim] for k, v in request.inputs.items()})
            inputs = {k: proto_to_ndarray(v) for k, v in request.inputs.items()}
            tokens = check_values(self.limits, servable, signature_name, inputs)
            with self.admission.work(tokens):
                signature_name, outputs = servable.predict(signature_name, inputs, tuple(request.output_filter))
            response = predict_pb2.PredictResponse()
            response.model_spec.name = name
            response.model_spec.version.value = servable.version
            response.model_spec.signature_name = signature_name
            for key, value in outputs.items():
                response.outputs[key].CopyFrom(ndarray_to_proto(value, sig.outputs[key].dtype))
        except ServingError as exc:
            self.metrics.request(name, exc.code, "Predict", "GRPC", None)
            _abort(context, exc)
        self.metrics.request(name, "OK", "Predict", "GRPC", time.perf_counter() - started)
        return response

    def GetModelMetadata(self, request, context):
        name = request.model_spec.name
        try:
            response = model_metadata(self.manager, request)
        except ServingError as exc:
            self.metrics.request(name, exc.code, "GetModelMetadata", "GRPC", None)
            _abort(context, exc)
        self.metrics.request(name, "OK", "GetModelMetadata", "GRPC", None)
        return response


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, manager, metrics):
        self.manager, self.metrics = manager, metrics

    def GetModelStatus(self, request, context):
        try:
            return model_status(self.manager, request)
        except ServingError as exc:
            _abort(context, exc)

    def HandleReloadConfigRequest(self, request, context):
        """Replace the served model list (model_service_impl.cc): the answer carries the status, and a
        failure is also the RPC's status."""
        from tensorflow_serving.apis import model_management_pb2

        response = model_management_pb2.ReloadConfigResponse()
        try:
            self.manager.reload(configs_from_server_config(request.config, base_dir=None))
        except (ServingError, UserError) as exc:
            error = exc if isinstance(exc, ServingError) else ServingError("INVALID_ARGUMENT", str(exc))
            response.status.error_code = status_code_value(error.code)
            response.status.error_message = error.message
            context.set_code(getattr(grpc.StatusCode, error.code))
            context.set_details(error.message)
        return response


class _NotAMessage:
    """What the request deserializer gives for bytes that do not parse (instead of raising)."""

    def __init__(self, name: str):
        self.name = name


class CleanFailures(grpc.ServerInterceptor):
    """Bytes that are not the method's request message answer INVALID_ARGUMENT, and the methods this server
    does not implement (Classify, Regress, MultiInference) UNIMPLEMENTED with a message, both without the
    traceback gRPC would otherwise log for a deserializer or servicer that raises."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method.rsplit("/", 1)[-1]
        parse, behaviour = handler.request_deserializer, handler.unary_unary

        def deserialize(data):
            try:
                return parse(data)
            except Exception:  # protobuf's DecodeError and friends
                message_class = getattr(parse, "__self__", None)
                return _NotAMessage(getattr(getattr(message_class, "DESCRIPTOR", None), "full_name", "request"))

        def call(request, context):
            if isinstance(request, _NotAMessage):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"the request of {method} does not parse as a {request.name} message")
            try:
                return behaviour(request, context)
            except NotImplementedError:
                context.abort(grpc.StatusCode.UNIMPLEMENTED,
                              f"{method} is not supported by this server; use Predict")

        return grpc.unary_unary_rpc_method_handler(call, request_deserializer=deserialize,
                                                   response_serializer=handler.response_serializer)


def start_grpc_server(manager, metrics, host: str, port: int, max_workers: int = 32, limits=None, admission=None):
    """Start the gRPC server; returns (server, bound port)."""
    limits = limits if limits is not None else ServerLimits()
    # TF Serving accepts messages of any size (it sets the limit to INT_MAX); here a larger request is
    # refused by gRPC itself (RESOURCE_EXHAUSTED) before it is parsed. Answers stay unlimited: their size
    # follows from an accepted request.
    options = [("grpc.max_receive_message_length", limits.max_request_bytes), ("grpc.max_send_message_length", -1),
               ("grpc.so_reuseport", 0)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
                         options=options, interceptors=[CleanFailures()])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(manager, metrics, limits, admission), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(manager, metrics), server)
    bound = server.add_insecure_port(f"{host}:{port}" if ":" not in host else f"[{host}]:{port}")
    if bound == 0:
        raise OSError(f"gRPC cannot bind {host}:{port}")
    server.start()
    return server, bound
