"""What every encoder family shares: loading a local checkpoint without torch, the one Keras classifier
builder, and the training helpers every task uses (``create_adamw``, ``skip_autograph``).

Family modules (``bert.py``, ``roberta.py``, ``distilbert.py``, ``electra.py``) each provide
``config_class()``, ``model_class()``, ``main_layer(encoder)``, ``layers(main_layer)``,
``embed(main_layer, input_ids, training)``, ``run_layer(layer, hidden, mask, training, output_attentions)``
and ``load_tokenizer(dir)``; this module does the rest the same way for all of them, asking the registry
(``tfxformers.models.encoders``) which family a checkpoint, config or model is. The registry never imports
this module (that would be an import circle): ``load_encoder`` and ``build_classifier`` are called here.
"""
from __future__ import annotations

import os
from pathlib import Path

import tfxformers  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from tfxformers.errors import UserError
from tfxformers.models import encoders

POOLINGS = ("cls", "pooled", "mean")
MODES = ("finetune", "frozen")


def _tf():
    """TensorFlow, checked to have Keras 2 (Hugging Face's TF classes need it)."""
    import tensorflow as tf

    if tf.keras.layers.Layer.__module__.startswith("keras.src"):  # Keras 3
        raise UserError(
            "TensorFlow was imported with Keras 3 before tfxformers could select Keras 2: import tfxformers "
            "before tensorflow, or set TF_USE_LEGACY_KERAS=1 in the environment"
        )
    return tf


def create_adamw(learning_rate: float, num_train_steps: int, warmup_ratio: float = 0.1, weight_decay: float = 0.01):
    """AdamW with linear warm-up then linear decay to zero (the BERT fine-tuning recipe, used by every task)."""
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


def encoder_config_dict(encoder) -> dict:
    """The encoder's transformers config as the JSON dict a trained-model directory records."""
    import json

    config = encoder.config if hasattr(encoder, "config") else encoder
    return json.loads(config.to_json_string())


def load_config(checkpoint_dir: str | os.PathLike):
    """The checkpoint's transformers config, of its family's class."""
    path = Path(checkpoint_dir)
    encoders.read_config(path)  # a readable config.json, or a UserError naming the directory
    family = encoders.family_module(path)
    return family.config_class().from_pretrained(str(path))


def load_encoder(checkpoint_dir: str | os.PathLike, *, name: str | None = None):
    """The family's TF base model filled from ``model.safetensors`` (PyTorch names, no torch needed) or
    ``tf_model.h5``; checkpoints saved from a task head (``*ForSequenceClassification``, ELECTRA's
    ``ForPreTraining`` discriminator, ...) load too: their base-model prefix is dropped, their head ignored."""
    _tf()
    path = Path(checkpoint_dir)
    spec = encoders.spec_for(path)
    family = encoders.family_module(spec)
    config = load_config(path)
    safetensors_file, h5_file = path / "model.safetensors", path / "tf_model.h5"
    if not safetensors_file.is_file() and not h5_file.is_file():
        raise UserError(f"{path} has neither model.safetensors nor tf_model.h5; tfxformers loads encoder "
                        "weights from those two formats (a PyTorch-only pytorch_model.bin needs converting)")
    state = None
    if safetensors_file.is_file():
        import safetensors.numpy

        try:  # read before building the model: a damaged file is reported before the expensive part
            state = safetensors.numpy.load_file(str(safetensors_file))
        except Exception as exc:  # noqa: BLE001  (safetensors' own error type for truncated or corrupt files)
            raise UserError(f"{safetensors_file} is damaged ({exc}); copy the checkpoint again "
                            "(or `tfxformers data fetch minilm` for MiniLM)") from None
    model = family.model_class()(config, name=name or f"{spec.model_type}_encoder")
    model(model.dummy_inputs, training=False)
    if state is not None:
        from transformers.modeling_tf_pytorch_utils import load_pytorch_state_dict_in_tf2_model

        prefix = spec.base_prefix + "."
        # Task-head checkpoints name the base model's weights "<prefix>.x"; the TF main layer wants bare names.
        state = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}
        state = {k: v for k, v in state.items() if not k.endswith(("position_ids", "embeddings.token_type_ids"))}
        _check_weights_match_config(state, config, spec.model_type, safetensors_file)
        try:
            _, info = load_pytorch_state_dict_in_tf2_model(
                model, state, allow_missing_keys=True, output_loading_info=True, skip_logger_warnings=True)
        except ValueError as exc:  # a shape no field check above names (transformers cannot reshape it)
            raise UserError(f"{safetensors_file} does not fit the sizes in {path / 'config.json'} ({exc}); "
                            "copy the checkpoint's own config.json") from None
        missing = [k for k in info["missing_keys"] if "pooler" not in k]
        source = safetensors_file
    else:
        from transformers.modeling_tf_utils import load_tf_weights

        try:
            missing, _, mismatched = load_tf_weights(model, str(h5_file), ignore_mismatched_sizes=False)
        except (OSError, ValueError) as exc:
            raise UserError(f"{h5_file} is damaged or not a Keras weights file ({exc})") from None
        missing = [k for k in missing if "pooler" not in k] + list(mismatched)
        source = h5_file
    if missing:
        raise UserError(f"{source} lacks weights the {spec.model_type} encoder needs: {missing[:5]}")
    return model


