"""The TFX pipeline from split CSVs to a blessed, pushed classifier: ``create_pipeline(...)``.

One pure function returns a ``tfx.dsl.Pipeline``; nothing runs and no path is built at import time.
``tfxformers pipeline run`` builds the paths and runs it with ``LocalDagRunner``; ``tfxformers pipeline
compile --runner vertex`` compiles the same function's result for Kubeflow Pipelines v2 / Vertex AI;
the tests call it with temporary directories. Components, in order::

    CsvExampleGen (train / eval / test from the data layer's fixed splits)
    StatisticsGen -> ImportSchemaGen (curated schema in pipeline/schema/) -> ExampleValidator
    ValidationGate (fails the run on any anomaly, before training)
    Trainer (run_fn = tfxformers.pipeline.classifier.trainer_module.run_fn; custom_config says mode, encoder, ...)
    latest blessed model resolver -> Evaluator (accuracy, per-class precision / recall / AUC on eval;
        absolute and no-regression thresholds) -> Pusher (blessed only; next integer version; the stock
        Pusher component with ``components.IntegerVersionPusherExecutor``)
"""
from __future__ import annotations

# TFMA's config messages from their proto module: TFMA 0.47 also re-exports them as tfma.EvalConfig etc.,
# TFMA 0.52 (TFX 1.21) no longer does.
from tensorflow_model_analysis.proto import config_pb2 as tfma_config
from tfx import v1 as tfx

from tfxformers.pipeline.assembly import (assemble, integer_version_pusher, latest_blessed_model_resolver,
                                          split_input, validated_examples)
from tfxformers.pipeline.classifier.signatures import EXAMPLES_SIGNATURE, LABEL_KEY, SPLITS

RUN_FN = "tfxformers.pipeline.classifier.trainer_module.run_fn"
ACCURACY = "sparse_categorical_accuracy"
COMPONENT_IDS = ("CsvExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "ValidationGate",
                 "Trainer", "latest_blessed_model_resolver", "Evaluator", "Pusher")


def eval_config(label_names: list[str], min_accuracy: float, max_accuracy_drop: float) -> tfma_config.EvalConfig:
    """Accuracy with an absolute and a no-regression threshold; per-class metrics one-vs-rest (for two
    classes, class 1's AUC is the binary AUC)."""
    accuracy_threshold = tfma_config.MetricThreshold(
        value_threshold=tfma_config.GenericValueThreshold(lower_bound={"value": min_accuracy}),
        change_threshold=tfma_config.GenericChangeThreshold(
            direction=tfma_config.MetricDirection.HIGHER_IS_BETTER,
            # A tiny negative tolerance: re-evaluating the same model must not count as a regression.
            absolute={"value": -max_accuracy_drop - 1e-9}),
    )
    return tfma_config.EvalConfig(
        model_specs=[tfma_config.ModelSpec(signature_name=EXAMPLES_SIGNATURE, label_key=LABEL_KEY,
                                    prediction_key="probabilities")],
        slicing_specs=[tfma_config.SlicingSpec()],
        metrics_specs=[
            tfma_config.MetricsSpec(metrics=[
                tfma_config.MetricConfig(class_name="ExampleCount"),
                tfma_config.MetricConfig(class_name="SparseCategoricalAccuracy", threshold=accuracy_threshold),
                tfma_config.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
            ]),
            tfma_config.MetricsSpec(
                binarize=tfma_config.BinarizationOptions(class_ids={"values": list(range(len(label_names)))}),
                metrics=[tfma_config.MetricConfig(class_name=name) for name in ("AUC", "Precision", "Recall")],
            ),
        ],
    )


def create_pipeline(
    *,
    pipeline_name: str,
    pipeline_root: str,
    data_root: str,
    schema_path: str,
    push_directory: str,
    label_names: list[str],
    trainer_config: dict,
    metadata_path: str | None = None,
    min_accuracy: float = 0.7,
    max_accuracy_drop: float = 0.0,
    beam_pipeline_args: list[str] | None = None,
    enable_cache: bool = True,
) -> tfx.dsl.Pipeline:
    """The pipeline (see the module docstring).

    ``data_root`` holds ``train/``, ``validation/``, ``test/`` CSVs (``classifier.data.write_split_csvs``);
    ``push_directory`` is the serving model base of one model, ``serving_models/NAME``;
    ``trainer_config`` goes to ``run_fn`` as ``custom_config`` (mode, encoder, epochs, model_name, ...);
    ``metadata_path`` is the SQLite ML Metadata file for local runs (None: the orchestrator's own).
    """
    example_gen = tfx.components.CsvExampleGen(input_base=data_root, input_config=split_input(SPLITS))
    statistics_gen, schema_gen, example_validator, validation_gate = validated_examples(example_gen, schema_path)

    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(splits=["train"]),
        eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config=dict(trainer_config, label_names=list(label_names)),
    )
    trainer.add_upstream_node(validation_gate)

    model_resolver = latest_blessed_model_resolver()
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=model_resolver.outputs["model"],
        example_splits=["eval"],
        eval_config=eval_config(label_names, min_accuracy, max_accuracy_drop),
    )
    pusher = integer_version_pusher(trainer, evaluator, push_directory)
    components = [example_gen, statistics_gen, schema_gen, example_validator, validation_gate, trainer,
                  model_resolver, evaluator, pusher]
    return assemble(pipeline_name=pipeline_name, pipeline_root=pipeline_root, components=components,
                    metadata_path=metadata_path, beam_pipeline_args=beam_pipeline_args, enable_cache=enable_cache)
