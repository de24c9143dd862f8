"""Train a byte-level BPE tokenizer on a corpus and save it as a standard GPT-2 tokenizer directory.

``train_bpe_tokenizer(texts, out_dir, vocab_size=8000)`` returns a ``GPT2TokenizerFast`` whose files
(``tokenizer.json``, ``vocab.json``, ``merges.txt``, ``tokenizer_config.json``,
``special_tokens_map.json``) load with ``GPT2TokenizerFast.from_pretrained(out_dir)`` and
``AutoTokenizer.from_pretrained(out_dir)`` with the special tokens set, no hand editing.

Byte-level: every string is first mapped to bytes, so nothing is ever unknown and decoding an encoding
gives the text back exactly (lower-cased when ``lowercase=True``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from tfxformers.errors import UserError

SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def train_bpe_tokenizer(texts: Iterable[str], output_dir: str | os.PathLike, *, vocab_size: int = 8000,
                        lowercase: bool = False, min_frequency: int = 2, max_length: int = 1024):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import GPT2TokenizerFast

    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise UserError("the corpus has no text to train a tokenizer on")
    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise UserError(f"--vocab-size must be at least {256 + len(SPECIAL_TOKENS)} (256 bytes + special tokens)")
    tokenizer = Tokenizer(models.BPE())
    if lowercase:
        tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    wrapped = GPT2TokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                unk_token="<unk>", mask_token="<mask>", model_max_length=max_length,
                                clean_up_tokenization_spaces=False, add_prefix_space=False)
    path = Path(output_dir)
    path.mkdir(parents=True, exist_ok=True)
    wrapped.save_pretrained(str(path))
    return wrapped


def load_tokenizer(directory: str | os.PathLike):
    from transformers import AutoTokenizer

    path = Path(directory)
    if not (path / "tokenizer.json").is_file():
        raise UserError(f"{path} holds no tokenizer.json")
    return AutoTokenizer.from_pretrained(str(path))
