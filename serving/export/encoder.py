"""Sentence-encoder exports of any registered encoder checkpoint (e.g. MiniLM): ``embed`` (also
``serving_default``): ``input_ids``, ``attention_mask`` -> masked-mean ``embedding``, and ``tfxformers_metadata``.
"""
from __future__ import annotations

import os
from pathlib import Path

from tfxformers.serving import layout
from tfxformers.serving.export.signatures import assert_same_shape, mask_up_to_first_sep, metadata_function
from tfxformers.serving.export.writer import write_version


class _EncoderModule:
    """Builds the tf.Module whose functions become the sentence-encoder signatures."""

    def __init__(self, tf, encoder, sep_id: int, metadata_json: str, tokenizer_json: str):
        from tfxformers.models.encoders.base import call_main_layer, main_layer as get_main_layer, masked_mean

        main_layer = get_main_layer(encoder)
        module = tf.Module(name="tfxformers_encoder")
        module.model_variables = list(main_layer.variables)
        module.metadata_json, module.tokenizer_json = tf.constant(metadata_json), tf.constant(tokenizer_json)

        @tf.function(input_signature=[tf.TensorSpec((None, None), tf.int32, name="input_ids"),
                                      tf.TensorSpec((None, None), tf.int32, name="attention_mask")], autograph=False)
        def embed(input_ids, attention_mask):
            input_ids, attention_mask = assert_same_shape(tf, input_ids, attention_mask)
            mask = mask_up_to_first_sep(tf, input_ids, attention_mask, sep_id)
            hidden = call_main_layer(main_layer, input_ids, mask, training=False).last_hidden_state
            return {"embedding": masked_mean(tf, hidden, mask)}

        metadata = metadata_function(tf, module)

        module.embed = embed
        module.metadata = metadata
        self.module = module
        # TF Serving's default signature name is serving_default; embed is the same function by name.
        self.signatures = {"embed": embed, layout.DEFAULT_SIGNATURE: embed, layout.METADATA_SIGNATURE: metadata}


def export_encoder(checkpoint_dir: str | os.PathLike, name: str, model_base: str | os.PathLike,
                   version: int | None = None, max_length: int = 256) -> Path:
    """Export an encoder checkpoint of any registered family (e.g. MiniLM) as a sentence encoder: ``embed`` ->
    masked-mean ``embedding``."""
    import tensorflow as tf

    from tfxformers.models import encoders
    from tfxformers.models.encoders import base

    encoder = base.load_encoder(checkpoint_dir)
    tokenizer = encoders.load_tokenizer(checkpoint_dir)
    spec = encoders.spec_for(encoder)
    # A checkpoint with fewer positions than the default (e.g. a small test model) cannot take longer inputs.
    max_length = min(max_length, encoders.max_input_tokens(encoder))
    final, _, version = layout.new_version_path(model_base, name, version)
    info = {
        "kind": "encoder", "name": name, "version": version, "format_version": 1, "label_names": [],
        "input_names": ["input_ids", "attention_mask"], "max_length": max_length,
        "buckets": [b for b in (16, 32, 64, 128) if b < max_length] + [max_length],
        "pad_id": int(tokenizer.pad_token_id or 0), "cls_id": tokenizer.cls_token_id, "sep_id": tokenizer.sep_token_id,
        "hidden_size": encoder.config.hidden_size, "max_positions": encoders.max_input_tokens(encoder),
        "model_type": spec.model_type, "tokenizer_kind": spec.tokenizer_kind,
        "signatures": {"embed": {"inputs": ["input_ids", "attention_mask"], "outputs": ["embedding"]},
                       layout.METADATA_SIGNATURE: {"inputs": ["probe"],
                                                   "outputs": ["metadata_json", "tokenizer_json"]}},
    }
    return write_version(tf, info, tokenizer, final, name,
                         lambda meta, tok_json: _EncoderModule(tf, encoder, tokenizer.sep_token_id, meta, tok_json))
