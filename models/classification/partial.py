"""Partial fine-tuning: the lower encoder layers run once and are cached, only the top N layers and the head train.

``--mode partial --trainable-layers N`` sits between ``frozen`` (head only, on cached pooled vectors) and
``finetune`` (everything, every step). With an encoder of L layers:

1. ``encode_hidden_states`` runs the embeddings and the bottom ``L - N`` layers once, in inference mode,
   over the texts sorted by length in large batches, and keeps the hidden state of every real token
   (no padding) as one ``[total_tokens, hidden]`` float16 array plus the per-text lengths. It is cached
   on disk under a key made of the encoder's weights, the frozen depth, the texts, ``max_length``, the
   bucket lengths and the storage dtype: a re-run reuses it, any change writes a new file.
2. ``build_partial_model`` is a Keras model on those states (inputs ``hidden_states [batch, len, hidden]``
   and ``attention_mask [batch, len]``; batches padded to the length buckets on the fly) that calls the
   very same ``TFBertLayer`` objects as the full classifier's top N layers, then the same pooling, dropout
   and ``logits`` layer. Only those weights train: no gradient reaches the 11.7M-parameter embedding
   matrix or the lower layers, and their forward pass is not repeated every epoch.
3. Because the layers are shared, the full text -> logits classifier (``encoders.base.build_classifier``)
   holds the trained weights as soon as training ends: ``evaluate``, ``predict``, ``export``, the server
   and the proxy see an ordinary fine-tuned model.

Padded positions never influence real tokens (their attention logits get -10000 before the softmax, as
in the full model), so states computed at one padding width are valid at any other width; storing only
real tokens is what keeps the cache small.
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

import tfxformers  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from tfxformers.errors import UserError
from tfxformers.models.buckets import DEFAULT_BUCKETS, bucket_length, buckets_up_to

# Chosen with bench/bench_partial.py on Rotten Tomatoes (docs/benchmarks.md): one epoch with the top 3 of
# MiniLM's 6 layers reached 0.811 test accuracy (2 layers: 0.806, full fine-tuning epoch: 0.825) for 54% of
# a full epoch's CPU time; the learning rate from validation accuracy of the top layer at 1e-4 / 4e-4 / 1e-3.
DEFAULT_TRAINABLE_LAYERS = 3   # of MiniLM's 6: the top half, see default_trainable_layers
DEFAULT_LEARNING_RATE = 5e-4
CACHE_BATCH_SIZE = 128
# Batches of cached states are padded to a multiple of 8 tokens, not to the 16/32/64/128 serving buckets: on
# Rotten Tomatoes (27 tokens per text on average) that is 16% padding instead of 47%, and Keras' train and
# test functions use reduce_retracing, so the extra widths cost one generalised trace, not one trace each.
STATE_BUCKET_STEP = 8


def state_buckets(max_length: int) -> tuple[int, ...]:
    return buckets_up_to(max_length, range(STATE_BUCKET_STEP, max_length + 1, STATE_BUCKET_STEP))


def default_trainable_layers(depth: int) -> int:
    """The top half of the encoder (3 of MiniLM's 6 layers, the benchmark's choice), at least one layer."""
    return max(1, depth * DEFAULT_TRAINABLE_LAYERS // 6)


def check_trainable_layers(trainable_layers: int, depth: int) -> None:
    if trainable_layers < 1 or trainable_layers > depth:
        raise UserError(f"--trainable-layers must be between 1 and the encoder's depth ({depth}), "
                        f"got {trainable_layers}")


def _main_layer(encoder):
    from tfxformers.models.encoders.base import main_layer

    return main_layer(encoder)


def _blocks(main_layer) -> list:
    """The encoder's transformer blocks, bottom first, whatever its family calls them."""
    from tfxformers.models import encoders

    return encoders.family_module(main_layer).layers(main_layer)


def _run_layers(family, layers, hidden, mask, training):
    """The blocks in turn, each given the 0/1 mask in the form its family's main layer would give it."""
    for layer in layers:
        hidden = family.run_layer(layer, hidden, mask, training=training)[0]
    return hidden


