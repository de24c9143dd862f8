"""What a local pipeline run left in ML Metadata, read back for its summary: ``summarize_run(...)``.

Both local runners (``pipeline.classifier.runner`` and ``pipeline.lm.runner``, through ``pipeline.runner``)
record their runs in a SQLite MLMD store under the pipeline root. The parts every pipeline has (which
nodes ran or came from the cache, the Trainer's outputs, the evaluator's blessing, what the Pusher pushed)
are read here once; each runner reads its own evaluator's results on top.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

STATE_NAMES = {0: "UNKNOWN", 1: "NEW", 2: "RUNNING", 3: "COMPLETE", 4: "FAILED", 5: "CACHED", 6: "CANCELED"}


@dataclass
class PipelineRunSummary:
    """What every local pipeline run reports; the runners' summaries add their evaluator's results."""
    pipeline_root: Path
    metadata_path: Path
    log_file: Path
    seconds: float
    states: dict[str, str] = field(default_factory=dict)   # node id -> COMPLETE / CACHED / FAILED
    blessed: bool | None = None
    pushed: bool | None = None
    pushed_version: int | None = None
    pushed_path: str | None = None
    already_pushed: bool = False   # the Pusher found this model already pushed and added no version
    trained_dir: Path | None = None
    model_uri: str | None = None   # the Trainer's Model artifact (Format-Serving/, Format-Push/)


def _store(metadata_path: Path):
    from ml_metadata.metadata_store import metadata_store
    from tfx.orchestration import metadata

    return metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(str(metadata_path)))


def latest_run_executions(metadata_path: Path, pipeline_name: str) -> dict[str, object]:
    """Node id -> the MLMD execution of that node in the latest pipeline run."""
    store = _store(metadata_path)
    runs = [c for c in store.get_contexts_by_type("pipeline_run")]
    pipeline_context = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline_context is None or not runs:
        return {}
    pipeline_executions = {e.id for e in store.get_executions_by_context(pipeline_context.id)}
    runs = [r for r in runs if any(e.id in pipeline_executions for e in store.get_executions_by_context(r.id))]
    if not runs:
        return {}
    latest = max(runs, key=lambda c: (c.create_time_since_epoch, c.id))
    result = {}
    for execution in store.get_executions_by_context(latest.id):
        for context in store.get_contexts_by_execution(execution.id):
            if store.get_context_types_by_id([context.type_id])[0].name == "node":
                result[context.name.split(".", 1)[-1]] = execution
    return result


def output_artifacts(metadata_path: Path, execution) -> dict[str, list]:
    """Output key -> artifacts of one execution (cached executions point at the original outputs)."""
    from ml_metadata.proto import metadata_store_pb2

    store = _store(metadata_path)
    outputs: dict[str, list] = {}
    events = store.get_events_by_execution_ids([execution.id])
    wanted = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
    for event in events:
        if event.type not in wanted:
            continue
        key = next((s.key for s in event.path.steps if s.HasField("key")), "")
        outputs.setdefault(key, []).extend(store.get_artifacts_by_id([event.artifact_id]))
    return outputs


def custom_property(artifact, name: str):
    value = artifact.custom_properties.get(name)
    if value is None:
        return None
    kind = value.WhichOneof("value")
    if kind == "struct_value":
        from google.protobuf import json_format

        return json_format.MessageToDict(value.struct_value)
    return getattr(value, kind)


@dataclass
class RunRecord:
    """What ``summarize_run`` read beyond the shared summary fields, for the runner's own."""
    trainer_metrics: dict | None = None       # the Trainer's metrics.json, None without one
    has_trainer_run: bool = False             # the Trainer produced a model_run artifact
    evaluator_outputs: dict[str, list] = field(default_factory=dict)


def summarize_run(metadata_path: Path, pipeline_name: str, summary: PipelineRunSummary,
                  evaluator: str) -> RunRecord:
    """Fill ``summary``'s shared fields from the latest run; ``evaluator`` is the node that blesses."""
    executions = latest_run_executions(metadata_path, pipeline_name)
    record = RunRecord()
    summary.states = {node: STATE_NAMES.get(e.last_known_state, str(e.last_known_state))
                      for node, e in executions.items()}
    if "Trainer" in executions:
        outputs = output_artifacts(metadata_path, executions["Trainer"])
        if outputs.get("model"):
            summary.model_uri = outputs["model"][0].uri
        if outputs.get("model_run"):
            summary.trained_dir = Path(outputs["model_run"][0].uri) / "model"
            metrics = summary.trained_dir / "metrics.json"
            record.has_trainer_run = True
            record.trainer_metrics = json.loads(metrics.read_text()) if metrics.is_file() else None
    if evaluator in executions:
        record.evaluator_outputs = output_artifacts(metadata_path, executions[evaluator])
        if record.evaluator_outputs.get("blessing"):
            summary.blessed = bool(custom_property(record.evaluator_outputs["blessing"][0], "blessed"))
    if "Pusher" in executions:
        pushed = output_artifacts(metadata_path, executions["Pusher"]).get("pushed_model")
        if pushed:
            summary.pushed = bool(custom_property(pushed[0], "pushed"))
            version = custom_property(pushed[0], "pushed_version")
            summary.pushed_version = int(version) if version and str(version).isdigit() else None
            summary.pushed_path = custom_property(pushed[0], "pushed_destination")
            summary.already_pushed = bool(custom_property(pushed[0], "tfxformers_already_pushed"))
    return record
