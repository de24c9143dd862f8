"""What every ``tfxformers demo`` task shares: where versions go, banners, and the commands it names."""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

# Dockerfile.serving copies this directory into TF Serving's image.
DEMO_MODEL_BASE = "serving_models"


def banner(text: str) -> None:
    print(f"\n== {text}", flush=True)


def shown(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it (``.venv/bin/tfxformers``), else whole."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def tfxformers_here(argv0: str | None = None, executable: str | None = None) -> str:
    """The ``tfxformers`` command that is running this demo, for the "run the pieces by hand" lines.

    Each stack has its own venv (``.venv``, ``.venv-current``, ``/opt/tfxformers-venv`` in the Debian 13
    root), so a fixed path would name a command that does not exist on the other stacks: the script this
    process was started as, else the one beside its Python, else ``python -m tfxformers``.
    """
    argv0 = sys.argv[0] if argv0 is None else argv0
    executable = sys.executable if executable is None else executable
    if Path(argv0).name == "tfxformers" and Path(argv0).is_file():
        return shlex.quote(shown(Path(os.path.abspath(argv0))))
    return tool_here("tfxformers", executable) or f"{shlex.quote(shown(Path(executable)))} -m tfxformers"


def tool_here(name: str, executable: str | None = None) -> str | None:
    """A console script installed beside the running Python (``saved_model_cli``), or None."""
    # Not resolved: a venv's python is a symlink to the base interpreter, whose bin has no venv scripts.
    candidate = Path(os.path.abspath(sys.executable if executable is None else executable)).parent / name
    return shlex.quote(shown(candidate)) if candidate.is_file() else None