@dataclass
class HiddenStates:
    """Hidden states of real tokens only: text ``i`` is ``states[offsets[i] : offsets[i] + lengths[i]]``."""

    states: np.ndarray     # [total_tokens, hidden], float16 (or float32)
    lengths: np.ndarray    # [texts] int64, tokens per text including [CLS] and [SEP]
    path: Path | None = None
    reused: bool = False
    seconds: float = 0.0

    def __post_init__(self):
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def megabytes(self) -> float:
        return (self.states.nbytes + self.lengths.nbytes) / 1e6

    def padded(self, index: Sequence[int], width: int) -> tuple[np.ndarray, np.ndarray]:
        """(hidden ``[len(index), width, hidden]`` float32, mask ``[len(index), width]`` int32)."""
        hidden = np.zeros((len(index), width, self.states.shape[1]), dtype=np.float32)
        mask = np.zeros((len(index), width), dtype=np.int32)
        for row, i in enumerate(index):
            n = min(int(self.lengths[i]), width)
            start = self.offsets[i]
            hidden[row, :n] = self.states[start:start + n]
            mask[row, :n] = 1
        return hidden, mask


def cache_key(fingerprint: str, frozen_depth: int, texts: Sequence[str], max_length: int,
              buckets: Sequence[int], dtype: str) -> str:
    key = hashlib.sha256()
    key.update(f"{fingerprint}|depth={frozen_depth}|max_length={max_length}|buckets={list(buckets)}|{dtype}|"
               f"{len(texts)}".encode())
    for text in texts:
        key.update(text.encode("utf-8"))
        key.update(b"\0")
    return key.hexdigest()[:24]


def encode_hidden_states(encoder, tokenizer, texts: Sequence[str], *, frozen_depth: int, max_length: int = 128,
                         buckets: Sequence[int] = DEFAULT_BUCKETS, cache_dir: str | os.PathLike | None = None,
                         fingerprint: str | None = None, dtype: str = "float16",
                         batch_size: int = CACHE_BATCH_SIZE, progress: bool = True) -> HiddenStates:
    """The output of the encoder's bottom ``frozen_depth`` layers for every text, cached under ``cache_dir``."""
    import tensorflow as tf
    from tqdm.auto import tqdm

    from tfxformers.models.tokenization import encode_texts, pad_to
    from tfxformers.models.classification.transfer import encoder_fingerprint
    from tfxformers.models.encoders.base import hidden_size

    from tfxformers.models import encoders

    main_layer = _main_layer(encoder)
    family = encoders.family_module(main_layer)
    depth = len(_blocks(main_layer))
    if not 0 <= frozen_depth <= depth:
        raise UserError(f"frozen depth {frozen_depth} is outside 0..{depth}")
    started = time.perf_counter()
    cache_file = None
    if cache_dir is not None:
        key = cache_key(fingerprint or encoder_fingerprint(encoder), frozen_depth, texts, max_length, buckets, dtype)
        cache_file = Path(cache_dir) / f"hidden-{key}.npz"
        if cache_file.is_file():
            with np.load(cache_file) as saved:
                return HiddenStates(saved["states"], saved["lengths"], cache_file, True,
                                    time.perf_counter() - started)

    lower = _blocks(main_layer)[:frozen_depth]

    @tf.function(reduce_retracing=True, autograph=False)
    def lower_states(ids, mask):
        hidden = family.embed(main_layer, ids, training=False)
        return _run_layers(family, lower, hidden, mask, training=False)

    encoded = encode_texts(tokenizer, texts, max_length)
    lengths = encoded.lengths
    usable = buckets_up_to(max_length, buckets)
    states = np.zeros((int(lengths.sum()), hidden_size(main_layer.config)), dtype=dtype)
    result = HiddenStates(states, lengths, cache_file)
    # Fully sorted by length: inference needs no shuffling, and sorted batches waste almost nothing on padding.
    order = np.argsort(lengths, kind="stable")
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    for index in tqdm(batches, desc=f"encoding {frozen_depth} frozen layers", unit="batch", disable=not progress):
        width = bucket_length(int(lengths[index].max()), usable)
        ids, mask = pad_to([encoded.ids[i] for i in index], width, encoded.pad_id)
        hidden = lower_states(tf.constant(ids), tf.constant(mask)).numpy()
        for row, i in enumerate(index):
            start = result.offsets[i]
            states[start:start + lengths[i]] = hidden[row, :lengths[i]]
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(cache_file.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, states=states, lengths=lengths)
        os.replace(tmp, cache_file)
    result.seconds = time.perf_counter() - started
    return result


