"""The REST codec of the embedded model server: TF Serving's JSON tensors <-> numpy, and status/metadata JSON.

Follows tensorflow/serving ``util/json_tensor.cc`` and ``model_servers/http_rest_api_util.cc``:

* ``parse_predict_body``: a ``:predict`` body, ``{"signature_name"?, "instances": [...]}`` (row format) or
  ``{"inputs": ...}`` (columnar); string inputs may be ``{"b64": "..."}``; errors carry TF Serving's texts;
* ``outputs_to_json``: ``{"predictions": [...]}`` (one value per row for a single-output signature, one
  object per row otherwise) or ``{"outputs": ...}``; string outputs whose name ends in ``_bytes`` come back
  as ``{"b64": ...}``; floats are printed as TF Serving prints them (shortest of ``%g`` / ``%.9g`` that
  round-trips, ``.0`` added to whole numbers);
* ``status_json`` / ``metadata_json``: the status and metadata messages with every field printed.
"""
from __future__ import annotations

import base64
import binascii
import functools
import json
import math

from tfxformers.serving.server.errors import ServingError
from tfxformers.serving.server.tensors import dtype_name, dtype_tables


# --------------------------------------------------------------------------------------------------
# JSON -> numpy (json_tensor.cc FillPredictRequestFromJson)
# --------------------------------------------------------------------------------------------------

def _debug(value) -> str:
    text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= 200 else text[:200] + "..."


