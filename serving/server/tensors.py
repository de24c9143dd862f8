"""The tensor codec of the embedded model server: TensorProto <-> numpy with TF Serving's dtypes.

``dtype_tables()`` maps each supported ``DataType`` to its numpy type and its TensorProto value field;
answers use typed value fields as TF Serving's ``AsProtoField`` does. Used by the gRPC front end, the
REST codec, the signature checks and warm-up replay.
"""
from __future__ import annotations

from tfxformers.serving.server.errors import ServingError


def _dtype_tables():
    import numpy as np
    from tensorflow.core.framework import types_pb2

    # DataType enum -> (numpy dtype, TensorProto value field)
    return {
        types_pb2.DT_FLOAT: (np.float32, "float_val"), types_pb2.DT_DOUBLE: (np.float64, "double_val"),
        types_pb2.DT_INT32: (np.int32, "int_val"), types_pb2.DT_INT16: (np.int16, "int_val"),
        types_pb2.DT_INT8: (np.int8, "int_val"), types_pb2.DT_UINT8: (np.uint8, "int_val"),
        types_pb2.DT_INT64: (np.int64, "int64_val"), types_pb2.DT_BOOL: (np.bool_, "bool_val"),
        types_pb2.DT_STRING: (object, "string_val"), types_pb2.DT_UINT32: (np.uint32, "uint32_val"),
        types_pb2.DT_UINT64: (np.uint64, "uint64_val"),
    }


_TABLES = None


def dtype_tables():
    global _TABLES
    if _TABLES is None:
        _TABLES = _dtype_tables()
    return _TABLES


def dtype_name(dtype: int) -> str:
    from tensorflow.core.framework import types_pb2

    name = types_pb2.DataType.Name(dtype)
    return name[3:].lower() if name.startswith("DT_") else name


def proto_to_ndarray(proto):
    """TensorProto -> numpy array (strings as an object array of bytes)."""
    import numpy as np
    import tensorflow as tf

    table = dtype_tables().get(proto.dtype)
    if table is None:
        raise ServingError("INVALID_ARGUMENT", f"unsupported tensor dtype {dtype_name(proto.dtype)}")
    try:
        array = tf.make_ndarray(proto)
    except Exception as exc:  # malformed protos (wrong value count for the shape, ...)
        raise ServingError("INVALID_ARGUMENT", f"cannot parse tensor: {exc}") from None
    return array if table[0] is not object else np.asarray(array, dtype=object)


def ndarray_to_proto(array, dtype: int):
    """numpy array -> TensorProto with typed value fields, as TF Serving answers (``AsProtoField``)."""
    import numpy as np
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2

    np_type, value_field = dtype_tables()[dtype]
    proto = tensor_pb2.TensorProto(dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in array.shape]))
    flat = array.ravel()
    if np_type is object:
        getattr(proto, value_field).extend(v if isinstance(v, bytes) else str(v).encode() for v in flat)
    else:
        getattr(proto, value_field).extend(np.asarray(flat, dtype=np_type).tolist())
    return proto
