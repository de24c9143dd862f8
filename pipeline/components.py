"""The two pieces of the pipeline that stock TFX components do not do: stop on anomalies, push integer versions.

* ``ValidationGate``: ExampleValidator records anomalies but never fails, so the Trainer would train on
  data that breaks the curated schema. This component reads the anomalies artifact and raises
  ``DataValidationError`` with a readable list; the Trainer is made to run after it
  (``add_upstream_node``), so bad data stops the run before any training.
* ``IntegerVersionPusherExecutor``: TFX's Pusher names a pushed version by the Unix time. TF Serving
  serves the numerically largest version, so one timestamp version (about 1.7e9) would shadow every
  integer version pushed after it; ``tfxformers export`` and the model servers use 1, 2, 3, ... This
  subclass of the stock executor keeps its blessing check and metadata and changes only the version:
  the next integer after the largest existing one, written under a hidden temporary name and renamed into
  place so that a polling server never loads half a model. A model that was already pushed (recorded as
  ``source_model`` in the version's ``assets.extra/tfxformers.json``) is not pushed again. It pushes the
  Trainer's ``Format-Push`` export (standard signatures only; see ``pipeline.classifier.training``).
"""
# No `from __future__ import annotations`: TFX reads the component function's type hints at run time.

import json
import os
import uuid

from tfx import v1 as tfx
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from tfxformers.serving import layout

ALREADY_PUSHED_KEY = "tfxformers_already_pushed"


class DataValidationError(RuntimeError):
    """ExampleValidator found anomalies against the curated schema."""


def describe_anomalies(anomalies_uri: str) -> list[str]:
    """One readable line per anomaly found in an ExampleAnomalies artifact, across its splits."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    lines = []
    for split_dir in sorted(fileio.listdir(anomalies_uri)):
        split = split_dir.rstrip("/").replace("Split-", "")
        for name in ("SchemaDiff.pb", "anomalies.pbtxt"):
            path = os.path.join(anomalies_uri, split_dir, name)
            if not fileio.exists(path):
                continue
            anomalies = anomalies_pb2.Anomalies()
            anomalies.ParseFromString(io_utils.read_bytes_file(path))
            for feature, info in sorted(anomalies.anomaly_info.items()):
                lines.append(f"{split} split, feature {feature!r}: {info.short_description}: {info.description}")
            if anomalies.HasField("dataset_anomaly_info"):
                info = anomalies.dataset_anomaly_info
                lines.append(f"{split} split: {info.short_description}: {info.description}")
            break
    return lines


# TFX runs it after ExampleValidator; it fails the run (before the Trainer) if any split has anomalies.
@tfx.dsl.components.component
def ValidationGate(anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies]):
    problems = describe_anomalies(anomalies.uri)
    if problems:
        raise DataValidationError("ExampleValidator found anomalies against the curated schema:\n  "
                                  + "\n  ".join(problems))


def _next_integer_version(base_directory: str) -> int:
    names = fileio.listdir(base_directory) if fileio.exists(base_directory) else []
    return layout.next_version_after(layout.integer_versions(names))


def _version_pushed_from(base_directory: str, model_path: str) -> int | None:
    """The version under ``base_directory`` that was pushed from ``model_path``, if any."""
    if not fileio.exists(base_directory):
        return None
    for name in fileio.listdir(base_directory):
        name = name.rstrip("/")
        info_path = os.path.join(base_directory, name, layout.ASSETS_EXTRA, layout.VERSION_INFO_FILE)
        if name.isdigit() and fileio.exists(info_path):
            try:
                if json.loads(io_utils.read_string_file(info_path)).get("source_model") == model_path:
                    return int(name)
            except ValueError:
                continue
    return None


class IntegerVersionPusherExecutor(pusher_executor.Executor):
    """The stock filesystem Pusher, pushing to ``base_directory/<next integer>/`` atomically."""

    def GetModelPath(self, input_dict) -> str:
        """The Trainer's ``Format-Push`` export when there is one (no tensorflow_text ops), else the stock choice."""
        from tfxformers.pipeline.classifier.training import PUSH_SUBDIR

        serving = super().GetModelPath(input_dict)
        plain = os.path.join(os.path.dirname(serving.rstrip("/")), PUSH_SUBDIR)
        return plain if fileio.exists(os.path.join(plain, "saved_model.pb")) else serving

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        model_path = self.GetModelPath(input_dict)
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof("destination") != "filesystem":
            raise NotImplementedError("IntegerVersionPusherExecutor pushes to a filesystem base_directory only")
        base = destination.filesystem.base_directory
        fileio.makedirs(base)
        already = _version_pushed_from(base, model_path)
        if already is not None:
            # A re-run (e.g. the Evaluator re-blessing a cached model against itself) must not add a
            # second version holding the same model.
            io_utils.copy_dir(model_path, model_push.uri)
            self._MarkPushed(model_push, pushed_destination=os.path.join(base, str(already)),
                             pushed_version=str(already))
            model_push.set_int_custom_property(ALREADY_PUSHED_KEY, 1)
            return
        staging = os.path.join(base, f".push-{uuid.uuid4().hex[:12]}")
        io_utils.copy_dir(model_path, staging)
        while True:
            version = _next_integer_version(base)
            info_path = os.path.join(staging, layout.ASSETS_EXTRA, layout.VERSION_INFO_FILE)
            if fileio.exists(info_path):
                # The Trainer could not know the version; clients reading the assets file should.
                info = json.loads(io_utils.read_string_file(info_path))
                info["version"] = version
                info["source_model"] = model_path
                io_utils.write_string_file(info_path, json.dumps(info, indent=2))
            serving_path = os.path.join(base, str(version))
            try:
                fileio.rename(staging, serving_path)
                break
            except Exception:  # another push took this number first (gfile and os raise different types)
                if not fileio.exists(serving_path):
                    raise
        io_utils.copy_dir(model_path, model_push.uri)
        self._MarkPushed(model_push, pushed_destination=serving_path, pushed_version=str(version))


class IntegerVersionPusher(tfx.components.Pusher):
    """TFX's Pusher with ``IntegerVersionPusherExecutor``; give it the id ``Pusher`` with ``.with_id``."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(IntegerVersionPusherExecutor)


def write_blessing(blessing, model, baseline_model, blessed: bool) -> None:
    """The ModelBlessing as TFX's Evaluator writes it: a marker file and the properties the stock resolver and
    Pusher read. For the evaluators that are not TFMA (``pipeline.lm``, ``pipeline.qa``)."""
    from tfx.components.evaluator import constants

    os.makedirs(blessing.uri, exist_ok=True)
    marker = constants.BLESSED_FILE_NAME if blessed else constants.NOT_BLESSED_FILE_NAME
    open(os.path.join(blessing.uri, marker), "w").close()
    blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri)
    blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
    if baseline_model is not None:
        blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY, baseline_model.uri)
        blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY, baseline_model.id)
    blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY,
                                     constants.BLESSED_VALUE if blessed else constants.NOT_BLESSED_VALUE)
