"""ELECTRA discriminators (any local Hugging Face ELECTRA checkpoint): the family interface the registry uses.

What differs from BERT: the embeddings may be narrower than the blocks (``embedding_size`` <
``hidden_size``), with a dense ``embeddings_project`` in between, which ``embed`` applies; there is no
pooler (pool with mean or cls). ``ElectraForPreTraining`` checkpoints (the discriminator as released)
load with their ``electra.`` prefix dropped and ``discriminator_predictions`` ignored. WordPiece tokens,
``[CLS] ... [SEP]``, BERT's blocks and batching-safe mask.
"""
from __future__ import annotations

import tfxformers  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from tfxformers.errors import UserError
# BERT's blocks.
from tfxformers.models.encoders.bert import layers, run_layer  # noqa: F401  (the family interface)


def config_class():
    from transformers import ElectraConfig

    return ElectraConfig


def model_class():
    from transformers import TFElectraModel

    return TFElectraModel


def main_layer(encoder):
    return encoder.electra if hasattr(encoder, "electra") else encoder


def embed(main, input_ids, training=False):
    hidden = main.embeddings(input_ids=input_ids, training=training)
    if hasattr(main, "embeddings_project"):
        hidden = main.embeddings_project(hidden, training=training)
    return hidden


def load_tokenizer(checkpoint_dir):
    from pathlib import Path

    from transformers import ElectraTokenizerFast

    path = Path(checkpoint_dir)
    if not (path / "vocab.txt").is_file() and not (path / "tokenizer.json").is_file():
        raise UserError(f"{path} has neither vocab.txt nor tokenizer.json")
    return ElectraTokenizerFast.from_pretrained(str(path))
