"""Tiny random checkpoints of every encoder family in Hugging Face layout, written offline.

``make_tiny_checkpoint(dir, family)`` writes config.json, the tokenizer files and model.safetensors with
PyTorch weight names, as the Hub's checkpoints are, so code under test goes through exactly the loading path
real checkpoints use (``make_tiny_bert_checkpoint`` is the BERT one with MiniLM-like names).
"""
from __future__ import annotations

import os
import string
from pathlib import Path

import tfxformers  # noqa: F401

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Enough whole words that test sentences tokenize into real words, plus every letter and digit (and its
# "##" continuation) so that any ASCII text tokenizes without [UNK].
TINY_WORDS = (
    "the a an and or but not no is was were be been it this that of to in on for with as at by from "
    "movie film story plot acting actor actors director good great fine best fun funny love loved "
    "brilliant wonderful charming moving smart fresh bad worst boring dull awful terrible mess weak "
    "rotten flat tedious slow long script scene scenes characters performance performances music "
    "emma was she he her his they very much more most too so all one two time never ever well "
    "business sport politics tech entertainment news government market team game happy sad neutral"
).split()


def tiny_vocab() -> list[str]:
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = SPECIAL_TOKENS + chars + ["##" + c for c in string.ascii_lowercase + string.digits]
    vocab += TINY_WORDS
    return list(dict.fromkeys(vocab))  # first occurrence wins; a repeated token would leave a hole


def make_tiny_bert_checkpoint(
    directory: str | os.PathLike,
    *,
    hidden_size: int = 16,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 2,
    intermediate_size: int = 32,
    max_position_embeddings: int = 128,
    seed: int = 0,
) -> Path:
    """Write a tiny random BERT checkpoint (Hugging Face layout, safetensors) and return its path."""
    return make_tiny_checkpoint(directory, "bert", hidden_size=hidden_size, num_hidden_layers=num_hidden_layers,
                                num_attention_heads=num_attention_heads, intermediate_size=intermediate_size,
                                max_length=max_position_embeddings, seed=seed)


def save_pytorch_safetensors(model, path: Path, *, strip: str, add: str = "", extra: dict | None = None) -> None:
    """Write a transformers TF model's weights to ``path/model.safetensors`` under the PyTorch names the Hub's
    checkpoints use: ``strip`` is the TF base-model prefix to drop (``"bert."``), ``add`` the PyTorch prefix
    to put back (a ``*For...`` class's), ``extra`` more arrays by name (a head the TF model lacks)."""
    import numpy as np
    import safetensors.numpy
    from transformers.modeling_tf_pytorch_utils import TransposeType, convert_tf_weight_name_to_pt_weight_name

    state = {}
    for weight in model.weights:
        name, transpose = convert_tf_weight_name_to_pt_weight_name(weight.name, start_prefix_to_remove=strip,
                                                                   tf_weight_shape=weight.shape)
        value = weight.numpy()
        if transpose is TransposeType.SIMPLE:
            value = value.T
        state[add + name] = np.ascontiguousarray(value)
    state.update(extra or {})
    safetensors.numpy.save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})


# Families make_tiny_checkpoint writes (the registry's model types), for parametrised tests.
TINY_FAMILIES = ("bert", "roberta", "distilbert", "electra", "mpnet")
BPE_SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def tiny_mpnet_vocab() -> list[str]:
    """The tiny WordPiece vocabulary laid out as all-mpnet-base-v2's vocab.txt is: ``<s> <pad> </s> <unk>``
    first (ids 0-3: cls, pad, sep), then a BERT vocabulary whose ``[UNK]`` is the unknown token the
    tokenizer really uses (``[CLS]`` / ``[SEP]`` stay ordinary entries), ``<mask>`` last."""
    return BPE_SPECIAL_TOKENS[:4] + tiny_vocab() + ["<mask>"]


def tiny_sentences() -> list[str]:
    """A small corpus to train the tiny byte-level BPE on: the tiny words in varied short sentences."""
    words = TINY_WORDS
    out = [" ".join(words[i:i + 7]) for i in range(0, len(words), 3)]
    out += [" ".join(words[i::5]).capitalize() + "." for i in range(5)]
    out += ["It's a charming, funny film!", "The plot is a tedious mess; the acting: flat.", "2 stars, 10/10 bad"]
    return out


