"""The model-base layout every part of serving agrees on: ``MODEL_BASE/<name>/<integer version>/``.

TensorFlow Serving reads a model base as directories named after models, each holding integer version
directories that are SavedModels; tfxformers adds ``assets.extra/`` files to each version. This module
is the one place that knows the names in that layout and its rules, so that the exporter, the embedded
server, the pipeline's Pusher and the demo cannot drift apart:

* a model name is letters, digits, ``-`` or ``_`` (it is a directory and a URL part): ``check_model_name``;
* versions are the integer-named subdirectories (hidden staging directories such as ``.export-*`` are
  not versions): ``version_numbers``, ``version_dirs``, ``integer_versions`` for names listed by another
  file system (the Pusher's ``fileio``), ``next_version``;
* versions are immutable: an existing version directory is never written into
  (``check_version_is_new``); a new version is written under a hidden directory beside the versions and
  renamed into place (``staging_directory``, ``publish``), so a polling server never sees half a model.

No TensorFlow here, and nothing from ``serving/export``, ``serving/server`` or ``serving/proxy``: those
three wings import this module, never each other.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from tfxformers.errors import UserError
from tfxformers.models.artifacts import INFO_FILE

# Inside a version directory (TF Serving reads ASSETS_EXTRA/WARMUP_FILE; the rest is tfxformers').
ASSETS_EXTRA = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
VERSION_INFO_FILE = INFO_FILE  # assets.extra/tfxformers.json: kind, labels, buckets, limits, version
TOKENIZER_DIR = "tokenizer"    # assets.extra/tokenizer/: the tokenizer files
SAVED_MODEL_FILE = "saved_model.pb"
# TF Serving reads this from a version directory under --enable_per_model_batching_parameters.
BATCHING_PARAMS_FILE = "batching_params.pbtxt"

# Signature names of a version.
DEFAULT_SIGNATURE = "serving_default"
METADATA_SIGNATURE = "tfxformers_metadata"

NAME_RULE = "must be letters, digits, '-' or '_'"


def is_model_name(name: str) -> bool:
    return bool(name) and name.replace("_", "").replace("-", "").isalnum()


def check_model_name(name: str, what: str = "model name", why: str = "") -> str:
    """``name`` if it can be a model directory, else ``UserError("<what> 'name' must be ...<why>")``."""
    if not is_model_name(name):
        raise UserError(f"{what} {name!r} {NAME_RULE}{why}")
    return name


def integer_versions(names: Iterable[str]) -> list[int]:
    """The version numbers among directory names (trailing ``/`` allowed, as gfile lists directories), sorted."""
    return sorted(int(n.rstrip("/")) for n in names if n.rstrip("/").isdigit())


def version_numbers(model_dir: str | os.PathLike) -> dict[int, Path]:
    """Integer subdirectories of a model directory, by number; a missing or unreadable one has none."""
    found = {}
    try:
        entries = list(Path(model_dir).iterdir())
    except OSError:
        return found
    for p in entries:
        if p.name.isdigit() and p.is_dir():
            found[int(p.name)] = p
    return found


def version_dirs(model_dir: str | os.PathLike) -> list[int]:
    """The version numbers under ``model_dir``, sorted."""
    return sorted(version_numbers(model_dir))


def next_version_after(versions: Iterable[int]) -> int:
    return max(versions, default=0) + 1


def next_version(model_base: str | os.PathLike, name: str) -> int:
    return next_version_after(version_dirs(Path(model_base) / name))


def check_version_is_new(final: str | os.PathLike, hint: str = "choose another --version") -> None:
    if Path(final).exists():
        raise UserError(f"{final} already exists; versions are immutable, {hint}")


def new_version_path(model_base: str | os.PathLike, name: str, version: int | None) -> tuple[Path, Path, int]:
    """(version directory, model directory, version) for a new export: the name checked, the version the
    next one unless given, refused if it exists; the model directory is created."""
    check_model_name(name)
    base = Path(model_base)
    model_dir = base / name
    version = next_version(base, name) if version is None else int(version)
    if version < 1:
        raise UserError("--version must be a positive integer")
    final = model_dir / str(version)
    check_version_is_new(final)
    model_dir.mkdir(parents=True, exist_ok=True)
    return final, model_dir, version


@contextlib.contextmanager
def staging_directory(model_dir: str | os.PathLike, version) -> Iterator[Path]:
    """A hidden temporary directory beside the versions (servers skip names that are not integers), removed
    afterwards; write the new version inside it, then ``publish`` it."""
    with tempfile.TemporaryDirectory(dir=model_dir, prefix=f".export-{version}-") as tmp:
        yield Path(tmp)


def publish(staging: str | os.PathLike, final: str | os.PathLike) -> None:
    """Move a fully written version into place in one rename (atomic on one file system)."""
    os.rename(staging, final)
