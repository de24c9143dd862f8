"""MPNet encoders (all-mpnet-base-v2, or any local Hugging Face MPNet checkpoint): the family interface.

What differs from BERT, and where it is handled:
- No token type ids at all (``uses_token_type_ids`` False in the registry).
- Attention gets a learned *relative* position bias on top of the absolute position embeddings: one
  ``[buckets, heads]`` table owned by the encoder (not by a block), looked up from the distance between
  query and key and added to every block's attention scores. The main layer computes it once per call;
  ``run_layer`` (used by partial fine-tuning's cached lower layers and by the attention maps) computes
  it from the hidden states' length with the encoder that owns the block, so a block run alone sees
  exactly what it sees inside the main layer.
- Absolute positions are counted from ``pad_id + 1`` (RoBERTa's fairseq rule): 514 position embeddings
  take 512 tokens, the registry's ``position_offset`` of 2.
- A WordPiece vocabulary (``vocab.txt``, lower-cased, BERT's normaliser) framed as ``<s> ... </s>`` with
  ``<pad>`` = 1: the in-graph tokenizer and the proxy take ``cls_id`` / ``sep_id`` / ``pad_id`` from the
  tokenizer, so only the ids differ from BERT, not the code.
"""
from __future__ import annotations

import weakref

import tfxformers  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from tfxformers.errors import UserError

# block -> the TFMPNetEncoder that owns it (and its relative position bias table); filled by ``layers``.
_OWNER: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def config_class():
    from transformers import MPNetConfig

    return MPNetConfig


def model_class():
    from transformers import TFMPNetModel

    return TFMPNetModel


def main_layer(encoder):
    return encoder.mpnet if hasattr(encoder, "mpnet") else encoder


def layers(main) -> list:
    blocks = list(main.encoder.layer)
    for block in blocks:
        _OWNER[block] = main.encoder
    return blocks


def embed(main, input_ids, training=False):
    return main.embeddings(input_ids=input_ids, training=training)


def run_layer(layer, hidden, mask, training=False, output_attentions=False):
    """One block on ``hidden`` with a 0/1 ``mask [batch, seq]``, with the relative position bias its
    encoder would give it; returns the block's tuple (hidden, [attention])."""
    import tensorflow as tf

    from tfxformers.models.encoders.base import bert_style_extended_mask

    owner = _OWNER.get(layer)
    if owner is None:
        raise UserError("an MPNet block can only be run alone after encoders.family_module(...).layers(main) "
                        "named its encoder (the relative position bias lives there)")
    return layer(hidden, bert_style_extended_mask(tf, mask, hidden.dtype), None, output_attentions,
                 position_bias=owner.compute_position_bias(hidden), training=training)


def load_tokenizer(checkpoint_dir):
    """The checkpoint's WordPiece tokenizer (tokenizer.json or vocab.txt), ``<s> ... </s>`` framing."""
    from pathlib import Path

    from transformers import MPNetTokenizerFast

    path = Path(checkpoint_dir)
    if not (path / "vocab.txt").is_file() and not (path / "tokenizer.json").is_file():
        raise UserError(f"{path} has neither vocab.txt nor tokenizer.json")
    return MPNetTokenizerFast.from_pretrained(str(path))
