"""The TFX pipeline from SQuAD-format questions to a blessed, pushed reader: ``create_qa_pipeline(...)``.

The question-answering sibling of ``pipeline.lm.pipeline.create_lm_pipeline``: one pure function returning
a ``tfx.dsl.Pipeline``, nothing built or run at import time; ``tfxformers pipeline run --task qa`` builds
the paths and runs it with ``LocalDagRunner`` (``pipeline.qa.runner``). Components, in order::

    ImportExampleGen (train / eval: one question per example, written by pipeline.qa.data)
    StatisticsGen -> ImportSchemaGen (pipeline/schema/qa.pbtxt) -> ExampleValidator
    QAExampleGate (fails the run on anomalies and on malformed questions, naming them)
    Trainer (run_fn = tfxformers.pipeline.qa.trainer_module.run_fn: models.qa.train.fit_qa, train qa's recipe)
    latest blessed model resolver -> QAEvaluator (F1 above the lexical baseline, no worse than the latest
        blessed model) -> Pusher (blessed only; next integer version; IntegerVersionPusher)
"""
from __future__ import annotations

from tfx import v1 as tfx

from tfxformers.pipeline.assembly import assemble, integer_version_pusher, latest_blessed_model_resolver, split_input
from tfxformers.pipeline.qa.components import QAEvaluator, QAExampleGate
from tfxformers.pipeline.qa.data import SPLITS

RUN_FN = "tfxformers.pipeline.qa.trainer_module.run_fn"
COMPONENT_IDS = ("ImportExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "QAExampleGate",
                 "Trainer", "latest_blessed_model_resolver", "QAEvaluator", "Pusher")


def create_qa_pipeline(
    *,
    pipeline_name: str,
    pipeline_root: str,
    data_root: str,
    schema_path: str,
    push_directory: str,
    trainer_config: dict,
    metadata_path: str | None = None,
    beam_pipeline_args: list[str] | None = None,
    enable_cache: bool = True,
) -> tfx.dsl.Pipeline:
    """The pipeline (see the module docstring).

    ``data_root`` holds ``train/`` and ``eval/`` TFRecords (``pipeline.qa.data.write_squad_records``);
    ``push_directory`` is ``serving_models/NAME``; ``trainer_config`` goes to ``run_fn`` as ``custom_config``
    (encoder, epochs, batch_size, learning_rate, max_seq_len, doc_stride, budget_cpu_minutes, seed,
    model_name, data, eval_data).
    """
    example_gen = tfx.components.ImportExampleGen(input_base=data_root, input_config=split_input(SPLITS))
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.ImportSchemaGen(schema_file=schema_path)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    # Not assembly.validated_examples' ValidationGate: this gate also reads the questions, so that one
    # error names the faulty ones beside the schema's anomalies.
    gate = QAExampleGate(examples=example_gen.outputs["examples"], anomalies=example_validator.outputs["anomalies"])

    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],  # run_fn reads the questions through TFXIO against it
        train_args=tfx.proto.TrainArgs(splits=["train"]),
        eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config=dict(trainer_config),
    )
    # The Trainer reads only the examples; without this edge it could train on questions the gate refuses.
    trainer.add_upstream_node(gate)
    model_resolver = latest_blessed_model_resolver()
    evaluator = QAEvaluator(examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
                            baseline_model=model_resolver.outputs["model"])
    pusher = integer_version_pusher(trainer, evaluator, push_directory)
    components = [example_gen, statistics_gen, schema_gen, example_validator, gate, trainer, model_resolver,
                  evaluator, pusher]
    return assemble(pipeline_name=pipeline_name, pipeline_root=pipeline_root, components=components,
                    metadata_path=metadata_path, beam_pipeline_args=beam_pipeline_args, enable_cache=enable_cache)
