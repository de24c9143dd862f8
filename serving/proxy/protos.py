"""TF Serving's gRPC messages built from the committed descriptors, with ``google.protobuf`` alone.

``MESSAGES.PredictRequest`` etc. are real protobuf classes (same wire format as
``tensorflow_serving.apis``), made from ``_descriptors.py`` in a private descriptor pool so they never
clash with TensorFlow's own classes if something else in the process imports them.
``tensor_proto``/``scalar_proto`` and ``from_tensor_proto`` convert between TensorProto and plain Python
lists without numpy: int32 and float32 payloads go through ``array`` as packed ``tensor_content``.
"""
from __future__ import annotations

import array
import base64
import sys
from functools import lru_cache
from itertools import chain
from types import SimpleNamespace

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"
GET_MODEL_STATUS_METHOD = "/tensorflow.serving.ModelService/GetModelStatus"

_MESSAGE_NAMES = {
    "PredictRequest": "tensorflow.serving.PredictRequest",
    "PredictResponse": "tensorflow.serving.PredictResponse",
    "GetModelStatusRequest": "tensorflow.serving.GetModelStatusRequest",
    "GetModelStatusResponse": "tensorflow.serving.GetModelStatusResponse",
    "TensorProto": "tensorflow.TensorProto",
}

# TensorProto keeps packed little-endian values in tensor_content; ``array`` uses the host's order.
_ARRAY_CODES = {"DT_INT32": "i", "DT_FLOAT": "f", "DT_INT64": "q", "DT_DOUBLE": "d"}
_VALUE_FIELDS = {"DT_INT32": "int_val", "DT_FLOAT": "float_val", "DT_INT64": "int64_val",
                 "DT_DOUBLE": "double_val", "DT_STRING": "string_val", "DT_BOOL": "bool_val"}


@lru_cache(maxsize=1)
def messages() -> SimpleNamespace:
    """Message classes and enum values, built once per process."""
    from tfxformers.serving.proxy import _descriptors

    if sys.byteorder != "little":  # tensor_content is little-endian; no big-endian host is supported
        raise RuntimeError("the proxy's TensorProto packing assumes a little-endian host")
    data = base64.b64decode("".join(_descriptors.FILE_DESCRIPTOR_SET.split()))
    pool = descriptor_pool.DescriptorPool()
    for file_proto in descriptor_pb2.FileDescriptorSet.FromString(data).file:
        pool.Add(file_proto)
    if hasattr(message_factory, "GetMessageClass"):  # protobuf >= 4.21
        make = message_factory.GetMessageClass
    else:
        factory = message_factory.MessageFactory(pool)
        make = factory.GetPrototype
    classes = {short: make(pool.FindMessageTypeByName(full)) for short, full in _MESSAGE_NAMES.items()}
    data_type = pool.FindEnumTypeByName("tensorflow.DataType")
    state = pool.FindEnumTypeByName("tensorflow.serving.ModelVersionStatus.State")
    return SimpleNamespace(
        **classes,
        dtype_number={v.name: v.number for v in data_type.values},
        dtype_name={v.number: v.name for v in data_type.values},
        state_name={v.number: v.name for v in state.values},
    )


def tensor_proto(rows: list[list[int]] | list[list[float]], dtype: str = "DT_INT32"):
    """A rank-2 TensorProto from equal-length rows."""
    m = messages()
    width = len(rows[0]) if rows else 0
    tensor = m.TensorProto(dtype=m.dtype_number[dtype])
    tensor.tensor_shape.dim.add(size=len(rows))
    tensor.tensor_shape.dim.add(size=width)
    tensor.tensor_content = array.array(_ARRAY_CODES[dtype], chain.from_iterable(rows)).tobytes()
    return tensor


def vector_proto(values: list[int], dtype: str = "DT_INT32"):
    m = messages()
    tensor = m.TensorProto(dtype=m.dtype_number[dtype])
    tensor.tensor_shape.dim.add(size=len(values))
    tensor.tensor_content = array.array(_ARRAY_CODES[dtype], values).tobytes()
    return tensor


def scalar_proto(value, dtype: str):
    m = messages()
    tensor = m.TensorProto(dtype=m.dtype_number[dtype])
    getattr(tensor, _VALUE_FIELDS[dtype]).append(value)
    return tensor


def from_tensor_proto(tensor):
    """The tensor as nested Python lists (bytes for strings); a scalar for rank 0."""
    m = messages()
    dtype = m.dtype_name.get(tensor.dtype, str(tensor.dtype))
    shape = [d.size for d in tensor.tensor_shape.dim]
    size = 1
    for n in shape:
        size *= n
    if tensor.tensor_content and dtype in _ARRAY_CODES:
        flat = array.array(_ARRAY_CODES[dtype])
        flat.frombytes(tensor.tensor_content)
        flat = flat.tolist()
    elif dtype in _VALUE_FIELDS:
        flat = list(getattr(tensor, _VALUE_FIELDS[dtype]))
        if len(flat) == 1 and size > 1:  # TF's shorthand: one value fills the whole tensor
            flat = flat * size
    else:
        raise ValueError(f"unsupported tensor dtype {dtype}")
    if len(flat) != size:
        raise ValueError(f"tensor has {len(flat)} values for shape {shape}")
    return _reshape(flat, shape)


def _reshape(flat: list, shape: list[int]):
    if not shape:
        return flat[0]
    if len(shape) == 1:
        return flat
    step = len(flat) // shape[0] if shape[0] else 0
    return [_reshape(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]
