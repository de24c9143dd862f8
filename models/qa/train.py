"""Train a question-answering model on a SQuAD v1.1 / v2.0 file: the work behind ``tfxformers train qa``.

``train_qa(QATrainConfig(data=..., output=...))`` parses the file or built-in split (``squad.load``), holds out a
seeded 10% of its passages for validation unless ``eval_data`` is given, and hands the examples to
``fit_qa(train_examples, eval_examples, config, output)`` (what the pipeline's Trainer calls). That builds
labelled windows (``max_seq_len`` 384, ``doc_stride`` 128), batches windows of similar length padded to the
smallest of ``buckets`` that fits, fine-tunes the encoder and span head (``encoder`` is ``minilm``, a
checkpoint of any registered family, or a SQuAD-trained ``*ForQuestionAnswering`` checkpoint whose head is
kept), and writes the trained directory with ``metrics.json``: the official SQuAD exact match and F1 on the
validation questions, and what the training cost (CPU minutes, steps, windows seen).

Two schedules: by default AdamW warms up and decays over ``epochs`` x steps, validating every epoch for early
stopping. With ``budget_cpu_minutes`` the warm-up and decay run over the budget's CPU time instead and
training stops when it is spent (``models.qa.budget``); the model is validated once, at the end, so scoring
never eats the budget. As for classifiers: ``models.run_dirs`` decides what may happen in ``output``; Keras'
``BackupAndRestore`` under ``checkpoints/backup`` resumes a killed run (with the batches and, beside it, the
CPU time it had reached); TensorBoard logs under ``logs/``; ``history.csv``.
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
    # None: features.DOC_STRIDE, lowered (with a note) to what windows of max_seq_len tokens can share.
    doc_stride: int | None = None
    max_question_tokens: int = features.MAX_QUESTION_TOKENS
    max_answer_len: int = 30
    validation_fraction: float = 0.1
    patience: int = 2
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    limit_train: int | None = None
    checkpoint_every_steps: int = 200
    seed: int = 42
    # Padded lengths of training and validation batches (increasing, ending at max_seq_len);
    # None: features.window_buckets(max_seq_len).
    buckets: list[int] | None = None
    # Stop after this much training CPU time (this process, every thread), with the learning rate warmed up
    # and decayed over it (models.qa.budget) instead of over epochs x steps; None: today's step schedule.
    budget_cpu_minutes: float | None = None
    verbose: int | None = None  # 0 silent; default: a progress line on a terminal, else lines per epoch (budget: per 50 steps)


def check_config(config: QATrainConfig) -> None:
    """Every setting in range, for notebook callers too (the CLI's argparse types check first)."""
    rules = (("--epochs", config.epochs, config.epochs >= 1, "at least 1"),
             ("--batch-size", config.batch_size, config.batch_size >= 1, "at least 1"),
             ("--learning-rate", config.learning_rate, config.learning_rate > 0, "> 0"),
             ("--max-seq-len", config.max_seq_len, 32 <= config.max_seq_len <= 4096, "between 32 and 4096"),
             ("--doc-stride", config.doc_stride, config.doc_stride is None or config.doc_stride >= 0, ">= 0"),
             ("--max-question-tokens", config.max_question_tokens, config.max_question_tokens >= 1, "at least 1"),
             ("--max-answer-len", config.max_answer_len, config.max_answer_len >= 1, "at least 1"),
             ("validation_fraction", config.validation_fraction, 0 < config.validation_fraction < 1, "in (0, 1)"),
             ("--patience", config.patience, config.patience >= 0, ">= 0"),
             ("--limit-train", config.limit_train, config.limit_train is None or config.limit_train >= 1, "at least 1"),
             ("--checkpoint-every-steps", config.checkpoint_every_steps, config.checkpoint_every_steps >= 0, ">= 0"),
             ("--seed", config.seed, 0 <= config.seed <= 2**32 - 1, "between 0 and 2**32 - 1"),
             ("--warmup-ratio", config.warmup_ratio, 0 <= config.warmup_ratio < 1, "in [0, 1)"),
             ("--budget-cpu-minutes", config.budget_cpu_minutes,
              config.budget_cpu_minutes is None or config.budget_cpu_minutes > 0, "> 0"))
    check_rules(rules)
    if config.doc_stride is not None:  # the tokenizer's own separators are counted once it is loaded (_train)
        features.check_doc_stride(config.doc_stride, config.max_seq_len)
    if config.buckets is not None:
        features.check_buckets(config.buckets, config.max_seq_len)


def with_doc_stride(config: QATrainConfig) -> QATrainConfig:
    """``config`` with its ``doc_stride`` decided: the one given, else the default that fits ``max_seq_len``
    (saying so on stderr when it had to be lowered), so a run's identity records the value used."""
    if config.doc_stride is not None:
        return config
    stride, note = features.default_doc_stride(config.max_seq_len)
    if note:
        print(f"note: {note}", file=sys.stderr, flush=True)
    return replace(config, doc_stride=stride)


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
    config = with_doc_stride(config)
    # A refused --output costs nothing: checked before the data is read (fit_qa checks again).
    run_dirs.plan(config.output, KIND, asdict(config), overwrite)
    examples, mismatched = squad.load(config.data)
    if config.eval_data:
        train_examples, eval_examples = list(examples), squad.load(config.eval_data)[0]
    else:
        train_examples, eval_examples = features.split_examples(examples, config.validation_fraction, config.seed,
                                                                 source=str(config.data))
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
    config = with_doc_stride(config)
    train_examples = list(train_examples)[:config.limit_train] if config.limit_train else list(train_examples)
    eval_examples = list(eval_examples)
    if not train_examples or not eval_examples:
        raise UserError(f"question answering needs training and validation questions (got {len(train_examples)} "
                        f"and {len(eval_examples)})")
    encoder_dir = resolve_encoder_dir(config.encoder)
    identity = {**asdict(config), run_dirs.DATA_FINGERPRINT: examples_fingerprint(train_examples, eval_examples)}
    with run_dirs.claim(output, KIND, identity, overwrite) as directory:
        return _train(config, identity, Path(directory), train_examples, eval_examples, encoder_dir)


def windows_dataset(tf, windows, plan, steps: int, pad_id: int, buckets, input_names):
    """A ``tf.data.Dataset`` of the batches ``plan()`` gives (a new plan per epoch: Keras makes a new iterator
    every epoch when the cardinality is known), each padded to the smallest bucket that fits."""
    spec = tf.TensorSpec((None, None), tf.int32)
    signature = ({name: spec for name in input_names},
                 {"start_logits": tf.TensorSpec((None,), tf.int32), "end_logits": tf.TensorSpec((None,), tf.int32)})

    def generate():
        for index in plan():
            yield features.padded_batch([windows[i] for i in index], pad_id, buckets, input_names)

    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return dataset.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(2)


def source_reference(source: str | None) -> str | None:
    """``config.data`` as recorded: a built-in name, a file's absolute path, or (examples handed to ``fit_qa``)
    the caller's description unchanged."""
    if source is None:
        return None
    if source in squad.NAMES or Path(source).expanduser().exists():
        return squad.reference(source)
    return source


def _verbosity(config: QATrainConfig) -> int:
    return config.verbose if config.verbose is not None else (1 if sys.stdout.isatty() else 2)


def _train(config: QATrainConfig, identity: dict, output: Path, train_examples: list[QAExample],
           eval_examples: list[QAExample], encoder_dir: Path) -> dict:
    import tensorflow as tf

    from tfxformers.models import encoders
    from tfxformers.models.qa import inference, metrics, model as qa_model

    config_record = {**identity, "kind": KIND}  # lets models.run_dirs tell an unfinished QA run apart
    (output / "training_config.json").write_text(json.dumps(config_record, indent=2))
    tf.keras.utils.set_random_seed(config.seed)

    model, has_head = qa_model.load_qa_checkpoint(encoder_dir)
    problem = None if has_head else qa_model.missing_head(encoder_dir)
    if problem:
        print(f"note: {problem}: the span head is new (random) and trained from scratch", file=sys.stderr, flush=True)
    positions = encoders.max_input_tokens(model.encoder_config)
    if config.max_seq_len > positions:
        raise UserError(f"--max-seq-len {config.max_seq_len} is more than the encoder's {positions} positions")
    tokenizer = encoders.load_tokenizer(encoder_dir)
    fast = features.fast_tokenizer(tokenizer)
    specials = features.Specials.of(fast)
    pad_id = specials.pad_id
    features.check_doc_stride(config.doc_stride, config.max_seq_len, specials.pair_seps)
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
    cut = train_features.truncated_questions + eval_features.truncated_questions
    if cut:
        read = features.question_token_limit(config.max_seq_len, config.max_question_tokens, specials.pair_seps)
        print(f"note: {cut} questions are longer than the {read} tokens a window holds of a question; their first "
              f"{read} tokens were read", file=sys.stderr, flush=True)

    started = time.perf_counter()
    counted = _fit(tf, config, output, model, train_features.windows, eval_features.windows, pad_id)
    train_seconds = time.perf_counter() - started

    trained = TrainedModel(output, {"kind": KIND, "max_seq_len": config.max_seq_len, "doc_stride": config.doc_stride,
                                    "input_names": list(model.input_names)}, model, tokenizer)
    with_null = any(e.is_impossible for e in [*train_examples, *eval_examples])
    predictions = inference.predict_examples(trained, eval_examples, max_answer_len=config.max_answer_len,
                                             handle_impossible_answer=with_null)
    # All-answerable data (SQuAD 1.1) is scored as the v1.1 script scores it; with unanswerable ones, as v2.0's.
    scorer = metrics.score if with_null else metrics.score_v1
    scores = scorer(predictions, {e.id: [t for t, _ in e.answers] for e in eval_examples})
    scores.update(split="validation", data=source_reference(config.data), eval_data=source_reference(config.eval_data),
                  train_questions=len(train_examples), train_windows=len(train_features.windows),
                  train_seconds=round(train_seconds, 1), **counted, handle_impossible_answer=with_null,
                  examples=[{"id": e.id, "question": e.question, "prediction": predictions[e.id],
                             "gold": [t for t, _ in e.answers]} for e in eval_examples[:20]])
    save_qa(output, model, tokenizer, max_seq_len=config.max_seq_len, doc_stride=config.doc_stride,
            input_names=list(model.input_names),
            extra={"data": scores["data"], "encoder": str(encoder_dir), "max_answer_len": config.max_answer_len,
                   "handle_impossible_answer": with_null})
    (output / "metrics.json").write_text(json.dumps(scores, indent=2))
    return scores


def _fit(tf, config: QATrainConfig, output: Path, model, windows, eval_windows, pad_id: int) -> dict:
    """Compile and ``fit`` (resuming from the backup if there is one); returns what ``metrics.json`` records of
    the training itself: CPU minutes, steps, examples seen, why it stopped."""
    import numpy as np

    from tfxformers.models.multiworker import resume_note, resume_start
    from tfxformers.models.qa import budget, model as qa_model
    from tfxformers.models.tokenization import epoch_plans, plan_batches

    checkpoints = output / "checkpoints"
    backup = checkpoints / "backup"
    buckets = tuple(config.buckets) if config.buckets else features.window_buckets(config.max_seq_len)
    lengths = np.asarray([len(w) for w in windows], dtype=np.int64)
    steps_per_epoch = len(plan_batches(lengths, config.batch_size, False, None))
    start = resume_start(backup, steps_per_epoch)
    state = None
    if backup.exists():
        state = budget.read_state(checkpoints)
        print(f"resuming from the checkpoint in {backup} {resume_note(backup)}"
              + ("" if state else "; no CPU time recorded with it: the clock starts at 0"), flush=True)
    else:
        (output / "history.csv").unlink(missing_ok=True)
        (checkpoints / budget.STATE_FILE).unlink(missing_ok=True)

    with_budget = config.budget_cpu_minutes is not None
    progress = tf.Variable(0.0, trainable=False, dtype=tf.float32, name="budget_progress") if with_budget else None
    optimizer = (budget.budget_optimizer(config.learning_rate, progress, config.warmup_ratio, config.weight_decay)
                 if with_budget else None)
    qa_model.compile_qa_model(model, learning_rate=config.learning_rate, num_train_steps=steps_per_epoch * config.epochs,
                              warmup_ratio=config.warmup_ratio, weight_decay=config.weight_decay, optimizer=optimizer)
    input_names = list(model.input_names)
    train_ds = windows_dataset(tf, windows, epoch_plans(lengths, config.batch_size, True, config.seed, start),
                               steps_per_epoch, pad_id, buckets, input_names)

    def batch_sizes(epoch: int) -> list[int]:  # the batches epoch_plans gives that epoch, in the same order
        rng = np.random.default_rng((config.seed or 0) + epoch)
        return [len(b) for b in plan_batches(lengths, config.batch_size, True, rng)]

    verbose = _verbosity(config)
    save_freq = config.checkpoint_every_steps or "epoch"
    clock = budget.CpuClock(budget_minutes=config.budget_cpu_minutes, progress=progress, checkpoints=checkpoints,
                            batch_sizes=batch_sizes, save_freq=save_freq, start=state, learning_rate=config.learning_rate,
                            warmup_ratio=config.warmup_ratio, epochs=config.epochs, verbose=verbose if with_budget else 0,
                            log_every=budget.LOG_EVERY_STEPS)
    # The clock must follow BackupAndRestore: what it writes at a backup is the state of that backup.
    callbacks = [tf.keras.callbacks.BackupAndRestore(str(backup), save_freq=save_freq), clock,
                 tf.keras.callbacks.TensorBoard(log_dir=str(output / "logs" / "fit")),
                 tf.keras.callbacks.CSVLogger(str(output / "history.csv"), append=True)]
    fit_options = {}
    early = None
    if not with_budget:
        # Under a budget, validating every epoch would spend it: the model is scored once, at the end.
        eval_lengths = np.asarray([len(w) for w in eval_windows], dtype=np.int64)
        eval_steps = len(plan_batches(eval_lengths, config.batch_size * 2, False, None))
        fit_options["validation_data"] = windows_dataset(
            tf, eval_windows, lambda: plan_batches(eval_lengths, config.batch_size * 2, False, None), eval_steps,
            pad_id, buckets, input_names)
        early = tf.keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True)
        callbacks.append(early)
    model.fit(train_ds, epochs=config.epochs, steps_per_epoch=steps_per_epoch, verbose=0 if with_budget else verbose,
              callbacks=callbacks, **fit_options)
    counted = clock.state()
    # Training finished: the next run with this output directory must start afresh, not resume.
    shutil.rmtree(backup, ignore_errors=True)
    (checkpoints / budget.STATE_FILE).unlink(missing_ok=True)
    stopped = ("cpu budget" if clock.exhausted else "early stopping" if early is not None and early.stopped_epoch
               else "epochs")
    # The first batch's CPU (tracing the graph) is set aside by the clock; recorded so the total is known.
    return {"train_cpu_minutes": round(counted["cpu_seconds"] / 60, 3),
            "first_batch_cpu_seconds": round(clock.first_batch_cpu_seconds, 1), "train_steps": counted["steps"],
            "examples_seen": counted["examples"], "budget_cpu_minutes": config.budget_cpu_minutes,
            "stopped_by": stopped, "buckets": list(buckets)}