def _json_type(value) -> str:
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def _is_b64(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _shape_of(value) -> list[int]:
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _leaf(value, dtype: int, np_type):
    """One JSON leaf checked and converted for ``dtype`` (AddValueToTensor)."""
    def type_error():
        return ServingError("INVALID_ARGUMENT", f"JSON Value: {_debug(value)} Type: {_json_type(value)} is not of "
                                                f"expected type: {dtype_name(dtype)}")

    if np_type is object:
        if isinstance(value, dict):
            if not _is_b64(value):
                raise ServingError("INVALID_ARGUMENT",
                                   f"JSON Value: {_debug(value)} not formatted correctly for base64 data")
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (binascii.Error, ValueError):
                raise ServingError("INVALID_ARGUMENT", "Unable to base64 decode") from None
        if not isinstance(value, str):
            raise type_error()
        return value.encode("utf-8")
    if isinstance(value, bool):
        if np_type is bool or getattr(np_type, "__name__", "") == "bool_":
            return value
        raise type_error()
    if getattr(np_type, "__name__", "") == "bool_":
        raise type_error()
    if not isinstance(value, (int, float)):
        raise type_error()
    if np_type.__name__.startswith(("int", "uint")):
        if not isinstance(value, int):
            raise type_error()
        info_bits = {"int8": 31, "int16": 31, "int32": 31, "uint8": 31, "int64": 63}.get(np_type.__name__)
        if info_bits is not None and not -(1 << info_bits) <= value < (1 << info_bits):
            raise type_error()
        if np_type.__name__.startswith("uint") and value < 0:
            raise type_error()
    return value


def json_to_ndarray(value, dtype: int):
    """A (nested-list) JSON value as a dense tensor of ``dtype`` (FillTensorProto's rules)."""
    import numpy as np

    np_type = dtype_tables().get(dtype, (None,))[0]
    if np_type is None:
        raise ServingError("UNIMPLEMENTED", f"Conversion of JSON Value: {_debug(value)} to type: {dtype_name(dtype)}")
    shape = _shape_of(value)
    rank = len(shape)
    flat = []

    def fill(v, level):
        if not isinstance(v, list):
            if level != rank:
                raise ServingError("INVALID_ARGUMENT", f"JSON Value: {_debug(v)} found at incorrect level: "
                                                       f"{level + 1} in the JSON DOM. Expected at level: {rank}")
            flat.append(_leaf(v, dtype, np_type))
            return
        if level >= rank:
            raise ServingError("INVALID_ARGUMENT", f"Encountered list at unexpected level: {level} expected < {rank}")
        if len(v) != shape[level]:
            raise ServingError("INVALID_ARGUMENT", f"Encountered list at unexpected size: {len(v)} at level: {level} "
                                                   f"expected size: {shape[level]}")
        for item in v:
            fill(item, level + 1)

    fill(value, 0)
    if np_type is object:
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
        return array.reshape(shape)
    return np.asarray(flat, dtype=np_type).reshape(shape)


def parse_predict_body(body: bytes, input_infos_for, check_shapes=None) -> tuple[str, dict, str]:
    """(signature name, numpy inputs, "row" | "columnar") from a :predict body.

    ``input_infos_for(signature_name)`` returns the signature's ``inputs`` map (name -> TensorInfo);
    ``check_shapes(signature_name, {name: dims})``, if given, sees the shapes the JSON declares before
    any array is built (the server's request limits)."""
    if not body:
        raise ServingError("INVALID_ARGUMENT", "JSON Parse error: The document is empty")
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ServingError("INVALID_ARGUMENT", f"JSON Parse error: {getattr(exc, 'msg', exc)} at offset: "
                                               f"{getattr(exc, 'pos', 0)}") from None
    except RecursionError:  # "[[[[...": deeper than Python's parser goes
        raise ServingError("INVALID_ARGUMENT", "JSON Parse error: the document is nested too deeply") from None
    if not isinstance(doc, dict):
        raise ServingError("INVALID_ARGUMENT", f"JSON Value: {_debug(doc)} Is not object")
    signature_name = doc.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise ServingError("INVALID_ARGUMENT", f"JSON Value: {_debug(doc)} not formatted correctly. "
                                               "'signature_name' key must be a string value.")
    infos = input_infos_for(signature_name)
    if not infos:
        raise ServingError("INVALID_ARGUMENT",
                           f"Failed to get input map for signature: {signature_name or 'DEFAULT'}")
    names = sorted(infos)
    if "instances" in doc:
        if "inputs" in doc:
            raise ServingError("INVALID_ARGUMENT", f"JSON Value: {_debug(doc)} Not formatted correctly expecting "
                                                   "only one of 'inputs' or 'instances' keys to exist ")
        instances = doc["instances"]
        if not isinstance(instances, list):
            raise ServingError("INVALID_ARGUMENT", f"JSON Value: {_debug(doc)} Expecting 'instances' to be an "
                                                   "list/array")
        if not instances:
            raise ServingError("INVALID_ARGUMENT", f"JSON Value: {_debug(doc)} No values in 'instances' array")
        if check_shapes is not None:
            first = instances[0]
            if isinstance(first, dict) and not _is_b64(first):
                check_shapes(signature_name, {n: [len(instances)] + _shape_of(first[n]) for n in names if n in first})
            else:
                check_shapes(signature_name, {names[0]: [len(instances)] + _shape_of(first)})
        return signature_name, _instances(instances, infos, names), "row"
    if "inputs" in doc:
        value = doc["inputs"]
        inputs = {}
        if check_shapes is not None:
            if not isinstance(value, dict) or _is_b64(value):
                check_shapes(signature_name, {names[0]: _shape_of(value)})
            else:
                check_shapes(signature_name, {n: _shape_of(value[n]) for n in names if n in value})
        if not isinstance(value, dict) or _is_b64(value):
            if len(infos) > 1:
                raise ServingError("INVALID_ARGUMENT", "inputs is a plain value/list, but expecting an object as "
                                                       "multiple input tensors required as per tensorinfo_map")
            inputs[names[0]] = json_to_ndarray(value, infos[names[0]].dtype)
        else:
            for name in names:
                if name not in value:
                    raise ServingError("INVALID_ARGUMENT", f"Missing named input: {name} in 'inputs' object.")
                inputs[name] = json_to_ndarray(value[name], infos[name].dtype)
            # Keys that are not inputs of the signature are ignored, as FillTensorMapFromInputsMap does.
        return signature_name, inputs, "columnar"
    raise ServingError("INVALID_ARGUMENT", "Missing 'inputs' or 'instances' key")


def _instances(instances: list, infos, names: list[str]) -> dict:
    import numpy as np

    first = instances[0]
    as_objects = isinstance(first, dict) and not _is_b64(first)
    if not isinstance(first, dict) and len(infos) > 1:
        raise ServingError("INVALID_ARGUMENT", "instances is a plain list, but expecting list of objects as multiple "
                                               "input tensors required as per tensorinfo_map")
    rows: dict[str, list] = {}
    shapes: dict[str, tuple] = {}

    def add(name, value, index, keyed):
        if name not in infos:
            error = f"JSON object: does not have named input: {name}"
        else:
            try:
                array = json_to_ndarray(value, infos[name].dtype)
                if name in shapes and shapes[name] != array.shape:
                    if np.prod(shapes[name]) != array.size:
                        raise ServingError("INVALID_ARGUMENT", f"Expecting tensor size: {int(np.prod(shapes[name]))} "
                                                               f"but got: {array.size}")
                    raise ServingError("INVALID_ARGUMENT", f"Expecting shape {list(shapes[name])} but got: "
                                                           f"{list(array.shape)}")
                shapes.setdefault(name, array.shape)
                rows.setdefault(name, []).append(array)
                return
            except ServingError as exc:
                error = exc.message
        where = f"element: {index} key: {name} of 'instances' list" if keyed else f"element: {index} of 'instances' list"
        raise ServingError("INVALID_ARGUMENT", f"Failed to process {where}. Error: {error}")

    for index, item in enumerate(instances):
        if as_objects:
            if not isinstance(item, dict) or _is_b64(item):
                raise ServingError("INVALID_ARGUMENT", f"Expecting object but got list at item {index} of input list")
            for name, value in item.items():
                add(name, value, index, True)
            if set(item) != set(names):
                raise ServingError("INVALID_ARGUMENT", f"Failed to process element: {index} of 'instances' list. "
                                                       f"JSON object: {_debug(item)} keys must be equal to: "
                                                       f"{','.join(names)}")
        else:
            if isinstance(item, dict) and not _is_b64(item):
                raise ServingError("INVALID_ARGUMENT", f"Expecting value/list but got object at item {index} of "
                                                       "input list")
            add(names[0], item, index, False)
    return {name: np.stack(arrays) for name, arrays in rows.items()}


# --------------------------------------------------------------------------------------------------
# numpy -> JSON (json_tensor.cc MakeJsonFromTensors)
# --------------------------------------------------------------------------------------------------

def format_float(value, single: bool) -> str:
    """TF Serving's WriteDecimal: ``%g`` unless it does not round-trip, then max_digits10; ``.0`` for whole numbers."""
    import numpy as np

    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = "%g" % value
    if (np.float32(text) != np.float32(value)) if single else (float(text) != value):
        text = "%.*g" % (9 if single else 17, value)
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def _value_json(array, dtype: int, as_bytes: bool) -> str:
    """JSON text of a numpy value (nested lists for arrays)."""
    from tensorflow.core.framework import types_pb2

    if getattr(array, "ndim", 0) > 0:
        return "[" + ",".join(_value_json(item, dtype, as_bytes) for item in array) + "]"
    value = array.item() if hasattr(array, "item") else array  # numpy scalar, or bytes from object arrays
    if dtype in (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE):
        return format_float(value, dtype == types_pb2.DT_FLOAT)
    if dtype == types_pb2.DT_STRING:
        raw = value if isinstance(value, bytes) else str(value).encode()
        if as_bytes:
            return json.dumps({"b64": base64.b64encode(raw).decode("ascii")}, separators=(",", ":"))
        return json.dumps(raw.decode("utf-8", errors="replace"), ensure_ascii=False)
    if dtype == types_pb2.DT_BOOL:
        return "true" if value else "false"
    return str(int(value))


def outputs_to_json(outputs: dict, output_dtypes: dict, fmt: str) -> str:
    import numpy as np
    from tensorflow.core.framework import types_pb2

    if not outputs:
        raise ServingError("INVALID_ARGUMENT", "Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    arrays = {n: np.asarray(outputs[n]) for n in names}
    as_bytes = {n: output_dtypes[n] == types_pb2.DT_STRING and n.endswith("_bytes") for n in names}
    if fmt == "columnar":
        if len(names) == 1:
            body = _value_json(arrays[names[0]], output_dtypes[names[0]], as_bytes[names[0]])
        else:
            body = "{" + ",".join(f"{json.dumps(n)}: {_value_json(arrays[n], output_dtypes[n], as_bytes[n])}"
                                  for n in names) + "}"
        return '{\n    "outputs": ' + body + "\n}"
    batch = None
    for n in names:
        if arrays[n].ndim == 0:
            raise ServingError("INVALID_ARGUMENT", f"Tensor name: {n} has no shape information ")
        if batch is not None and arrays[n].shape[0] != batch:
            raise ServingError("INVALID_ARGUMENT", f"Tensor name: {n} has inconsistent batch size: "
                                                   f"{arrays[n].shape[0]} expecting: {batch}")
        batch = arrays[n].shape[0]
    rows = []
    for i in range(batch):
        if len(names) == 1:
            n = names[0]
            rows.append(_value_json(arrays[n][i], output_dtypes[n], as_bytes[n]))
        else:
            rows.append("{" + ", ".join(f"{json.dumps(n)}: {_value_json(arrays[n][i], output_dtypes[n], as_bytes[n])}"
                                        for n in names) + "}")
    return '{\n    "predictions": [' + ",\n        ".join(rows) + "\n    ]\n}"


# --------------------------------------------------------------------------------------------------
# Status and metadata as JSON (http_rest_api_util.cc ToJsonString)
# --------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _default_fields_option() -> str:
    """MessageToJson's keyword for printing default-valued fields in the installed protobuf (asked once:
    status requests arrive every few seconds from each proxy)."""
    import inspect

    from google.protobuf import json_format

    # protobuf 5.26 renamed including_default_value_fields (gone in 6) to always_print_fields_with_no_presence.
    new = "always_print_fields_with_no_presence"
    return new if new in inspect.signature(json_format.MessageToJson).parameters else "including_default_value_fields"


def _all_fields_json(message, **options) -> str:
    """MessageToJson printing fields that hold their default value too, as TF Serving does."""
    from google.protobuf import json_format

    return json_format.MessageToJson(message, **{_default_fields_option(): True}, **options)


def status_json(response) -> str:
    return _all_fields_json(response)


def metadata_json(response) -> str:
    from tensorflow_serving.apis import get_model_metadata_pb2

    spec = _all_fields_json(response.model_spec, preserving_proto_field_name=True)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_map)
    signatures = _all_fields_json(signature_map, preserving_proto_field_name=True)
    return '{\n"model_spec":' + spec + ',\n"metadata": {"signature_def": ' + signatures + "}\n}\n"
