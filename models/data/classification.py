"""Labelled texts for classification: a built-in source or a user's CSV / TSV / JSONL file, split 80/10/10.

Splits are computed from a SHA-256 of each text with a fixed salt (``sources.SPLIT_SALT``), so they are
identical on every machine, Python version and NumPy version, and do not change when rows are added
elsewhere.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tfxformers.errors import UserError
from tfxformers.models.data.sources import (CLASSIFICATION_SOURCES, CORPUS_ALIASES, SOURCES, SPLIT_FRACTIONS,
                                            SPLIT_NAMES, SPLIT_SALT, require_fetched, read_utf8)

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

    def fingerprint(self) -> str:
        """A SHA-256 of the label names and every split's texts and labels: what identifies data handed to
        training in memory (``fit_classifier``), where no path or source name says what it was."""
        digest = hashlib.sha256(json.dumps(list(self.label_names)).encode("utf-8"))
        for part in (self.train, self.validation, self.test):
            digest.update(json.dumps([list(part.texts), [int(label) for label in part.labels]]).encode("utf-8"))
        return digest.hexdigest()


def _split_key(text: str) -> str:
    return hashlib.sha256(f"{SPLIT_SALT}\0{text}".encode("utf-8")).hexdigest()


def fixed_order(texts: Sequence[str]) -> list[int]:
    """Indices of ``texts`` in the fixed shuffled order each split of ``load_classification`` has, so that
    the first N examples are a fair sample; also for examples handed over from elsewhere (the TFX
    Trainer's), which then train in the same order whatever order they arrived in."""
    return sorted(range(len(texts)), key=lambda i: (_split_key(f"order\0{texts[i]}"), i))


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


def _read_rows(path: Path, text_column: str, label_column: str) -> list[dict]:
    if not path.exists():
        raise UserError(f"data file not found: {path}")
    if path.is_dir():
        raise UserError(f"{path} is a directory; classification data is one CSV or JSONL file")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".json", ".tsv"):
        raise UserError(f"{path}: unsupported file type {suffix!r}; use .csv, .tsv or .jsonl")
    text = read_utf8(path)
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
        path = require_fetched(source_str, home) / "data.csv"
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
        chosen = [chosen[j] for j in fixed_order([texts[i] for i in chosen])]
        parts[split_name] = Split([texts[i] for i in chosen], np.array([index[labels[i]] for i in chosen], dtype=np.int64))
    if not len(parts["train"]) or not len(parts["validation"]) or not len(parts["test"]):
        raise UserError(f"{path}: too few rows to make train, validation and test splits "
                        f"({len(texts)} rows); add data or give a 'split' column")
    return ClassificationData(name, label_names, parts["train"], parts["validation"], parts["test"],
                              text_column, label_column)
