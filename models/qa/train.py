"""Train a question-answering model on a SQuAD v1.1 / v2.0 file: the work behind ``tfxformers train qa``.

``train_qa(QATrainConfig(data=..., output=...))`` parses the file or built-in split (``squad.load``), holds out a
seeded 10% of its passages for validation unless ``eval_data`` is given, and hands the examples to
``fit_qa(train_examples, eval_examples, config, output)`` (what the pipeline's Trainer calls), which builds labelled windows
(``max_seq_len`` 384, ``doc_stride`` 128), fine-tunes the encoder and span head (``encoder`` is ``minilm``,
a BERT checkpoint, or a SQuAD-trained ``BertForQuestionAnswering`` checkpoint whose head is kept), and
writes the trained directory with ``metrics.json``: the official SQuAD exact match and F1 on the validation
questions. As for classifiers: ``models.run_dirs`` decides what may happen in ``output``; Keras'
``BackupAndRestore`` under ``checkpoints/backup`` resumes a killed run; TensorBoard logs under ``logs/``;
``history.csv``; a progress bar on a terminal and one line per epoch otherwise.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Sequence

import tfxformers  # noqa: F401
from tfxformers.errors import UserError, check_rules
from tfxformers.models.artifacts import TrainedModel, save_qa
from tfxformers.models.qa import features, squad
from tfxformers.models.qa.features import QAExample

KIND = "qa"


@dataclass
class QATrainConfig:
    data: str
    output: str
    eval_data: str | None = None
    encoder: str = "minilm"
    epochs: int = 2
    batch_size: int = 16
    learning_rate: float = 5e-5
    max_seq_len: int = features.MAX_SEQ_LEN
    doc_stride: int = features.DOC_STRIDE
    max_question_tokens: int = features.MAX_QUESTION_TOKENS
    max_answer_len: int = 30
    validation_fraction: float = 0.1
    patience: int = 2
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    limit_train: int | None = None
    checkpoint_every_steps: int = 200
    seed: int = 42
    verbose: int | None = None  # Keras verbosity; default: progress bar on a terminal, one line per epoch otherwise


def check_config(config: QATrainConfig) -> None:
    """Every setting in range, for notebook callers too (the CLI's argparse types check first)."""
    rules = (("--epochs", config.epochs, config.epochs >= 1, "at least 1"),
             ("--batch-size", config.batch_size, config.batch_size >= 1, "at least 1"),
             ("--learning-rate", config.learning_rate, config.learning_rate > 0, "> 0"),
             ("--max-seq-len", config.max_seq_len, 32 <= config.max_seq_len <= 4096, "between 32 and 4096"),
             ("--doc-stride", config.doc_stride, config.doc_stride >= 0, ">= 0"),
             ("--max-question-tokens", config.max_question_tokens, config.max_question_tokens >= 1, "at least 1"),
             ("--max-answer-len", config.max_answer_len, config.max_answer_len >= 1, "at least 1"),
             ("validation_fraction", config.validation_fraction, 0 < config.validation_fraction < 1, "in (0, 1)"),
             ("--patience", config.patience, config.patience >= 0, ">= 0"),
             ("--limit-train", config.limit_train, config.limit_train is None or config.limit_train >= 1, "at least 1"),
             ("--checkpoint-every-steps", config.checkpoint_every_steps, config.checkpoint_every_steps >= 0, ">= 0"),
             ("--seed", config.seed, 0 <= config.seed <= 2**32 - 1, "between 0 and 2**32 - 1"))
    check_rules(rules)


def resolve_encoder_dir(encoder: str) -> Path:
    from tfxformers.models import encoders

    path = encoders.resolve_checkpoint(encoder)
    encoders.spec_for(path)  # an unsupported family fails here, before any data is tokenized
    return path


def examples_fingerprint(train_examples: Sequence[QAExample], eval_examples: Sequence[QAExample]) -> str:
    """A SHA-256 of every training and validation question, context and answer: what identifies examples
    handed to ``fit_qa`` in memory, where ``config.data`` only says where they came from."""
    digest = hashlib.sha256()
    for part in (train_examples, eval_examples):
        rows = [[e.id, e.question, e.context, [list(a) for a in e.answers], e.title] for e in part]
        digest.update(json.dumps(rows, ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()


def train_qa(config: QATrainConfig, *, overwrite: bool = False) -> dict:
    """Load ``config.data`` (and ``config.eval_data``, else a seeded split of the data's passages) and
    ``fit_qa`` on it; returns the validation metrics (also in ``OUTPUT/metrics.json``)."""
    from tfxformers.models import run_dirs

    check_config(config)
    # A refused --output costs nothing: checked before the data is read (fit_qa checks again).
    run_dirs.plan(config.output, KIND, asdict(config), overwrite)
    resolve_encoder_dir(config.encoder)
    examples, mismatched = squad.load(config.data)
    if config.eval_data:
        train_examples, eval_examples = list(examples), squad.load(config.eval_data)[0]
    else:
        train_examples, eval_examples = features.split_examples(examples, config.validation_fraction, config.seed)
    if mismatched:
        print(f"{Path(config.data).name}: {mismatched} answers not found in their context skipped", flush=True)
    return fit_qa(train_examples, eval_examples, config, config.output, overwrite=overwrite)


def fit_qa(train_examples: Sequence[QAExample], eval_examples: Sequence[QAExample], config: QATrainConfig,
           output: str | os.PathLike, *, overwrite: bool = False) -> dict:
    """Train on examples in memory; returns the validation metrics (also OUTPUT/metrics.json).

    ``config.data`` / ``config.eval_data`` only describe where the examples came from (recorded in the model
    and ``metrics.json``); ``config.limit_train`` still applies. The run's identity for resuming is its settings
    plus a fingerprint of the examples, so a Trainer that hands over examples resumes only on the same ones.
    """
    from tfxformers.models import run_dirs

    config = replace(config, output=str(output))
    check_config(config)
    train_examples = list(train_examples)[:config.limit_train] if config.limit_train else list(train_examples)
    eval_examples = list(eval_examples)
    if not train_examples or not eval_examples:
        raise UserError(f"question answering needs training and validation questions (got {len(train_examples)} "
                        f"and {len(eval_examples)})")
    encoder_dir = resolve_encoder_dir(config.encoder)
    identity = {**asdict(config), run_dirs.DATA_FINGERPRINT: examples_fingerprint(train_examples, eval_examples)}
    with run_dirs.claim(output, KIND, identity, overwrite) as directory:
        return _train(config, identity, Path(directory), train_examples, eval_examples, encoder_dir)


def batches(windows, batch_size: int, pad_id: int, max_seq_len: int, rng=None, input_names=None):
    """Padded ``(inputs, labels)`` numpy batches, windows of similar length together (shuffled if ``rng``)."""
    import numpy as np

    from tfxformers.models.qa.features import pad_windows

    order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
    groups = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(groups)
    for group in groups:
        chosen = [windows[i] for i in group]
        rows = pad_windows(chosen, pad_id, max_seq_len)
        inputs = {k: np.asarray(v, dtype=np.int32) for k, v in rows.items() if input_names is None or k in input_names}
        labels = {"start_logits": np.asarray([w.start_position for w in chosen], dtype=np.int32),
                  "end_logits": np.asarray([w.end_position for w in chosen], dtype=np.int32)}
        yield inputs, labels


def make_dataset(tf, windows, batch_size: int, pad_id: int, max_seq_len: int, seed: int | None, input_names):
    """A ``tf.data.Dataset`` of those batches; with ``seed``, repeated with a new (seeded) shuffle every
    epoch: Keras keeps one iterator across epochs when ``steps_per_epoch`` is given."""
    import numpy as np

    rng = np.random.default_rng(seed) if seed is not None else None
    spec = tf.TensorSpec((None, None), tf.int32)
    signature = ({name: spec for name in input_names},
                 {"start_logits": tf.TensorSpec((None,), tf.int32), "end_logits": tf.TensorSpec((None,), tf.int32)})
    dataset = tf.data.Dataset.from_generator(lambda: batches(windows, batch_size, pad_id, max_seq_len, rng, input_names),
                                             output_signature=signature)
    return dataset.repeat() if seed is not None else dataset


def _train(config: QATrainConfig, identity: dict, output: Path, train_examples: list[QAExample],
           eval_examples: list[QAExample], encoder_dir: Path) -> dict:
    import tensorflow as tf

    from tfxformers.models import encoders
    from tfxformers.models.qa import inference, metrics, model as qa_model

    config_record = {**identity, "kind": KIND}  # lets models.run_dirs tell an unfinished QA run apart
    (output / "training_config.json").write_text(json.dumps(config_record, indent=2))
    backup = output / "checkpoints" / "backup"
    if backup.exists():
        print(f"resuming from the checkpoint in {backup}", flush=True)
    elif (output / "history.csv").exists():
        (output / "history.csv").unlink()
    tf.keras.utils.set_random_seed(config.seed)

    model, has_head = qa_model.load_qa_checkpoint(encoder_dir)
    positions = encoders.max_input_tokens(model.encoder_config)
    if config.max_seq_len > positions:
        raise UserError(f"--max-seq-len {config.max_seq_len} is more than the encoder's {positions} positions")
    tokenizer = encoders.load_tokenizer(encoder_dir)
    fast = features.fast_tokenizer(tokenizer)
    pad_id = features.Specials.of(fast).pad_id
    kwargs = dict(max_seq_len=config.max_seq_len, doc_stride=config.doc_stride,
                  max_question_tokens=config.max_question_tokens)
    train_features = features.build_features(fast, train_examples, **kwargs)
    eval_features = features.build_features(fast, eval_examples, **kwargs)
    if not train_features.windows:
        raise UserError(f"{config.data}: no training window holds an answer")
    impossible = sum(e.is_impossible for e in train_examples)
    print(f"{Path(config.data).name}: {len(train_examples)} training questions ({impossible} unanswerable) -> "
          f"{len(train_features.windows)} windows; {len(eval_examples)} validation questions -> "
          f"{len(eval_features.windows)} windows; {train_features.skipped} answers no token covers "
          f"skipped; encoder {encoder_dir} ({'with' if has_head else 'new'} span head)", flush=True)

    steps_per_epoch = -(-len(train_features.windows) // config.batch_size)
    qa_model.compile_qa_model(model, learning_rate=config.learning_rate, num_train_steps=steps_per_epoch * config.epochs,
                              warmup_ratio=config.warmup_ratio, weight_decay=config.weight_decay)
    train_ds = make_dataset(tf, train_features.windows, config.batch_size, pad_id, config.max_seq_len, config.seed,
                            list(model.input_names))
    val_ds = make_dataset(tf, eval_features.windows, config.batch_size * 2, pad_id, config.max_seq_len, None,
                          list(model.input_names))
    callbacks = [
        tf.keras.callbacks.BackupAndRestore(str(backup), save_freq=config.checkpoint_every_steps or "epoch"),
        tf.keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True),
        tf.keras.callbacks.TensorBoard(log_dir=str(output / "logs" / "fit")),
        tf.keras.callbacks.CSVLogger(str(output / "history.csv"), append=True),
    ]
    verbose = config.verbose if config.verbose is not None else (1 if sys.stdout.isatty() else 2)
    started = time.perf_counter()
    model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, steps_per_epoch=steps_per_epoch,
              verbose=verbose, callbacks=callbacks)
    train_seconds = time.perf_counter() - started
    # Training finished: the next run with this output directory must start afresh, not resume.
    shutil.rmtree(backup, ignore_errors=True)

    trained = TrainedModel(output, {"kind": KIND, "max_seq_len": config.max_seq_len, "doc_stride": config.doc_stride,
                                    "input_names": list(model.input_names)}, model, tokenizer)
    with_null = any(e.is_impossible for e in [*train_examples, *eval_examples])
    predictions = inference.predict_examples(trained, eval_examples, max_answer_len=config.max_answer_len,
                                             handle_impossible_answer=with_null)
    # All-answerable data (SQuAD 1.1) is scored as the v1.1 script scores it; with unanswerable ones, as v2.0's.
    scorer = metrics.score if with_null else metrics.score_v1
    scores = scorer(predictions, {e.id: [t for t, _ in e.answers] for e in eval_examples})
    scores.update(split="validation", data=squad.reference(config.data),
                  eval_data=squad.reference(config.eval_data) if config.eval_data else None,
                  train_questions=len(train_examples), train_windows=len(train_features.windows),
                  train_seconds=round(train_seconds, 1), handle_impossible_answer=with_null,
                  examples=[{"id": e.id, "question": e.question, "prediction": predictions[e.id],
                             "gold": [t for t, _ in e.answers]} for e in eval_examples[:20]])
    save_qa(output, model, tokenizer, max_seq_len=config.max_seq_len, doc_stride=config.doc_stride,
                     input_names=list(model.input_names),
                     extra={"data": scores["data"], "encoder": str(encoder_dir), "max_answer_len": config.max_answer_len,
                            "handle_impossible_answer": with_null})
    (output / "metrics.json").write_text(json.dumps(scores, indent=2))
    return scores
