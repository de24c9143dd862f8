"""The question-answering pipeline's input directory: SQuAD-format questions as tf.Example TFRecords.

``write_squad_records(data, data_dir, eval_data=..., limit_train=N, eval_stride=K)`` writes::

    data_dir/train/questions.tfrecord    one tf.Example per training question (a seeded sample of N)
    data_dir/eval/questions.tfrecord     every K-th question of the eval data, in file order
    data_dir/questions.json              what was written: sources, counts
    data_dir/records.sha256.json         digests of the record files, to leave unchanged ones alone

for ImportExampleGen's ``train`` and ``eval`` splits. ``squad-dev`` with K = 10 is the 1,057-question
subset ``bench/bench_squad.py`` scores, so the evaluator's figure sits on the bench's curve. Without
``eval_data`` the eval questions are those of a seeded tenth of ``data``'s passages (the rule of
``models.qa.features.split_examples``; ``squad`` defaults to ``squad-dev`` instead).

The raw JSON is read here, not ``models.qa.features.parse_squad``: that parser repairs answers whose
``answer_start`` is a few characters off and drops questions it cannot use, while the pipeline must write
malformed questions through unchanged, so that its gate (``pipeline.qa.checks``) names them. Features of
each example (``FEATURES``): ``id``, ``title``, ``context``, ``question`` (one value each, absent when the
file lacks them), ``answer_text`` / ``answer_start`` (one value per answer, in step: an answer missing its
``text`` is written as "" and one missing its ``answer_start`` as -1; absent when there are no answers),
and ``position`` (``data[a].paragraphs[p].qas[q]``: where it is in the file, to name a question without an
id). Only a file that is not SQuAD-shaped at all (no ``data`` list, a paragraph without a ``qas`` list) is a
``UserError`` here. Files are rewritten only when their records change (ExampleGen fingerprints its
inputs, modification times included: an untouched file is what lets a re-run come from the cache).
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from tfxformers.errors import UserError

ID, TITLE, CONTEXT, QUESTION = "id", "title", "context", "question"
ANSWER_TEXT, ANSWER_START, POSITION = "answer_text", "answer_start", "position"
FEATURES = (ID, TITLE, CONTEXT, QUESTION, ANSWER_TEXT, ANSWER_START, POSITION)
LIST_FEATURES = (ANSWER_TEXT, ANSWER_START)
MISSING_START = -1
SPLITS = {"train": "train", "eval": "eval"}   # ExampleGen split -> directory
RECORDS_FILE = "questions.tfrecord"
INFO_FILE = "questions.json"
DIGESTS_FILE = "records.sha256.json"
DEFAULT_EVAL_STRIDE = 10
HELD_OUT_FRACTION = 0.1
DEFAULT_SEED = 42


@dataclass
class QuestionRecords:
    directory: Path
    data: str                 # the sources as recorded (built-in name or absolute path)
    eval_data: str
    counts: dict[str, int]    # split -> questions written
    available: dict[str, int]  # split -> questions in the source before sampling / striding
    seconds: float            # reading, sampling and writing
    info: dict = field(default_factory=dict)


def load_raw(source: str) -> tuple[str, dict]:
    """(reference, parsed JSON) of a built-in SQuAD split name or a SQuAD-format file."""
    from tfxformers.models.qa import squad

    path = squad.resolve(source)
    if not path.is_file():
        raise UserError(f"data file not found: {path} (built-in SQuAD splits: {', '.join(squad.NAMES)})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not JSON ({exc})") from None
    return squad.reference(source), data


def raw_questions(data, source: str) -> list[dict]:
    """Every question of a SQuAD JSON, as a dict of the features above (absent keys = missing in the file)."""
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise UserError(f"{source} is not SQuAD format: expected {{\"data\": [{{\"title\", \"paragraphs\": "
                        "[{\"context\", \"qas\": [...]}]}]}")
    rows = []
    for a, article in enumerate(data["data"]):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise UserError(f"{source}: data[{a}] has no 'paragraphs' list")
        title = article.get("title")
        for p, paragraph in enumerate(paragraphs):
            qas = paragraph.get("qas") if isinstance(paragraph, dict) else None
            if not isinstance(qas, list):
                raise UserError(f"{source}: data[{a}].paragraphs[{p}] has no 'qas' list")
            context = paragraph.get("context")
            for q, qa in enumerate(qas):
                row = {POSITION: f"data[{a}].paragraphs[{p}].qas[{q}]", TITLE: title if isinstance(title, str) else ""}
                if isinstance(context, str):
                    row[CONTEXT] = context
                qa = qa if isinstance(qa, dict) else {}
                if isinstance(qa.get("id"), (str, int)) and not isinstance(qa.get("id"), bool):
                    row[ID] = str(qa["id"])
                if isinstance(qa.get("question"), str):
                    row[QUESTION] = qa["question"]
                answers = qa.get("answers") if isinstance(qa.get("answers"), list) else []
                answers = [x if isinstance(x, dict) else {} for x in answers]
                if answers:
                    row[ANSWER_TEXT] = [x["text"] if isinstance(x.get("text"), str) else "" for x in answers]
                    row[ANSWER_START] = [x["answer_start"] if _is_start(x.get("answer_start")) else MISSING_START
                                         for x in answers]
                rows.append(row)
    return rows


def _is_start(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def held_out(row: dict, seed: int = DEFAULT_SEED) -> bool:
    """Whether a question's passage is in the seeded held-out tenth (``features.split_examples``' rule)."""
    key = f"{seed}:{row.get(CONTEXT, '')}".encode("utf-8")
    return zlib.crc32(key) / 2**32 < HELD_OUT_FRACTION


def sample(rows: list[dict], limit: int | None, seed: int) -> list[dict]:
    """A seeded sample of ``limit`` questions, kept in file order (all of them without a limit)."""
    if not limit or limit >= len(rows):
        return list(rows)
    chosen = sorted(random.Random(seed).sample(range(len(rows)), limit))
    return [rows[i] for i in chosen]


def serialize(row: dict) -> bytes:
    import tensorflow as tf

    def feature(values):
        if values and isinstance(values[0], int):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode("utf-8") for v in values]))

    features = {key: feature(row[key] if key in LIST_FEATURES else [row[key]]) for key in FEATURES if key in row}
    # deterministic=True: map entries otherwise serialize in a per-process order, and a rewritten file
    # would defeat the pipeline's cache.
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString(deterministic=True)


def _write_records(path: Path, records: list[bytes], digests: dict) -> None:
    """Write a TFRecord file unless the one there holds exactly these records (``digests``, file name ->
    SHA-256 of its records, says so: cheaper than reading 70 MB back). The digests live outside the split
    directories, whose every file ExampleGen reads as a TFRecord."""
    import tensorflow as tf

    digest = hashlib.sha256()
    for record in records:
        digest.update(len(record).to_bytes(8, "little") + record)
    key = f"{path.parent.name}/{path.name}"
    if path.is_file() and digests.get(key) == digest.hexdigest():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent.parent / f".{path.parent.name}-{path.name}.tmp"
    with tf.io.TFRecordWriter(str(tmp)) as writer:
        for record in records:
            writer.write(record)
    os.replace(tmp, path)
    digests[key] = digest.hexdigest()


def write_squad_records(data: str, data_dir: str | os.PathLike, *, eval_data: str | None = None,
                        limit_train: int | None = None, eval_stride: int = DEFAULT_EVAL_STRIDE,
                        seed: int = DEFAULT_SEED) -> QuestionRecords:
    """Write the train and eval splits under ``data_dir`` (see the module docstring)."""
    started = time.perf_counter()
    reference, parsed = load_raw(data)
    train = raw_questions(parsed, reference)
    if eval_data is None and data == "squad":
        eval_data = "squad-dev"
    if eval_data is not None:
        eval_reference, eval_parsed = load_raw(eval_data)
        evaluation = raw_questions(eval_parsed, eval_reference)
    else:
        eval_reference = f"{reference} (held-out passages)"
        evaluation = [r for r in train if held_out(r, seed)]
        train = [r for r in train if not held_out(r, seed)]
    available = {"train": len(train), "eval": len(evaluation)}
    splits = {"train": sample(train, limit_train, seed), "eval": evaluation[::eval_stride]}
    empty = [s for s, rows in splits.items() if not rows]
    if empty:
        raise UserError(f"no {' or '.join(empty)} questions to write ({available['train']} training and "
                        f"{available['eval']} eval questions before sampling; --eval-stride {eval_stride}): give "
                        "--eval-data, a smaller --eval-stride or more data")
    directory = Path(data_dir)
    digests_file = directory / DIGESTS_FILE
    try:
        digests = json.loads(digests_file.read_text())
    except (OSError, ValueError):
        digests = {}
    for split, rows in splits.items():
        _write_records(directory / SPLITS[split] / RECORDS_FILE, [serialize(r) for r in rows], digests)
    digests_file.write_text(json.dumps(digests, indent=2) + "\n")
    counts = {s: len(rows) for s, rows in splits.items()}
    info = {"data": reference, "eval_data": eval_reference, "limit_train": limit_train, "eval_stride": eval_stride,
            "seed": seed, "counts": counts, "available": available}
    stamp = directory / INFO_FILE
    text = json.dumps(info, indent=2) + "\n"
    if not stamp.is_file() or stamp.read_text() != text:
        stamp.write_text(text)
    return QuestionRecords(directory, reference, eval_reference, counts, available, time.perf_counter() - started, info)


def parse_example(record: bytes) -> dict:
    """One serialized tf.Example back to the row dict ``raw_questions`` made (absent features stay absent)."""
    import tensorflow as tf

    example = tf.train.Example.FromString(record)
    row = {}
    for key, value in example.features.feature.items():
        kind = value.WhichOneof("kind")
        values = list(getattr(value, kind).value) if kind else []
        if kind == "bytes_list":
            values = [v.decode("utf-8", errors="replace") for v in values]
        row[key] = values if key in LIST_FEATURES else (values[0] if values else None)
    return row


def read_split(examples_uri: str, split: str) -> list[dict]:
    """The rows of one split of an ExampleGen ``Examples`` artifact (gzipped tf.Example TFRecords), in order."""
    import tensorflow as tf

    files = sorted(tf.io.gfile.glob(os.path.join(examples_uri, f"Split-{split}", "*")))
    return [parse_example(r) for r in tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator()]


def to_qa_example(row: dict):
    """A checked row as a ``models.qa.features.QAExample`` (answers as written: the gate has checked them)."""
    from tfxformers.models.qa.features import QAExample

    answers = list(zip(row.get(ANSWER_TEXT) or [], [int(s) for s in row.get(ANSWER_START) or []]))
    return QAExample(row[ID], row[QUESTION], row[CONTEXT], answers, row.get(TITLE) or "")
