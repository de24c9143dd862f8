"""The model manager of the embedded TF-Serving-compatible server: versions, policies, loading, status.

``ModelManager`` watches model base directories laid out as TensorFlow Serving expects them
(``BASE/<integer version>/`` SavedModels), decides which versions to serve from each model's version
policy (latest N, specific versions, all), loads them with ``tf.saved_model.load``, replays their
warm-up records, and answers lookups by name + version or label. ``ModelServer`` (bottom of the file)
puts the manager behind the gRPC and REST front ends.

Behaviour copied from TF Serving (read in tensorflow/serving: server_core.cc, basic_manager.cc,
get_model_status_impl.cc, predict_util.cc, saved_model_warmup_util.cc):

* a request names a model and optionally a version or a label; an unknown model or a version that is
  not loaded is ``NOT_FOUND`` ("Servable not found for request: Latest(NAME)" / "Specific(NAME, V)"),
  an unknown label ``INVALID_ARGUMENT`` ("Unrecognized servable version label: L");
* the start-up load is synchronous (TF Serving waits for the initial versions before it listens);
  afterwards the file system is polled every ``poll_wait_seconds``;
* a new version is loaded (and warmed up) before the version it replaces is unloaded, so there is never
  a moment without a servable version;
* every version the manager ever tried stays in the status answer: unloaded ones as ``END`` with an OK
  status, versions that failed to load as ``END`` with the error.

One deliberate difference: TF Serving's availability-preserving policy can unload the old version after
a new one failed; here a version that failed to load is left out of the policy until its directory
changes, so the previous version keeps serving (what users of a canary deployment want).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import tfxformers  # noqa: F401
from tfxformers.errors import UserError

log = logging.getLogger("tfxformers.serve")

WARMUP_FILE = "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TF Serving's limit; more records fail the load
DEFAULT_SIGNATURE = "serving_default"

# gRPC status code name -> HTTP status, as tensorflow_serving/model_servers/http_server.cc maps them.
HTTP_STATUS = {
    "OK": 200, "CANCELLED": 499, "UNKNOWN": 500, "INVALID_ARGUMENT": 400, "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "PERMISSION_DENIED": 403, "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400, "ABORTED": 409, "OUT_OF_RANGE": 400, "UNIMPLEMENTED": 501,
    "INTERNAL": 500, "UNAVAILABLE": 503, "DATA_LOSS": 500, "UNAUTHENTICATED": 401,
}


class ServingError(Exception):
    """A request failure with the status code TF Serving would answer (a ``grpc.StatusCode`` name)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------

@dataclass
class ModelConfig:
    """One served model: ``policy`` is ("latest", n), ("specific", versions) or ("all", None)."""

    name: str
    base_path: Path
    policy: tuple = ("latest", 1)
    labels: dict = field(default_factory=dict)


def configs_from_model_base(model_base) -> list[ModelConfig]:
    base = Path(model_base)
    if not base.is_dir():
        raise UserError(f"--model-base {base} is not a directory; export a model first (tfxformers export)")
    return [ModelConfig(p.name, p.resolve()) for p in sorted(base.iterdir())
            if p.is_dir() and not p.name.startswith(".")]


