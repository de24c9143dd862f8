"""Knowledge distillation (``--mode distill --teacher RUN_DIR``): a student classifier learns a teacher's logits.

The teacher is any trained classifier run directory (any encoder family, any mode). The student is
``--encoder`` (default MiniLM), optionally cut to a subset of its blocks (``--student-layers 0,2,4``),
fine-tuned on

    loss = alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(label, student)

per example (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network"; DistilBERT, Sanh et
al. 2019). Texts from ``--unlabeled FILE`` (one a line, in-domain, no labels) get the soft term only: that
is where distillation gains over plain fine-tuning, since the teacher labels text nobody labelled.

How the pieces fit:

1. ``prepare(config, data)`` runs before anything is trained or even loaded with TensorFlow: it checks the
   teacher (a finished classifier run with the data's label names), the unlabeled file and the student
   layers against the encoder's depth, and returns a ``DistillPlan`` whose ``identity`` joins the run's
   identity (so a killed run resumes only with the same teacher, texts and options).
2. ``DistillPlan.compute_soft_labels`` gets the teacher's logits on the training, validation and unlabeled
   texts ONCE: cached as ``RUN_DIR/soft_labels/<key>.npz`` inside the *teacher's* directory (keyed by the
   teacher's identity, the texts and the max length), so a second student, the pipeline and the demo reuse
   them; the teacher is loaded only if some cache file is missing. Where the teacher's directory is not
   writable, the student's run directory holds the cache instead.
3. ``select_layers`` builds the student encoder: an ordinary encoder of ``len(layers)`` blocks (its config
   says so), with the checkpoint's embeddings (and pooler, and anything else outside the blocks) and its
   blocks ``layers[i]`` as block ``i``. So evaluate, export, ``tfxformers serve`` and the proxy need nothing
   new: the saved model is an ordinary text -> logits classifier of that depth.
4. ``train_distilled`` fits the student with the loss above; validation loss is the same mix on the
   validation split (the teacher's soft labels for it are cached too), which early stopping watches.

Defaults: ``T = 2`` (DistilBERT's; Hinton et al. found intermediate temperatures best when the student is
much smaller than the teacher: high T makes it spend capacity matching the teacher's tiny logits) and
``alpha = 0.5`` (the ``T^2`` factor keeps the soft term's gradients on the scale of the hard term's, so equal
weights mean what they say; the hard labels still correct the teacher's mistakes).
"""
from __future__ import annotations

import hashlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tfxformers.errors import UserError
from tfxformers.models.classification.layer_subset import check_layer_list, select_layers  # noqa: F401

DEFAULT_TEMPERATURE = 2.0
DEFAULT_ALPHA = 0.5
DEFAULT_LEARNING_RATE = 5e-5  # the fine-tuning rate: the student is fine-tuned, only on another target
SOFT_LABELS_DIR = "soft_labels"
# Options that mean something only with --mode distill (dataclass field -> its command-line name).
DISTILL_OPTIONS = {"teacher": "--teacher", "unlabeled": "--unlabeled", "temperature": "--temperature",
                   "alpha": "--alpha", "student_layers": "--student-layers"}
TEACHER_CHUNK = 512  # texts per step of the progress bar while the teacher labels them


def check_options(config) -> None:
    """The distill options of a ``ClassifierTrainConfig``: present exactly with ``mode="distill"``, in range
    (pure Python; the CLI's argparse types check the numbers first)."""
    if config.mode != "distill":
        unset = {"temperature": DEFAULT_TEMPERATURE, "alpha": DEFAULT_ALPHA}  # the others: None
        given = [name for attr, name in DISTILL_OPTIONS.items() if getattr(config, attr) != unset.get(attr)]
        if given:
            raise UserError(f"{given[0]} applies to --mode distill only (this run is --mode {config.mode})")
        return
    if not config.teacher:
        raise UserError("--mode distill needs --teacher RUN_DIR: a trained classifier run whose logits the "
                        "student learns")
    if not isinstance(config.temperature, (int, float)) or not 0 < config.temperature < float("inf"):
        raise UserError(f"--temperature must be a number > 0 (got {config.temperature!r})")
    if not isinstance(config.alpha, (int, float)) or not 0 <= config.alpha <= 1:
        raise UserError(f"--alpha must be in [0, 1] (got {config.alpha!r})")
    if config.unlabeled and config.alpha == 0:
        raise UserError("--unlabeled with --alpha 0: unlabeled texts have only the soft term, which alpha 0 "
                        "switches off; give --alpha > 0 or drop --unlabeled")
    if config.student_layers is not None:
        try:
            check_layer_list(list(config.student_layers), None)
        except ValueError as exc:
            raise UserError(f"--student-layers {exc}") from None


