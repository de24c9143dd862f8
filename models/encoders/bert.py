"""BERT encoders (MiniLM or any local Hugging Face BERT checkpoint) and Keras classifiers around them.

Typical notebook use::

    from tfxformers.models.encoders import bert
    encoder = bert.load_bert_encoder(checkpoint_dir)        # TFBertModel, weights loaded without torch
    tokenizer = bert.load_bert_tokenizer(checkpoint_dir)    # the checkpoint's own WordPiece tokenizer
    model = bert.build_bert_classifier(encoder, num_labels=2, num_train_steps=1000)
    model.fit(train_ds, validation_data=val_ds, epochs=3)

The classifier is a functional Keras model whose inputs are named exactly as the tokenizer names its
outputs (``input_ids``, ``attention_mask`` and optionally ``token_type_ids``), int32 with a dynamic batch
and sequence length, so the same model exports to a TF Serving signature without renaming anything.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import tfxformers  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from tfxformers.errors import UserError

POOLINGS = ("cls", "pooled", "mean")
MODES = ("finetune", "frozen")


def _tf():
    import tensorflow as tf

    if tf.keras.layers.Layer.__module__.startswith("keras.src"):  # Keras 3
        raise UserError(
            "TensorFlow was imported with Keras 3 before tfxformers could select Keras 2: import tfxformers "
            "before tensorflow, or set TF_USE_LEGACY_KERAS=1 in the environment"
        )
    return tf


def _check_checkpoint_dir(checkpoint_dir: str | os.PathLike) -> Path:
    path = Path(checkpoint_dir)
    if not path.is_dir():
        raise UserError(f"BERT checkpoint directory not found: {path}")
    if not (path / "config.json").is_file():
        raise UserError(f"{path} is not a Hugging Face checkpoint: it has no config.json")
    return path


def load_bert_config(checkpoint_dir: str | os.PathLike):
    from transformers import BertConfig

    path = _check_checkpoint_dir(checkpoint_dir)
    config = BertConfig.from_pretrained(str(path))
    if config.model_type != "bert":
        raise UserError(f"{path} holds a {config.model_type!r} model; tfxformers encoders are BERT models")
    return config


def load_bert_encoder(checkpoint_dir: str | os.PathLike, *, name: str = "bert_encoder"):
    """A ``TFBertModel`` with the checkpoint's weights, loaded without PyTorch.

    ``TFBertModel.from_pretrained`` cannot read these safetensors files with transformers 4.57 (and
    ``from_pt=True`` needs torch), so the model is built from its config, called once to create its
    variables, and filled from the safetensors arrays with transformers' own PT->TF name mapping.
    """
    tf = _tf()
    import safetensors.numpy
    from transformers import TFBertModel
    from transformers.modeling_tf_pytorch_utils import load_pytorch_state_dict_in_tf2_model

    path = _check_checkpoint_dir(checkpoint_dir)
    config = load_bert_config(path)
    weights_file = path / "model.safetensors"
    if not weights_file.is_file():
        raise UserError(f"{path} has no model.safetensors; only safetensors BERT checkpoints are supported")
    try:  # read before building the model: a damaged file is reported before the expensive part
        state = safetensors.numpy.load_file(str(weights_file))
    except Exception as exc:  # noqa: BLE001  (safetensors' own error type for truncated or corrupt files)
        raise UserError(f"{weights_file} is damaged ({exc}); copy the checkpoint again "
                        "(or `tfxformers data fetch minilm` for MiniLM)") from None
    model = TFBertModel(config, name=name)
    model(model.dummy_inputs, training=False)
    # Checkpoints saved from BertForX carry a "bert." prefix; the TF main layer expects bare names.
    state = {k[len("bert."):] if k.startswith("bert.") else k: v for k, v in state.items()}
    state.pop("embeddings.position_ids", None)
    _, info = load_pytorch_state_dict_in_tf2_model(
        model, state, allow_missing_keys=True, output_loading_info=True, skip_logger_warnings=True
    )
    missing = [k for k in info["missing_keys"] if "pooler" not in k]
    if missing:
        raise UserError(f"{weights_file} lacks weights the BERT encoder needs: {missing[:5]}")
    del tf
    return model


def load_bert_tokenizer(checkpoint_dir: str | os.PathLike):
    """The checkpoint's own WordPiece tokenizer (fast, from tokenizer.json or vocab.txt)."""
    from transformers import BertTokenizerFast

    path = _check_checkpoint_dir(checkpoint_dir)
    if not (path / "vocab.txt").is_file() and not (path / "tokenizer.json").is_file():
        raise UserError(f"{path} has neither vocab.txt nor tokenizer.json")
    return BertTokenizerFast.from_pretrained(str(path))


def bert_input_names(use_token_type_ids: bool) -> list[str]:
    names = ["input_ids", "attention_mask"]
    if use_token_type_ids:
        names.append("token_type_ids")
    return names


