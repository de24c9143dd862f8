"""The pipeline's input directory: a data set's fixed splits as CSV files that CsvExampleGen reads.

``write_split_csvs("rotten_tomatoes", data_dir)`` loads a built-in data set or a user's CSV / JSONL
through ``tfxformers.models.data.classification.load_classification`` (same columns checks, same seeded 80/10/10
splits as ``tfxformers train classifier``) and writes::

    data_dir/train/data.csv        text,label     (label = class id, an index into label_names)
    data_dir/validation/data.csv
    data_dir/test/data.csv
    data_dir/labels.json           ["rotten", "fresh"]

CsvExampleGen maps the three directories to its ``train``, ``eval`` and ``test`` splits, so the pipeline
honours the data layer's fixed splits instead of re-splitting by hash. Files are rewritten only when their
contents change: ExampleGen fingerprints its input files (including modification times), and an
untouched directory is what lets a second run reuse every cached result.
"""
from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

from tfxformers.errors import UserError
from tfxformers.pipeline.classifier.signatures import LABEL_KEY, SPLITS, TEXT_KEY


@dataclass
class SplitCsvs:
    directory: Path
    name: str
    label_names: list[str]
    counts: dict[str, int]


def _write_if_changed(path: Path, content: str) -> None:
    if path.is_file() and path.read_text(encoding="utf-8") == content:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(content, encoding="utf-8")
    os.replace(tmp, path)


def write_split_csvs(source: str, data_dir: str | os.PathLike, text_column: str = "text",
                     label_column: str = "label") -> SplitCsvs:
    """Write ``source``'s train/validation/test splits under ``data_dir`` (see the module docstring)."""
    from tfxformers.models.data.classification import load_classification

    data = load_classification(source, text_column, label_column)
    directory = Path(data_dir)
    counts = {}
    for split_dir in SPLITS.values():
        part = data.split(split_dir)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([TEXT_KEY, LABEL_KEY])
        for text, label in zip(part.texts, part.labels):
            # CsvExampleGen reads line by line: a quoted newline inside a text would split the record.
            writer.writerow([" ".join(text.split()), int(label)])
        _write_if_changed(directory / split_dir / "data.csv", buffer.getvalue())
        counts[split_dir] = len(part)
    _write_if_changed(directory / "labels.json", json.dumps(data.label_names) + "\n")
    return SplitCsvs(directory, data.name, list(data.label_names), counts)


def read_label_names(data_dir: str | os.PathLike) -> list[str]:
    path = Path(data_dir) / "labels.json"
    if not path.is_file():
        raise UserError(f"{path} not found; the data directory must be written by write_split_csvs")
    return json.loads(path.read_text())


def read_split_csv(data_dir: str | os.PathLike, split: str) -> tuple[list[str], list[int]]:
    """(texts, class ids) of one split CSV written by ``write_split_csvs`` (what ExampleGen ingests)."""
    path = Path(data_dir) / split / "data.csv"
    if not path.is_file():
        raise UserError(f"{path} not found; the data directory must be written by write_split_csvs")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r[TEXT_KEY] for r in rows], [int(r[LABEL_KEY]) for r in rows]
