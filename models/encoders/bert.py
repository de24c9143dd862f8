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
        raise UserError(f"{path} holds a {config.model_type!r} model; this loader is BERT's; "
                        "tfxformers.models.encoders.load_encoder loads every family")
    return config


def load_bert_encoder(checkpoint_dir: str | os.PathLike, *, name: str = "bert_encoder"):
    """A ``TFBertModel`` with the checkpoint's weights, loaded without PyTorch (``base.load_encoder``).

    ``TFBertModel.from_pretrained`` cannot read these safetensors files with transformers 4.57 (and
    ``from_pt=True`` needs torch), so the model is built from its config, called once to create its
    variables, and filled from the safetensors arrays with transformers' own PT->TF name mapping.
    """
    from tfxformers.models.encoders import base

    load_bert_config(checkpoint_dir)  # BERT only: other families go through the registry
    return base.load_encoder(checkpoint_dir, name=name)


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
    from tfxformers.models.encoders.base import masked_mean

    return masked_mean(tf, hidden, mask)


def build_bert_classifier(encoder, num_labels: int, **kwargs):
    """A compiled functional Keras classifier: encoder main layer -> pooling -> dropout -> dense logits.

    Despite the name, ``encoder`` may be any registered family's TF model, config or config dict (see
    ``base.build_classifier`` for the arguments): the name stays because notebooks and the QA and
    comparison code call it.
    """
    from tfxformers.models.encoders.base import build_classifier

    return build_classifier(encoder, num_labels, **kwargs)


# --- the family interface the registry (tfxformers.models.encoders) dispatches to -----------------------

def config_class():
    from transformers import BertConfig

    return BertConfig


def model_class():
    from transformers import TFBertModel

    return TFBertModel


def main_layer(encoder):
    return encoder.bert if hasattr(encoder, "bert") else encoder


def layers(main) -> list:
    return list(main.encoder.layer)


def embed(main, input_ids, training=False):
    return main.embeddings(input_ids=input_ids, training=training)


def run_layer(layer, hidden, mask, training=False, output_attentions=False):
    from tfxformers.models.encoders.base import bert_style_run_layer

    return bert_style_run_layer(layer, hidden, mask, training, output_attentions)


def load_tokenizer(checkpoint_dir):
    return load_bert_tokenizer(checkpoint_dir)


def encoder_config_dict(encoder) -> dict:
    config = encoder.config if hasattr(encoder, "config") else encoder
    return json.loads(config.to_json_string())
