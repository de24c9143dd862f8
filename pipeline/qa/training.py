"""What the question-answering Trainer's ``run_fn`` does: SQuAD questions in, a trained reader and its export out.

The Trainer's questions are read with its own data accessor (TFXIO against the curated schema
``pipeline/schema/qa.pbtxt``, as ``pipeline.examples.read_features`` reads the other Trainers' features,
but row by row: a question has one value per answer of ``answer_text`` / ``answer_start``), turned into
``models.qa.features.QAExample``s and handed to ``models.qa.train.fit_qa``: the recipe ``tfxformers train
qa`` runs (labelled windows in length buckets, AdamW with warm-up and decay over the epochs or over
``budget_cpu_minutes`` of training CPU time, backups to resume from, TensorBoard logs, a CSV history, the
official EM/F1 on the eval split in ``metrics.json``), not a copy of it.

Outputs (``fn_args`` paths from TFX):

* ``model_run_dir/model/``: a trained-model directory as ``train qa`` writes it, so ``tfxformers answer /
  export`` work on it;
* ``serving_model_dir`` (``Format-Serving``): ``serving.export.qa.write_qa`` of that model, the export
  ``tfxformers export`` writes (``answer`` / ``serving_default`` start and end logits,
  ``tfxformers_metadata``, tokenizer, warm-up records), which the evaluator scores and the Pusher copies to
  the next integer version.
"""
from __future__ import annotations

from pathlib import Path

from tfxformers.pipeline.examples import read_schema
from tfxformers.pipeline.qa.data import FEATURES, LIST_FEATURES, to_qa_example

TRAINED_SUBDIR = "model"
_READ_BATCH = 256


def _rows_of(tensor) -> list:
    """One list of Python values per example, whichever tensor kind TFXIO made for the feature."""
    import tensorflow as tf

    if isinstance(tensor, tf.SparseTensor):
        tensor = tf.RaggedTensor.from_sparse(tensor)
    rows = tensor.to_list() if isinstance(tensor, tf.RaggedTensor) else tensor.numpy().tolist()
    rows = [row if isinstance(row, list) else [row] for row in rows]
    return [[v.decode("utf-8") if isinstance(v, bytes) else v for v in row] for row in rows]


def read_questions(data_accessor, file_patterns: list[str], schema) -> list:
    """The ``QAExample``s of one split, in file and record order (the gate has checked every one)."""
    import tensorflow as tf
    from tfx_bsl.public import tfxio

    options = tfxio.TensorFlowDatasetOptions(batch_size=_READ_BATCH, num_epochs=1, shuffle=False)
    examples = []
    for path in sorted(f for pattern in file_patterns for f in tf.io.gfile.glob(pattern)):
        for batch in data_accessor.tf_dataset_factory([path], options, schema):
            columns = {key: _rows_of(batch[key]) for key in FEATURES}
            for i in range(len(columns[FEATURES[0]])):
                row = {k: (v[i] if k in LIST_FEATURES else v[i][0]) for k, v in columns.items()}
                examples.append(to_qa_example(row))
    return examples


def train_and_export(fn_args) -> dict:
    """Train per ``fn_args.custom_config`` and fill ``fn_args.serving_model_dir``; returns the metrics."""
    from tfxformers.models.qa.model import load_qa
    from tfxformers.models.qa.train import QATrainConfig, fit_qa
    from tfxformers.serving.export.qa import write_qa

    config = dict(fn_args.custom_config or {})
    schema = read_schema(fn_args.schema_path)
    train = read_questions(fn_args.data_accessor, fn_args.train_files, schema)
    evaluation = read_questions(fn_args.data_accessor, fn_args.eval_files, schema)
    if config.get("trainer_eval_questions"):
        # The evaluator scores all of them on the export; this is only the Trainer's own metrics.json.
        evaluation = evaluation[:int(config["trainer_eval_questions"])]
    model_dir = Path(fn_args.model_run_dir) / TRAINED_SUBDIR
    budget = config.get("budget_cpu_minutes")
    train_config = QATrainConfig(
        data=config["data"], eval_data=config["eval_data"], output=str(model_dir), encoder=config["encoder"],
        epochs=int(config["epochs"]), batch_size=int(config["batch_size"]),
        learning_rate=float(config["learning_rate"]), max_seq_len=int(config["max_seq_len"]),
        doc_stride=int(config["doc_stride"]), seed=int(config["seed"]),
        budget_cpu_minutes=float(budget) if budget else None, verbose=2)
    metrics = fit_qa(train, evaluation, train_config, model_dir)

    serving_dir = Path(fn_args.serving_model_dir)
    if serving_dir.is_dir() and not any(serving_dir.iterdir()):
        serving_dir.rmdir()  # write_qa renames the finished SavedModel into place
    write_qa(load_qa(model_dir), serving_dir, name=config.get("model_name", "qa"), version=None)
    return metrics