def read_unlabeled(source: str) -> list[str]:
    """Texts of ``--unlabeled`` (one a line; lines with nothing visible skipped); ``UserError`` if missing,
    a directory, not UTF-8 or without a text."""
    from tfxformers.models.texts import is_blank

    path = Path(source).expanduser()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"--unlabeled {source}: file not found") from None
    except IsADirectoryError:
        raise UserError(f"--unlabeled {source} is a directory, not a file of texts") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"--unlabeled {source} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    texts = [line.strip() for line in lines if not is_blank(line)]
    if not texts:
        raise UserError(f"--unlabeled {source} holds no text (one text per line)")
    return texts


def teacher_identity(directory: Path) -> str:
    """A short hash of the teacher's info file and weight index (TensorFlow's index holds a CRC32C of every
    tensor): it changes when the teacher is retrained, not when the directory is copied or moved."""
    digest = hashlib.sha256()
    for name in ("tfxformers.json", "weights/model.index"):
        file = directory / name
        digest.update(file.read_bytes() if file.is_file() else b"")
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def texts_fingerprint(texts) -> str:
    digest = hashlib.sha256(str(len(texts)).encode())
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    return digest.hexdigest()[:16]


@dataclass
class SoftLabels:
    """The teacher's logits for some texts (rows in the texts' order) and where they were cached."""
    logits: object  # float32 [texts, labels], columns in the student's label order
    path: Path
    reused: bool
    seconds: float = 0.0


@dataclass
class DistillPlan:
    """What ``prepare`` checked and found: the teacher, the unlabeled texts, the options."""
    teacher: Path
    info: dict
    identity_hash: str
    temperature: float
    alpha: float
    student_layers: list[int] | None
    unlabeled: list[str] = field(default_factory=list)
    unlabeled_source: str | None = None
    dropped: int = 0  # unlabeled lines left out because they are validation or test texts
    column_order: list[int] = field(default_factory=list)  # teacher column for each student label
    soft: dict = field(default_factory=dict)  # "train" / "validation" / "unlabeled" -> SoftLabels
    teacher_loaded: bool = False  # whether some cache file was missing, so the teacher had to run
    _trained: tuple | None = None  # (the loaded teacher, its traced call) while labels are computed

    @property
    def identity(self) -> dict:
        """What joins the run's identity for resuming (besides the options, which are in the config)."""
        return {"teacher_identity": self.identity_hash, "unlabeled_fingerprint": texts_fingerprint(self.unlabeled)}

    def metadata(self) -> dict:
        """What the student's info file records about how it was made."""
        return {"distill": {"teacher": str(self.teacher), "teacher_identity": self.identity_hash,
                            "teacher_encoder": (self.info.get("encoder_config") or {}).get("model_type"),
                            "teacher_layers": _depth(self.info.get("encoder_config")),
                            "temperature": self.temperature, "alpha": self.alpha,
                            "student_layers": self.student_layers, "unlabeled": self.unlabeled_source,
                            "unlabeled_texts": len(self.unlabeled),
                            "soft_labels": {part: str(s.path) for part, s in self.soft.items()}}}

    def cache_dirs(self, fallback: Path) -> list[Path]:
        return [self.teacher / SOFT_LABELS_DIR, fallback / SOFT_LABELS_DIR]

    def compute_soft_labels(self, data, max_length: int, output: Path, *, progress: bool, out=print) -> None:
        """The teacher's logits on the training, validation and unlabeled texts, each read from its cache
        file or computed (and cached) now; one line says which."""
        parts = {"train": data.train.texts, "validation": data.validation.texts, "unlabeled": self.unlabeled}
        for part, texts in parts.items():
            if texts:
                self.soft[part] = self._soft_labels(part, texts, max_length, output, progress)
        self._trained = None  # the teacher's weights are not needed any more
        soft = self.soft.values()
        how = {(True,): "reused", (False,): "computed"}.get(tuple({s.reused for s in soft}), "partly reused")
        parts = ", ".join(f"{part} {len(s.logits)}" for part, s in self.soft.items())
        where = ", ".join(sorted({str(s.path.parent) for s in soft}))
        out(f"teacher soft labels for {sum(len(s.logits) for s in soft)} texts ({parts}): {how} in "
            f"{sum(s.seconds for s in soft):.1f} s ({where})", flush=True)

    def _soft_labels(self, part: str, texts, max_length: int, output: Path, progress: bool) -> SoftLabels:
        import numpy as np

        started = time.perf_counter()
        key = hashlib.sha256(f"{self.identity_hash}|max_length={max_length}|{texts_fingerprint(texts)}".encode())
        name = f"{key.hexdigest()[:24]}.npz"
        for directory in self.cache_dirs(output):
            if (directory / name).is_file():
                with np.load(directory / name) as saved:
                    logits = saved["logits"]
                if logits.shape == (len(texts), len(self.column_order)):
                    return SoftLabels(logits[:, self.column_order], directory / name, True,
                                      time.perf_counter() - started)
        logits = self._teacher_logits(texts, max_length, part, progress)
        target = next((d for d in self.cache_dirs(output) if _writable(d)), output / SOFT_LABELS_DIR)
        target.mkdir(parents=True, exist_ok=True)
        tmp = target / f".{name}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            np.savez(f, logits=logits, label_names=np.array(self.info["label_names"]))
        os.replace(tmp, target / name)  # a second student reading it sees a whole file or none
        return SoftLabels(logits[:, self.column_order], target / name, False, time.perf_counter() - started)

    def _teacher_logits(self, texts, max_length: int, part: str, progress: bool):
        """The teacher's logits (its own column order), texts sorted by length, in chunks under a progress bar."""
        import numpy as np
        import tensorflow as tf
        from tqdm.auto import tqdm

        from tfxformers.models import artifacts, encoders
        from tfxformers.models.tokenization import encode_texts, logits_for_ids

        if self._trained is None:
            trained = artifacts.load_trained(self.teacher, "classifier")
            self.teacher_loaded = True
            names = trained.input_names
            # Traced once for any batch and length (not eager calls): a 12-layer teacher runs several times faster.
            traced = tf.function(lambda features: trained.keras_model(features, training=False), autograph=False,
                                 input_signature=[{n: tf.TensorSpec((None, None), tf.int32, name=n) for n in names}])
            self._trained = trained, lambda features, training=False: traced({n: features[n] for n in names})
        trained, call = self._trained
        names = trained.input_names
        config = trained.info.get("encoder_config")
        length = min(max_length, encoders.max_input_tokens(config)) if config else max_length
        encoded = encode_texts(trained.tokenizer, texts, length)
        order = np.argsort(encoded.lengths, kind="stable")
        logits = np.zeros((len(texts), int(trained.info["num_labels"])), dtype=np.float32)
        chunks = [order[i:i + TEACHER_CHUNK] for i in range(0, len(order), TEACHER_CHUNK)]
        for index in tqdm(chunks, desc=f"teacher labelling {part} texts", unit="chunk", disable=not progress,
                          file=sys.stderr):
            logits[index] = logits_for_ids(call, [encoded.ids[i] for i in index], encoded.pad_id,
                                           max_length=length, buckets=trained.info.get("buckets") or (16, 32, 64, 128),
                                           use_token_type_ids="token_type_ids" in names)
        return logits