def make_state_dataset(hidden: HiddenStates, labels: np.ndarray | None = None, *, batch_size: int = 32,
                       max_length: int = 128, buckets: Sequence[int] = DEFAULT_BUCKETS, shuffle: bool = False,
                       seed: int = 0, start: tuple[int, int] = (0, 0)):
    """Batches of cached states padded to the length buckets, like ``tokenization.make_dataset`` for ids
    (``start`` too: the resumed epoch and step)."""
    import tensorflow as tf

    from tfxformers.models.tokenization import epoch_plans, plan_batches

    usable = buckets_up_to(max_length, buckets)
    lengths = hidden.lengths
    plan = epoch_plans(lengths, batch_size, shuffle, seed, start)

    def generate():
        for index in plan():
            states, mask = hidden.padded(index, bucket_length(int(lengths[index].max()), usable))
            features = {"hidden_states": states, "attention_mask": mask}
            yield features if labels is None else (features, labels[index].astype(np.int64))

    spec = {"hidden_states": tf.TensorSpec((None, None, hidden.states.shape[1]), tf.float32),
            "attention_mask": tf.TensorSpec((None, None), tf.int32)}
    signature = spec if labels is None else (spec, tf.TensorSpec((None,), tf.int64))
    steps = len(plan_batches(lengths, batch_size, False, None))
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return dataset.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(2)


def _upper_encoder_layer(tf):
    class UpperEncoder(tf.keras.layers.Layer):
        """The encoder's top layers as one Keras layer over (hidden states, mask); the layers are shared."""

        def __init__(self, bert_layers, family, **kwargs):
            super().__init__(**kwargs)
            self.bert_layers = list(bert_layers)
            self.family = family

        def get_config(self):
            # Never rebuilt from its config (only weights are saved, into the full classifier); this keeps
            # Keras from warning about the constructor argument it cannot serialise.
            return super().get_config()

        @tf.autograph.experimental.do_not_convert
        def call(self, inputs, training=None):
            hidden, mask = inputs
            return _run_layers(self.family, self.bert_layers, hidden, mask, training=training)

    return UpperEncoder