def _check_weights_match_config(state: dict, config, model_type: str, source: Path) -> None:
    """``UserError`` naming config.json's field when the weights were saved with other sizes or by another
    family (transformers would fail reshaping them, with no file or field named)."""
    config_file = source.parent / "config.json"
    for family in encoders.FAMILIES.values():
        if family.model_type != model_type and any(k.startswith(family.base_prefix + ".") for k in state):
            raise UserError(f"{source} holds {family.model_type} weights but {config_file} says model_type "
                            f"{model_type!r}: copy the checkpoint's own config.json")
    width = getattr(config, "embedding_size", None) or hidden_size(config)
    tables = (("word_embeddings", "vocab_size", "embedding_size" if hasattr(config, "embedding_size") else "hidden_size"),
              ("position_embeddings", "max_position_embeddings", None),
              ("token_type_embeddings", "type_vocab_size", None))
    for table, rows_field, width_field in tables:
        weights = next((v for k, v in state.items() if k.endswith(f"embeddings.{table}.weight")), None)
        if weights is None or weights.ndim != 2:
            continue
        rows = getattr(config, rows_field, None)
        if rows is not None and weights.shape[0] != rows:
            raise UserError(f"{config_file}: {rows_field} is {rows} but {source}'s {table} has {weights.shape[0]} "
                            "rows: copy the checkpoint's own config.json")
        if weights.shape[1] != width:
            field = width_field or ("embedding_size" if hasattr(config, "embedding_size") else
                                    "dim" if model_type == "distilbert" else "hidden_size")
            raise UserError(f"{config_file}: {field} is {width} but {source}'s {table} are {weights.shape[1]} wide: "
                            "copy the checkpoint's own config.json")


def main_layer(encoder):
    """The Keras main layer (``TF*MainLayer``) of a family's TF model, or the layer itself."""
    return encoders.family_module(encoder).main_layer(encoder)


def call_main_layer(layer, input_ids, attention_mask, token_type_ids=None, *, training=None,
                    output_attentions: bool = False):
    """The main layer's output for ids and mask, passing ``token_type_ids`` only to families that take them.
    ``output_attentions=True`` adds ``.attentions``: one ``[batch, heads, seq, seq]`` tensor per layer."""
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, output_attentions=output_attentions)
    if token_type_ids is not None and encoders.spec_for(layer).uses_token_type_ids:
        kwargs["token_type_ids"] = token_type_ids
    if training is not None:
        kwargs["training"] = training
    return layer(**kwargs)


def bert_style_extended_mask(tf, mask, dtype):
    """The additive mask BERT-style main layers give their blocks: 0 for tokens, -10000 for padding."""
    mask = tf.cast(mask[:, None, None, :], dtype)
    return (1.0 - mask) * -10000.0


