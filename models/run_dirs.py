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
renamed aside, the new one renamed in, the old one removed; the run directory keeps its mode). A failed
run removes its temporary directory and leaves the old model untouched. The sibling is ``flock``ed while
its run lives, so a run killed outright (SIGKILL, power loss) is told from one still training: the next
``--overwrite`` of the same output resumes the killed run's sibling when it holds a checkpoint of the same
settings, removes any other leftover (saying so in one line), and refuses while another run holds one.

Pure Python (reads JSON only): the check costs nothing and runs before data or TensorFlow are loaded.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import stat
import sys
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
                                     "hub_encoder", "soft_labels"))


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
    # mkdtemp made the sibling 0700; the run directory users share keeps the mode it had.
    os.chmod(new, stat.S_IMODE(target.stat().st_mode))
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
    # Without the run directory a replacement may have been killed between its two renames: then the
    # siblings hold the old and the new model, and nothing may be removed.
    if action != "replace" and target.is_dir():
        _leftover_to_resume(target, kind, config, resume=False)
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
    new, lock = _leftover_to_resume(target, kind, config, resume=True)
    if new is None:
        new = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
        lock = _lock(new)
        if lock is None:  # only a run starting this very moment could have taken it
            raise UserError(f"another --overwrite run of {target} started at the same time; run one at a time")
    try:
        try:
            yield new
        except BaseException:
            shutil.rmtree(new, ignore_errors=True)
            raise
        _swap_into_place(new, target)
    finally:
        os.close(lock)


def _lock(directory: Path) -> int | None:
    """An ``flock`` held on ``directory`` for as long as this process lives (the kernel drops it when the
    process dies, however it dies); None when another process holds it."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _size(directory: Path) -> str:
    total = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file() and not p.is_symlink())
    return f"{total / 2**20:.1f} MB" if total >= 2**20 else f"{total / 2**10:.0f} kB"


def _leftover_to_resume(target: Path, kind: str, config: dict, resume: bool) -> tuple[Path | None, int | None]:
    """Deal with the hidden siblings earlier ``--overwrite`` runs of ``target`` left: with ``resume``, one
    killed with a checkpoint of this very run is returned (locked) to resume in; other dead ones are
    removed; one whose run still lives stops a ``resume`` run (two runs would swap over each other) and is
    left alone otherwise."""
    # mkdtemp's suffix is 8 characters of [a-z0-9_]: the pattern does not catch a sibling run named "NAME.new-x".
    pattern = re.compile(re.escape(f".{target.name}.") + r"(new|old)-[a-z0-9_]{8}")
    reuse, lock = None, None
    for path in sorted(target.parent.iterdir()):
        match = pattern.fullmatch(path.name)
        if match is None or not path.is_dir() or path.is_symlink():
            continue
        try:
            held = _lock(path)
        except OSError:  # not ours to open (another user's): neither removed nor waited for
            continue
        if held is None and not resume:
            continue
        if held is None:
            if reuse is not None:
                os.close(lock)
            raise UserError(f"another --overwrite run of {target} is still training in {path}; "
                            "wait for it to finish or stop it first")
        if resume and match.group(1) == "new" and reuse is None and _same_unfinished_run(path, kind, config):
            reuse, lock = path, held
            print(f"resuming the killed --overwrite run of {target} in {path}", file=sys.stderr, flush=True)
            continue
        what = "killed --overwrite run" if match.group(1) == "new" else "interrupted replacement"
        print(f"removing {path} ({_size(path)}), left by a {what} of {target}", file=sys.stderr, flush=True)
        shutil.rmtree(path, ignore_errors=True)
        os.close(held)
    return reuse, lock


def _same_unfinished_run(directory: Path, kind: str, config: dict) -> bool:
    try:
        run = existing_run(directory)
    except UserError:
        return False
    return (run is not None and run["kind"] == kind and not run["finished"] and (directory / BACKUP).exists()
            and not differences(run["config"], config))