def build_partial_model(classifier, encoder, trainable_layers: int, *, pooling: str = "mean",
                        dropout: float = 0.1, learning_rate: float = DEFAULT_LEARNING_RATE,
                        num_train_steps: int = 1000, warmup_ratio: float = 0.1, weight_decay: float = 0.01,
                        compile: bool = True):
    """A Keras model from cached states to logits that shares its weights with ``classifier``.

    ``classifier`` is the full model from ``encoders.base.build_classifier(encoder, ...)``: the top
    ``trainable_layers`` of ``encoder`` and its ``logits`` layer are called here as they are, so training
    this model trains that classifier.
    """
    import tensorflow as tf

    from tfxformers.models import encoders
    from tfxformers.models.encoders.base import hidden_size, masked_mean as _masked_mean
    from tfxformers.models.encoders.base import create_adamw, skip_autograph

    main_layer = _main_layer(encoder)
    layers = _blocks(main_layer)
    check_trainable_layers(trainable_layers, len(layers))
    hidden = tf.keras.Input(shape=(None, hidden_size(main_layer.config)), dtype=tf.float32, name="hidden_states")
    mask = tf.keras.Input(shape=(None,), dtype=tf.int32, name="attention_mask")
    top = _upper_encoder_layer(tf)(layers[len(layers) - trainable_layers:], encoders.family_module(main_layer),
                                   name="top_layers")
    for layer in top.bert_layers:
        layer.trainable = True
    output = top([hidden, mask])
    if pooling == "cls":
        features = tf.keras.layers.Lambda(lambda t: t[:, 0, :], name="cls")(output)
    elif pooling == "pooled":
        features = main_layer.pooler(output)
    else:
        features = tf.keras.layers.Lambda(lambda t: _masked_mean(tf, t[0], t[1]), name="masked_mean")([output, mask])
    features = tf.keras.layers.Dropout(dropout, name="head_dropout")(features)
    logits = classifier.get_layer("logits")(features)
    model = skip_autograph(tf.keras.Model(inputs={"hidden_states": hidden, "attention_mask": mask},
                                          outputs=logits, name="partial_classifier"))
    if compile:
        model.compile(optimizer=create_adamw(learning_rate, num_train_steps, warmup_ratio, weight_decay),
                      loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=[tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return model


def train_partial(encoder, tokenizer, train, validation, *, num_labels: int, trainable_layers: int,
                  epochs: int, batch_size: int, learning_rate: float | None, max_length: int, pooling: str,
                  dropout: float, warmup_ratio: float, weight_decay: float,
                  seed: int, cache_dir: str | os.PathLike | None, callbacks, verbose, out=print,
                  start: tuple[int, int] = (0, 0)):
    """Cache the frozen layers' states for ``train`` and ``validation`` (``Split``s), train the top layers and
    head on them, and return the full text -> logits classifier holding the trained weights. ``start``: the
    (epoch, step) a ``BackupAndRestore`` resume continues at (``multiworker.resume_start``)."""
    from tfxformers.models.encoders.base import build_classifier
    from tfxformers.models.classification.transfer import encoder_fingerprint

    depth = len(_blocks(_main_layer(encoder)))
    check_trainable_layers(trainable_layers, depth)
    frozen_depth = depth - trainable_layers
    fingerprint = encoder_fingerprint(encoder)
    buckets = state_buckets(max_length)
    kwargs = dict(frozen_depth=frozen_depth, max_length=max_length, buckets=buckets, cache_dir=cache_dir,
                  fingerprint=fingerprint, progress=verbose == 1)
    train_states = encode_hidden_states(encoder, tokenizer, train.texts, **kwargs)
    val_states = encode_hidden_states(encoder, tokenizer, validation.texts, **kwargs)
    how = "reused" if train_states.reused and val_states.reused else "built"
    out(f"hidden-state cache after layer {frozen_depth} of {depth}: "
        f"{train_states.megabytes + val_states.megabytes:.1f} MB ({len(train_states) + len(val_states)} texts, "
        f"{len(train_states.states) + len(val_states.states)} tokens, {train_states.states.dtype}), "
        f"{how} in {train_states.seconds + val_states.seconds:.1f} s"
        + (f" ({train_states.path.parent})" if train_states.path else ""), flush=True)

    classifier = build_classifier(encoder, num_labels, mode="finetune", pooling=pooling, dropout=dropout,
                                  compile=False)
    steps = -(-len(train_states) // batch_size) * epochs
    model = build_partial_model(classifier, encoder, trainable_layers, pooling=pooling, dropout=dropout,
                                learning_rate=learning_rate or DEFAULT_LEARNING_RATE, num_train_steps=steps,
                                warmup_ratio=warmup_ratio, weight_decay=weight_decay)
    train_ds = make_state_dataset(train_states, train.labels, batch_size=batch_size, max_length=max_length,
                                  buckets=buckets, shuffle=True, seed=seed, start=start)
    val_ds = make_state_dataset(val_states, validation.labels, batch_size=batch_size * 2, max_length=max_length,
                                buckets=buckets)
    model.fit(train_ds, validation_data=val_ds, epochs=epochs, verbose=verbose, callbacks=callbacks)
    return classifier
