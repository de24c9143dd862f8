"""What the TFX Trainer's ``run_fn`` does: tf.Examples in, a trained classifier and its serving export out.

The Trainer's examples are read with its own data accessor (``pipeline.examples``: TFXIO's
``tf_dataset_factory`` against the curated schema ImportSchemaGen passed in, as TFX's examples do), put into a
``models.data.classification.ClassificationData`` with the pipeline's label names, and handed to
``models.classification.train.fit_classifier``: the same function ``tfxformers train classifier`` calls
(frozen with cached encoder outputs, partial (top layers on cached lower-layer outputs), fine-tuned or
hub-encoder, early stopping on the validation split, TensorBoard logs, test metrics and plots), so nothing
about training is re-implemented or written to disk in between.

Outputs (``fn_args`` paths from TFX):

* ``model_run_dir/model/``: the trained-model directory (``tfxformers evaluate / predict / export`` work
  on it), ``metrics.json`` with the test split's metrics, ``logs/`` for TensorBoard;
* ``serving_model_dir`` (``Format-Serving``, what TFX's Evaluator loads for a TF2 model): the SavedModel
  written by ``serving.export.trained.write_trained`` (``serving_default``, ``tfxformers_metadata``, warm-up
  records) plus ``serving_examples`` (tf.Examples in, tokenized in the graph with tensorflow_text);
* ``Format-Push`` beside it (what ``IntegerVersionPusherExecutor`` pushes): the same weights with only the
  standard signatures, exactly what ``tfxformers export`` writes, so that any server loads it, including
  a plain TensorFlow process that never imported tensorflow_text. Tests check both give the same answers.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from tfxformers.errors import UserError
from tfxformers.pipeline.classifier.signatures import LABEL_KEY, TEXT_KEY, examples_signature_builder
from tfxformers.pipeline.examples import read_features, read_schema, test_split_patterns

TRAINED_SUBDIR = "model"
PUSH_SUBDIR = "Format-Push"
# What the trained model records as its data's name: tf.Examples of the pipeline's ExampleGen (whose
# artifact directory is recorded as the source).
DATA_NAME = "tfx-examples"


def examples_data(fn_args, label_names: list[str]):
    """The Trainer's train / eval / test examples as a ``ClassificationData`` with ``label_names``."""
    import numpy as np

    from tfxformers.models.data.classification import ClassificationData, Split, fixed_order

    schema = read_schema(fn_args.schema_path)

    def read(patterns: list[str]) -> tuple[list[str], list[int]]:
        columns = read_features(fn_args.data_accessor, patterns, schema, (TEXT_KEY, LABEL_KEY))
        return columns[TEXT_KEY], columns[LABEL_KEY]

    splits = {"train": read(fn_args.train_files), "validation": read(fn_args.eval_files)}
    test = read(test_split_patterns(fn_args.train_files))
    splits["test"] = test if test[0] else splits["validation"]
    for split, (texts, labels) in splits.items():
        if not texts:
            raise UserError(f"the {split} split has no examples")
        if max(labels) >= len(label_names) or min(labels) < 0:
            raise UserError(f"the {split} split has class ids outside 0..{len(label_names) - 1}")
    if len(set(splits["train"][1])) != len(label_names):
        raise UserError(f"the train split lacks some of the classes {label_names}")
    parts = {}
    for split, (texts, labels) in splits.items():
        # The order `train classifier` gives a split, whatever order ExampleGen's shards come in.
        order = fixed_order(texts)
        parts[split] = Split([texts[i] for i in order], np.array([labels[i] for i in order], dtype=np.int64))
    return ClassificationData(DATA_NAME, list(label_names), parts["train"], parts["validation"], parts["test"],
                              TEXT_KEY, LABEL_KEY)


def trainer_train_config(config: dict, examples_dir: str, model_dir: Path):
    """The ``ClassifierTrainConfig`` the Trainer's ``custom_config`` (``runner.trainer_config``) asks for."""
    from tfxformers.models.classification.train import ClassifierTrainConfig

    return ClassifierTrainConfig(
        data=examples_dir, output=str(model_dir), encoder=config.get("encoder", "minilm"),
        mode=config.get("mode", "frozen"), epochs=int(config.get("epochs", 3)),
        batch_size=int(config.get("batch_size", 32)), learning_rate=config.get("learning_rate"),
        max_length=int(config.get("max_length", 128)), seed=int(config.get("seed", 42)), verbose=2,
        distribute=config.get("distribute", "none"), trainable_layers=config.get("trainable_layers"),
        # distill mode: only what pipeline run was given, so the library's defaults stay the defaults
        **{k: config[k] for k in ("teacher", "unlabeled", "temperature", "alpha", "student_layers")
           if config.get(k) is not None},
    )


def train_and_export(fn_args) -> dict:
    """Train per ``fn_args.custom_config`` and fill ``fn_args.serving_model_dir``; returns the test metrics."""
    from tfxformers.models.artifacts import load_trained
    from tfxformers.models.classification.train import fit_classifier
    from tfxformers.models.multiworker import worker_role
    from tfxformers.serving.export.trained import write_trained

    config = dict(fn_args.custom_config or {})
    distribute = config.get("distribute", "none")
    if distribute == "multi-worker":
        from tfxformers.models.multiworker import strategy

        worker_role("multi-worker")  # a clear error without TF_CONFIG
        strategy("multi-worker")  # before reading the examples: TensorFlow wants it before any other op
    data = examples_data(fn_args, list(config["label_names"]))
    model_dir = Path(fn_args.model_run_dir) / TRAINED_SUBDIR
    examples_dir = os.path.dirname(fn_args.train_files[0].rstrip("*/"))  # <Examples uri>/Split-train/*
    train_config = trainer_train_config(config, examples_dir, model_dir)
    metrics = fit_classifier(data, train_config, model_dir)
    if not worker_role(distribute).is_chief:
        # Vertex AI runs run_fn on every replica; only the chief writes the model and the exports.
        return metrics
    # A Trainer run never reuses its predecessor's directory, so partial mode's hidden-state cache (hundreds
    # of MB for Rotten Tomatoes) would only fill the artifact store.
    shutil.rmtree(model_dir / "hidden_cache", ignore_errors=True)

    trained = load_trained(model_dir)
    name = config.get("model_name", "model")
    push_dir = Path(fn_args.serving_model_dir).parent / PUSH_SUBDIR
    from tfxformers.models import encoders

    kind = encoders.spec_for(trained.info["encoder_config"]).tokenizer_kind if trained.info.get("encoder_config") \
        else "wordpiece"
    for directory, extra in ((fn_args.serving_model_dir, examples_signature_builder(trained.tokenizer, trained.max_length,
                                                                                      kind)),
                             (push_dir, None)):
        directory = Path(directory)
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()  # write_trained renames the finished SavedModel into place
        write_trained(trained, directory, name=name, version=None, extra_signatures=extra)
    return metrics
