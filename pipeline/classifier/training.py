"""What the TFX Trainer's ``run_fn`` does: tf.Examples in, a trained classifier and its serving export out.

Training is ``tfxformers train classifier``'s own code (``models.classifier_train.train_classifier``:
frozen with cached encoder outputs, partial (top layers on cached lower-layer outputs), fine-tuned or
hub-encoder, early stopping on the validation split,
TensorBoard logs, test metrics and plots). The Trainer's examples are handed to it as one CSV with a
``split`` column, which the data layer honours, so nothing about training is re-implemented here.

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

import csv
import json
import os
import shutil
from pathlib import Path

from tfxformers.errors import UserError
from tfxformers.pipeline.classifier.signatures import LABEL_KEY, TEXT_KEY, examples_signature_builder

TRAINED_SUBDIR = "model"
PUSH_SUBDIR = "Format-Push"
# Labels go to training as "<zero-padded id>-<name>": the data layer sorts label names, and this keeps
# them in class-id order while the training log stays readable.
_LABEL_FORMAT = "{:05d}-{}"


def read_examples(file_patterns: list[str]) -> tuple[list[str], list[int]]:
    """(texts, class ids) from ExampleGen's gzipped TFRecords of tf.Examples."""
    import tensorflow as tf

    files = sorted(f for pattern in file_patterns for f in tf.io.gfile.glob(pattern))
    texts, labels = [], []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator():
        example = tf.train.Example.FromString(record)
        features = example.features.feature
        texts.append(features[TEXT_KEY].bytes_list.value[0].decode("utf-8"))
        labels.append(int(features[LABEL_KEY].int64_list.value[0]))
    return texts, labels


def _test_patterns(train_patterns: list[str]) -> list[str]:
    """The test split's files: ExampleGen writes every split beside the train split as ``Split-<name>``."""
    return [p.replace("Split-train", "Split-test") for p in train_patterns if "Split-train" in p]


def _write_training_csv(path: Path, splits: dict[str, tuple[list[str], list[int]]], label_names: list[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label", "split"])
        for split, (texts, labels) in splits.items():
            for text, label in zip(texts, labels):
                writer.writerow([text, _LABEL_FORMAT.format(label, label_names[label]), split])


def _restore_label_names(model_dir: Path, label_names: list[str]) -> None:
    """Put the real label names back where training recorded the padded class ids."""
    info_path = model_dir / "tfxformers.json"
    info = json.loads(info_path.read_text())
    info["label_names"] = list(label_names)
    info_path.write_text(json.dumps(info, indent=2))
    (model_dir / "labels.json").write_text(json.dumps(list(label_names), indent=2))
    metrics_path = model_dir / "metrics.json"
    if metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text())
        ids = [_LABEL_FORMAT.format(i, name) for i, name in enumerate(label_names)]
        rename = dict(zip(ids, label_names))
        metrics["per_class"] = {rename.get(k, k): v for k, v in metrics.get("per_class", {}).items()}
        metrics["label_names"] = list(label_names)
        metrics_path.write_text(json.dumps(metrics, indent=2))


def train_and_export(fn_args) -> dict:
    """Train per ``fn_args.custom_config`` and fill ``fn_args.serving_model_dir``; returns the test metrics."""
    from tfxformers.models.artifacts import load_trained
    from tfxformers.models.classification.train import ClassifierTrainConfig, train_classifier
    from tfxformers.serving.export.trained import write_trained

    config = dict(fn_args.custom_config or {})
    if config.get("distribute") == "multi-worker":
        from tfxformers.models.multiworker import strategy, worker_role

        worker_role("multi-worker")  # a clear error without TF_CONFIG
        strategy("multi-worker")  # before reading the examples: TensorFlow wants it before any other op
    label_names = list(config["label_names"])
    run_dir = Path(fn_args.model_run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    splits = {"train": read_examples(fn_args.train_files), "validation": read_examples(fn_args.eval_files)}
    test = read_examples(_test_patterns(fn_args.train_files))
    splits["test"] = test if test[0] else splits["validation"]
    for split, (texts, labels) in splits.items():
        if not texts:
            raise UserError(f"the {split} split has no examples")
        if max(labels) >= len(label_names) or min(labels) < 0:
            raise UserError(f"the {split} split has class ids outside 0..{len(label_names) - 1}")
    if len(set(splits["train"][1])) != len(label_names):
        raise UserError(f"the train split lacks some of the classes {label_names}")
    csv_path = run_dir / "training_data.csv"
    # Under multi-worker every worker writes the same file: whole, then renamed, so no reader sees half of it.
    partial_csv = run_dir / f".training_data.{os.getpid()}.csv"
    _write_training_csv(partial_csv, splits, label_names)
    os.replace(partial_csv, csv_path)

    model_dir = run_dir / TRAINED_SUBDIR
    train_config = ClassifierTrainConfig(
        data=str(csv_path), output=str(model_dir), encoder=config.get("encoder", "minilm"),
        mode=config.get("mode", "frozen"), epochs=int(config.get("epochs", 3)),
        batch_size=int(config.get("batch_size", 32)), learning_rate=config.get("learning_rate"),
        max_length=int(config.get("max_length", 128)), seed=int(config.get("seed", 42)), verbose=2,
        distribute=config.get("distribute", "none"), trainable_layers=config.get("trainable_layers"),
    )
    metrics = train_classifier(train_config)
    csv_path.unlink(missing_ok=True)
    from tfxformers.models.multiworker import worker_role

    if not worker_role(train_config.distribute).is_chief:
        # Vertex AI runs run_fn on every replica; only the chief writes the model and the exports.
        return metrics
    # A Trainer run never reuses its predecessor's directory, so partial mode's hidden-state cache (hundreds
    # of MB for Rotten Tomatoes) would only fill the artifact store.
    shutil.rmtree(model_dir / "hidden_cache", ignore_errors=True)
    _restore_label_names(model_dir, label_names)

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
    return json.loads((model_dir / "metrics.json").read_text())
