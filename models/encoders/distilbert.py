"""DistilBERT encoders (any local Hugging Face DistilBERT checkpoint): the family interface the registry uses.

What differs from BERT: the main layer takes no ``token_type_ids``; the config names sizes ``dim`` /
``n_layers`` / ``n_heads``; the blocks (``TFTransformerBlock``) take the 0/1 mask itself rather than an
additive one, and the layers sit under ``transformer.layer``; there is no pooler. Tokens are BERT's
WordPiece with ``[CLS] ... [SEP]``, so the batching-safe mask is BERT's.
"""
from __future__ import annotations

import tfxformers  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from tfxformers.errors import UserError


def config_class():
    from transformers import DistilBertConfig

    return DistilBertConfig


def model_class():
    from transformers import TFDistilBertModel

    return TFDistilBertModel


def main_layer(encoder):
    return encoder.distilbert if hasattr(encoder, "distilbert") else encoder


def layers(main) -> list:
    return list(main.transformer.layer)


def embed(main, input_ids, training=False):
    return main.embeddings(input_ids=input_ids, training=training)


def run_layer(layer, hidden, mask, training=False, output_attentions=False):
    """One block, returning (hidden, [attention]) like BERT's; DistilBERT's attention masks with
    ``scores - 1e30 * (1 - mask)`` from the 0/1 mask and returns its weights first."""
    out = layer(hidden, mask, None, output_attentions, training=training)
    return (out[1], out[0]) if output_attentions else out


def load_tokenizer(checkpoint_dir):
    from pathlib import Path

    from transformers import DistilBertTokenizerFast

    path = Path(checkpoint_dir)
    if not (path / "vocab.txt").is_file() and not (path / "tokenizer.json").is_file():
        raise UserError(f"{path} has neither vocab.txt nor tokenizer.json")
    return DistilBertTokenizerFast.from_pretrained(str(path))
