"""The pieces every TFX pipeline here is assembled from, whatever its task.

``split_input`` (ExampleGen's splits from one directory per split), ``validated_examples`` (statistics,
curated schema, validator and the gate that stops the run on anomalies), ``latest_blessed_model_resolver``
(the evaluators' baseline), ``integer_version_pusher`` (the Pusher writing ``1, 2, 3, ...``) and
``assemble`` (the ``tfx.dsl.Pipeline`` with SQLite ML Metadata for local runs). The tasks' pipelines
(``classifier.pipeline``, ``lm.pipeline``) call them around their own Trainer and evaluator.
"""
from __future__ import annotations

from tfx import v1 as tfx

from tfxformers.pipeline.components import IntegerVersionPusher, ValidationGate


def split_input(splits: dict[str, str]) -> tfx.proto.Input:
    """ExampleGen's input config: one split per ``{name: directory}`` under its input base."""
    return tfx.proto.Input(splits=[tfx.proto.Input.Split(name=name, pattern=f"{directory}/*")
                                   for name, directory in splits.items()])


def validated_examples(example_gen, schema_path: str) -> tuple:
    """(StatisticsGen, ImportSchemaGen, ExampleValidator, ValidationGate) on ``example_gen``'s examples:
    the gate fails the run on any anomaly against the curated schema at ``schema_path``."""
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.ImportSchemaGen(schema_file=schema_path)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    validation_gate = ValidationGate(anomalies=example_validator.outputs["anomalies"])
    return statistics_gen, schema_gen, example_validator, validation_gate


def latest_blessed_model_resolver() -> tfx.dsl.Resolver:
    """The latest blessed model, the evaluator's baseline (none on a first run)."""
    return tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")


def integer_version_pusher(trainer, evaluator, push_directory: str) -> IntegerVersionPusher:
    """Pushes ``trainer``'s model, once ``evaluator`` blessed it, as the next integer version."""
    return IntegerVersionPusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=push_directory)),
    ).with_id("Pusher")


def assemble(*, pipeline_name: str, pipeline_root: str, components: list, metadata_path: str | None,
             beam_pipeline_args: list[str] | None, enable_cache: bool) -> tfx.dsl.Pipeline:
    """The ``tfx.dsl.Pipeline`` of ``components``; ``metadata_path`` None: the orchestrator's own MLMD."""
    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=components,
        enable_cache=enable_cache,
        metadata_connection_config=(tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path)
                                    if metadata_path else None),
        beam_pipeline_args=list(beam_pipeline_args or []),
    )
