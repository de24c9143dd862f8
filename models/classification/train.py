"""Train, evaluate and use text classifiers: the work behind ``tfxformers train classifier``.

``train_classifier(ClassifierTrainConfig(...))`` loads the data named by ``config.data`` and hands it to
``fit_classifier(data, config, output)``, which the pipeline's Trainer calls with the examples it read:
that loads the encoder, builds the model for the chosen mode, trains with early stopping on validation
loss, TensorBoard logs and resumable checkpoints, then writes the trained-model directory with metrics and
plots on the test split.

Resuming: Keras' ``BackupAndRestore`` keeps the model, optimizer and epoch/step counters in
``DIR/checkpoints/backup`` (every epoch and every ``checkpoint_every_steps`` steps); a run killed in the
middle and started again with the same command continues from there instead of starting over. The
backup is removed when training finishes.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

import tfxformers  # noqa: F401
from tfxformers.errors import UserError, check_rules
from tfxformers.models.buckets import DEFAULT_BUCKETS, MAX_LENGTH_RANGE
from tfxformers.models.classification import distill
from tfxformers.models.data.classification import ClassificationData
from tfxformers.models.run_dirs import DATA_FINGERPRINT

MODES = ("finetune", "partial", "frozen", "hub", "distill")


@dataclass
class ClassifierTrainConfig:
    data: str
    output: str
    encoder: str = "minilm"
    mode: str = "finetune"
    text_column: str = "text"
    label_column: str = "label"
    epochs: int = 3
    batch_size: int = 32
    learning_rate: float | None = None
    max_length: int = 128
    pooling: str = "mean"
    dropout: float = 0.1
    patience: int = 2
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    cache_features: bool = True
    # partial mode: how many of the encoder's top layers train (default: the top half, 3 of MiniLM's 6)
    trainable_layers: int | None = None
    # distill mode (models.classification.distill): teacher run, unlabeled texts, T, alpha, blocks kept (None: all)
    teacher: str | None = None
    unlabeled: str | None = None
    temperature: float = distill.DEFAULT_TEMPERATURE
    alpha: float = distill.DEFAULT_ALPHA
    student_layers: list[int] | None = None
    limit_train: int | None = None
    limit_eval: int | None = None
    checkpoint_every_steps: int = 200
    seed: int = 42
    buckets: list[int] = field(default_factory=lambda: list(DEFAULT_BUCKETS))
    # tf.distribute strategy the model is built and trained under: "none" (TensorFlow's default: every CPU
    # core or the first GPU), "mirrored" (every GPU of this machine), "multi-worker" (TF_CONFIG's workers).
    distribute: str = "none"
    verbose: int | None = None  # Keras verbosity; default: progress bar on a terminal, one line per epoch otherwise


def resolve_encoder_dir(encoder: str) -> Path:
    """'minilm' or a local checkpoint of any registered family (``models.encoders.resolve_checkpoint``)."""
    from tfxformers.models.encoders import resolve_checkpoint

    return resolve_checkpoint(encoder)


def _verbosity(config: ClassifierTrainConfig) -> int:
    if config.verbose is not None:
        return config.verbose
    return 1 if sys.stdout.isatty() else 2


def classification_metrics(labels: np.ndarray, logits: np.ndarray, label_names: list[str]) -> dict:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    predictions = logits.argmax(axis=-1)
    classes = list(range(len(label_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=classes, zero_division=0)
    return {
        "examples": int(len(labels)),
        "accuracy": float(accuracy_score(labels, predictions)),
        "macro_f1": float(f1_score(labels, predictions, labels=classes, average="macro", zero_division=0)),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(label_names, precision, recall, f1, support)
        },
        "confusion_matrix": confusion_matrix(labels, predictions, labels=classes).tolist(),
        "label_names": list(label_names),
    }


def plot_training_curves(history_csv: Path, out: Path) -> Path | None:
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history_csv.is_file():
        return None
    rows = list(csv.DictReader(history_csv.open()))
    if not rows:
        return None
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "o-"), ("val_", "s--")):
            key = prefix + metric
            if key in rows[0]:
                ax.plot(epochs, [float(r[key]) for r in rows], style, label=("validation " if prefix else "train ") + metric)
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_confusion_matrix(metrics: dict, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.array(metrics["confusion_matrix"])
    names = metrics["label_names"]
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 3, 1.0 * len(names) + 2.5))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                    color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    ax.set_title(f"test accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _callbacks(tf, output: Path, config: ClassifierTrainConfig, monitor_prefix: str = "", backup: Path | None = None):
    return [
        tf.keras.callbacks.BackupAndRestore(str(backup or output / "checkpoints" / "backup"),
                                            save_freq=config.checkpoint_every_steps or "epoch"),
        tf.keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True),
        tf.keras.callbacks.TensorBoard(log_dir=str(output / "logs" / (monitor_prefix or "fit"))),
        tf.keras.callbacks.CSVLogger(str(output / "history.csv"), append=True),
    ]


def check_config(config: ClassifierTrainConfig) -> None:
    """Every numeric setting in its range, for library callers too (the CLI's argparse types check first)."""
    from tfxformers.models.training_rules import shared_rules

    low, high = MAX_LENGTH_RANGE
    rules = (("--max-length", config.max_length, low <= config.max_length <= high, f"between {low} and {high}"),
             *shared_rules(config))
    check_rules(rules)
    distill.check_options(config)


def run_settings(config: ClassifierTrainConfig) -> dict:
    """A run's identity for resuming; distill options only in distill mode (runs older than them resume)."""
    settings = asdict(config)
    if config.mode == "distill":
        return settings
    return {k: v for k, v in settings.items() if k not in distill.DISTILL_OPTIONS}


def train_classifier(config: ClassifierTrainConfig, *, overwrite: bool = False) -> dict:
    """Load the data named by ``config.data`` and ``fit_classifier`` on it; returns the test metrics.

    An existing run in ``config.output`` is replaced only with ``overwrite``, and only once this run has
    succeeded; an unfinished run with the same settings resumes (``models.run_dirs``).
    """
    from tfxformers.models import multiworker
    from tfxformers.models.data.classification import load_classification

    check_config(config)
    # A refused --output costs nothing: checked before the data is read (fit_classifier checks again).
    multiworker.check_output("classifier", run_settings(config), config.output, config.distribute, overwrite)
    data = load_classification(config.data, config.text_column, config.label_column)
    return fit_classifier(data, config, config.output, overwrite=overwrite)


def fit_classifier(data: ClassificationData, config: ClassifierTrainConfig, output: str | os.PathLike, *,
                   overwrite: bool = False) -> dict:
    """Train on ``data`` per ``config`` into ``output``; returns the test metrics (also ``OUTPUT/metrics.json``).

    ``config.data`` only describes where ``data`` came from (recorded in the model, shown in messages);
    ``config.limit_*`` still apply. The run's identity for resuming is its settings plus a fingerprint of
    the data itself, so a Trainer that hands over examples resumes only on the same examples.
    """
    from tfxformers.models import multiworker

    config = replace(config, output=str(output))
    check_config(config)
    data = data.limited(config.limit_train, config.limit_eval, config.limit_eval)
    identity = {**run_settings(config), DATA_FINGERPRINT: data.fingerprint()}
    plan = None
    if config.mode == "distill":  # the teacher, labels, unlabeled texts and layers checked before training
        plan = distill.prepare(config, data, resolve_encoder_dir(config.encoder))
        identity.update(plan.identity)
    # Under multi-worker only the chief trains into output; the others into scratch directories,
    # sharing the chief's backup (models.multiworker).
    with multiworker.run_directory("classifier", identity, output, config.distribute,
                                   overwrite) as (directory, shared_backup):
        return _fit_classifier(data, config, identity, directory, shared_backup, plan)


def _fit_classifier(data: ClassificationData, config: ClassifierTrainConfig, identity: dict, directory: Path,
                    shared_backup: Path | None = None, plan: distill.DistillPlan | None = None) -> dict:
    if config.mode not in MODES:
        raise UserError(f"unknown mode {config.mode!r}; choose one of {', '.join(MODES)}")
    from tfxformers.models.multiworker import DISTRIBUTE_CHOICES, strategy

    if config.distribute not in DISTRIBUTE_CHOICES:
        raise UserError(f"unknown --distribute {config.distribute!r}; choose one of {', '.join(DISTRIBUTE_CHOICES)}")
    encoder_dir = resolve_encoder_dir(config.encoder)
    from tfxformers.models import encoders
    from tfxformers.models.encoders import base
    from tfxformers.models.encoders.base import check_pooling, load_config

    encoder_config = load_config(encoder_dir)
    check_pooling(config.pooling, encoder_config)
    positions = encoders.max_input_tokens(encoder_config)
    if config.max_length > positions:
        raise UserError(f"--max-length {config.max_length} is more than the encoder's {positions} positions")
    if config.mode == "partial":
        from tfxformers.models.classification.partial import check_trainable_layers, default_trainable_layers

        depth = encoders.num_layers(encoder_config)
        if config.trainable_layers is None:
            config.trainable_layers = default_trainable_layers(depth)
        check_trainable_layers(config.trainable_layers, depth)

    import tensorflow as tf

    from tfxformers.models import artifacts
    from tfxformers.models.classification import transfer
    from tfxformers.models.tokenization import encode_texts, make_dataset, predict_logits

    output = Path(directory)
    output.mkdir(parents=True, exist_ok=True)
    identity.update(trainable_layers=config.trainable_layers)  # as filled in above
    (output / "training_config.json").write_text(json.dumps(identity, indent=2))
    backup = shared_backup or output / "checkpoints" / "backup"
    resuming = backup.exists()
    if resuming:
        from tfxformers.models.multiworker import resume_note

        print(f"resuming from the checkpoint in {backup} {resume_note(backup)}", flush=True)
    elif (output / "history.csv").exists():
        (output / "history.csv").unlink()
    if plan is not None:  # before the seed: whether the teacher had to be built must not change the student's init
        print(distill.describe(plan), flush=True)
        plan.compute_soft_labels(data, config.max_length, output, progress=_verbosity(config) == 1)
    tf.keras.utils.set_random_seed(config.seed)

    # Variables (encoder, head, optimizer slots) must be created under the strategy that trains them.
    with strategy(config.distribute).scope():
        encoder = distill.select_layers(base.load_encoder(encoder_dir), plan and plan.student_layers)
        tokenizer = encoders.load_tokenizer(encoder_dir)
        num_labels = len(data.label_names)
        train_enc = encode_texts(tokenizer, data.train.texts, config.max_length)
        val_enc = encode_texts(tokenizer, data.validation.texts, config.max_length)
        print(f"{data.name}: {len(data.train)} train / {len(data.validation)} validation / {len(data.test)} test, "
              f"labels {data.label_names}; {train_enc.truncated} training texts cut at {config.max_length} tokens",
              flush=True)
        steps_per_epoch = distill.steps_per_epoch(plan, len(data.train), config.batch_size)
        total_steps = steps_per_epoch * config.epochs
        from tfxformers.models.multiworker import resume_start

        # A resumed fit must read the batches of the epoch and step it resumes at, not epoch 0's.
        start = resume_start(backup, steps_per_epoch)
        lr = config.learning_rate or {"finetune": 5e-5, "partial": None,
                                      "distill": distill.DEFAULT_LEARNING_RATE}.get(config.mode, 1e-3)
        verbose = _verbosity(config)
        hub_dir = None
        started = time.perf_counter()

        if config.mode == "partial":
            from tfxformers.models.classification import partial

            model = partial.train_partial(
                encoder, tokenizer, data.train, data.validation, num_labels=num_labels,
                trainable_layers=config.trainable_layers, epochs=config.epochs, batch_size=config.batch_size,
                learning_rate=lr, max_length=config.max_length, pooling=config.pooling,
                dropout=config.dropout, warmup_ratio=config.warmup_ratio, weight_decay=config.weight_decay,
                seed=config.seed, cache_dir=output / "hidden_cache" if config.cache_features else None,
                callbacks=_callbacks(tf, output, config, "partial", backup), verbose=verbose, start=start)
        elif config.mode == "frozen" and config.cache_features:
            cache = output / "feature_cache"
            fingerprint = transfer.encoder_fingerprint(encoder)
            kwargs = dict(pooling=config.pooling, max_length=config.max_length, cache_dir=cache, fingerprint=fingerprint)
            train_x = transfer.encode_features(encoder, tokenizer, data.train.texts, **kwargs)
            val_x = transfer.encode_features(encoder, tokenizer, data.validation.texts, **kwargs)
            head = transfer.build_head(train_x.shape[-1], num_labels, dropout=config.dropout, learning_rate=lr,
                                       num_train_steps=total_steps,
                                       initializer_range=encoder.config.initializer_range)
            head.fit(train_x, data.train.labels, validation_data=(val_x, data.validation.labels),
                     epochs=config.epochs, batch_size=config.batch_size, verbose=verbose,
                     callbacks=_callbacks(tf, output, config, "head", backup))
            model = base.build_classifier(encoder, num_labels, mode="frozen", pooling=config.pooling,
                                          dropout=config.dropout, compile=False)
            transfer.attach_head(model, head)
        elif config.mode == "distill":
            model = distill.train_distilled(plan, encoder, tokenizer, train_enc, data, num_labels=num_labels,
                                            config=config, learning_rate=lr, num_train_steps=total_steps,
                                            callbacks=_callbacks(tf, output, config, "distill", backup),
                                            verbose=verbose, start=start)
        else:
            if config.mode == "hub":
                hub_dir = "hub_encoder"
                if not (output / hub_dir / "saved_model.pb").exists():
                    transfer.export_encoder_for_hub(encoder, output / hub_dir)
                model = transfer.build_hub_classifier(output / hub_dir, num_labels, dropout=config.dropout,
                                                      learning_rate=lr, num_train_steps=total_steps)
            else:
                model = base.build_classifier(encoder, num_labels, mode=config.mode, pooling=config.pooling,
                                              dropout=config.dropout, learning_rate=lr, num_train_steps=total_steps,
                                              warmup_ratio=config.warmup_ratio, weight_decay=config.weight_decay)
            train_ds = make_dataset(train_enc, data.train.labels, batch_size=config.batch_size,
                                    buckets=config.buckets, shuffle=True, seed=config.seed, start=start)
            val_ds = make_dataset(val_enc, data.validation.labels, batch_size=config.batch_size * 2,
                                  buckets=config.buckets)
            model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, verbose=verbose,
                      callbacks=_callbacks(tf, output, config, backup=backup))
    train_seconds = time.perf_counter() - started
    # Training finished: the next run with this output directory must start afresh, not resume. (The chief's
    # backup is the chief's to remove.)
    from tfxformers.models.multiworker import wait_for_all_workers

    wait_for_all_workers(model.distribute_strategy)
    if shared_backup is None:
        shutil.rmtree(backup, ignore_errors=True)

    logits = predict_logits(model, tokenizer, data.test.texts, max_length=config.max_length, buckets=config.buckets)
    metrics = classification_metrics(data.test.labels, logits, data.label_names)
    metrics.update(split="test", data=data.name, mode=config.mode, train_seconds=round(train_seconds, 1))
    artifacts.save_classifier(
        output, model, tokenizer, data.label_names, mode=config.mode,
        encoder_config=base.encoder_config_dict(encoder), pooling=config.pooling, dropout=config.dropout,
        max_length=config.max_length, buckets=config.buckets, input_names=encoders.input_names(encoder),
        hub_dir=hub_dir, extra={"data": _source_reference(config.data), "text_column": config.text_column,
                                "label_column": config.label_column, "encoder": str(encoder_dir),
                                "trainable_layers": config.trainable_layers if config.mode == "partial" else None,
                                **(plan.metadata() if plan else {})},
    )
    write_report(output, metrics)
    return metrics


def _source_reference(source: str) -> str:
    """How to find the training data again later: a built-in name, an absolute path, or (data handed to
    ``fit_classifier`` from elsewhere) the description given."""
    from tfxformers.models.data.sources import CLASSIFICATION_SOURCES

    if source in CLASSIFICATION_SOURCES or not Path(source).expanduser().exists():
        return source
    return str(Path(source).expanduser().resolve())


def write_report(output: Path, metrics: dict) -> None:
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plots = output / "plots"
    plots.mkdir(exist_ok=True)
    plot_training_curves(output / "history.csv", plots / "training_curves.png")
    plot_confusion_matrix(metrics, plots / "confusion_matrix.png")
