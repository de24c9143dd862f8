"""The language-model pipeline's own components: the BPE tokenizer and the perplexity evaluator.

* ``BpeTokenizer``: trains the byte-level BPE (``models.lm.tokenizer.train_bpe_tokenizer``, what
  ``train gpt2`` uses) on the **train split only**, inside the run, after the validator passed; then
  tokenizes the train and eval splits and stops the run with ``CorpusTooSmallError`` (a readable
  message) if either cannot fill one training block: before any model is built. Its output is typed
  ``TransformGraph`` because that is the artifact through which TFX's stock Trainer receives a run's
  preprocessing (``fn_args.transform_graph_path``); it holds ``tokenizer/`` (Hugging Face files) and
  ``tokens.json`` (token counts per split).
* ``PerplexityEvaluator``: scores the Trainer's ``Format-Serving`` SavedModel (exactly what the Pusher
  would push, through its ``serving_default`` logits and its own tokenizer in ``assets.extra``) on the
  eval split: held-out perplexity over packed blocks, as ``train gpt2`` measures it, beside add-one
  unigram and interpolated bigram perplexities computed with the same tokenizer (bigram statistics from
  the train split). It blesses the model only if its perplexity is below the bigram baseline's and,
  once a model has been blessed, if it is no worse than the latest blessed one on the same documents.
  The latter compares nats per byte of text, not perplexity: the two models may have different
  tokenizers (a changed corpus trains a different BPE), and per-token perplexities of different
  tokenizations do not compare. The blessing carries TFX's ``blessed`` / ``current_model_id``
  properties, so the stock resolver and Pusher read it like the Evaluator's.

Why not TFMA: its thresholds are fixed when the pipeline is built, but both bars here are only known
inside the run (the bigram baseline needs the tokenizer this run trains), and perplexity over packed
blocks is not a per-example metric TFMA's slicing computes from a tf.Example signature.
"""
# No `from __future__ import annotations`: TFX reads the component functions' type hints at run time.

import json
import math
import os

from tfx import v1 as tfx
from tfx.types import standard_artifacts

from tfxformers.pipeline.components import write_blessing
from tfxformers.pipeline.lm.data import read_documents, split_patterns
from tfxformers.serving import layout

TOKENIZER_SUBDIR = "tokenizer"
TOKENS_FILE = "tokens.json"
EVALUATION_FILE = "perplexity.json"
# Re-evaluating the same model must not count as a regression (float sums in another order).
RELATIVE_TOLERANCE = 1e-6


class CorpusTooSmallError(RuntimeError):
    """A split of the corpus does not fill one training block once tokenized."""


# TFX runs it after ValidationGate: trains the BPE on the train split and checks the corpus fills blocks.
@tfx.dsl.components.component
def BpeTokenizer(
    examples: tfx.dsl.components.InputArtifact[standard_artifacts.Examples],
    tokenizer: tfx.dsl.components.OutputArtifact[standard_artifacts.TransformGraph],
    vocab_size: tfx.dsl.components.Parameter[int] = 8000,
    block_size: tfx.dsl.components.Parameter[int] = 128,
    lowercase: tfx.dsl.components.Parameter[int] = 0,
):
    from tfxformers.models.lm.gpt2 import tokenize_documents
    from tfxformers.models.lm.tokenizer import train_bpe_tokenizer

    train = read_documents(split_patterns(examples.uri, "train"))
    trained = train_bpe_tokenizer(train, os.path.join(tokenizer.uri, TOKENIZER_SUBDIR), vocab_size=vocab_size,
                                  lowercase=bool(lowercase), max_length=block_size)
    counts = {"vocab_size": len(trained)}
    for split in ("train", "eval"):
        documents = train if split == "train" else read_documents(split_patterns(examples.uri, split))
        counts[split] = int(len(tokenize_documents(trained, documents)))
    small = [s for s in ("train", "eval") if counts[s] < block_size + 1]
    if small:
        raise CorpusTooSmallError(
            "the corpus is too small to train on: " + "; ".join(
                f"the {s} split is {counts[s]} tokens, fewer than one block of {block_size} (+1) tokens" for s in small)
            + ". Use more text (the eval split is every 5th of ten documents) or a smaller --block-size")
    with open(os.path.join(tokenizer.uri, TOKENS_FILE), "w") as f:
        json.dump(counts, f, indent=2)
    tokenizer.set_int_custom_property("vocab_size", len(trained))


def byte_lengths(tokenizer) -> "list[int]":
    """UTF-8 bytes each token id stands for (special tokens count one: they stand for a boundary)."""
    from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

    decode = {c: b for b, c in bytes_to_unicode().items()}
    special = set(tokenizer.all_special_ids)
    lengths = [1] * len(tokenizer)
    for token, index in tokenizer.get_vocab().items():
        if index < len(lengths) and index not in special:
            lengths[index] = max(sum(1 for c in token if c in decode), 1)
    return lengths