def _writable(directory: Path) -> bool:
    existing = directory if directory.exists() else directory.parent
    return existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)


def _depth(encoder_config: dict | None) -> int | None:
    from tfxformers.models import encoders

    return encoders.num_layers(encoder_config) if encoder_config else None


def prepare(config, data, encoder_dir: Path) -> DistillPlan:
    """Check the teacher, the labels, the unlabeled file and the student layers; nothing is trained or loaded
    with TensorFlow here, so every bad value is refused before training starts."""
    from tfxformers.models import artifacts, encoders

    check_options(config)
    teacher = Path(config.teacher).expanduser().resolve()
    try:
        info = artifacts.read_info(teacher, "classifier")
    except UserError as exc:
        raise UserError(f"--teacher {config.teacher}: {exc}") from None
    teacher_labels = list(info["label_names"])
    if sorted(teacher_labels) != sorted(data.label_names):
        raise UserError(f"--teacher {config.teacher} knows the labels {teacher_labels}, the data {data.name} has "
                        f"{list(data.label_names)}: a student learns only a teacher of the same labels")
    depth = encoders.num_layers(encoders.read_config(encoder_dir))
    if config.student_layers is not None:
        try:
            check_layer_list(list(config.student_layers), depth)
        except ValueError as exc:
            raise UserError(f"--student-layers {exc}") from None
    unlabeled, dropped = [], 0
    if config.unlabeled:
        held_out = set(data.validation.texts) | set(data.test.texts)
        texts = read_unlabeled(config.unlabeled)
        unlabeled = [t for t in texts if t not in held_out]
        dropped = len(texts) - len(unlabeled)
        if dropped:
            print(f"note: {dropped} of the {len(texts)} --unlabeled texts are validation or test texts of "
                  f"{data.name}; left out so the scores stay held-out", file=sys.stderr, flush=True)
        if not unlabeled:
            raise UserError(f"--unlabeled {config.unlabeled} holds only validation or test texts")
    return DistillPlan(teacher, info, teacher_identity(teacher), float(config.temperature), float(config.alpha),
                       list(config.student_layers) if config.student_layers is not None else None, unlabeled,
                       str(Path(config.unlabeled).expanduser().resolve()) if config.unlabeled else None, dropped,
                       [teacher_labels.index(name) for name in data.label_names])


