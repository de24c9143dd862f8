"""``train qa``'s data: a built-in SQuAD 1.1 split by name (``squad``, ``squad-dev``) or a user's SQuAD file.

A built-in name wins over a file of the same name in the working directory, as for classification
sources; the files are the ones ``tfxformers data fetch squad`` put in ``tfxformers_home()/squad``. Pure
Python (no TensorFlow)::

    from tfxformers.models.qa import squad
    dev, _ = squad.load("squad-dev")        # 10,570 features.QAExample
    squad.reference("squad-dev")            # "squad-dev" (a user's file: its absolute path)
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from tfxformers.models.data import squad as squad_files
from tfxformers.models.data.sources import require_fetched
from tfxformers.models.qa import features

NAMES = tuple(squad_files.FILES)


def resolve(source: str | os.PathLike, home: Path | None = None) -> Path:
    """The SQuAD JSON file behind ``source`` (a built-in name must be fetched)."""
    if str(source) in squad_files.FILES:
        return require_fetched("squad", home) / squad_files.FILES[str(source)].file
    return Path(source).expanduser()


def load(source: str | os.PathLike, home: Path | None = None) -> tuple[list[features.QAExample], int]:
    """``features.load_squad`` of a built-in name or a file: examples, and answers not found in their context."""
    return features.load_squad(resolve(source, home))


def reference(source: str | os.PathLike) -> str:
    """How to find the data again later (``metrics.json``, the trained model's info): a name or an absolute path."""
    return str(source) if str(source) in squad_files.FILES else str(Path(source).expanduser().resolve())


def argument(text: str) -> str:
    """argparse type for ``--data`` / ``--eval-data``: a built-in name, or a file that exists."""
    if text in squad_files.FILES:
        return text
    path = Path(text).expanduser()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"not a built-in SQuAD split ({', '.join(NAMES)}) and no such file: {text}")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory, not a file")
    return text

