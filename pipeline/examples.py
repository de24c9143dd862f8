"""A Trainer's tf.Examples as Python values, read the way TFX hands them over: ``read_features(...)``.

Both Trainers' ``run_fn`` get ``fn_args.data_accessor`` (TFXIO) and the curated schema ImportSchemaGen
passed in (``fn_args.schema_path``); ``read_features`` reads one split's features through
``data_accessor.tf_dataset_factory`` once, in file and record order, and returns plain lists that the library's fit
functions take (``fit_classifier``'s ``ClassificationData``, ``fit_gpt2``'s ``Corpus``).
"""
from __future__ import annotations

from tfxformers.errors import UserError

_READ_BATCH = 256


def read_schema(schema_path: str | None):
    """The ``tensorflow_metadata`` Schema at ``schema_path`` (ImportSchemaGen's ``schema.pbtxt``), or None."""
    if not schema_path:
        return None
    import tensorflow as tf
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    with tf.io.gfile.GFile(schema_path) as f:
        return text_format.Parse(f.read(), schema_pb2.Schema())


def test_split_patterns(train_patterns: list[str]) -> list[str]:
    """The test split's files: ExampleGen writes every split beside the train split as ``Split-<name>``, but
    the Trainer's arguments name only the train and eval splits."""
    return [p.replace("Split-train", "Split-test") for p in train_patterns if "Split-train" in p]


def _python(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")  # the validator has passed every text as UTF-8
    return value.item() if hasattr(value, "item") else value


def _values(feature) -> list:
    """One value per example from a batch of a one-value feature, whichever tensor kind TFXIO made for it."""
    import tensorflow as tf

    if isinstance(feature, tf.SparseTensor):  # a feature without a fixed shape in the schema
        values = feature.values
    elif isinstance(feature, tf.RaggedTensor):
        values = feature.flat_values
    else:
        values = tf.reshape(feature, [-1])
    return [_python(v) for v in values.numpy()]


def read_features(data_accessor, file_patterns: list[str], schema, keys: tuple[str, ...]) -> dict[str, list]:
    """``{key: [one value per example]}`` for one split (empty lists when no file matches)."""
    import tensorflow as tf
    from tfx_bsl.public import tfxio

    columns: dict[str, list] = {key: [] for key in keys}
    options = tfxio.TensorFlowDatasetOptions(batch_size=_READ_BATCH, num_epochs=1, shuffle=False)
    # One file at a time, in name order: TFXIO interleaves the records of several files, and a corpus's
    # documents must stay in their order (they are joined into one token stream).
    for path in sorted(f for pattern in file_patterns for f in tf.io.gfile.glob(pattern)):
        # Eagerly, tensor by tensor: as_numpy_iterator would densify sparse string tensors, which fails.
        for batch in data_accessor.tf_dataset_factory([path], options, schema):
            values = {key: _values(batch[key]) for key in keys}
            if len({len(v) for v in values.values()}) > 1:
                # The curated schemas ask exactly one value of each feature per example.
                raise UserError(f"every example needs exactly one value of each of {', '.join(keys)}")
            for key in keys:
                columns[key] += values[key]
    return columns
