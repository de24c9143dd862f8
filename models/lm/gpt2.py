"""GPT-2 language models trained from scratch on a user's corpus, as plain functions and Keras models.

Notebook use::

    from tfxformers.models.lm import gpt2
    from tfxformers.models.lm import tokenizer as gpt2_tokenizer
    from tfxformers.models.data.corpus import load_corpus
    corpus = load_corpus("emma")                       # chapters; whole chapters held out
    tokenizer = gpt2_tokenizer.train_bpe_tokenizer(corpus.train, "runs/tok", vocab_size=8000)
    config = gpt2.make_config(tokenizer, preset="mini", block_size=128)
    train_blocks = gpt2.pack_blocks(gpt2.tokenize_documents(tokenizer, corpus.train), 128)
    model = gpt2.build_lm(config, num_train_steps=1000)
    model.fit(gpt2.lm_dataset(train_blocks, batch_size=16, shuffle=True), epochs=1)

Blocks: the corpus is tokenized once, documents are joined with ``</s>``, and the token stream is cut
into consecutive, non-overlapping windows of ``block_size + 1`` tokens that share one token at each
border, so inputs are ``window[:-1]`` and labels ``window[1:]`` and every token is predicted exactly
once per epoch. The loss is computed on the logits alone (``use_cache=False``): nothing is computed or
scored for ``past_key_values``.
"""
from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

import tfxformers  # noqa: F401
from tfxformers.errors import UserError, check_rules
from tfxformers.models.data.corpus import Corpus
from tfxformers.models.run_dirs import DATA_FINGERPRINT

PRESETS = {
    # name: (layers, heads, embedding size)
    "tiny": (2, 2, 32),
    "mini": (4, 4, 128),
    "small-6": (6, 8, 256),
    "small": (12, 12, 768),  # GPT-2 small
}


def make_config(tokenizer, preset: str = "mini", block_size: int = 128):
    from transformers import GPT2Config

    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if block_size < 8:
        raise UserError("--block-size must be at least 8")
    layers, heads, embd = PRESETS[preset]
    return GPT2Config(vocab_size=len(tokenizer), n_positions=max(block_size, 64), n_embd=embd, n_layer=layers,
                      n_head=heads, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                      pad_token_id=tokenizer.pad_token_id, use_cache=False)


def tokenize_documents(tokenizer, documents: Sequence[str]) -> np.ndarray:
    """All documents as one int32 token stream, each followed by ``</s>``."""
    eos = tokenizer.eos_token_id
    encoded = tokenizer(list(documents), add_special_tokens=False, verbose=False)["input_ids"]
    stream = []
    for ids in encoded:
        stream.extend(ids)
        stream.append(eos)
    return np.asarray(stream, dtype=np.int32)


def pack_blocks(stream: np.ndarray, block_size: int) -> np.ndarray:
    """Windows ``[n, block_size + 1]`` over the stream with stride ``block_size`` (no overlap of targets)."""
    n = (len(stream) - 1) // block_size
    if n < 1:
        raise UserError(f"the text is {len(stream)} tokens long, smaller than one block of {block_size} tokens; "
                        "use more text or a smaller --block-size")
    index = np.arange(n)[:, None] * block_size + np.arange(block_size + 1)[None, :]
    return stream[index]


def lm_dataset(blocks: np.ndarray, batch_size: int = 16, shuffle: bool = False, seed: int = 0,
               start: tuple[int, int] = (0, 0)):
    """``({input_ids}, next ids)`` batches of blocks, reshuffled every epoch when ``shuffle``.

    The order of each epoch depends only on ``(seed, epoch)`` and the first epoch is ``start`` (the
    position a ``BackupAndRestore`` resume continues at, ``multiworker.resume_start``), so a resumed run
    trains on the batches the uninterrupted one would have; ``Dataset.shuffle`` would start again from
    its first epoch's order in a restarted process.
    """
    import tensorflow as tf

    from tfxformers.models.tokenization import epoch_plans, plan_batches

    # All blocks have one length, so the length sorting of plan_batches keeps the shuffled order.
    lengths = np.zeros(len(blocks), dtype=np.int64)
    plan = epoch_plans(lengths, batch_size, shuffle, seed, start)

    def generate():
        for index in plan():
            yield {"input_ids": blocks[index, :-1]}, blocks[index, 1:]

    spec = tf.TensorSpec((None, blocks.shape[1] - 1), tf.as_dtype(blocks.dtype))
    dataset = tf.data.Dataset.from_generator(generate, output_signature=({"input_ids": spec}, spec))
    steps = len(plan_batches(lengths, batch_size, False, None))
    return dataset.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(2)


