"""The token-classification model and its trained directory (kind ``tagger``).

``build_tagger(encoder, num_labels)`` is any registered family's encoder (``models.encoders``; pretrained
weights, or a config dict for random ones) with a dropout and a ``Dense(num_labels)`` named
``tagger_logits`` over every piece's last hidden state: inputs ``input_ids`` and ``attention_mask`` (int32,
dynamic batch and length; with ``word_shape``, also ``shape_ids``), output logits ``[batch, seq, num_labels]``, as ``*ForTokenClassification``
computes them. Only the first piece of each word carries a label; every other position has the label
``decode.IGNORE`` and ``masked_loss`` leaves it out.

``save_tagger`` writes ``weights/``, ``tokenizer/`` and ``tfxformers.json`` (task, label names, window
length and overlap, the special-token ids framing a window: all the proxy needs to tag with TF Serving's
logits); ``load_trained_tagger`` (the loader ``artifacts.KINDS`` names for kind ``tagger``) rebuilds the
model from the recorded encoder config and loads the weights.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import tfxformers  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from tfxformers.errors import UserError
from tfxformers.models.artifacts import (FORMAT_VERSION, INFO_FILE, TrainedModel, file_sizes, load_weights_and_tokenizer,
                                        read_info)

from tfxformers.models.tagging.decode import SHAPE_INPUT, SHAPES

KIND = "tagger"
HEAD = "tagger_logits"


def build_tagger(encoder, num_labels: int, *, dropout: float = 0.1, trainable_encoder: bool = True,
                 word_shape: bool = False, name: str = "tagger"):
    """The functional Keras tagger around ``encoder`` (a TF model of any family, or a config / config dict).

    ``word_shape``: a third input ``shape_ids`` (``decode.SHAPES``: each piece's word is lower-case, title-case,
    upper-case or uncased), embedded and added to the encoder's output before the head: the letter case an
    uncased tokenizer drops (NNP vs NN). The embedding starts at zero, so training starts from the encoder alone."""
    from tfxformers.models import encoders
    from tfxformers.models.encoders import base

    tf = base._tf()
    if num_labels < 2:
        raise UserError(f"a tagger needs at least 2 tags, got {num_labels}")
    if not hasattr(encoder, "layers") and not hasattr(encoder, "call"):
        encoder = base.model_from_config(encoder)
    layer = base.main_layer(encoder)
    layer.trainable = trainable_encoder
    if getattr(layer, "pooler", None) is not None:
        layer.pooler.trainable = False  # the token head never reads it: no gradient would reach it
    if not getattr(layer, "_tfxformers_no_autograph", False):  # as for classifiers (10+ s of AutoGraph)
        layer.call = tf.autograph.experimental.do_not_convert(layer.call)
        layer._tfxformers_no_autograph = True
    names = [*encoders.input_names(layer), *([SHAPE_INPUT] if word_shape else [])]
    inputs = {n: tf.keras.Input(shape=(None,), dtype=tf.int32, name=n) for n in names}
    hidden = base.call_main_layer(layer, inputs["input_ids"], inputs["attention_mask"]).last_hidden_state
    if word_shape:
        shape = tf.keras.layers.Embedding(len(SHAPES), base.hidden_size(layer.config), embeddings_initializer="zeros",
                                          name="word_shape")(inputs[SHAPE_INPUT])
        hidden = tf.keras.layers.Add(name="with_word_shape")([hidden, shape])
    hidden = tf.keras.layers.Dropout(dropout, name="head_dropout")(hidden)
    initializer = tf.keras.initializers.TruncatedNormal(stddev=layer.config.initializer_range)
    logits = tf.keras.layers.Dense(num_labels, kernel_initializer=initializer, name=HEAD)(hidden)
    model = tf.keras.Model(inputs=inputs, outputs=logits, name=name)
    model.encoder_config = layer.config
    return base.skip_autograph(model)


def masked_loss(labels, logits):
    """Mean cross-entropy over the positions whose label is not ``IGNORE`` (first pieces of words)."""
    import tensorflow as tf

    labels = tf.cast(labels, tf.int32)
    mask = tf.cast(labels >= 0, logits.dtype)
    losses = tf.keras.losses.sparse_categorical_crossentropy(tf.maximum(labels, 0), logits, from_logits=True)
    return tf.reduce_sum(losses * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def masked_accuracy(labels, logits):
    import tensorflow as tf

    labels = tf.cast(labels, tf.int32)
    mask = tf.cast(labels >= 0, tf.float32)
    right = tf.cast(tf.equal(tf.cast(tf.argmax(logits, axis=-1), tf.int32), labels), tf.float32) * mask
    return tf.reduce_sum(right) / tf.maximum(tf.reduce_sum(mask), 1.0)


def compile_tagger(model, *, learning_rate: float, num_train_steps: int, warmup_ratio: float = 0.1,
                   weight_decay: float = 0.01):
    from tfxformers.models.encoders.base import create_adamw

    model.compile(optimizer=create_adamw(learning_rate, num_train_steps, warmup_ratio, weight_decay),
                  loss=masked_loss, metrics=[masked_accuracy])
    return model


def special_framing(tokenizer) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after a single sequence (``[CLS]`` / ``[SEP]``, ``<s>`` / ``</s>``)."""
    marker = -7
    framed = list(tokenizer.build_inputs_with_special_tokens([marker]))
    at = framed.index(marker)
    return framed[:at], framed[at + 1:]


def save_tagger(directory: str | os.PathLike, model, tokenizer, *, task: str, label_names: list[str],
                max_length: int, overlap: int, mode: str, extra: dict | None = None) -> Path:
    path = Path(directory)
    (path / "weights").mkdir(parents=True, exist_ok=True)
    model.save_weights(str(path / "weights" / "model"))
    tokenizer.save_pretrained(str(path / "tokenizer"))
    prefix, suffix = special_framing(tokenizer)
    info = {"kind": KIND, "format_version": FORMAT_VERSION, "task": task, "label_names": list(label_names),
            "num_labels": len(label_names), "max_length": int(max_length), "overlap": int(overlap), "mode": mode,
            "input_names": list(model.input_names), "output": HEAD,
            "encoder_config": json.loads(model.encoder_config.to_json_string()),
            "pad_id": int(tokenizer.pad_token_id or 0), "prefix_ids": prefix, "suffix_ids": suffix,
            "empty_tag": "O" if task == "ner" else None, **(extra or {})}
    info["files"] = file_sizes(path, ("weights", "tokenizer"))
    (path / INFO_FILE).write_text(json.dumps(info, indent=2))  # last: its presence means the model is complete
    return path


def load_trained_tagger(path: Path, info: dict) -> TrainedModel:
    word_shape = SHAPE_INPUT in info.get("input_names", ())
    model, tokenizer = load_weights_and_tokenizer(
        path, lambda: build_tagger(info["encoder_config"], int(info["num_labels"]), word_shape=word_shape))
    return TrainedModel(path, info, model, tokenizer, list(info["label_names"]))


def load_tagger(directory: str | os.PathLike) -> TrainedModel:
    """A ``tfxformers train tagger`` directory."""
    return load_trained_tagger(Path(directory), read_info(directory, KIND))
