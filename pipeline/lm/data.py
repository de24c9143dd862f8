"""The language-model pipeline's input directory: a corpus's documents as tf.Example TFRecords per split.

``write_corpus_records("emma", data_dir)`` writes::

    data_dir/train/documents.tfrecord     one tf.Example per document (chapter, file or paragraph chunk)
    data_dir/eval/documents.tfrecord      the corpus's held-out documents (Emma: whole chapters)
    data_dir/test/documents.tfrecord

The documents and the split are ``tfxformers train gpt2``'s (``models.data.corpus``: chapters of the
Austen novels, every 5th of ten documents to validation and every 10th to test), so a pipeline run and
``train gpt2`` hold out the same text. ImportExampleGen maps the three directories to its splits.

Each example holds the document's raw bytes, undecoded, so that the pipeline's ExampleValidator (not
this function) is what finds and reports bad text, plus two features the curated schema
(``pipeline/schema/lm.pbtxt``) bounds: ``characters`` (non-blank characters; 0 = an empty document) and
``invalid_utf8`` (bytes that are not UTF-8). ``document`` names where the text came from, so the run can
say which file is at fault. Files are rewritten only when their bytes change (ExampleGen fingerprints
its inputs, modification times included; an untouched directory is what lets a re-run use the cache).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from tfxformers.errors import UserError

TEXT_KEY = "text"
CHARACTERS_KEY = "characters"
INVALID_UTF8_KEY = "invalid_utf8"
DOCUMENT_KEY = "document"
SPLITS = {"train": "train", "eval": "eval", "test": "test"}   # ExampleGen split -> directory
RECORDS_FILE = "documents.tfrecord"


@dataclass
class Document:
    name: str
    raw: bytes

    @property
    def invalid_utf8(self) -> int:
        """How many bytes fail to decode (surrogateescape turns each into one lone surrogate)."""
        return sum(1 for c in self.raw.decode("utf-8", errors="surrogateescape") if "\udc80" <= c <= "\udcff")

    @property
    def characters(self) -> int:
        return len("".join(self.raw.decode("utf-8", errors="replace").split()))


@dataclass
class CorpusRecords:
    directory: Path
    name: str
    counts: dict[str, int]
    characters: dict[str, int]
    problems: list[str] = field(default_factory=list)   # one line per empty or non-UTF-8 document


def _split_positions(documents: list[Document]) -> dict[str, list[Document]]:
    from tfxformers.models.data.corpus import split_documents

    train, validation, test = split_documents(documents)
    return {"train": train, "eval": validation, "test": test}


def collect_documents(source: str | os.PathLike) -> tuple[str, list[Document]]:
    """(corpus name, documents in order) for an Austen novel, a .txt file or a directory of .txt files.

    Unlike ``load_corpus`` (which refuses a file that is not UTF-8 and drops empty ones), bad documents
    are kept as they are: the pipeline's validator must see them to stop the run and say why.
    """
    from tfxformers.models.data.corpus import MIN_DOCUMENTS, load_corpus, split_chapters
    from tfxformers.models.data.sources import AUSTEN_NOVELS

    text = str(source)
    if text in AUSTEN_NOVELS or text == "austen":
        corpus = load_corpus(text)
        # load_corpus split the chapters by position; put them back in order so the same split comes out.
        ordered = _interleave(corpus.train, corpus.validation, corpus.test)
        return text, [Document(f"{text} part {i + 1}", doc.encode("utf-8")) for i, doc in enumerate(ordered)]
    path = Path(text).expanduser()
    if not path.exists():
        raise UserError(f"corpus not found: {path} (built-in corpora: {', '.join(AUSTEN_NOVELS)}, austen)")
    files = sorted(path.rglob("*.txt")) if path.is_dir() else [path]
    if not files:
        raise UserError(f"{path} holds no .txt files")
    if len(files) >= MIN_DOCUMENTS:
        return path.stem, [Document(str(f), f.read_bytes()) for f in files]
    documents = []
    for f in files:
        raw = f.read_bytes()
        # surrogateescape keeps undecodable bytes through the chapter split and back, unchanged.
        pieces = split_chapters(raw.decode("utf-8", errors="surrogateescape")) if raw.strip() else []
        if not pieces:
            documents.append(Document(str(f), raw))
            continue
        documents += [Document(f"{f} part {i + 1}", p.encode("utf-8", errors="surrogateescape"))
                      for i, p in enumerate(pieces)]
    if len(documents) < 3:
        lines = b"\n".join(d.raw for d in documents).splitlines()
        step = max(len(lines) // MIN_DOCUMENTS, 1)
        documents = [Document(f"{path} lines {i + 1}-{i + step}", b"\n".join(lines[i:i + step]))
                     for i in range(0, len(lines), step)]
    return path.stem, documents


def _interleave(train: list, validation: list, test: list) -> list:
    """Undo ``split_documents``: the documents in their original order."""
    sources = {"train": iter(train), "validation": iter(validation), "test": iter(test)}
    out = []
    for i in range(len(train) + len(validation) + len(test)):
        out.append(next(sources["validation" if i % 10 == 4 else "test" if i % 10 == 9 else "train"]))
    return out


def _serialize(document: Document) -> bytes:
    import tensorflow as tf

    def feature(value):
        if isinstance(value, int):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    # deterministic=True: map entries otherwise serialize in a per-process order, and a rewritten file
    # (ExampleGen fingerprints modification times) would defeat the pipeline's cache.
    return tf.train.Example(features=tf.train.Features(feature={
        TEXT_KEY: feature(document.raw), CHARACTERS_KEY: feature(document.characters),
        INVALID_UTF8_KEY: feature(document.invalid_utf8), DOCUMENT_KEY: feature(document.name.encode("utf-8")),
    })).SerializeToString(deterministic=True)


def _tfrecord_bytes(records: list[bytes]) -> bytes:
    """The TFRecord file of ``records`` as bytes (compared with the file on disk before rewriting it)."""
    import tempfile

    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "records")
        with tf.io.TFRecordWriter(path) as writer:
            for record in records:
                writer.write(record)
        return Path(path).read_bytes()


def _write_if_changed(path: Path, content: bytes) -> None:
    if path.is_file() and path.read_bytes() == content:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(content)
    os.replace(tmp, path)


def write_corpus_records(source: str | os.PathLike, data_dir: str | os.PathLike,
                         limit_chars: int | None = None) -> CorpusRecords:
    """Write the corpus's splits under ``data_dir`` (see the module docstring).

    ``limit_chars`` keeps the first N characters of the train split and N / 8 of each held-out split, as
    ``train gpt2 --limit-chars`` does.
    """
    name, documents = collect_documents(source)
    splits = _split_positions(documents)
    if limit_chars:
        splits = {split: _limit(docs, limit_chars if split == "train" else max(limit_chars // 8, 1))
                  for split, docs in splits.items()}
    directory = Path(data_dir)
    counts, characters, problems = {}, {}, []
    for split, docs in splits.items():
        _write_if_changed(directory / SPLITS[split] / RECORDS_FILE, _tfrecord_bytes([_serialize(d) for d in docs]))
        counts[split] = len(docs)
        characters[split] = sum(d.characters for d in docs)
        for d in docs:
            if d.invalid_utf8:
                problems.append(f"{d.name} ({split} split): {d.invalid_utf8} bytes that are not UTF-8; "
                                "save it as UTF-8")
            elif not d.characters:
                problems.append(f"{d.name} ({split} split): empty document; remove it or give it text")
    info = {"name": name, "counts": counts, "characters": characters}
    _write_if_changed(directory / "corpus.json", (json.dumps(info, indent=2) + "\n").encode())
    return CorpusRecords(directory, name, counts, characters, problems)


def _limit(documents: list[Document], limit: int) -> list[Document]:
    out, total = [], 0
    for doc in documents:
        if total >= limit:
            break
        # Cut characters, not bytes: a cut inside a multi-byte character would read as bad UTF-8.
        text = doc.raw.decode("utf-8", errors="surrogateescape")[: limit - total]
        out.append(Document(doc.name, text.encode("utf-8", errors="surrogateescape")))
        total += len(text)
    return out


def read_documents(file_patterns: list[str]) -> list[str]:
    """The decoded texts of ExampleGen's gzipped tf.Example TFRecords (the validator has passed them)."""
    import tensorflow as tf

    files = sorted(f for pattern in file_patterns for f in tf.io.gfile.glob(pattern))
    texts = []
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator():
        example = tf.train.Example.FromString(record)
        texts.append(example.features.feature[TEXT_KEY].bytes_list.value[0].decode("utf-8"))
    return texts


def split_patterns(examples_uri: str, split: str) -> list[str]:
    return [os.path.join(examples_uri, f"Split-{split}", "*")]