def _tiny_bpe_tokenizer(path: Path, max_length: int):
    """A RoBERTa byte-level BPE tokenizer trained offline on ``tiny_sentences`` (about 400 tokens)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import RobertaTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, min_frequency=2, special_tokens=BPE_SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(tiny_sentences() * 3, trainer=trainer)
    bpe.model.save(str(path))  # vocab.json, merges.txt
    tokenizer = RobertaTokenizerFast(vocab_file=str(path / "vocab.json"), merges_file=str(path / "merges.txt"))
    tokenizer.model_max_length = max_length
    return tokenizer


def make_tiny_checkpoint(
    directory: str | os.PathLike,
    family: str = "bert",
    *,
    head: bool = False,
    weights_format: str = "safetensors",
    hidden_size: int = 16,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 2,
    intermediate_size: int = 32,
    max_length: int = 128,
    seed: int = 0,
) -> Path:
    """A tiny random checkpoint of any registered family in Hugging Face layout; returns its path.

    ``family``: bert, roberta (byte-level BPE trained here, pad id 1, positions offset by 2), distilbert,
    electra (embeddings narrower than the blocks, so ``embeddings_project`` is exercised) or mpnet
    (WordPiece framed as ``<s> ... </s>``, pad id 1, positions offset by 2, a relative position bias). ``head=True``
    saves it from a task head (``*ForSequenceClassification``; ELECTRA: ``ForPreTraining``, the released
    discriminator), so weight names carry the base-model prefix and extra head weights.
    ``weights_format``: ``safetensors`` (PyTorch names, as the Hub's) or ``h5`` (``tf_model.h5``).
    """
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf
    import transformers as hf

    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    sizes = dict(hidden_size=hidden_size, num_hidden_layers=num_hidden_layers, num_attention_heads=num_attention_heads,
                 intermediate_size=intermediate_size)
    if family == "roberta":
        tokenizer = _tiny_bpe_tokenizer(path, max_length)
        config = hf.RobertaConfig(vocab_size=len(tokenizer), max_position_embeddings=max_length + 2, type_vocab_size=1,
                                  pad_token_id=1, bos_token_id=0, eos_token_id=2, **sizes)
        classes = (hf.TFRobertaModel, hf.TFRobertaForSequenceClassification)
    elif family == "mpnet":
        vocab = tiny_mpnet_vocab()
        (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
        tokenizer = hf.MPNetTokenizerFast(vocab_file=str(path / "vocab.txt"), do_lower_case=True)
        tokenizer.model_max_length = max_length
        config = hf.MPNetConfig(vocab_size=len(vocab), max_position_embeddings=max_length + 2, pad_token_id=1,
                                bos_token_id=0, eos_token_id=2, relative_attention_num_buckets=8, **sizes)
        classes = (hf.TFMPNetModel, hf.TFMPNetForSequenceClassification)
    else:
        vocab = tiny_vocab()
        (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
        tokenizer_class = {"bert": hf.BertTokenizerFast, "distilbert": hf.DistilBertTokenizerFast,
                           "electra": hf.ElectraTokenizerFast}[family]
        tokenizer = tokenizer_class(vocab_file=str(path / "vocab.txt"), do_lower_case=True)
        tokenizer.model_max_length = max_length
        if family == "bert":
            config = hf.BertConfig(vocab_size=len(vocab), max_position_embeddings=max_length, type_vocab_size=2,
                                   pad_token_id=0, **sizes)
            classes = (hf.TFBertModel, hf.TFBertForSequenceClassification)
        elif family == "distilbert":
            config = hf.DistilBertConfig(vocab_size=len(vocab), max_position_embeddings=max_length, dim=hidden_size,
                                         n_layers=num_hidden_layers, n_heads=num_attention_heads,
                                         hidden_dim=intermediate_size, pad_token_id=0)
            classes = (hf.TFDistilBertModel, hf.TFDistilBertForSequenceClassification)
        elif family == "electra":
            config = hf.ElectraConfig(vocab_size=len(vocab), max_position_embeddings=max_length, type_vocab_size=2,
                                      embedding_size=max(hidden_size // 2, 4), pad_token_id=0, **sizes)
            classes = (hf.TFElectraModel, hf.TFElectraForPreTraining)
        else:
            raise ValueError(f"unknown family {family!r}; choose one of {TINY_FAMILIES}")
    tokenizer.save_pretrained(str(path))
    tf.keras.utils.set_random_seed(seed)
    model = classes[1 if head else 0](config)
    model(model.dummy_inputs, training=False)
    if weights_format == "h5":
        model.save_pretrained(str(path), safe_serialization=False)
        return path
    config.save_pretrained(str(path))
    save_pytorch_safetensors(model, path, strip="" if head else model.base_model_prefix + ".")
    return path


TINY_NER_LABELS = ("O", "B-person", "I-person", "B-place", "I-place")


def make_tiny_tagger(encoder_dir, output, *, labels=TINY_NER_LABELS, task: str = "ner", max_length: int = 24,
                     overlap: int = 4, word_shape: bool = False, seed: int = 3):
    """A tagger run directory (``tfxformers tag --model``, ``export``) over a tiny checkpoint: an untrained
    head with ``labels``, windows of ``max_length`` pieces so short texts already take several. Random weights
    give varied, untied logits: enough for tests that compare one path of tagging with another. With
    ``word_shape`` the model also reads ``shape_ids``, through a random (not the usual zero) embedding, so
    letter case changes its answers."""
    import tensorflow as tf

    from tfxformers.models import encoders
    from tfxformers.models.encoders import base
    from tfxformers.models.tagging.model import build_tagger, save_tagger

    tf.keras.utils.set_random_seed(seed)
    model = build_tagger(base.load_encoder(encoder_dir), len(labels), word_shape=word_shape)
    if word_shape:
        layer = model.get_layer("word_shape")
        layer.set_weights([tf.random.normal(layer.get_weights()[0].shape, stddev=2.0).numpy()])
    save_tagger(output, model, encoders.load_tokenizer(encoder_dir), task=task, label_names=list(labels),
                max_length=max_length, overlap=overlap, mode="finetune")
    return Path(output)
