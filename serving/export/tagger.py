"""Export token classifiers (``tfxformers train tagger``): the ``tag`` signature (token logits) plus metadata.

``write_tagger(trained, directory, name=...)`` writes a version like every tfxformers export (atomic rename,
``assets.extra/tfxformers.json``, ``tokenizer/``, warm-up records, ``batching_params.pbtxt``, the
``tfxformers_metadata`` signature), with:

* ``tag`` (also ``serving_default``): ``input_ids``, ``attention_mask`` (and ``shape_ids`` for a tagger trained
  with ``--word-shape``) int32 ``[batch, seq]`` -> ``logits`` float32 ``[batch, seq, num_labels]``. A row is one window ``prefix + pieces + suffix`` planned by
  ``models.tagging.features`` (words never cut between windows); merging windows, first-piece labels, BIO
  spans and character offsets happen in the client with ``models.tagging.decode`` (NumPy only), because
  the offsets are the tokenizer's, which the client has.
* Batching-safe mask: TF Serving's batcher pads a short row with each tensor's first element (the prefix id,
  mask 1), so the graph keeps only positions up to the first suffix id (``[SEP]``, ``</s>``) of each row.
* Metadata: the kind ``tagger``, the task (``ner``: BIO entity tags; ``pos``: one tag per word), label names,
  window length and overlap, the framing ids, pad id, the tag a word no piece covers gets: everything a
  client needs to turn the logits into the same answers as ``tfxformers tag``.
"""
from __future__ import annotations

import os
from pathlib import Path

import tfxformers  # noqa: F401
from tfxformers.models.tagging.decode import SHAPE_INPUT
from tfxformers.serving import layout
from tfxformers.serving.export.qa import mask_up_to_last_sep
from tfxformers.serving.export.signatures import assert_same_shape, metadata_function
from tfxformers.serving.export.writer import warmup_log, write_version

SIGNATURE = "tag"
OUTPUT = "logits"
WARMUP_TEXTS = ("Heading to the Empire State Building with @paulwalk tomorrow",
                "Zoë met Maria at the Café de Flore in Paris 🙂 " * 12)


class _TaggerModule:
    """Builds the tf.Module whose functions become the tagger's signatures."""

    def __init__(self, tf, keras_model, input_names, sep_id: int | None, metadata_json: str, tokenizer_json: str):
        module = tf.Module(name="tfxformers_tagger")
        # Only the variables are tracked, as for the other kinds: saving the Keras model itself would trace the
        # Hugging Face layers' Keras call functions, which fails.
        module.model_variables = list(keras_model.variables)
        module.metadata_json, module.tokenizer_json = tf.constant(metadata_json), tf.constant(tokenizer_json)

        def logits_of(input_ids, attention_mask, extra):
            mask = attention_mask if sep_id is None else mask_up_to_last_sep(tf, input_ids, attention_mask, sep_id, 1)
            features = {"input_ids": input_ids, "attention_mask": mask, **extra}
            logits = keras_model({n: features[n] for n in input_names}, training=False)
            return {OUTPUT: tf.identity(logits, name=OUTPUT)}

        if SHAPE_INPUT in input_names:
            specs = [tf.TensorSpec((None, None), tf.int32, name=n) for n in ("input_ids", "attention_mask", SHAPE_INPUT)]

            @tf.function(input_signature=specs, autograph=False)
            def tag(input_ids, attention_mask, shape_ids):
                input_ids, attention_mask = assert_same_shape(tf, input_ids, attention_mask)
                input_ids, shape_ids = assert_same_shape(tf, input_ids, shape_ids)
                return logits_of(input_ids, attention_mask, {SHAPE_INPUT: shape_ids})
        else:
            specs = [tf.TensorSpec((None, None), tf.int32, name=n) for n in ("input_ids", "attention_mask")]

            @tf.function(input_signature=specs, autograph=False)
            def tag(input_ids, attention_mask):
                input_ids, attention_mask = assert_same_shape(tf, input_ids, attention_mask)
                return logits_of(input_ids, attention_mask, {})

        module.tag = tag
        module.metadata = metadata_function(tf, module)
        self.module = module
        self.signatures = {SIGNATURE: tag, layout.DEFAULT_SIGNATURE: tag, layout.METADATA_SIGNATURE: module.metadata}


def tagger_metadata(trained, name: str, version: int | None) -> dict:
    from tfxformers.models import encoders
    from tfxformers.models.tagging import features

    info = trained.info
    max_length = int(trained.max_length)
    inputs = ["input_ids", "attention_mask", *([SHAPE_INPUT] if SHAPE_INPUT in trained.input_names else [])]
    return {
        "kind": "tagger", "name": name, "version": version, "format_version": 1, "task": info["task"],
        "label_names": list(trained.label_names), "input_names": inputs,
        "max_length": max_length, "overlap": int(info.get("overlap", features.default_overlap(max_length))),
        "max_positions": int(encoders.max_input_tokens(trained.keras_model.encoder_config)),
        "buckets": sorted({min(features.padded_width(n), max_length) for n in (16, 32, 64, max_length)}),
        "pad_id": int(info["pad_id"]), "prefix_ids": list(info["prefix_ids"]), "suffix_ids": list(info["suffix_ids"]),
        "empty_tag": info.get("empty_tag"), "scheme": "BIO" if info["task"] == "ner" else "tags",
        "signatures": {SIGNATURE: {"inputs": inputs, "outputs": [OUTPUT]},
                       layout.METADATA_SIGNATURE: {"inputs": ["probe"], "outputs": ["metadata_json", "tokenizer_json"]}},
        "mask": "attention_mask limited to positions up to each row's first suffix id, in the graph",
    }


def _warmup_records(tf, trained, info: dict, name: str, path: Path) -> int:
    import numpy as np

    from tfxformers.models.tagging import features
    from tfxformers.models.tagging.inference import window_rows

    rows, shapes = window_rows(trained, WARMUP_TEXTS)
    count = 0
    with tf.io.TFRecordWriter(str(path)) as writer:
        for n in (1, len(rows)):  # one short row alone, then every window of both texts at once
            width = features.padded_width(max(len(r) for r in rows[:n]))
            inputs = features.model_inputs(rows[:n], None if shapes is None else shapes[:n], info["pad_id"], width,
                                           info["input_names"])
            writer.write(warmup_log(tf, name, SIGNATURE, {k: np.asarray(v, dtype=np.int32) for k, v in inputs.items()}))
            count += 1
    return count


def write_tagger(tf, trained, directory: str | os.PathLike, *, name: str, version: int | None = None) -> Path:
    """Write an in-memory tagger ``TrainedModel`` as a SavedModel at exactly ``directory``, atomically."""
    final = Path(directory)
    info = tagger_metadata(trained, name, version)
    suffix = info["suffix_ids"]
    return write_version(tf, info, trained.tokenizer, final, name,
                         lambda meta, tok_json: _TaggerModule(tf, trained.keras_model, trained.input_names,
                                                              suffix[0] if suffix else None, meta, tok_json),
                         warmup=lambda tf, path: _warmup_records(tf, trained, info, name, path))
