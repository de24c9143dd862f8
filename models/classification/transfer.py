"""Frozen-encoder transfer: a reusable encoder SavedModel for ``hub.KerasLayer``, and cached features.

Two ways to train only a head on a frozen encoder, besides ``build_bert_classifier(mode="frozen")``:

* ``export_encoder_for_hub(encoder, dir)`` writes the encoder once as a SavedModel whose ``__call__``
  takes ``{"input_ids", "attention_mask"}`` (int32, any batch and length) and returns a dict with
  ``embedding`` (masked mean), ``pooled_output`` and ``sequence_output``; ``build_hub_classifier(dir, n)``
  loads it with ``tensorflow_hub.KerasLayer(dir, trainable=False)`` under a dense head.
* Because a frozen encoder's output never changes, ``encode_features`` runs it once over the texts
  (cached on disk, keyed by the encoder weights, pooling and texts) and ``build_head`` trains a head on
  those vectors in seconds per epoch; ``attach_head`` copies the trained head onto a full text->logits
  classifier so that evaluation, export and serving see an ordinary model.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np

import tfxformers  # noqa: F401
from tfxformers.models.buckets import DEFAULT_BUCKETS


def _encoder_main_layer(encoder):
    from tfxformers.models.encoders.base import main_layer

    return main_layer(encoder)


def export_encoder_for_hub(encoder, directory: str | os.PathLike) -> Path:
    """Save the encoder as a TF2 SavedModel usable by ``hub.KerasLayer``; returns the directory."""
    import tensorflow as tf

    from tfxformers.models.encoders.base import call_main_layer, masked_mean

    main_layer = _encoder_main_layer(encoder)
    has_pooler = getattr(main_layer, "pooler", None) is not None
    spec = {
        "input_ids": tf.TensorSpec((None, None), tf.int32, name="input_ids"),
        "attention_mask": tf.TensorSpec((None, None), tf.int32, name="attention_mask"),
    }

    class HubEncoder(tf.Module):
        def __init__(self, layer):
            super().__init__(name="hub_encoder")
            self.layer = layer

        @tf.function(input_signature=[spec], autograph=False)
        def __call__(self, inputs):
            out = call_main_layer(self.layer, inputs["input_ids"], inputs["attention_mask"], training=False)
            result = {"embedding": masked_mean(tf, out.last_hidden_state, inputs["attention_mask"]),
                      "sequence_output": out.last_hidden_state}
            if has_pooler:  # DistilBERT and ELECTRA have none
                result["pooled_output"] = out.pooler_output
            return result

    module = HubEncoder(main_layer)
    path = Path(directory)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.__call__})
    return path


def build_hub_classifier(hub_dir: str | os.PathLike, num_labels: int, *, dropout: float = 0.1,
                         learning_rate: float = 1e-3, num_train_steps: int = 1000, compile: bool = True):
    """Encoder from a SavedModel through ``hub.KerasLayer(trainable=False)``, with a dense head on top."""
    import tensorflow as tf
    import tensorflow_hub as hub

    from tfxformers.models.encoders.base import create_adamw, skip_autograph

    inputs = {n: tf.keras.Input(shape=(None,), dtype=tf.int32, name=n) for n in ("input_ids", "attention_mask")}
    encoder = hub.KerasLayer(str(hub_dir), trainable=False, output_key="embedding", name="hub_encoder")
    features = encoder(inputs)
    features = tf.keras.layers.Dropout(dropout, name="head_dropout")(features)
    logits = tf.keras.layers.Dense(num_labels, name="logits")(features)
    model = skip_autograph(tf.keras.Model(inputs, logits, name="hub_classifier"))
    if compile:
        model.compile(optimizer=create_adamw(learning_rate, num_train_steps),
                      loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=[tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return model


def encoder_fingerprint(encoder) -> str:
    """A short hash of the encoder's weights: changes whenever the encoder does."""
    digest = hashlib.sha256()
    for weight in _encoder_main_layer(encoder).weights:
        digest.update(weight.name.encode())
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return digest.hexdigest()[:16]


def encode_features(encoder, tokenizer, texts: Sequence[str], *, pooling: str = "mean", max_length: int = 128,
                    batch_size: int = 64, cache_dir: str | os.PathLike | None = None,
                    buckets: Sequence[int] = DEFAULT_BUCKETS, fingerprint: str | None = None,
                    progress: bool = True) -> np.ndarray:
    """Pooled encoder outputs ``[len(texts), hidden]``, computed once and cached under ``cache_dir``."""
    import tensorflow as tf
    from tqdm.auto import tqdm

    from tfxformers.models.encoders.base import call_main_layer, masked_mean
    from tfxformers.models.buckets import buckets_up_to, bucket_length
    from tfxformers.models.tokenization import encode_texts, pad_to, plan_batches

    cache_file = None
    if cache_dir is not None:
        key = hashlib.sha256()
        key.update((fingerprint or encoder_fingerprint(encoder)).encode())
        key.update(f"{pooling}|{max_length}|{len(texts)}".encode())
        for text in texts:
            key.update(text.encode("utf-8"))
            key.update(b"\0")
        cache_file = Path(cache_dir) / f"features-{key.hexdigest()[:24]}.npy"
        if cache_file.is_file():
            return np.load(cache_file)
    main_layer = _encoder_main_layer(encoder)

    @tf.function(reduce_retracing=True, autograph=False)
    def pooled(ids, mask):
        out = call_main_layer(main_layer, ids, mask, training=False)
        if pooling == "cls":
            return out.last_hidden_state[:, 0, :]
        if pooling == "pooled":
            return out.pooler_output
        return masked_mean(tf, out.last_hidden_state, mask)

    encoded = encode_texts(tokenizer, texts, max_length)
    lengths = encoded.lengths
    usable = buckets_up_to(max_length, buckets)
    features = None
    batches = plan_batches(lengths, batch_size, False, None)
    for index in tqdm(batches, desc="encoding", unit="batch", disable=not progress):
        width = bucket_length(int(lengths[index].max()), usable)
        ids, mask = pad_to([encoded.ids[i] for i in index], width, encoded.pad_id)
        values = pooled(tf.constant(ids), tf.constant(mask)).numpy()
        if features is None:
            features = np.zeros((len(texts), values.shape[-1]), dtype=np.float32)
        features[index] = values
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp.npy")
        np.save(tmp, features)
        os.replace(tmp, cache_file)
    return features


def build_head(hidden_size: int, num_labels: int, *, dropout: float = 0.1, learning_rate: float = 1e-3,
               num_train_steps: int = 1000, initializer_range: float = 0.02):
    """The classifier head alone (same layer names as ``build_bert_classifier``), on feature vectors."""
    import tensorflow as tf

    from tfxformers.models.encoders.base import create_adamw, skip_autograph

    features = tf.keras.Input(shape=(hidden_size,), dtype=tf.float32, name="features")
    x = tf.keras.layers.Dropout(dropout, name="head_dropout")(features)
    initializer = tf.keras.initializers.TruncatedNormal(stddev=initializer_range)
    logits = tf.keras.layers.Dense(num_labels, kernel_initializer=initializer, name="logits")(x)
    model = skip_autograph(tf.keras.Model(features, logits, name="classifier_head"))
    model.compile(optimizer=create_adamw(learning_rate, num_train_steps),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return model


def attach_head(classifier, head) -> None:
    """Copy a trained head's dense weights into a full classifier built with the same encoder."""
    classifier.get_layer("logits").set_weights(head.get_layer("logits").get_weights())
