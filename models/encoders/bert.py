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

import os
from pathlib import Path

import tfxformers  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from tfxformers.errors import UserError


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