def configs_from_config_file(path) -> list[ModelConfig]:
    """Parse a ModelServerConfig text proto (``--model-config-file``), like TF Serving's."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    path = Path(path)
    if not path.is_file():
        raise UserError(f"--model-config-file {path} does not exist")
    try:
        config = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
    except text_format.ParseError as exc:
        raise UserError(f"{path} is not a ModelServerConfig text proto: {exc}") from None
    return configs_from_server_config(config, path.parent, str(path))


def configs_from_server_config(config, base_dir: Path | None, where: str = "model config") -> list[ModelConfig]:
    """ModelConfig entries of a ModelServerConfig message; relative base paths are resolved against
    ``base_dir`` (the config file's directory), or must be absolute when there is none (gRPC reload)."""
    if config.WhichOneof("config") != "model_config_list":
        raise UserError(f"{where} must hold a model_config_list (custom_model_config is not supported)")
    configs = []
    for entry in config.model_config_list.config:
        if not entry.name or not entry.base_path:
            raise UserError(f"{where}: every config needs a name and a base_path")
        if entry.model_platform not in ("", "tensorflow"):
            raise UserError(f"{where}: model_platform {entry.model_platform!r} is not supported (use tensorflow)")
        base = Path(entry.base_path)
        if not base.is_absolute():
            if base_dir is None:
                raise UserError(f"{where}: base_path {entry.base_path!r} must be absolute")
            base = base_dir / base
        which = entry.model_version_policy.WhichOneof("policy_choice")
        if which == "specific":
            versions = set(entry.model_version_policy.specific.versions)
            if not versions:
                raise UserError(f"{where}: model {entry.name!r} has a specific policy with no versions")
            policy = ("specific", versions)
        elif which == "all":
            policy = ("all", None)
        else:
            n = entry.model_version_policy.latest.num_versions if which == "latest" else 1
            policy = ("latest", max(1, n))
        labels = dict(entry.version_labels)
        configs.append(ModelConfig(entry.name, base.resolve(), policy, labels))
    names = [c.name for c in configs]
    if len(set(names)) != len(names):
        raise UserError(f"{where}: a model name appears twice")
    return configs


# --------------------------------------------------------------------------------------------------
# Tensors
# --------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------
# One loaded version
# --------------------------------------------------------------------------------------------------

def read_meta_graph(path: Path):
    """The MetaGraphDef tagged ``serve`` from ``saved_model.pb`` (what TF Serving reports as metadata)."""
    from tensorflow.core.protobuf import saved_model_pb2

    pb = path / "saved_model.pb"
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


def op_error_message(message: str) -> str:
    """The part of a TensorFlow error a client needs: TF adds "Graph execution error:" and the node's
    stack in front ("Detected at node ...") and the failing node behind ("\\n\\t [[{{node ...}}]]")."""
    message = message.split("\n\t [[")[0].strip()
    if message.startswith("Graph execution error:"):
        lines = [line for line in message.splitlines() if line.strip()]
        message = lines[-1].strip() if lines else message
    return message


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
        from tfxformers.serving.limits import read_version_info

        self.info = read_version_info(self.path)  # the version's own limits (maximum positions, context)
        self.batchers = {}  # signature name -> Batcher, set by the manager when batching is on
        self.metrics = None  # set by the manager: runtime latency is recorded per call

    def signature(self, name: str, rest: bool = False):
        name = name or DEFAULT_SIGNATURE
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
        self.batchers = {}


# --------------------------------------------------------------------------------------------------
# The manager
# --------------------------------------------------------------------------------------------------

START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"


@dataclass
class VersionState:
    state: str
    error_code: str = "OK"
    error_message: str = ""
    servable: Servable | None = None
    dir_stamp: float = 0.0  # the version directory's mtime when it was loaded or failed
    warmup_records: int = 0


def version_numbers(base: Path) -> dict[int, Path]:
    """Integer subdirectories of a model base (hidden dirs such as ``.export-*`` are ignored)."""
    found = {}
    try:
        entries = list(base.iterdir())
    except OSError:
        return found
    for p in entries:
        if p.name.isdigit() and p.is_dir():
            found[int(p.name)] = p
    return found


def _stamp(path: Path) -> float:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return -1


class ModelManager:
    """Decides, loads and unloads versions; answers lookups and status. Thread-safe."""

    def __init__(self, configs: list[ModelConfig], poll_wait_seconds: float = 1.0, batching=None,
                 metrics=None):
        self.configs = {c.name: c for c in configs}
        self.poll_wait_seconds = poll_wait_seconds
        self.batching = batching  # BatchingParameters-like object or None
        self.metrics = metrics
        self.states: dict[str, dict[int, VersionState]] = {c.name: {} for c in configs}
        self._lock = threading.RLock()
        self._poll_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = self._config_thread = None
        self._warned: set[str] = set()

    # ---- lifecycle
    def start(self) -> None:
        self.poll_once()
        if self.poll_wait_seconds and self.poll_wait_seconds > 0:
            self._thread = threading.Thread(target=self._poll_loop, name="tfxformers-serve-poll", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in (self._thread, self._config_thread):
            if thread is not None:
                thread.join(timeout=30)
        with self._lock:
            for versions in self.states.values():
                for state in versions.values():
                    if state.servable is not None:
                        state.servable.close()
                        state.servable = None

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_wait_seconds):
            try:
                self.poll_once()
            except Exception:  # a poll must never kill the server
                log.exception("file system poll failed")

    def watch_config_file(self, path, poll_wait_seconds: float) -> None:
        """Re-read a ModelServerConfig file every ``poll_wait_seconds`` (``--model-config-file-poll-wait-seconds``)."""
        def loop():
            last = None
            while not self._stop.wait(poll_wait_seconds):
                try:
                    text = Path(path).read_text()
                    if text == last:
                        continue
                    last = text
                    self.reload(configs_from_config_file(path))
                except (UserError, ServingError, OSError) as exc:
                    log.error("model config %s not applied: %s", path, exc)
                except Exception:
                    log.exception("model config poll failed")

        self._config_thread = threading.Thread(target=loop, name="tfxformers-serve-config", daemon=True)
        self._config_thread.start()

    def check_labels(self, configs: dict[str, ModelConfig] | None = None) -> None:
        """A label may only name an AVAILABLE version (TF Serving's rule at start-up and on reload)."""
        with self._lock:
            for name, config in (configs or self.configs).items():
                for label, version in sorted(config.labels.items()):
                    state = self.states.get(name, {}).get(version)
                    if state is None or state.state != AVAILABLE:
                        raise ServingError("FAILED_PRECONDITION", (
                            f"Request to assign label to version {version} of model {name}, which is not currently "
                            "available for inference"))

    def reload(self, configs: list[ModelConfig]) -> None:
        """Apply a new model list (ModelService.HandleReloadConfigRequest, config file polling).

        As in TF Serving, removed models are unloaded, new ones loaded, and new labels are assigned only
        after loading, to versions that are AVAILABLE; otherwise FAILED_PRECONDITION and the old labels stay."""
        new = {c.name: c for c in configs}
        with self._poll_lock:
            for name in set(self.configs) - set(new):
                for version, state in list(self.states[name].items()):
                    if state.state == AVAILABLE:
                        self._unload(self.configs[name], version)
            with self._lock:
                old_labels = {n: c.labels for n, c in self.configs.items()}
                for name, config in new.items():
                    self.states.setdefault(name, {})
                self.configs = {n: ModelConfig(c.name, c.base_path, c.policy, old_labels.get(n, {}))
                                for n, c in new.items()}
        self.poll_once()
        with self._lock:
            self.check_labels(new)
            for name, config in new.items():
                self.configs[name].labels = dict(config.labels)
        log.info("model config applied: %s", ", ".join(sorted(new)) or "no models")

    # ---- policy
    def _aspired(self, config: ModelConfig, on_disk: dict[int, Path], states: dict[int, VersionState]) -> set[int]:
        def failed(v):
            s = states.get(v)
            return s is not None and s.state == END and s.error_code != "OK" and s.dir_stamp == _stamp(on_disk[v])

        kind, arg = config.policy
        if kind == "specific":
            return {v for v in on_disk if v in arg and not failed(v)}
        if kind == "all":
            return {v for v in on_disk if not failed(v)}
        return set(sorted((v for v in on_disk if not failed(v)), reverse=True)[:arg])

    def poll_once(self) -> None:
        """One pass over every model: load aspired versions, then unload the ones no longer aspired."""
        with self._poll_lock:
            for config in self.configs.values():
                on_disk = version_numbers(config.base_path)
                states = self.states[config.name]
                aspired = self._aspired(config, on_disk, states)
                for version in sorted(aspired, reverse=True):
                    state = states.get(version)
                    if state is None or state.state == END:
                        self._load(config, version, on_disk[version])
                # A failed load drops out of the policy, which may make an older version aspired again.
                aspired = self._aspired(config, on_disk, states)
                for version in sorted(aspired, reverse=True):
                    state = states.get(version)
                    if state is None or state.state == END:
                        self._load(config, version, on_disk[version])
                aspired = {v for v in self._aspired(config, on_disk, states) if states[v].state == AVAILABLE}
                serving = [v for v, s in states.items() if s.state == AVAILABLE]
                for version in serving:
                    gone = version not in on_disk
                    if gone or (version not in aspired and (aspired or config.policy[0] != "latest")):
                        self._unload(config, version)
                if not on_disk and config.name not in self._warned:
                    self._warned.add(config.name)  # once, not at every poll
                    log.warning("no versions of model %s found under %s", config.name, config.base_path)
                elif on_disk:
                    self._warned.discard(config.name)

    def _load(self, config: ModelConfig, version: int, path: Path) -> None:
        states = self.states[config.name]
        stamp = _stamp(path)
        with self._lock:
            states[version] = VersionState(LOADING, dir_stamp=stamp)
        self._set_state_metric(config.name, version, LOADING)
        log.info("loading servable version {name: %s version: %d} from %s", config.name, version, path)
        started = time.perf_counter()
        try:
            servable = Servable(config.name, version, path)
            servable.metrics = self.metrics
            if self.batching is not None:
                from tfxformers.serving.batching import attach_batchers

                attach_batchers(servable, self.batching, self.metrics)
            records = self._warm_up(servable)
        except Exception as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if isinstance(exc, ServingError):
                message = exc.message
            with self._lock:
                states[version] = VersionState(END, "UNKNOWN" if not isinstance(exc, ServingError) else exc.code,
                                               f"Failed to load servable version {version} of {config.name}: "
                                               f"{message}", dir_stamp=stamp)
            log.error("model %s version %d failed to load: %s", config.name, version, message)
            if self.metrics is not None:
                self.metrics.load_attempt(str(path), "fail")
            self._set_state_metric(config.name, version, END)
            return
        with self._lock:
            states[version] = VersionState(AVAILABLE, servable=servable, dir_stamp=stamp, warmup_records=records)
        if self.metrics is not None:
            self.metrics.load_attempt(str(path), "success")
        self._set_state_metric(config.name, version, AVAILABLE)
        log.info("model %s version %d AVAILABLE (%.1f s, %d warm-up records replayed)", config.name, version,
                 time.perf_counter() - started, records)

    def _unload(self, config: ModelConfig, version: int) -> None:
        with self._lock:
            state = self.states[config.name][version]
            servable, state.state = state.servable, UNLOADING
        self._set_state_metric(config.name, version, UNLOADING)
        with self._lock:
            self.states[config.name][version] = VersionState(END, dir_stamp=state.dir_stamp,
                                                             warmup_records=state.warmup_records)
        if servable is not None:
            servable.close()
        self._set_state_metric(config.name, version, END)
        log.info("model %s version %d unloaded", config.name, version)

    def _set_state_metric(self, name: str, version: int, state: str) -> None:
        if self.metrics is not None:
            self.metrics.version_state(name, version, state)

    def _warm_up(self, servable: Servable) -> int:
        """Replay ``assets.extra/tf_serving_warmup_requests`` (PredictionLog TFRecords) before AVAILABLE."""
        path = servable.path / "assets.extra" / WARMUP_FILE
        if not path.is_file():
            return 0
        import tensorflow as tf
        from tensorflow_serving.apis import prediction_log_pb2

        started = time.perf_counter()
        count = 0
        status = "OK"
        try:
            for record in tf.data.TFRecordDataset(str(path)):
                count += 1
                if count > MAX_WARMUP_RECORDS:
                    raise ServingError("INVALID_ARGUMENT", f"Number of warmup records exceeds the maximum "
                                                           f"({MAX_WARMUP_RECORDS}) at {path}")
                log_entry = prediction_log_pb2.PredictionLog.FromString(record.numpy())
                if log_entry.WhichOneof("log_type") != "predict_log":
                    raise ServingError("UNIMPLEMENTED", "only predict_log warm-up records are supported")
                request = log_entry.predict_log.request
                inputs = {k: proto_to_ndarray(v) for k, v in request.inputs.items()}
                servable.predict(request.model_spec.signature_name, inputs, tuple(request.output_filter))
        except Exception:
            status = "FAILED"
            raise
        finally:
            if self.metrics is not None:
                self.metrics.warmup(str(servable.path), status, min(count, MAX_WARMUP_RECORDS),
                                    time.perf_counter() - started)
        return count

    # ---- lookups
    def config(self, name: str) -> ModelConfig | None:
        return self.configs.get(name)

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The servable for a request's model spec, or the ServingError TF Serving would give."""
        if not name:
            raise ServingError("INVALID_ARGUMENT", "ModelSpec has no name specified.")
        if version is not None and label:
            raise ServingError("INVALID_ARGUMENT", f"Both model version ({version}) and model version label "
                                                   f"({label}) cannot be supplied.")
        if label:
            config = self.configs.get(name)
            if config is None or label not in config.labels:
                raise ServingError("INVALID_ARGUMENT", f"Unrecognized servable version label: {label}")
            version = config.labels[label]
        with self._lock:
            versions = self.states.get(name, {})
            if version is None:
                available = [v for v, s in versions.items() if s.state == AVAILABLE]
                if not available:
                    raise ServingError("NOT_FOUND", f"Servable not found for request: Latest({name})")
                return versions[max(available)].servable
            state = versions.get(version)
            if state is None or state.state != AVAILABLE:
                raise ServingError("NOT_FOUND", f"Servable not found for request: Specific({name}, {version})")
            return state.servable

    def status(self, name: str, version: int | None = None) -> list[tuple[int, VersionState]]:
        """Version states for GetModelStatus (get_model_status_impl.cc semantics)."""
        if not name:
            raise ServingError("INVALID_ARGUMENT", "Missing model name in request.")
        with self._lock:
            versions = dict(self.states.get(name, {}))
        if version is not None:
            if version not in versions:
                raise ServingError("NOT_FOUND", f"Could not find version {version} of model {name}")
            return [(version, versions[version])]
        if not versions:
            raise ServingError("NOT_FOUND", f"Could not find any versions of model {name}")
        return sorted(versions.items())

    def available_count(self) -> int:
        with self._lock:
            return sum(1 for versions in self.states.values() for s in versions.values() if s.state == AVAILABLE)


# --------------------------------------------------------------------------------------------------
# The server: manager + gRPC + REST
# --------------------------------------------------------------------------------------------------

class ModelServer:
    """An embedded TF-Serving-compatible server. Ports 0 pick free ports; ``start()`` returns when the
    start-up versions are loaded and both front ends listen; ``stop()`` shuts everything down.
    ``limits`` (``serving.limits.ServerLimits``, default: the CLI's defaults) bound what one request may ask.

    >>> server = ModelServer(model_base="serving_models", grpc_port=0, rest_port=0, host="127.0.0.1")
    >>> server.start(); server.grpc_port, server.rest_port
    """

    def __init__(self, model_base=None, model_config_file=None, grpc_port: int = 8500, rest_port: int = 8501,
                 host: str = "0.0.0.0", enable_batching: bool = False, batching_parameters_file=None,
                 monitoring_config_file=None, file_system_poll_wait_seconds: float = 1.0,
                 grpc_max_workers: int = 32, intra_op_parallelism: int = 0, inter_op_parallelism: int = 0,
                 model_config_file_poll_wait_seconds: float = 0, limits=None):
        from tfxformers.serving import batching as batching_mod
        from tfxformers.serving.metrics import Metrics, read_monitoring_config

        if (model_base is None) == (model_config_file is None):
            raise UserError("give exactly one of --model-base or --model-config-file")
        if file_system_poll_wait_seconds is not None and file_system_poll_wait_seconds < 0:
            raise UserError("--file-system-poll-wait-seconds must be >= 0 (0 disables polling)")
        for flag, port in (("--grpc-port", grpc_port), ("--rest-port", rest_port)):
            if not 0 <= int(port) <= 65535:
                raise UserError(f"{flag} {port} is not a TCP port")
        if batching_parameters_file is not None and not enable_batching:
            raise UserError("--batching-parameters-file needs --enable-batching")
        configs = (configs_from_config_file(model_config_file) if model_config_file is not None
                   else configs_from_model_base(model_base))
        self.batching = (batching_mod.read_batching_parameters(batching_parameters_file)
                         if enable_batching else None)
        self.prometheus_path = (read_monitoring_config(monitoring_config_file)
                                if monitoring_config_file is not None else None)
        self.metrics = Metrics()
        from tfxformers.serving.limits import ServerLimits

        self.limits = limits if limits is not None else ServerLimits()
        self.manager = ModelManager(configs, file_system_poll_wait_seconds, self.batching, self.metrics)
        self.host, self._grpc_port, self._rest_port = host, int(grpc_port), int(rest_port)
        self.grpc_max_workers = grpc_max_workers
        if intra_op_parallelism < 0 or inter_op_parallelism < 0:
            raise UserError("--tensorflow-*-op-parallelism must be >= 0 (0 lets TensorFlow choose)")
        self.parallelism = (int(intra_op_parallelism), int(inter_op_parallelism))
        if model_config_file_poll_wait_seconds and model_config_file is None:
            raise UserError("--model-config-file-poll-wait-seconds needs --model-config-file")
        if model_config_file_poll_wait_seconds < 0:
            raise UserError("--model-config-file-poll-wait-seconds must be >= 0")
        self.model_config_file = model_config_file
        self.config_poll = float(model_config_file_poll_wait_seconds or 0)
        self.grpc_port = self.rest_port = None
        self._grpc = self._rest = None

    def start(self) -> "ModelServer":
        from tfxformers.serving.grpc_api import start_grpc_server
        from tfxformers.serving.rest_api import start_rest_server

        self._set_parallelism()
        self.manager.start()
        try:
            self.manager.check_labels()
        except ServingError as exc:
            self.manager.stop()
            raise UserError(f"{self.model_config_file}: {exc.message}") from None
        if self.config_poll > 0:
            self.manager.watch_config_file(self.model_config_file, self.config_poll)
        try:
            self._grpc, self.grpc_port = start_grpc_server(self.manager, self.metrics, self.host, self._grpc_port,
                                                           self.grpc_max_workers, self.limits)
            self._rest, self.rest_port = start_rest_server(self.manager, self.metrics, self.host, self._rest_port,
                                                           self.prometheus_path, self.limits)
        except (OSError, RuntimeError) as exc:  # grpc raises RuntimeError when it cannot bind
            self.stop()
            raise UserError(f"cannot listen on {self.host} (gRPC port {self._grpc_port}, REST port "
                            f"{self._rest_port}): {exc}; is another server running there?") from None
        return self

    def _set_parallelism(self) -> None:
        """TF Serving's --tensorflow_{intra,inter}_op_parallelism; only possible before TF's runtime starts."""
        intra, inter = self.parallelism
        if not intra and not inter:
            return
        import tensorflow as tf

        try:
            if intra:
                tf.config.threading.set_intra_op_parallelism_threads(intra)
            if inter:
                tf.config.threading.set_inter_op_parallelism_threads(inter)
        except RuntimeError:
            log.warning("TensorFlow is already initialised in this process; op parallelism flags ignored")

    def stop(self) -> None:
        if self._rest is not None:
            self._rest.shutdown()
            self._rest.server_close()
            self._rest = None
        if self._grpc is not None:
            self._grpc.stop(grace=1).wait()
            self._grpc = None
        self.manager.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