def bert_style_run_layer(layer, hidden, mask, training=False, output_attentions: bool = False):
    """One BERT / RoBERTa / ELECTRA block on ``hidden`` with a 0/1 ``mask [batch, seq]``; returns the block's
    tuple (hidden, [attention])."""
    import tensorflow as tf

    return layer(hidden_states=hidden, attention_mask=bert_style_extended_mask(tf, mask, hidden.dtype),
                 head_mask=None, encoder_hidden_states=None, encoder_attention_mask=None, past_key_value=None,
                 output_attentions=output_attentions, training=training)


def masked_mean(tf, hidden, mask):
    mask = tf.cast(mask, hidden.dtype)[:, :, None]
    return tf.reduce_sum(hidden * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)


def check_pooling(pooling: str, source) -> None:
    if pooling not in POOLINGS:
        raise UserError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
    spec = encoders.spec_for(source)
    if pooling == "pooled" and not spec.has_pooler:
        raise UserError(f"{spec.model_type} encoders have no pooler; use --pooling mean or cls")


def model_from_config(config, name: str | None = None):
    """A family's TF base model with random weights, built, from a config object or a recorded dict."""
    if isinstance(config, dict):
        config = encoders.config_from_dict(config)
    spec = encoders.spec_for(config)
    model = encoders.family_module(spec).model_class()(config, name=name or f"{spec.model_type}_encoder")
    model(model.dummy_inputs, training=False)
    return model


def build_classifier(encoder, num_labels: int, *, mode: str = "finetune", pooling: str = "mean",
                     dropout: float = 0.1, use_token_type_ids: bool = False, learning_rate: float | None = None,
                     num_train_steps: int = 1000, warmup_ratio: float = 0.1, weight_decay: float = 0.01,
                     compile: bool = True, name: str = "bert_classifier"):
    """A compiled functional Keras classifier: encoder main layer -> pooling -> dropout -> dense logits.

    ``encoder`` is any registered family's TF model (pretrained weights), or its config / config dict
    (random weights, for tests and rebuilding saved models). ``mode="frozen"`` freezes the encoder so only
    the head trains. Inputs ``input_ids``, ``attention_mask`` (+ ``token_type_ids`` when asked and the
    family takes them), int32 ``[batch, seq]``; output logits ``[batch, num_labels]``. The default name is
    kept for every family: saved checkpoints and the head-copying code refer to layers by name.
    """
    tf = _tf()
    if mode not in MODES:
        raise UserError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if num_labels < 2:
        raise UserError(f"a classifier needs at least 2 labels, got {num_labels}")
    if not hasattr(encoder, "layers") and not hasattr(encoder, "call"):  # a config or a config dict
        encoder = model_from_config(encoder)
    check_pooling(pooling, encoder)
    layer = main_layer(encoder)
    layer.trainable = mode != "frozen"
    if pooling != "pooled" and getattr(layer, "pooler", None) is not None:
        layer.pooler.trainable = False  # unused: no gradient reaches it
    # Building the functional graph would otherwise AutoGraph-convert all of the encoder's Python (10+ s).
    if not getattr(layer, "_tfxformers_no_autograph", False):
        layer.call = tf.autograph.experimental.do_not_convert(layer.call)
        layer._tfxformers_no_autograph = True

    names = encoders.input_names(layer, use_token_type_ids)
    inputs = {n: tf.keras.Input(shape=(None,), dtype=tf.int32, name=n) for n in names}
    outputs = call_main_layer(layer, inputs["input_ids"], inputs["attention_mask"], inputs.get("token_type_ids"))
    if pooling == "cls":
        features = outputs.last_hidden_state[:, 0, :]
    elif pooling == "pooled":
        features = outputs.pooler_output
    else:
        features = tf.keras.layers.Lambda(
            lambda t: masked_mean(tf, t[0], t[1]), name="masked_mean"
        )([outputs.last_hidden_state, inputs["attention_mask"]])
    features = tf.keras.layers.Dropout(dropout, name="head_dropout")(features)
    initializer = tf.keras.initializers.TruncatedNormal(stddev=layer.config.initializer_range)
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


def hidden_size(config) -> int:
    config = getattr(config, "config", config)
    return int(getattr(config, "hidden_size", None) or getattr(config, "dim"))