def distillation_loss(temperature: float, alpha: float):
    """A Keras loss over targets ``[label, labelled (0/1), teacher logits...]`` and the student's logits: per
    example ``alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE``, the CE only for labelled rows."""
    import tensorflow as tf

    def loss(targets, logits):
        label, labelled, teacher = tf.cast(targets[:, 0], tf.int32), targets[:, 1], targets[:, 2:]
        log_teacher = tf.nn.log_softmax(teacher / temperature)
        log_student = tf.nn.log_softmax(logits / temperature)
        kl = tf.reduce_sum(tf.exp(log_teacher) * (log_teacher - log_student), axis=-1)
        hard = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=label, logits=logits)
        return alpha * temperature ** 2 * kl + (1 - alpha) * labelled * hard

    return loss


def _metrics(tf):
    class LabelledAccuracy(tf.keras.metrics.Mean):
        """Accuracy against the hard labels, over labelled rows only."""

        def update_state(self, targets, logits, sample_weight=None):
            right = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), tf.cast(targets[:, 0], tf.int32)),
                            tf.float32)
            return super().update_state(right, sample_weight=targets[:, 1])

    def teacher_agreement(targets, logits):
        return tf.cast(tf.equal(tf.argmax(logits, -1), tf.argmax(targets[:, 2:], -1)), tf.float32)

    return [LabelledAccuracy(name="accuracy"), teacher_agreement]


def targets(labels, labelled, soft_logits):
    """The packed float32 target rows ``distillation_loss`` reads."""
    import numpy as np

    return np.concatenate([np.asarray(labels, np.float32)[:, None], np.asarray(labelled, np.float32)[:, None],
                           np.asarray(soft_logits, np.float32)], axis=1)


def train_distilled(plan: DistillPlan, encoder, tokenizer, train_enc, data, *, num_labels: int, config,
                    learning_rate: float, num_train_steps: int, callbacks, verbose, start=(0, 0)):
    """Fit the student classifier on ``data.train`` (``train_enc``: its encoded texts) and the unlabeled texts
    against the teacher's cached soft labels; returns the ordinary text -> logits classifier."""
    import numpy as np
    import tensorflow as tf

    from tfxformers.models.encoders.base import build_classifier, create_adamw
    from tfxformers.models.tokenization import Encoded, encode_texts, make_dataset

    model = build_classifier(encoder, num_labels, pooling=config.pooling, dropout=config.dropout, compile=False)
    model.compile(optimizer=create_adamw(learning_rate, num_train_steps, config.warmup_ratio, config.weight_decay),
                  loss=distillation_loss(plan.temperature, plan.alpha), metrics=_metrics(tf))
    train_ids, soft = list(train_enc.ids), [plan.soft["train"].logits]
    labels, labelled = [data.train.labels], [np.ones(len(data.train))]
    if plan.unlabeled:
        train_ids += encode_texts(tokenizer, plan.unlabeled, config.max_length).ids
        soft.append(plan.soft["unlabeled"].logits)
        labels.append(np.zeros(len(plan.unlabeled)))
        labelled.append(np.zeros(len(plan.unlabeled)))
    train_targets = targets(np.concatenate(labels), np.concatenate(labelled), np.concatenate(soft))
    val_targets = targets(data.validation.labels, np.ones(len(data.validation)), plan.soft["validation"].logits)
    everything = Encoded(train_ids, train_enc.truncated, train_enc.max_length, train_enc.pad_id)
    val_enc = encode_texts(tokenizer, data.validation.texts, config.max_length)

    def with_targets(encoded, rows, **kwargs):
        # Rows travel as their index (make_dataset's labels) and are swapped for their target row in the graph.
        table = tf.constant(rows)
        dataset = make_dataset(encoded, np.arange(len(rows)), buckets=config.buckets, **kwargs)
        return dataset.map(lambda features, index: (features, tf.gather(table, index)))

    train_ds = with_targets(everything, train_targets, batch_size=config.batch_size, shuffle=True, seed=config.seed,
                            start=start)
    val_ds = with_targets(val_enc, val_targets, batch_size=config.batch_size * 2)
    model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, verbose=verbose, callbacks=callbacks)
    return model


def steps_per_epoch(plan: DistillPlan | None, train_examples: int, batch_size: int) -> int:
    """Batches an epoch has: the unlabeled texts train beside the labelled ones."""
    return -(-(train_examples + (len(plan.unlabeled) if plan else 0)) // batch_size)


def describe(plan: DistillPlan) -> str:
    layers = f", student blocks {plan.student_layers}" if plan.student_layers is not None else ""
    return (f"distilling {plan.teacher} (teacher {plan.identity_hash}): T {plan.temperature:g}, alpha {plan.alpha:g}"
            f"{layers}, {len(plan.unlabeled)} unlabeled texts")