def score_serving_model(model_dir: str, documents: "list[str]", batch_size: int = 16) -> dict:
    """Perplexity of an exported GPT-2 (``serving_default`` logits) on ``documents``, packed into blocks
    of its training length, and the nats per byte of the text those blocks predict."""
    import numpy as np
    import tensorflow as tf

    from tfxformers.models.lm.gpt2 import pack_blocks, tokenize_documents
    from tfxformers.models.lm.tokenizer import load_tokenizer

    with open(os.path.join(model_dir, layout.ASSETS_EXTRA, layout.VERSION_INFO_FILE)) as f:
        info = json.load(f)
    tokenizer = load_tokenizer(os.path.join(model_dir, layout.ASSETS_EXTRA, layout.TOKENIZER_DIR))
    blocks = pack_blocks(tokenize_documents(tokenizer, documents), int(info["max_length"]))
    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    nats = 0.0
    for start in range(0, len(blocks), batch_size):
        batch = blocks[start:start + batch_size]
        ids = tf.constant(batch[:, :-1])
        logits = serve(input_ids=ids, attention_mask=tf.ones_like(ids))["logits"]
        losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=batch[:, 1:], logits=logits)
        nats += float(tf.reduce_sum(tf.cast(losses, tf.float64)))
    targets = blocks[:, 1:]
    lengths = np.asarray(byte_lengths(tokenizer))
    return {"perplexity": math.exp(nats / targets.size), "tokens": int(targets.size),
            "nats_per_byte": nats / float(lengths[targets].sum()), "tokenizer": tokenizer}


def evaluate(model_dir: str, baseline_dir: "str | None", train: "list[str]", eval_documents: "list[str]") -> dict:
    """The evaluation record: the model's perplexity, the n-gram baselines, the latest blessed model's
    score on the same documents, and the verdict with its reasons."""
    from tfxformers.models.lm.gpt2 import ngram_baselines, tokenize_documents

    scored = score_serving_model(model_dir, eval_documents)
    tokenizer = scored.pop("tokenizer")
    ngrams = ngram_baselines(tokenize_documents(tokenizer, train), tokenize_documents(tokenizer, eval_documents),
                             len(tokenizer))
    result = {"eval_perplexity": scored["perplexity"], "eval_tokens": scored["tokens"],
              "eval_nats_per_byte": scored["nats_per_byte"], "unigram_perplexity": ngrams["unigram"],
              "bigram_perplexity": ngrams["bigram"], "baseline_model": baseline_dir,
              "baseline_nats_per_byte": None, "baseline_perplexity": None, "reasons": []}
    if scored["perplexity"] >= ngrams["bigram"]:
        result["reasons"].append(f"eval perplexity {scored['perplexity']:.2f} is not below the bigram baseline's "
                                 f"{ngrams['bigram']:.2f}")
    if baseline_dir:
        base = score_serving_model(baseline_dir, eval_documents)
        result["baseline_nats_per_byte"], result["baseline_perplexity"] = base["nats_per_byte"], base["perplexity"]
        if scored["nats_per_byte"] > base["nats_per_byte"] * (1 + RELATIVE_TOLERANCE):
            result["reasons"].append(
                f"{scored['nats_per_byte']:.4f} nats per byte on the eval split is worse than the latest blessed "
                f"model's {base['nats_per_byte']:.4f}")
    result["blessed"] = not result["reasons"]
    return result


# TFX runs it after the Trainer (and the latest-blessed-model resolver); the Pusher reads its blessing.
@tfx.dsl.components.component
def PerplexityEvaluator(
    examples: tfx.dsl.components.InputArtifact[standard_artifacts.Examples],
    model: tfx.dsl.components.InputArtifact[standard_artifacts.Model],
    evaluation: tfx.dsl.components.OutputArtifact[standard_artifacts.ModelEvaluation],
    blessing: tfx.dsl.components.OutputArtifact[standard_artifacts.ModelBlessing],
    baseline_model: tfx.dsl.components.InputArtifact[standard_artifacts.Model] = None,
):
    from tfx.utils import path_utils

    # The Trainer's Format-Serving export, where TFX's Trainer puts fn_args.serving_model_dir.
    baseline_dir = path_utils.serving_model_dir(baseline_model.uri) if baseline_model is not None else None
    result = evaluate(path_utils.serving_model_dir(model.uri), baseline_dir,
                      read_documents(split_patterns(examples.uri, "train")),
                      read_documents(split_patterns(examples.uri, "eval")))
    os.makedirs(evaluation.uri, exist_ok=True)
    with open(os.path.join(evaluation.uri, EVALUATION_FILE), "w") as f:
        json.dump(result, f, indent=2)
    write_blessing(blessing, model, baseline_model, result["blessed"])
