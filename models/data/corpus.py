"""Pretraining corpora: an Austen novel (or all six), a text file, or a directory of .txt files, as documents.

Whole documents (chapters for the novels) are held out for validation and test, so the held-out
perplexity is measured on text the model never saw a piece of.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from tfxformers.errors import UserError
from tfxformers.models.data.sources import AUSTEN_NOVELS, SOURCES, SPLIT_NAMES, require_fetched, read_utf8

@dataclass
class Corpus:
    name: str
    train: list[str] = field(default_factory=list)
    validation: list[str] = field(default_factory=list)
    test: list[str] = field(default_factory=list)

    def characters(self) -> dict[str, int]:
        return {s: sum(map(len, getattr(self, s))) for s in SPLIT_NAMES}

    def fingerprint(self) -> str:
        """A SHA-256 of every split's documents: what identifies a corpus handed to training in memory
        (``fit_gpt2``), where no path or source name says what it was."""
        return hashlib.sha256(json.dumps([getattr(self, s) for s in SPLIT_NAMES]).encode("utf-8")).hexdigest()


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
        directory = require_fetched("austen", home)
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
        texts.append(read_utf8(f))
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
