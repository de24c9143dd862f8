"""Tiny random question-answering checkpoints in Hugging Face ``BertForQuestionAnswering`` layout.

No QA-trained checkpoint can be fetched on these machines, so tests, the benchmark and the notebook write
one: ``config.json`` (architectures ``BertForQuestionAnswering``), ``vocab.txt``, tokenizer files and
``model.safetensors`` with PyTorch weight names (``bert.embeddings...``, ``qa_outputs.weight`` [2, hidden],
``qa_outputs.bias`` [2]), i.e. exactly what ``save_pretrained`` of that class writes, so the code under
test loads it through the same path as a real SQuAD checkpoint.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import tfxformers  # noqa: F401


def make_tiny_qa_checkpoint(directory: str | os.PathLike, *, words: Sequence[str] = (), hidden_size: int = 32,
                            num_hidden_layers: int = 2, num_attention_heads: int = 2, intermediate_size: int = 64,
                            max_position_embeddings: int = 512, with_head: bool = True, seed: int = 0,
                            dropout: float = 0.1) -> Path:
    """Write the checkpoint and return its path. ``words`` are added to the vocabulary (letters, digits and
    punctuation are always there, so any ASCII text tokenizes without ``[UNK]``)."""
    import numpy as np
    import tensorflow as tf
    from transformers import BertConfig, BertTokenizerFast, TFBertModel

    from tfxformers.testing import save_pytorch_safetensors, tiny_vocab

    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    vocab = list(dict.fromkeys([*tiny_vocab(), *(w.lower() for w in words if w.strip())]))
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden_size, num_hidden_layers=num_hidden_layers,
                        num_attention_heads=num_attention_heads, intermediate_size=intermediate_size,
                        max_position_embeddings=max_position_embeddings, type_vocab_size=2, pad_token_id=0,
                        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
                        architectures=["BertForQuestionAnswering"] if with_head else ["BertModel"])
    config.save_pretrained(str(path))
    tokenizer = BertTokenizerFast(vocab_file=str(path / "vocab.txt"), do_lower_case=True)
    tokenizer.model_max_length = max_position_embeddings
    tokenizer.save_pretrained(str(path))

    tf.keras.utils.set_random_seed(seed)
    model = TFBertModel(config, name="tiny_bert")
    model(model.dummy_inputs, training=False)
    head = {}
    if with_head:
        rng = np.random.default_rng(seed)
        head["qa_outputs.weight"] = rng.normal(0, config.initializer_range, (2, hidden_size)).astype(np.float32)
        head["qa_outputs.bias"] = rng.normal(0, 0.1, (2,)).astype(np.float32)
    save_pytorch_safetensors(model, path, strip="bert.", add="bert.", extra=head)
    return path
