"""Real subprocesses for tests and demos: ``tfxformers serve`` and ``tfxformers proxy`` on free 127.0.0.1
ports (started, waited for until they answer, stopped), and any command that must die with its parent."""
from __future__ import annotations

import os


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tfxformers_command() -> list[str]:
    """The CLI as a subprocess command, with the interpreter running the tests."""
    import sys

    return [sys.executable, "-m", "tfxformers"]


def train_until_epochs_then_kill(command: list[str], history_csv, epochs: int = 1, timeout: float = 240) -> list[int]:
    """Start a training command, SIGKILL it once ``history_csv`` records ``epochs`` epochs, and return the
    epoch numbers recorded before the kill (for resume tests)."""
    import signal
    import subprocess
    import time

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            if history_csv.is_file() and len(history_csv.read_text().strip().splitlines()) >= epochs + 1:
                break
            if process.poll() is not None:
                raise AssertionError("training exited early: " + process.stdout.read()[-2000:])
            time.sleep(0.05)
        else:
            raise AssertionError(f"training never finished {epochs} epoch(s) in {timeout} s")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    return [int(line.split(",")[0]) for line in history_csv.read_text().strip().splitlines()[1:]]


def _die_with_parent() -> None:
    """``preexec_fn``: ask Linux to SIGTERM the child when the process that started it dies, so that a
    test run killed by a timeout (or a demo killed with SIGKILL) leaves no server holding ports behind."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the caller's own cleanup still stops it
        pass


def start_process(command: list[str], log_path=None, log_prefix: str = "tfxformers-"):
    """Start ``command`` with its output in a log file (``process.log_path``), dying with this process."""
    import subprocess
    import tempfile

    if log_path is None:
        handle = tempfile.NamedTemporaryFile(prefix=log_prefix, suffix=".log", delete=False)
        log_path = handle.name
        handle.close()
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   env=dict(os.environ, PYTHONUNBUFFERED="1"), preexec_fn=_die_with_parent)
    process.log_path = str(log_path)
    return process


def stop_process(process, timeout: float = 30) -> int:
    """SIGTERM ``process`` (waking it first if a test froze it with SIGSTOP), SIGKILL after ``timeout``."""
    import signal
    import subprocess

    if process.poll() is None:
        os.kill(process.pid, signal.SIGCONT)
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def start_model_server(model_base=None, *, model_config_file=None, wait_for=None, timeout: float = 180,
                       **flags):
    """Run ``tfxformers serve`` as a real subprocess on free 127.0.0.1 ports and wait until it serves.

    ``flags`` become command-line flags (``enable_batching=True`` -> ``--enable-batching``,
    ``file_system_poll_wait_seconds=0.2`` -> ``--file-system-poll-wait-seconds 0.2``). ``wait_for`` is
    the model name that must be AVAILABLE before returning (default: every model directory under
    ``model_base``, or the ready log line with a config file). Returns ``(process, grpc_port, rest_port)``;
    the server's log is in ``process.log_path``. Stop it with ``stop_model_server(process)``.
    """
    import json
    import time
    import urllib.request
    from pathlib import Path

    grpc_port, rest_port = free_port(), free_port()
    while rest_port == grpc_port:
        rest_port = free_port()
    command = tfxformers_command() + ["serve", "--host", "127.0.0.1", "--grpc-port", str(grpc_port),
                                      "--rest-port", str(rest_port)]
    if model_base is not None:
        command += ["--model-base", str(model_base)]
    if model_config_file is not None:
        command += ["--model-config-file", str(model_config_file)]
    for key, value in flags.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            command.append(flag)
        elif value not in (None, False):
            command += [flag, str(value)]
    if wait_for is None and model_base is not None:
        names = [p.name for p in Path(model_base).iterdir() if p.is_dir() and not p.name.startswith(".")]
    else:
        names = [wait_for] if wait_for else []
    process = start_process(command, log_prefix="tfxformers-serve-")
    process.grpc_port, process.rest_port = grpc_port, rest_port
    deadline = time.time() + timeout

    def available(name):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/v1/models/{name}", timeout=5) as answer:
                states = json.loads(answer.read())["model_version_status"]
        except Exception:
            return False
        return any(s["state"] == "AVAILABLE" for s in states)

    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"tfxformers serve exited with {process.returncode}:\n"
                               + Path(process.log_path).read_text()[-3000:])
        if names and all(available(n) for n in names):
            return process, grpc_port, rest_port
        if not names and "serving " in Path(process.log_path).read_text():
            return process, grpc_port, rest_port
        time.sleep(0.2)
    stop_model_server(process)
    raise RuntimeError(f"tfxformers serve did not serve {names or 'anything'} within {timeout} s:\n"
                       + Path(process.log_path).read_text()[-3000:])


def stop_model_server(process, timeout: float = 30) -> int:
    """SIGTERM a server started by ``start_model_server`` and wait for it (SIGKILL after ``timeout``)."""
    return stop_process(process, timeout)


def start_proxy(backend: str, *, models: str | None = None, log_path=None, timeout: float = 60,
                extra_args: list[str] = ()):
    """Run ``tfxformers proxy --backend BACKEND [EXTRA_ARGS]`` on a free 127.0.0.1 port and wait until
    ``/healthz`` answers (and ``/readyz`` for ``models``, if given). Returns ``(process, url)``; stop it
    with ``stop_process``."""
    import time

    import httpx

    port = free_port()
    command = tfxformers_command() + ["proxy", "--backend", backend, "--host", "127.0.0.1", "--port", str(port),
                                      "--log-level", "warning"]
    if models:
        command += ["--models", models]
    command += list(extra_args)
    process = start_process(command, log_path, log_prefix="tfxformers-proxy-")
    url = f"http://127.0.0.1:{port}"
    check = ("/readyz", {"model": models.split(",")}) if models else ("/healthz", None)
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        try:
            if httpx.get(url + check[0], params=check[1], timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_process(process)
    with open(process.log_path, errors="replace") as log:
        raise RuntimeError(f"tfxformers proxy was not ready within {timeout:.0f} s:\n" + log.read()[-3000:])


def rest_tag_predict(rest_port: int, name: str):
    """``(rows, shapes) -> logits`` through a model server's REST ``:predict`` on a tagger's ``tag`` signature: all
    rows in one request, padded with id 0 and mask 0 (``shape_ids`` too when ``shapes`` is given); each row's
    ``[len(row), num_labels]`` logits (the ``predict`` argument of ``models.tagging.inference.tag_texts``)."""
    import json
    import urllib.request

    import numpy as np

    def predict(rows, shapes=None):
        width = max(len(r) for r in rows)
        inputs = {"input_ids": [list(r) + [0] * (width - len(r)) for r in rows],
                  "attention_mask": [[1] * len(r) + [0] * (width - len(r)) for r in rows]}
        if shapes is not None:
            inputs["shape_ids"] = [list(r) + [0] * (width - len(r)) for r in shapes]
        body = json.dumps({"signature_name": "tag", "inputs": inputs}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{rest_port}/v1/models/{name}:predict", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=300) as answer:
            logits = json.loads(answer.read())["outputs"]
        return [np.asarray(lg)[:len(r)] for lg, r in zip(logits, rows)]
    return predict
