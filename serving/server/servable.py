"""One loaded SavedModel version of the embedded model server: signature defs, checks and calls.

``Servable(name, version, path)`` reads the ``serve`` MetaGraphDef (what TF Serving reports as metadata),
loads the SavedModel, and ``predict`` validates a request against the signature with TF Serving's status
codes and runs it (through the version's batcher when batching is on).
"""
from __future__ import annotations

import time
from pathlib import Path

from tfxformers.serving import layout
from tfxformers.serving.server.errors import ServingError, op_error_message
from tfxformers.serving.server.limits import read_version_info
from tfxformers.serving.server.tensors import dtype_name, dtype_tables


# --------------------------------------------------------------------------------------------------

def read_meta_graph(path: Path):
    """The MetaGraphDef tagged ``serve`` from ``saved_model.pb`` (what TF Serving reports as metadata)."""
    from tensorflow.core.protobuf import saved_model_pb2

    pb = path / layout.SAVED_MODEL_FILE
    if not pb.is_file():
        raise ValueError(f"SavedModel file does not exist at: {path}/{{saved_model.pbtxt|saved_model.pb}}")
    import warnings

    saved = saved_model_pb2.SavedModel()
    with warnings.catch_warnings():
        # protobuf only warns about some garbage ("Unexpected end-group tag"); a corrupt file must fail.
        warnings.simplefilter("error")
        try:
            saved.ParseFromString(pb.read_bytes())
        except Exception as exc:
            raise ValueError(f"cannot parse {pb}: {exc}") from None
    for meta in saved.meta_graphs:
        if "serve" in meta.meta_info_def.tags:
            return meta
    raise ValueError(f"no MetaGraphDef with tag 'serve' in {path}")


class Servable:
    """A loaded SavedModel version: signature defs (from the proto) and callable signatures."""

    def __init__(self, name: str, version: int, path: Path):
        import tensorflow as tf

        self.name, self.version, self.path = name, version, Path(path)
        self.meta_graph = read_meta_graph(self.path)
        self.signature_defs = dict(self.meta_graph.signature_def)
        loaded = tf.saved_model.load(str(self.path), tags=["serve"])
        self._loaded = loaded  # keeps the variables alive
        self.functions = {k: loaded.signatures[k] for k in self.signature_defs if k in loaded.signatures}
        self.info = read_version_info(self.path)  # the version's own limits (maximum positions, context)
        self.batchers = {}  # signature name -> Batcher, set by the manager when batching is on
        self.metrics = None  # set by the manager: runtime latency is recorded per call

    def signature(self, name: str, rest: bool = False):
        name = name or layout.DEFAULT_SIGNATURE
        sig = self.signature_defs.get(name)
        if sig is None or name not in self.functions:
            if rest:  # http_rest_api_handler.cc GetInfoMap
                raise ServingError("INVALID_ARGUMENT", f'Serving signature name: "{name}" not found in signature def')
            raise ServingError("FAILED_PRECONDITION", f'Serving signature key "{name}" not found.')
        return name, sig

    def validate(self, signature_name: str, inputs: dict) -> None:
        """Check names, dtypes and ranks against the signature, with TF Serving's status codes."""
        import numpy as np

        sig = self.signature_defs[signature_name]
        if set(inputs) != set(sig.inputs):
            sent, wanted = set(inputs), set(sig.inputs)
            raise ServingError("INVALID_ARGUMENT", (
                f"input size does not match signature: {len(sent)}!={len(wanted)} "
                f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(wanted))}}}). "
                f"Sent extra: {{{','.join(sorted(sent - wanted))}}}. "
                f"Missing but required: {{{','.join(sorted(wanted - sent))}}}."))
        tables = dtype_tables()
        for key, array in inputs.items():
            info = sig.inputs[key]
            np_type = tables.get(info.dtype, (None,))[0]
            ok = array.dtype == object if np_type is object else array.dtype == np.dtype(np_type)
            if not ok:
                got = "string" if array.dtype == object else str(array.dtype)
                raise ServingError("INVALID_ARGUMENT",
                                   f"Expects arg[{key}] to be {dtype_name(info.dtype)} but {got} is provided")
            if not info.tensor_shape.unknown_rank:
                dims = [d.size for d in info.tensor_shape.dim]
                if len(dims) != array.ndim or any(d >= 0 and d != a for d, a in zip(dims, array.shape)):
                    shown = "[" + ",".join("?" if d < 0 else str(d) for d in dims) + "]"
                    raise ServingError("INVALID_ARGUMENT", f"input '{key}' has shape {list(array.shape)}, "
                                                           f"the signature expects {shown}")

    def run(self, signature_name: str, inputs: dict) -> dict:
        """Call the signature on numpy inputs; numpy outputs."""
        import tensorflow as tf

        fn = self.functions[signature_name]
        started = time.perf_counter()
        try:
            tensors = {k: tf.constant(v) if v.dtype != object else tf.constant(list(v.ravel()), shape=v.shape,
                                                                               dtype=tf.string)
                       for k, v in inputs.items()}
            out = fn(**tensors)
        except tf.errors.OpError as exc:
            code = {3: "INVALID_ARGUMENT", 9: "FAILED_PRECONDITION", 11: "OUT_OF_RANGE", 8: "RESOURCE_EXHAUSTED"}
            message = op_error_message(exc.message)
            raise ServingError(code.get(exc.error_code, "INTERNAL"), message) from None
        except (TypeError, ValueError) as exc:
            raise ServingError("INVALID_ARGUMENT", str(exc).splitlines()[0]) from None
        outputs = {k: v.numpy() for k, v in out.items()}
        if self.metrics is not None:
            self.metrics.runtime(self.name, "Predict", time.perf_counter() - started)
        return outputs

    def predict(self, signature_name: str, inputs: dict, output_filter=()) -> tuple[str, dict]:
        """Validate and run one request (through the batcher when batching is on)."""
        signature_name, sig = self.signature(signature_name)
        self.validate(signature_name, inputs)
        for alias in output_filter:
            if alias not in sig.outputs:
                raise ServingError("INVALID_ARGUMENT", (
                    f"output tensor alias not found in signature: {alias} Outputs expected to be in the set "
                    f"{{{','.join(sorted(sig.outputs))}}}."))
        batcher = self.batchers.get(signature_name)
        outputs = batcher.submit(inputs) if batcher is not None else self.run(signature_name, inputs)
        if output_filter:
            outputs = {k: outputs[k] for k in output_filter}
        return signature_name, outputs

    def close(self) -> None:
        for batcher in self.batchers.values():
            batcher.stop()