def create_adamw(learning_rate: float, num_train_steps: int, warmup_ratio: float = 0.1, weight_decay: float = 0.01):
    """AdamW with linear warm-up then linear decay to zero (the BERT fine-tuning recipe)."""
    from transformers import create_optimizer

    num_train_steps = max(int(num_train_steps), 1)
    optimizer, _ = create_optimizer(
        init_lr=learning_rate,
        num_train_steps=num_train_steps,
        num_warmup_steps=int(num_train_steps * warmup_ratio),
        weight_decay_rate=weight_decay,
        include_in_weight_decay=None,
    )
    return optimizer


def skip_autograph(model):
    """Trace ``model``'s train/test/predict steps without AutoGraph; returns the model.

    Keras wraps these steps in ``tf.function`` with AutoGraph on, which rewrites the source of every
    Keras and Hugging Face function they reach: 20-30 s before the first batch on this machine, even for
    a 2-layer BERT. None of that code has tensor-dependent Python control flow, so tracing it as plain
    Python gives the same graph in a third of the time (measured: 29 s -> 11 s for the first epoch).
    """
    from tensorflow.autograph.experimental import do_not_convert

    for step in ("train_step", "test_step", "predict_step"):
        setattr(model, step, do_not_convert(getattr(model, step)))
    return model


def _masked_mean(tf, hidden, mask):
    mask = tf.cast(mask, hidden.dtype)[:, :, None]
    return tf.reduce_sum(hidden * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)


def build_bert_classifier(
    encoder,
    num_labels: int,
    *,
    mode: str = "finetune",
    pooling: str = "mean",
    dropout: float = 0.1,
    use_token_type_ids: bool = False,
    learning_rate: float | None = None,
    num_train_steps: int = 1000,
    warmup_ratio: float = 0.1,
    weight_decay: float = 0.01,
    compile: bool = True,
    name: str = "bert_classifier",
):
    """A compiled functional Keras classifier: BERT main layer -> pooling -> dropout -> dense logits.

    ``encoder`` is a ``TFBertModel`` (pretrained weights) or a ``BertConfig`` (random weights, for tests).
    ``mode="frozen"`` freezes the encoder so only the head trains. The output is logits
    ``[batch, num_labels]``; the loss is sparse categorical cross-entropy from logits.
    """
    tf = _tf()
    from transformers import BertConfig, TFBertModel

    if mode not in MODES:
        raise UserError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if pooling not in POOLINGS:
        raise UserError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
    if num_labels < 2:
        raise UserError(f"a classifier needs at least 2 labels, got {num_labels}")
    if isinstance(encoder, BertConfig):
        encoder = TFBertModel(encoder, name="bert_encoder")
        encoder(encoder.dummy_inputs, training=False)
    main_layer = encoder.bert if hasattr(encoder, "bert") else encoder
    main_layer.trainable = mode != "frozen"
    if pooling != "pooled" and getattr(main_layer, "pooler", None) is not None:
        main_layer.pooler.trainable = False  # unused: no gradient reaches it
    # Building the functional graph would otherwise AutoGraph-convert all of BERT's Python (10+ s).
    if not getattr(main_layer, "_tfxformers_no_autograph", False):
        main_layer.call = tf.autograph.experimental.do_not_convert(main_layer.call)
        main_layer._tfxformers_no_autograph = True

    inputs = {
        n: tf.keras.Input(shape=(None,), dtype=tf.int32, name=n) for n in bert_input_names(use_token_type_ids)
    }
    outputs = main_layer(
        input_ids=inputs["input_ids"],
        attention_mask=inputs["attention_mask"],
        token_type_ids=inputs.get("token_type_ids"),
    )
    if pooling == "cls":
        features = outputs.last_hidden_state[:, 0, :]
    elif pooling == "pooled":
        features = outputs.pooler_output
    else:
        features = tf.keras.layers.Lambda(
            lambda t: _masked_mean(tf, t[0], t[1]), name="masked_mean"
        )([outputs.last_hidden_state, inputs["attention_mask"]])
    features = tf.keras.layers.Dropout(dropout, name="head_dropout")(features)
    initializer = tf.keras.initializers.TruncatedNormal(stddev=main_layer.config.initializer_range)
    logits = tf.keras.layers.Dense(num_labels, kernel_initializer=initializer, name="logits")(features)
    model = skip_autograph(tf.keras.Model(inputs=inputs, outputs=logits, name=name))
    if compile:
        if learning_rate is None:
            learning_rate = 1e-3 if mode == "frozen" else 5e-5
        model.compile(
            optimizer=create_adamw(learning_rate, num_train_steps, warmup_ratio, weight_decay),
            loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )
    return model


def encoder_config_dict(encoder) -> dict:
    config = encoder.config if hasattr(encoder, "config") else encoder
    return json.loads(config.to_json_string())
