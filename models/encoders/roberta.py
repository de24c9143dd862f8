"""RoBERTa encoders (any local Hugging Face RoBERTa checkpoint): the family interface the registry uses.

What differs from BERT, and where it is handled: a byte-level BPE tokenizer framing texts as
``<s> ... </s>`` (so the export's batching-safe mask ends at the first ``</s>``, ``sep_token_id``); pad
id 1, from which position ids are counted (``create_position_ids_from_input_ids``: padding keeps the
padding position, real tokens start at pad_id + 1, so 514 position embeddings take 512 tokens, the
registry's ``position_offset``); no token type ids for single texts (``uses_token_type_ids`` False).
The blocks are BERT's, so partial fine-tuning runs them exactly as it runs BERT's.
"""
from __future__ import annotations

import tfxformers  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)
from tfxformers.errors import UserError
# BERT's blocks and embeddings call (position ids come from the ids themselves: pads keep pad_id).
from tfxformers.models.encoders.bert import embed, layers, run_layer  # noqa: F401  (the family interface)


def config_class():
    from transformers import RobertaConfig

    return RobertaConfig


def model_class():
    from transformers import TFRobertaModel

    return TFRobertaModel


def main_layer(encoder):
    return encoder.roberta if hasattr(encoder, "roberta") else encoder


def load_tokenizer(checkpoint_dir):
    """The checkpoint's byte-level BPE tokenizer (tokenizer.json, or vocab.json + merges.txt)."""
    from pathlib import Path

    from transformers import RobertaTokenizerFast

    path = Path(checkpoint_dir)
    if not (path / "tokenizer.json").is_file() and not (path / "vocab.json").is_file():
        raise UserError(f"{path} has neither tokenizer.json nor vocab.json + merges.txt")
    return RobertaTokenizerFast.from_pretrained(str(path))
