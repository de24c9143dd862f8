"""Tagged sentences split for training: ``load_tagged(name_or_path)`` -> ``TaggedData``.

The built-in sources (``ner-tweets``, ``pos-oanc``, ``pos-wsj``) are parsed at fetch time by
``models.data.tagged``; a user's CoNLL or word/TAG file is parsed here by the same functions. Splits are
80/10/10 by a salted SHA-256 of each sentence (``sources.SPLIT_SALT``), the same on every machine and
unchanged when sentences are added elsewhere; ``pos-wsj`` is a second source to evaluate on, whole (all of
it is ``test``).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from tfxformers.errors import UserError
from tfxformers.models.data.sources import SPLIT_FRACTIONS, SPLIT_SALT, read_utf8, require_fetched
from tfxformers.models.data.tagged import EVAL_ONLY, FILES, TASKS, parse_any, task_of


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


# --- splitting -----------------------------------------------------------------------------------------------

def _split_of(words: list[str]) -> str:
    key = hashlib.sha256(f"{SPLIT_SALT}\0tagged\0{' '.join(words)}".encode("utf-8")).digest()
    fraction = int.from_bytes(key[:8], "big") / 2**64
    if fraction < SPLIT_FRACTIONS[0]:
        return "train"
    return "validation" if fraction < SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1] else "test"


def _order_key(words: list[str]) -> str:
    return hashlib.sha256(f"{SPLIT_SALT}\0order\0{' '.join(words)}".encode("utf-8")).hexdigest()


def builtin_path(name: str, home: Path | None = None) -> Path:
    return require_fetched(name, home) / FILES[name]


def load_tagged(source: str | os.PathLike, home: Path | None = None, label_names: list[str] | None = None) -> TaggedData:
    """A built-in tagged source by name or a user's file, split 80/10/10 by sentence (see the module doc).

    ``label_names`` (a trained model's) fixes the label set: tags outside it are a ``UserError``."""
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


# The Penn Treebank rewrites each double quote of the text as `` (opening) or '' (closing), in the words and
# in the tags (and a single opening quote as `, tagged ``); OANC (``pos-oanc``) keeps the text's " and tags it
# ". ``quotes_as_written`` spells a treebank split the way the text was written and OANC tags it, so that a
# model trained on OANC is scored on the text a user would give it, not on the treebank's spelling of it.
PTB_QUOTE_WORDS = {"``": '"', "''": '"', "`": "'"}
PTB_QUOTE_TAGS = {"``": '"', "''": '"'}


def quotes_as_written(split: TaggedSplit) -> TaggedSplit:
    """``split`` with the treebank's quote words and tags (``PTB_QUOTE_WORDS``, ``PTB_QUOTE_TAGS``) as written."""
    words = [[PTB_QUOTE_WORDS.get(w, w) if t in PTB_QUOTE_TAGS else w for w, t in zip(ws, ts)]
             for ws, ts in zip(split.words, split.tags)]
    tags = [[PTB_QUOTE_TAGS.get(t, t) for t in ts] for ts in split.tags]
    return TaggedSplit(words, tags)


def _ordered_labels(found: list[str], task: str) -> list[str]:
    """NER labels ``O`` first, then ``B-X``, ``I-X`` per type; POS tags sorted."""
    if task != "ner":
        return found
    types = sorted({t[2:] for t in found if t != "O"})
    return ["O"] + [f"{p}-{kind}" for kind in types for p in ("B", "I")]
