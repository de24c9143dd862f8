"""What every ``tfxformers demo`` task shares: where versions go, banners, and the commands it names."""
from __future__ import annotations

import os
import shlex
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# Dockerfile.serving copies this directory into TF Serving's image.
DEMO_MODEL_BASE = "serving_models"


def banner(text: str) -> None:
    print(f"\n== {text}", flush=True)


def pushed_versions(model_base: str, name: str, pipeline_seconds: float, why: str = "") -> list[int]:
    """The versions the pipeline left in ``model_base/name``, announced; none is an error (``why``: where to look)."""
    from tfxformers.errors import UserError
    from tfxformers.serving.layout import version_dirs

    versions = version_dirs(Path(model_base) / name)
    if not versions:
        raise UserError(f"the pipeline pushed no version to {model_base}/{name}{why}")
    banner(f"pipeline done in {pipeline_seconds:.0f} s; {model_base}/{name} holds versions {versions}")
    return versions


@dataclass(frozen=True)
class Served:
    grpc_port: int
    rest_port: int
    proxy_url: str


@contextmanager
def served(model_base: str, name: str):
    """``tfxformers serve`` on ``model_base`` (``name`` loaded) and the proxy in front of it over gRPC, for the
    ``with`` block; both stopped on the way out, also when the block fails."""
    from tfxformers.testing import start_model_server, start_proxy, stop_model_server, stop_process

    banner(f"starting tfxformers serve on {model_base} (TF Serving's gRPC and REST APIs)")
    server, grpc_port, rest_port = start_model_server(model_base, wait_for=name)
    proxy = None
    try:
        print(f"gRPC 127.0.0.1:{grpc_port}, REST 127.0.0.1:{rest_port}")
        banner("starting tfxformers proxy in front of it (gRPC backend; the proxy never imports TensorFlow)")
        proxy, proxy_url = start_proxy(f"grpc://127.0.0.1:{grpc_port}", models=name)
        print(f"proxy on {proxy_url}")
        yield Served(grpc_port, rest_port, proxy_url)
    finally:
        if proxy is not None:
            stop_process(proxy)
        stop_model_server(server)


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
