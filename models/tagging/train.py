"""Train a token classifier (NER or POS): the work behind ``tfxformers train tagger``.

``train_tagger(TaggerTrainConfig(data=..., output=...))`` loads tagged sentences (``models.data.tagged``:
``ner-tweets``, ``pos-oanc`` or a CoNLL / word-TAG file, split 80/10/10 by sentence) and hands them to
``fit_tagger(data, config, output)``. That tokenizes each sentence (its words joined by spaces), puts each
word's label on its first piece, cuts sentences longer than ``max_length`` into overlapping windows on word
boundaries, and fine-tunes the encoder (``finetune``) or trains the head on a frozen encoder (``frozen``)
with the classifier's conventions: AdamW with warm-up and linear decay, early stopping on validation loss
(best weights restored), ``BackupAndRestore`` under ``checkpoints/backup`` (a killed run resumes with the
same batches), TensorBoard logs, ``history.csv``, ``models.run_dirs`` deciding what may happen in
``output``. ``metrics.json`` holds the test split's scores (entity P/R/F1 per type and micro for NER;
token accuracy and per-tag F1 for POS) beside the most-frequent-tag baseline's on the same split.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

import tfxformers  # noqa: F401
from tfxformers.errors import UserError, check_rules
from tfxformers.models.tagging.data import TaggedData
from tfxformers.models.tagging import features, metrics
from tfxformers.models.tagging.baseline import MostFrequentTagger
from tfxformers.models.tagging.model import KIND

MODES = ("finetune", "frozen")


@dataclass
class TaggerTrainConfig:
    data: str
    output: str
    encoder: str = "minilm"
    mode: str = "finetune"
    epochs: int = 3
    batch_size: int = 32
    learning_rate: float | None = None  # None: 5e-5 (finetune), 1e-3 (frozen)
    max_length: int = 128
    overlap: int | None = None  # pieces consecutive windows share; None: features.default_overlap
    dropout: float = 0.1
    word_shape: bool = False  # a shape_ids input: each word's letter case, which uncased tokenizers drop
    patience: int = 2
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    limit_train: int | None = None
    limit_eval: int | None = None
    checkpoint_every_steps: int = 200
    seed: int = 42
    verbose: int | None = None


def check_config(config: TaggerTrainConfig) -> None:
    from tfxformers.models.training_rules import shared_rules

    overlap_ok = config.overlap is None or 0 <= config.overlap <= config.max_length // 4
    rules = (("--mode", config.mode, config.mode in MODES, f"one of {', '.join(MODES)}"),
             ("--max-length", config.max_length, 8 <= config.max_length <= 4096, "between 8 and 4096"),
             ("--overlap", config.overlap, overlap_ok, f"between 0 and {config.max_length // 4} (a quarter of --max-length)"),
             *shared_rules(config))
    check_rules(rules)


def _verbosity(config: TaggerTrainConfig) -> int:
    return config.verbose if config.verbose is not None else (1 if sys.stdout.isatty() else 2)


def baseline_scores(data: TaggedData) -> dict:
    """The most-frequent-tag baseline fitted on ``data.train``, scored on ``data.test``."""
    tagger = MostFrequentTagger(data.task).fit(data.train.words, data.train.tags)
    return metrics.score(data.task, data.test.tags, tagger.predict(data.test.words))


def train_tagger(config: TaggerTrainConfig, *, overwrite: bool = False) -> dict:
    """Load ``config.data`` and ``fit_tagger`` on it; returns the metrics (also ``OUTPUT/metrics.json``)."""
    from tfxformers.models import run_dirs
    from tfxformers.models.tagging.data import load_tagged

    check_config(config)
    run_dirs.plan(config.output, KIND, asdict(config), overwrite)  # a refused --output costs nothing
    return fit_tagger(load_tagged(config.data), config, config.output, overwrite=overwrite)


def fit_tagger(data: TaggedData, config: TaggerTrainConfig, output: str | os.PathLike, *,
               overwrite: bool = False) -> dict:
    from tfxformers.models import encoders, run_dirs

    config = replace(config, output=str(output))
    check_config(config)
    data = data.limited(config.limit_train, config.limit_eval)
    encoder_dir = encoders.resolve_checkpoint(config.encoder)
    encoders.spec_for(encoder_dir)  # an unsupported family fails before anything is tokenized
    identity = {**asdict(config), run_dirs.DATA_FINGERPRINT: data.fingerprint()}
    with run_dirs.claim(output, KIND, identity, overwrite) as directory:
        return _train(config, identity, Path(directory), data, encoder_dir)


def _dataset(tf, ids, labels, shapes, plan, steps: int, pad_id: int, input_names):
    spec = tf.TensorSpec((None, None), tf.int32)

    def generate():
        for index in plan():
            rows = [ids[i] for i in index]
            width = features.padded_width(max(len(r) for r in rows))
            yield (features.model_inputs(rows, [shapes[i] for i in index], pad_id, width, input_names),
                   features.pad_rows([labels[i] for i in index], -100, width))

    dataset = tf.data.Dataset.from_generator(generate, output_signature=({n: spec for n in input_names}, spec))
    return dataset.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(2)


def _train(config: TaggerTrainConfig, identity: dict, output: Path, data: TaggedData, encoder_dir: Path) -> dict:
    import tensorflow as tf

    from tfxformers.models import encoders
    from tfxformers.models.artifacts import TrainedModel
    from tfxformers.models.encoders import base
    from tfxformers.models.multiworker import resume_note, resume_start
    from tfxformers.models.tagging import decode, inference, model as tagger_model
    from tfxformers.models.tokenization import epoch_plans, plan_batches

    (output / "training_config.json").write_text(json.dumps({**identity, "kind": KIND}, indent=2))
    tokenizer = encoders.load_tokenizer(encoder_dir)
    if not getattr(tokenizer, "is_fast", False):
        raise UserError(f"{encoder_dir}: tagging needs a fast tokenizer (tokenizer.json) for character offsets")
    positions = encoders.max_input_tokens(encoders.read_config(encoder_dir))
    if config.max_length > positions:
        raise UserError(f"--max-length {config.max_length} is more than the encoder's {positions} positions")
    overlap = features.default_overlap(config.max_length) if config.overlap is None else config.overlap
    prefix, suffix = tagger_model.special_framing(tokenizer)
    index = {name: i for i, name in enumerate(data.label_names)}
    rows = {}
    for split in ("train", "validation"):
        part = getattr(data, split)
        joined = [decode.join_words(words) for words in part.words]
        plans = features.plan_texts(tokenizer, [t for t, _ in joined], [s for _, s in joined],
                                    max_length=config.max_length, overlap=overlap, prefix=prefix, suffix=suffix)
        rows[split] = features.labelled_windows(plans, [[index[t] for t in tags] for tags in part.tags], prefix, suffix)
    print(f"{data.name} ({data.task}): {len(data.train)} train / {len(data.validation)} validation / "
          f"{len(data.test)} test sentences, {len(data.label_names)} tags; {len(rows['train'][0])} training windows "
          f"of at most {config.max_length} pieces; encoder {encoder_dir}", flush=True)

    backup = output / "checkpoints" / "backup"
    if backup.exists():
        print(f"resuming from the checkpoint in {backup} {resume_note(backup)}", flush=True)
    else:
        (output / "history.csv").unlink(missing_ok=True)
    tf.keras.utils.set_random_seed(config.seed)
    model = tagger_model.build_tagger(base.load_encoder(encoder_dir), len(data.label_names), dropout=config.dropout,
                                      trainable_encoder=config.mode == "finetune", word_shape=config.word_shape)
    lengths = np.asarray([len(r) for r in rows["train"][0]], dtype=np.int64)
    steps = len(plan_batches(lengths, config.batch_size, False, None))
    lr = config.learning_rate or (5e-5 if config.mode == "finetune" else 1e-3)
    tagger_model.compile_tagger(model, learning_rate=lr, num_train_steps=steps * config.epochs,
                                warmup_ratio=config.warmup_ratio, weight_decay=config.weight_decay)
    start = resume_start(backup, steps)
    input_names = list(model.input_names)
    pad_id = int(tokenizer.pad_token_id or 0)
    train_ds = _dataset(tf, *rows["train"], epoch_plans(lengths, config.batch_size, True, config.seed, start), steps,
                        pad_id, input_names)
    val_lengths = np.asarray([len(r) for r in rows["validation"][0]], dtype=np.int64)
    val_batches = plan_batches(val_lengths, config.batch_size * 2, False, None)
    val_ds = _dataset(tf, *rows["validation"], lambda: val_batches, len(val_batches), pad_id, input_names)
    callbacks = [tf.keras.callbacks.BackupAndRestore(str(backup), save_freq=config.checkpoint_every_steps or "epoch"),
                 tf.keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience,
                                                  restore_best_weights=True),
                 tf.keras.callbacks.TensorBoard(log_dir=str(output / "logs" / "fit")),
                 tf.keras.callbacks.CSVLogger(str(output / "history.csv"), append=True)]
    started = time.perf_counter()
    model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, steps_per_epoch=steps,
              verbose=_verbosity(config), callbacks=callbacks)
    train_seconds = time.perf_counter() - started
    shutil.rmtree(backup, ignore_errors=True)  # finished: the next run with this output starts afresh

    info = {"kind": KIND, "task": data.task, "max_length": config.max_length, "overlap": overlap,
            "input_names": input_names, "pad_id": pad_id, "prefix_ids": prefix, "suffix_ids": suffix,
            "empty_tag": "O" if data.task == "ner" else None}
    trained = TrainedModel(output, info, model, tokenizer, list(data.label_names))
    scores = metrics.score(data.task, data.test.tags, inference.tag_words(trained, data.test.words))
    scores.update(split="test", data=_reference(config.data), mode=config.mode, encoder=str(encoder_dir),
                  train_seconds=round(train_seconds, 1), train_windows=len(rows["train"][0]),
                  baseline=baseline_scores(data))
    tagger_model.save_tagger(output, model, tokenizer, task=data.task, label_names=data.label_names,
                             max_length=config.max_length, overlap=overlap, mode=config.mode,
                             extra={"data": scores["data"], "encoder": str(encoder_dir)})
    (output / "metrics.json").write_text(json.dumps(scores, indent=2))
    return scores


def _reference(source: str) -> str:
    from tfxformers.models.data.tagged import FILES

    if source in FILES or not Path(source).expanduser().exists():
        return source
    return str(Path(source).expanduser().resolve())


def evaluate_tagger(trained, source: str, limit: int | None = None, as_written: bool = False) -> dict:
    """A trained tagger's scores on the test split of ``source`` (all of ``pos-wsj``, another corpus): tags
    the model does not know simply count as wrong. ``as_written``: the treebank's quotes (`` and '') spelled
    and tagged as the text and OANC have them (``data.quotes_as_written``)."""
    from tfxformers.models.tagging.data import load_tagged, quotes_as_written
    from tfxformers.models.tagging import inference

    test = load_tagged(source).test.subset(limit)
    if as_written:
        test = quotes_as_written(test)
    return metrics.score(trained.info["task"], test.tags, inference.tag_words(trained, test.words))
