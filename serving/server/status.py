"""Model status and metadata answers of the embedded model server, shared by the gRPC and REST front ends.

``model_status`` (GetModelStatus) and ``model_metadata`` (GetModelMetadata) build TF Serving's response
messages from the ``ModelManager``; REST prints the same messages as JSON.
"""
from __future__ import annotations

import grpc
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

from tfxformers.serving.server.errors import ServingError


def model_spec_choice(spec):
    """(version, label) from a ModelSpec's oneof."""
    which = spec.WhichOneof("version_choice")
    if which == "version":
        return spec.version.value, None
    if which == "version_label":
        return None, spec.version_label
    return None, None


def model_metadata(manager, request):
    """GetModelMetadataResponse for a request (get_model_metadata_impl.cc)."""
    if not request.HasField("model_spec"):
        raise ServingError("INVALID_ARGUMENT", "Missing ModelSpec")
    if not request.metadata_field:
        raise ServingError("INVALID_ARGUMENT", "GetModelMetadataRequest must specify at least one metadata_field")
    for field in request.metadata_field:
        if field != "signature_def":
            raise ServingError("INVALID_ARGUMENT", f"Metadata field {field} is not supported")
    version, label = model_spec_choice(request.model_spec)
    servable = manager.resolve(request.model_spec.name, version, label)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, sig in servable.signature_defs.items():
        signature_map.signature_def[key].CopyFrom(sig)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    response.metadata["signature_def"].Pack(signature_map)
    return response


def model_status(manager, request):
    """GetModelStatusResponse for a request (get_model_status_impl.cc: a label is not resolved there)."""
    if not request.HasField("model_spec"):
        raise ServingError("INVALID_ARGUMENT", "Missing ModelSpec")
    spec = request.model_spec
    version = spec.version.value if spec.WhichOneof("version_choice") == "version" else None
    response = get_model_status_pb2.GetModelStatusResponse()
    for number, state in manager.status(spec.name, version):
        entry = response.model_version_status.add()
        entry.version = number
        entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(state.state)
        entry.status.error_code = status_code_value(state.error_code)
        entry.status.error_message = state.error_message
    return response


def status_code_value(name: str) -> int:
    """The numeric gRPC code of a status code name (UNKNOWN for names gRPC does not know)."""
    return getattr(grpc.StatusCode, name, grpc.StatusCode.UNKNOWN).value[0]
