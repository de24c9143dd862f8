"""The TFX pipeline from a text corpus to a blessed, pushed GPT-2: ``create_lm_pipeline(...)``.

The language-model sibling of ``pipeline.classifier.pipeline.create_pipeline``: one pure function returning a
``tfx.dsl.Pipeline``, nothing built or run at import time; ``tfxformers pipeline run --task lm`` builds
the paths and runs it with ``LocalDagRunner`` (``pipeline.lm.runner``). Components, in order::

    ImportExampleGen (train / eval / test: the corpus's documents, written by pipeline.lm.data)
    StatisticsGen -> ImportSchemaGen (pipeline/schema/lm.pbtxt) -> ExampleValidator
    ValidationGate (fails the run on any anomaly: empty documents, text that is not UTF-8)
    BpeTokenizer (byte-level BPE trained on the train split; fails if a split cannot fill one block)
    Trainer (run_fn = tfxformers.pipeline.lm.trainer_module.run_fn: models.lm.gpt2.fit_gpt2, train gpt2's recipe)
    latest blessed model resolver -> PerplexityEvaluator (below the bigram baseline, no worse than the
        latest blessed model) -> Pusher (blessed only; next integer version; IntegerVersionPusher)
"""
from __future__ import annotations

from tfx import v1 as tfx

from tfxformers.pipeline.assembly import (assemble, integer_version_pusher, latest_blessed_model_resolver,
                                          split_input, validated_examples)
from tfxformers.pipeline.lm.components import BpeTokenizer, PerplexityEvaluator
from tfxformers.pipeline.lm.data import SPLITS

RUN_FN = "tfxformers.pipeline.lm.trainer_module.run_fn"
COMPONENT_IDS = ("ImportExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "ValidationGate",
                 "BpeTokenizer", "Trainer", "latest_blessed_model_resolver", "PerplexityEvaluator", "Pusher")


def create_lm_pipeline(
    *,
    pipeline_name: str,
    pipeline_root: str,
    data_root: str,
    schema_path: str,
    push_directory: str,
    trainer_config: dict,
    vocab_size: int = 8000,
    lowercase: bool = False,
    metadata_path: str | None = None,
    beam_pipeline_args: list[str] | None = None,
    enable_cache: bool = True,
) -> tfx.dsl.Pipeline:
    """The pipeline (see the module docstring).

    ``data_root`` holds ``train/``, ``eval/``, ``test/`` TFRecords (``pipeline.lm.data.write_corpus_records``);
    ``push_directory`` is ``serving_models/NAME``; ``trainer_config`` goes to ``run_fn`` as
    ``custom_config`` (preset, block_size, epochs, batch_size, learning_rate, seed, model_name, corpus,
    vocab_size, lowercase).
    """
    example_gen = tfx.components.ImportExampleGen(input_base=data_root, input_config=split_input(SPLITS))
    statistics_gen, schema_gen, example_validator, validation_gate = validated_examples(example_gen, schema_path)
    tokenizer = BpeTokenizer(examples=example_gen.outputs["examples"], vocab_size=int(vocab_size),
                             block_size=int(trainer_config["block_size"]), lowercase=int(bool(lowercase)))
    # The tokenizer reads only the examples; without this edge it could train on data the gate refuses.
    tokenizer.add_upstream_node(validation_gate)

    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],  # run_fn reads the documents through TFXIO against it
        transform_graph=tokenizer.outputs["tokenizer"],
        train_args=tfx.proto.TrainArgs(splits=["train"]),
        eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config=dict(trainer_config),
    )
    model_resolver = latest_blessed_model_resolver()
    evaluator = PerplexityEvaluator(examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
                                    baseline_model=model_resolver.outputs["model"])
    pusher = integer_version_pusher(trainer, evaluator, push_directory)
    components = [example_gen, statistics_gen, schema_gen, example_validator, validation_gate, tokenizer, trainer,
                  model_resolver, evaluator, pusher]
    return assemble(pipeline_name=pipeline_name, pipeline_root=pipeline_root, components=components,
                    metadata_path=metadata_path, beam_pipeline_args=beam_pipeline_args, enable_cache=enable_cache)
