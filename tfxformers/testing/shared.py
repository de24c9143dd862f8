"""Build a read-only test artifact once per test session, not once per pytest-xdist worker.

``make test`` runs three xdist workers; a session-scoped fixture runs once in each worker that needs it, so the
tiny trained classifier and the tiny GPT-2 were trained up to three times per stack. ``built_once`` keeps the
artifact in the directory all the workers' temporary directories share (pytest's base temp is per worker under
xdist; its parent is the run's) and builds it under a file lock: the first worker builds, the others wait and
reuse it. The artifact must be read-only for its users (copy it to change it), as these fixtures already say.
A ``NAME.complete`` marker beside it is written last, so a build that failed half-way is built again, not
reused (and the artifact's own directory holds only what ``build`` wrote: a model base stays a model base).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

def built_once(tmp_path_factory, name: str, build: Callable[[Path], object]) -> Path:
    """``DIR/name`` after ``build(DIR/name)`` ran in exactly one worker of this test run; DIR is shared by them."""
    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # .../pytest-N/popen-gw0 -> .../pytest-N, common to this run's workers
    target = root / "built-once" / name
    complete = target.with_name(name + ".complete")
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not complete.is_file():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            build(target)
            complete.touch()
    return target