def _schedule_class():
    import tensorflow as tf

    class WarmupCosine(tf.keras.optimizers.schedules.LearningRateSchedule):
        """Linear warm-up to ``peak`` then cosine decay to ``peak * floor`` at ``total_steps``."""

        def __init__(self, peak: float, total_steps: int, warmup_steps: int, floor: float = 0.1):
            self.peak, self.total, self.warmup, self.floor = peak, max(total_steps, 1), max(warmup_steps, 1), floor

        def __call__(self, step):
            step = tf.cast(step, tf.float32)
            warm = self.peak * step / self.warmup
            progress = tf.clip_by_value((step - self.warmup) / max(self.total - self.warmup, 1), 0.0, 1.0)
            cosine = self.peak * (self.floor + (1 - self.floor) * 0.5 * (1 + tf.cos(math.pi * progress)))
            return tf.where(step < self.warmup, warm, cosine)

        def get_config(self):
            return {"peak": self.peak, "total_steps": self.total, "warmup_steps": self.warmup, "floor": self.floor}

    return WarmupCosine


class _TiedHeadWarningFilter(logging.Filter):
    """Drops tf-keras' 7-line warning that ``lm_head`` uses a variable its Lambda does not track: the variable
    is ``wte``'s, tracked by the model through ``lm.transformer``, so the warning (printed on every build and
    load) says nothing true. A subclassed head layer would change the layout of every saved model."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "a Lambda layer's call (lm_head)" not in record.getMessage()


def _quiet_tied_head_warning() -> None:
    logger = logging.getLogger("tensorflow")
    if not tfxformers.verbose_requested() and not any(isinstance(f, _TiedHeadWarningFilter) for f in logger.filters):
        logger.addFilter(_TiedHeadWarningFilter())


def build_lm(config, *, learning_rate: float = 1e-3, num_train_steps: int = 1000, warmup_ratio: float = 0.05,
             weight_decay: float = 0.01, compile: bool = True, hf_model=None):
    """A compiled Keras model ``input_ids -> logits`` around ``TFGPT2LMHeadModel`` (``.hf_model``).

    Defaults are for training from scratch: a peak learning rate of 1e-3 (small models tolerate and need
    far more than the 3e-5 used for fine-tuning), 5% warm-up, cosine decay to 10%.
    """
    import tensorflow as tf
    from transformers import TFGPT2LMHeadModel

    from tfxformers.models.encoders.base import skip_autograph

    _quiet_tied_head_warning()
    lm = hf_model or TFGPT2LMHeadModel(config)
    if hf_model is None:
        lm(lm.dummy_inputs, training=False)
    lm.transformer.call = tf.autograph.experimental.do_not_convert(lm.transformer.call)
    input_ids = tf.keras.Input(shape=(None,), dtype=tf.int32, name="input_ids")
    logits = lm.transformer(input_ids=input_ids, use_cache=False).last_hidden_state
    # The LM head is the transposed token embedding (weights tied, as in GPT-2).
    logits = tf.keras.layers.Lambda(
        lambda h: tf.matmul(h, lm.transformer.wte.weights[0], transpose_b=True), name="lm_head")(logits)
    model = skip_autograph(tf.keras.Model(input_ids, logits, name="gpt2_lm"))
    model.hf_model = lm
    if compile:
        schedule = _schedule_class()(learning_rate, num_train_steps, int(num_train_steps * warmup_ratio))
        model.compile(optimizer=tf.keras.optimizers.AdamW(schedule, weight_decay=weight_decay, clipnorm=1.0),
                      loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def ngram_baselines(train_stream: np.ndarray, eval_stream: np.ndarray, vocab_size: int) -> dict:
    """Perplexity of add-one unigram and interpolated (0.7 bigram + 0.3 unigram) bigram models."""
    counts = np.bincount(train_stream, minlength=vocab_size).astype(np.float64) + 1.0
    unigram = counts / counts.sum()
    targets = eval_stream[1:]
    unigram_ppl = float(np.exp(-np.mean(np.log(unigram[targets]))))
    pair_keys = train_stream[:-1].astype(np.int64) * vocab_size + train_stream[1:]
    keys, pair_counts = np.unique(pair_keys, return_counts=True)
    context_counts = np.bincount(train_stream[:-1], minlength=vocab_size).astype(np.float64)
    eval_keys = eval_stream[:-1].astype(np.int64) * vocab_size + eval_stream[1:]
    pos = np.searchsorted(keys, eval_keys)
    pos = np.minimum(pos, len(keys) - 1)
    found = keys[pos] == eval_keys
    pair = np.where(found, pair_counts[pos], 0).astype(np.float64)
    context = context_counts[eval_stream[:-1]]
    bigram = np.where(context > 0, pair / np.maximum(context, 1), 0.0)
    mixed = 0.7 * bigram + 0.3 * unigram[targets]
    return {"unigram": unigram_ppl, "bigram": float(np.exp(-np.mean(np.log(mixed))))}


def perplexity(model, blocks: np.ndarray, batch_size: int = 32) -> float:
    loss = model.evaluate(lm_dataset(blocks, batch_size), verbose=0)
    return float(math.exp(loss if np.isscalar(loss) else loss[0]))


@dataclass
class Gpt2TrainConfig:
    corpus: str
    output: str
    preset: str = "mini"
    vocab_size: int = 8000
    block_size: int = 128
    epochs: int = 3
    batch_size: int = 16
    learning_rate: float = 1e-3
    lowercase: bool = False
    limit_chars: int | None = None
    seed: int = 42
    verbose: int | None = None
    # tf.distribute strategy: "none", "mirrored" (this machine's GPUs), "multi-worker" (TF_CONFIG's workers;
    # models.multiworker says who writes what).
    distribute: str = "none"


def _limit(documents: list[str], limit: int | None) -> list[str]:
    if not limit:
        return documents
    out, total = [], 0
    for doc in documents:
        if total >= limit:
            break
        out.append(doc[: limit - total])
        total += len(out[-1])
    return out


MIN_BLOCK_SIZE = 8
MAX_BLOCK_SIZE = 2048  # twice GPT-2's context; attention memory grows with its square
MAX_SEED = 2**32 - 1
MIN_VOCAB_SIZE = 256 + 5  # every byte + the special tokens (gpt2_tokenizer.SPECIAL_TOKENS)


def check_config(config: Gpt2TrainConfig) -> None:
    """Every setting in its range, for library callers too (the CLI's argparse types check first)."""
    from tfxformers.models.multiworker import DISTRIBUTE_CHOICES

    if config.preset not in PRESETS:
        raise UserError(f"unknown preset {config.preset!r}; choose one of {', '.join(PRESETS)}")
    rules = (("--vocab-size", config.vocab_size, config.vocab_size >= MIN_VOCAB_SIZE, f"at least {MIN_VOCAB_SIZE}"),
             ("--block-size", config.block_size, MIN_BLOCK_SIZE <= config.block_size <= MAX_BLOCK_SIZE,
              f"between {MIN_BLOCK_SIZE} and {MAX_BLOCK_SIZE}"),
             ("--seed", config.seed, 0 <= config.seed <= MAX_SEED, f"between 0 and {MAX_SEED}"),
             ("--epochs", config.epochs, config.epochs >= 1, "at least 1"),
             ("--batch-size", config.batch_size, config.batch_size >= 1, "at least 1"),
             ("--learning-rate", config.learning_rate, config.learning_rate > 0, "> 0"),
             ("--limit-chars", config.limit_chars, config.limit_chars is None or config.limit_chars >= 1, "at least 1"),
             ("--distribute", config.distribute, config.distribute in DISTRIBUTE_CHOICES,
              f"one of {', '.join(DISTRIBUTE_CHOICES)}"))
    check_rules(rules)


def limited_corpus(corpus: Corpus, limit_chars: int | None) -> Corpus:
    """At most ``limit_chars`` characters of training text, and an eighth of that of each held-out part."""
    held_out = limit_chars // 8 if limit_chars else None
    return Corpus(corpus.name, _limit(corpus.train, limit_chars), _limit(corpus.validation, held_out),
                  _limit(corpus.test, held_out))


def train_gpt2(config: Gpt2TrainConfig, *, overwrite: bool = False) -> dict:
    """Train a tokenizer on the corpus named by ``config.corpus``, then ``fit_gpt2`` a GPT-2 from scratch.

    An existing run in ``config.output`` is replaced only with ``overwrite``, and only once this run has
    succeeded; an unfinished run with the same settings resumes (``models.run_dirs``).
    """
    import tempfile

    from tfxformers.models import multiworker
    from tfxformers.models.data.corpus import load_corpus
    from tfxformers.models.lm.tokenizer import train_bpe_tokenizer

    check_config(config)
    # A refused --output costs nothing: checked before the corpus is read (fit_gpt2 checks again).
    multiworker.check_output("gpt2", dict(config.__dict__), config.output, config.distribute, overwrite)
    corpus = limited_corpus(load_corpus(config.corpus), config.limit_chars)
    if not corpus.validation or not corpus.test:
        raise UserError(f"{config.corpus}: too little text to hold out validation and test parts")
    # BPE training is deterministic, so a resumed run gets the same tokenizer back; fit_gpt2 saves it.
    with tempfile.TemporaryDirectory(prefix="tfxformers-bpe-") as scratch:
        tokenizer = train_bpe_tokenizer(corpus.train, scratch, vocab_size=config.vocab_size,
                                        lowercase=config.lowercase, max_length=config.block_size)
    if len(tokenizer) < config.vocab_size:
        print(f"the corpus supports only {len(tokenizer)} tokens (asked for {config.vocab_size})", flush=True)
    # Unlike a Trainer's test split, the CLI's held-out test part must hold a block.
    pack_blocks(tokenize_documents(tokenizer, corpus.test), config.block_size)
    return fit_gpt2(tokenizer, corpus, config, config.output, overwrite=overwrite)


def fit_gpt2(tokenizer, corpus: Corpus, config: Gpt2TrainConfig, output: str | os.PathLike, *,
             overwrite: bool = False) -> dict:
    """Train a GPT-2 from scratch on ``corpus`` with ``tokenizer`` into ``output``; returns the metrics.

    ``config.corpus`` only describes where the documents came from; ``config.vocab_size`` and
    ``config.lowercase`` are the tokenizer's business (the model takes ``len(tokenizer)``). A test part
    shorter than one block is not scored (``test_perplexity`` None). The run's identity for resuming is its
    settings plus a fingerprint of the documents and the vocabulary.
    """
    import hashlib

    from tfxformers.models import multiworker

    config = replace(config, output=str(output))
    check_config(config)
    corpus = limited_corpus(corpus, config.limit_chars)
    vocabulary = json.dumps(sorted(tokenizer.get_vocab().items()))
    identity = {**config.__dict__, DATA_FINGERPRINT: hashlib.sha256(
        (corpus.fingerprint() + vocabulary).encode("utf-8")).hexdigest()}
    # Under multi-worker only the chief trains into output (models.multiworker).
    with multiworker.run_directory("gpt2", identity, output, config.distribute,
                                   overwrite) as (directory, shared_backup):
        return _fit_gpt2(tokenizer, corpus, config, identity, directory, shared_backup)


def _fit_gpt2(tokenizer, corpus: Corpus, config: Gpt2TrainConfig, identity: dict, output: Path,
              shared_backup: Path | None = None) -> dict:
    import shutil
    import sys

    import tensorflow as tf

    from tfxformers.models.artifacts import save_gpt2
    from tfxformers.models.multiworker import resume_note, resume_start, strategy, wait_for_all_workers

    # Written first, so that an unfinished run says what it is (models.run_dirs decides resume vs refuse).
    (output / "training_config.json").write_text(json.dumps(identity, indent=2))
    backup = shared_backup or output / "checkpoints" / "backup"
    if backup.exists():
        # The model, optimizer and epoch counter come back from the backup.
        print(f"resuming from the checkpoint in {backup} {resume_note(backup)}", flush=True)
    elif (output / "history.csv").exists():
        (output / "history.csv").unlink()
    tf.keras.utils.set_random_seed(config.seed)
    streams = {name: tokenize_documents(tokenizer, docs) for name, docs in
               (("train", corpus.train), ("validation", corpus.validation), ("test", corpus.test)) if docs}
    blocks = {name: pack_blocks(streams[name], config.block_size) for name in ("train", "validation")}
    if "test" in streams and len(streams["test"]) > config.block_size:
        blocks["test"] = pack_blocks(streams["test"], config.block_size)
    model_config = make_config(tokenizer, config.preset, config.block_size)
    steps_per_epoch = math.ceil(len(blocks["train"]) / config.batch_size)
    # Variables (model and optimizer slots) must be created under the strategy that trains them.
    with strategy(config.distribute).scope():
        model = build_lm(model_config, learning_rate=config.learning_rate, num_train_steps=steps_per_epoch * config.epochs)
    verbose = config.verbose if config.verbose is not None else (1 if sys.stdout.isatty() else 2)

    class Perplexity(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs and "val_loss" in logs:
                logs["val_perplexity"] = math.exp(logs["val_loss"])
                print(f"epoch {epoch + 1}: validation perplexity {logs['val_perplexity']:.2f}", flush=True)

    callbacks = [
        tf.keras.callbacks.BackupAndRestore(str(backup), save_freq="epoch"),
        Perplexity(),
        tf.keras.callbacks.TensorBoard(log_dir=str(output / "logs")),
        tf.keras.callbacks.CSVLogger(str(output / "history.csv"), append=True),
    ]
    start_val = perplexity(model, blocks["validation"])
    start = resume_start(backup, steps_per_epoch)
    model.fit(lm_dataset(blocks["train"], config.batch_size, shuffle=True, seed=config.seed, start=start),
              validation_data=lm_dataset(blocks["validation"], config.batch_size),
              epochs=config.epochs, verbose=verbose, callbacks=callbacks)
    wait_for_all_workers(model.distribute_strategy)
    if shared_backup is None:  # the chief's backup is the chief's to remove
        shutil.rmtree(backup, ignore_errors=True)
    baselines = ngram_baselines(streams["train"], streams["validation"], len(tokenizer))
    metrics = {"initial_validation_perplexity": start_val,
               "validation_perplexity": perplexity(model, blocks["validation"]),
               "test_perplexity": perplexity(model, blocks["test"]) if "test" in blocks else None,
               "validation_unigram_perplexity": baselines["unigram"],
               "validation_bigram_perplexity": baselines["bigram"],
               "train_tokens": int(len(streams["train"])), "train_blocks": int(len(blocks["train"])),
               "vocab_size": len(tokenizer), "epochs": config.epochs}
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2))
    save_gpt2(output, model.hf_model, tokenizer, preset=config.preset, block_size=config.block_size,
              corpus=config.corpus)
    return metrics


def load_trained_gpt2(path: Path, info: dict):
    """The GPT-2 in ``path`` (whose checked info file is ``info``) with its tokenizer: the loader
    ``models.artifacts.KINDS`` names for kind ``gpt2``."""
    from transformers import TFGPT2LMHeadModel

    from tfxformers.models.artifacts import TrainedModel, first_line
    from tfxformers.models.lm.tokenizer import load_tokenizer

    try:
        model = TFGPT2LMHeadModel.from_pretrained(str(path / "model"))
    except Exception as exc:  # h5py / transformers errors name the file format, not the fix
        raise UserError(f"{path}: model/ is damaged ({first_line(exc)}); retrain the model or copy model/ "
                        "again") from None
    return TrainedModel(path, info, model, load_tokenizer(path / "tokenizer"), [])
