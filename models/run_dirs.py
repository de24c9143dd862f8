"""Where a training run writes: never over another run silently, and never deleting before success.

``claim(output, kind, config, overwrite=False)`` is a context manager around a training run; it yields
the directory to train into and decides, from what ``output`` already holds, what may happen:

- nothing there (or an empty directory): train into ``output`` itself;
- an unfinished run of the same kind with the same settings (``training_config.json`` written at the
  start, no ``tfxformers.json`` yet): train into ``output`` itself, so a killed run resumes from its
  ``checkpoints/backup``;
- anything else that is a run (another kind, other data, other settings, or a finished model, even one
  trained on the same data): ``UserError`` naming what is there, unless ``overwrite``;
- files that are not a tfxformers run: ``UserError`` always (``--overwrite`` never deletes a directory
  this project did not write).

With ``overwrite`` over an existing run, training goes into a hidden sibling directory
(``.NAME.new-XXXX``) and only when the run succeeds is that swapped into place (the old directory is
renamed aside, the new one renamed in, the old one removed). A failed run removes its temporary
directory and leaves the old model untouched.

Pure Python (reads JSON only): the check costs nothing and runs before data or TensorFlow are loaded.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from tfxformers.errors import UserError
from tfxformers.models.artifacts import INFO_FILE
CONFIG_FILE = "training_config.json"
BACKUP = Path("checkpoints") / "backup"
# Settings that do not change what a run computes, so they never block a resume.
IGNORED_SETTINGS = ("output", "verbose")
# Settings a run fills in itself when given None (partial mode's default depth), so None matches any value.
# Elsewhere None is a real choice (limit_train=None: all the data) and must match exactly.
DEFAULTED_SETTINGS = ("learning_rate", "trainable_layers")
# Identity a run records beside its settings when its data was handed over in memory (``fit_classifier``),
# where ``data`` only describes the source. Runs started before it was recorded lack it: absent matches anything.
DATA_FINGERPRINT = "data_fingerprint"
# What identifies the data a run learns from, per kind (for messages: "trained on ...").
DATA_SETTINGS = {"classifier": ("data", "text_column", "label_column", DATA_FINGERPRINT),
                 "gpt2": ("corpus", "limit_chars", "lowercase", DATA_FINGERPRINT),
                 "qa": ("data", "eval_data")}
# Files and folders a training run writes: a directory holding only these (or nothing) is a run.
RUN_MARKERS = (INFO_FILE, CONFIG_FILE, "checkpoints", "history.csv", "tokenizer", "weights", "model", "logs")
# Everything a classifier or GPT-2 run may write: --overwrite replaces a directory only if it holds nothing else.
RUN_FILES = frozenset(RUN_MARKERS + ("labels.json", "metrics.json", "plots", "feature_cache", "hidden_cache",
                                     "hub_encoder"))


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _normal_source(value):
    """A data path resolved from the current directory (as the run's command gave it), a name unchanged."""
    if isinstance(value, str) and value and (os.sep in value or Path(value).suffix):
        return str(Path(value).expanduser().resolve())
    return value


def existing_run(directory: Path) -> dict | None:
    """What ``directory`` holds: ``{"kind", "finished", "config", "info"}``; None if empty or absent.

    Raises ``UserError`` if it is a file or holds files that are not a tfxformers run.
    """
    if not directory.exists():
        return None
    if not directory.is_dir():
        raise UserError(f"--output {directory} is an existing file, not a directory")
    entries = [p.name for p in directory.iterdir()]
    if not entries:
        return None
    info = _read_json(directory / INFO_FILE)
    config = _read_json(directory / CONFIG_FILE)
    if info is None and config is None and not any(name in RUN_MARKERS for name in entries):
        shown = ", ".join(sorted(entries)[:5]) + (", ..." if len(entries) > 5 else "")
        raise UserError(f"--output {directory} is not empty and holds no tfxformers run ({shown}); "
                        "choose a new or empty directory")
    kind = (info or {}).get("kind")
    if kind is None and config is not None:
        # Runs that record their kind (question answering) say so; older kinds are told by their data key.
        kind = config.get("kind") or ("gpt2" if "corpus" in config else "classifier" if "data" in config else None)
    return {"kind": kind, "finished": info is not None and not (directory / BACKUP).exists(),
            "config": config or {}, "info": info or {}}


def describe(run: dict) -> str:
    """``a trained classifier (data reviews.csv, columns review/sentiment)``, for messages."""
    kind = run["kind"] or "unknown"
    state = "trained" if run["finished"] else "unfinished"
    facts = {**run["config"], **{k: v for k, v in run["info"].items() if k in ("data", "corpus")}}
    if kind == "classifier" and facts.get("data"):
        what = f"data {facts['data']}, columns {facts.get('text_column', 'text')}/{facts.get('label_column', 'label')}"
    elif kind == "gpt2" and facts.get("corpus"):
        what = f"corpus {facts['corpus']}"
    else:
        what = ""
    return f"{'an' if state == 'unfinished' else 'a'} {state} {kind} run" + (f" ({what})" if what else "")


def differences(old: dict, new: dict) -> list[str]:
    """Settings that differ, as ``name: old -> new`` (None in ``DEFAULTED_SETTINGS`` matches anything)."""
    out = []
    for key, value in new.items():
        if key in IGNORED_SETTINGS or (value is None and key in DEFAULTED_SETTINGS):
            continue
        before = old.get(key)
        if key == DATA_FINGERPRINT and key not in old:
            continue
        if key in ("data", "corpus"):
            before, value = _normal_source(before), _normal_source(value)
        if isinstance(before, tuple):
            before = list(before)
        if isinstance(value, tuple):
            value = list(value)
        if before != value:
            out.append(f"{key}: {before!r} -> {value!r}")
    return out


def _replaceable(directory: Path) -> None:
    """Refuse to replace what a run did not write, or the directory this process works in."""
    foreign = sorted(p.name for p in directory.iterdir() if p.name not in RUN_FILES)
    if foreign:
        raise UserError(f"--output {directory} also holds files no training run writes ({', '.join(foreign[:5])}); "
                        "--overwrite would delete them: move them away or choose another --output")
    if Path.cwd().resolve().is_relative_to(directory.resolve()):
        raise UserError(f"--output {directory} contains the current directory; run from elsewhere to replace it")


def plan(output: str | os.PathLike, kind: str, config: dict, overwrite: bool = False) -> tuple[str, dict | None]:
    """("fresh" | "in_place" | "replace", what is there): how a run of ``kind`` with ``config`` may use
    ``output``; raises ``UserError`` when it may not."""
    directory = Path(output).expanduser()
    run = existing_run(directory)
    if run is None:
        return "fresh", None
    if overwrite:
        _replaceable(directory)
        return "replace", run
    hint = ("pass --overwrite to train again and replace it (the old run is kept until the new one succeeds), "
            "or choose another --output")
    if run["kind"] != kind:
        raise UserError(f"--output {directory} holds {describe(run)}, not a {kind} run; {hint}")
    # The finished model records its data as an absolute path; the start-of-run config as typed.
    recorded = {**run["config"], **{k: v for k, v in run["info"].items() if k in ("data", "corpus")}}
    changed = differences(recorded, config)
    data_changed = [c for c in changed if c.split(":")[0] in DATA_SETTINGS.get(kind, ())]
    if run["finished"]:
        if data_changed:
            raise UserError(f"--output {directory} holds {describe(run)}, other data than asked "
                            f"({'; '.join(data_changed)}); {hint}")
        raise UserError(f"--output {directory} already holds {describe(run)}; {hint}")
    if changed:
        raise UserError(f"--output {directory} holds {describe(run)} with other settings ({'; '.join(changed)}); "
                        f"run the same command again to resume it, or {hint}")
    return "in_place", run


def _swap_into_place(new: Path, target: Path) -> None:
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    aside.rmdir()
    os.rename(target, aside)
    try:
        os.rename(new, target)
    except OSError:
        os.rename(aside, target)  # put the old run back: nothing may be lost when the swap fails
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _empty(directory: Path, remove: bool) -> None:
    if remove:
        shutil.rmtree(directory, ignore_errors=True)
        return
    for child in directory.iterdir():
        shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)


@contextlib.contextmanager
def claim(output: str | os.PathLike, kind: str, config: dict, overwrite: bool = False) -> Iterator[Path]:
    """Yield the directory a ``kind`` run with ``config`` trains into (see the module docstring)."""
    target = Path(output).expanduser()
    action, _ = plan(target, kind, config, overwrite)
    if action == "in_place":
        yield target
        return
    if action == "fresh":
        existed = target.exists()
        target.mkdir(parents=True, exist_ok=True)
        try:
            yield target
        except BaseException:
            # A run that failed before its first checkpoint leaves nothing to resume: leave no half-run
            # behind either, or fixing the option that failed would be refused as "other settings".
            if not (target / BACKUP).exists():
                _empty(target, remove=not existed)
            raise
        return
    new = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    try:
        yield new
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    _swap_into_place(new, target)
