"""The embedded model server's configuration: which models it serves and the config files it reads.

``ModelConfig`` is one served model (name, base path, version policy, labels), made from ``--model-base``
(every subdirectory, latest version) or a ModelServerConfig text proto (``--model-config-file``, or a gRPC
reload request). ``config_messages()`` builds the BatchingParameters and MonitoringConfig message classes,
which the tensorflow-serving-api wheel does not ship, for ``batching.py`` and ``metrics.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tfxformers.errors import UserError


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


_MESSAGES = None


def config_messages() -> dict:
    """BatchingParameters and MonitoringConfig message classes with TF Serving's field names and numbers
    (session_bundle_config.proto, monitoring_config.proto): the tensorflow-serving-api wheel lacks them."""
    global _MESSAGES
    if _MESSAGES is not None:
        return _MESSAGES
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    fdp = descriptor_pb2.FieldDescriptorProto
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    file = descriptor_pb2.FileDescriptorProto(name="tfxformers/serving_configs.proto", package="tensorflow.serving",
                                              syntax="proto3", dependency=["google/protobuf/wrappers.proto"])
    batching = file.message_type.add(name="BatchingParameters")
    int64_wrapper, string_wrapper = ".google.protobuf.Int64Value", ".google.protobuf.StringValue"
    for number, name, wrapper in ((1, "max_batch_size", int64_wrapper), (2, "batch_timeout_micros", int64_wrapper),
                                  (3, "thread_pool_name", string_wrapper), (4, "num_batch_threads", int64_wrapper),
                                  (5, "max_enqueued_batches", int64_wrapper)):
        batching.field.add(name=name, number=number, type=fdp.TYPE_MESSAGE, label=fdp.LABEL_OPTIONAL,
                           type_name=wrapper)
    batching.field.add(name="allowed_batch_sizes", number=6, type=fdp.TYPE_INT64, label=fdp.LABEL_REPEATED)
    batching.field.add(name="pad_variable_length_inputs", number=7, type=fdp.TYPE_BOOL, label=fdp.LABEL_OPTIONAL)
    prometheus = file.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, type=fdp.TYPE_BOOL, label=fdp.LABEL_OPTIONAL)
    prometheus.field.add(name="path", number=2, type=fdp.TYPE_STRING, label=fdp.LABEL_OPTIONAL)
    monitoring = file.message_type.add(name="MonitoringConfig")
    monitoring.field.add(name="prometheus_config", number=1, type=fdp.TYPE_MESSAGE, label=fdp.LABEL_OPTIONAL,
                         type_name=".tensorflow.serving.PrometheusConfig")
    pool.Add(file)
    # GetMessageClass since protobuf 4.21; MessageFactory.GetPrototype is gone in 5.
    if hasattr(message_factory, "GetMessageClass"):
        make = message_factory.GetMessageClass
    else:
        make = message_factory.MessageFactory(pool).GetPrototype
    _MESSAGES = {n: make(pool.FindMessageTypeByName(f"tensorflow.serving.{n}"))
                 for n in ("BatchingParameters", "MonitoringConfig")}
    return _MESSAGES
