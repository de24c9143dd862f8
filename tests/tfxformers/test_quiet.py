"""Quiet by default: a user error is one ``error: ...`` line, not the last line under TensorFlow's, CUDA's,
absl's and transformers' start-up noise; ``--verbose`` / ``TFXFORMERS_VERBOSE=1`` bring that noise back.

Every case runs the real ``tfxformers`` command in a subprocess (the noise comes from C++ and from
libraries imported once per process, so only a fresh process shows it).
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest

from tfxformers.testing import tfxformers_command


def _clean_environment(env: dict | None = None) -> dict:
    """This process's environment without the switches under test (a developer may have set them)."""
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("TF_CPP_MIN_LOG_LEVEL", "TRANSFORMERS_VERBOSITY", "GRPC_VERBOSITY", "TFXFORMERS_VERBOSE")}
    return {**environment, **(env or {})}


def _start(args: list[str], cwd) -> subprocess.Popen:
    return subprocess.Popen(tfxformers_command() + args, cwd=cwd, env=_clean_environment(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen, timeout: float = 180) -> subprocess.CompletedProcess:
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        process.kill()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def _run(args: list[str], cwd) -> subprocess.CompletedProcess:
    return _finish(_start(args, cwd))


def _one_error_line(result: subprocess.CompletedProcess, needle: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert needle in result.stderr


@pytest.mark.parametrize("args,needle", [
    (["train", "classifier", "--data", "nosuchfile.csv", "--output", "X"], "nosuchfile.csv"),
    (["export", "--model", "nosuchdir", "--name", "x"], "model directory not found: nosuchdir"),
    (["export", "--model", "minilm", "--name", "x", "--model-base", "a_file"], "a_file is an existing file"),
    (["serve", "--model-base", "a_file"], "--model-base a_file is not a directory"),
    (["pipeline", "run", "--data", "nosuch.csv"], "data file not found"),
])
def test_a_failing_command_prints_one_error_line(tmp_path, args, needle):
    (tmp_path / "a_file").write_text("x")
    _one_error_line(_run(args, tmp_path), needle)


@pytest.fixture
def busy_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_an_error_after_tensorflow_loaded_is_still_one_line_and_verbose_shows_the_noise(tmp_path, busy_port):
    """``serve`` on a port in use fails after the server imported TensorFlow: the case the noise buried."""
    (tmp_path / "models").mkdir()
    args = ["serve", "--model-base", "models", "--host", "127.0.0.1", "--grpc-port", "0", "--rest-port", str(busy_port)]
    # Both at once: each spends its time importing TensorFlow.
    quiet, verbose = _start(args, tmp_path), _start(["--verbose", *args], tmp_path)
    _one_error_line(_finish(quiet), "Address already in use")
    verbose = _finish(verbose)
    assert verbose.returncode == 2 and verbose.stderr.rstrip().splitlines()[-1].startswith("error: ")
    noise = verbose.stderr.rstrip().splitlines()[:-1]
    # TensorFlow's C++ log lines are back: "2026-01-01 12:00:00.000000: I tensorflow/..." (TF 2.16) or absl's
    # "I0000 00:00:1795985803.370819    2241 port.cc:153] ..." (TF 2.21, written before logging is set up).
    assert any(re.search(r": [IWE] (tensorflow|external)/|^[IWE]\d{4} .*\.cc:\d+\] ", line) for line in noise), \
        verbose.stderr


FAILING_TENSORFLOW = """import os
os.write(2, b"libtensorflow_framework.so.2: cannot open shared object file\\n")
raise ImportError("Failed to load the native TensorFlow runtime.")
"""


def test_a_failing_tensorflow_import_still_shows_what_it_wrote_and_stderr_comes_back(tmp_path):
    """While quiet, file descriptor 2 is silenced during ``import tensorflow`` only: a broken installation's own
    lines must still reach the user, and later output must not be swallowed. A stand-in ``tensorflow`` package
    that writes to fd 2 and fails the way a broken wheel does takes the real one's place."""
    (tmp_path / "fake" / "tensorflow").mkdir(parents=True)
    (tmp_path / "fake" / "tensorflow" / "__init__.py").write_text(FAILING_TENSORFLOW)
    code = ("import sys, tfxformers\n"
            "sys.stderr.write('before\\n')\n"
            "try:\n    import tensorflow\nexcept ImportError as e:\n    sys.stderr.write(f'caught: {e}\\n')\n"
            "sys.stderr.write('after\\n')\n")
    env = _clean_environment({"PYTHONPATH": str(tmp_path / "fake")})
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        "before", "libtensorflow_framework.so.2: cannot open shared object file",
        "caught: Failed to load the native TensorFlow runtime.", "after"], result.stderr


def _environment_seen(tmp_path, code: str, env: dict) -> str:
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_clean_environment(env),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip() + "|" + result.stderr.strip()


CHECK = ("import os, warnings, tfxformers\n"
         "{before}\n"
         "warnings.warn('You are using a non-supported Python version (3.10.13).', FutureWarning)\n"
         "print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'), os.environ.get('TRANSFORMERS_VERBOSITY'))")


@pytest.mark.parametrize("env,before,quiet", [
    ({}, "", True),
    ({"TFXFORMERS_VERBOSE": "1"}, "", False),
    ({}, "tfxformers.set_verbose()", False),  # what `tfxformers --verbose` calls before a command runs
])
def test_the_switches_set_log_levels_before_tensorflow_is_imported(tmp_path, env, before, quiet):
    seen = _environment_seen(tmp_path, CHECK.format(before=before), env)
    if quiet:
        assert seen == "3 error|", seen
    else:
        assert seen.startswith("None None|") and "non-supported Python version" in seen, seen


def test_a_users_own_log_level_wins(tmp_path):
    seen = _environment_seen(tmp_path, CHECK.format(before=""), {"TF_CPP_MIN_LOG_LEVEL": "1"})
    assert seen == "1 error|", seen


def test_the_bag_of_words_baseline_fits_without_warnings():
    """The pipeline's Evaluator threshold and ``tfxformers demo`` fit it on every run: on the current stack
    scikit-learn 1.5 under SciPy >= 1.15 warned ``OptimizeWarning: Unknown solver options: iprint`` per fit."""
    import warnings

    from tfxformers.models.classification.baseline import fit_tfidf_baseline

    texts = ["good fun film", "bad dull film", "great fun cast", "dull bad mess"] * 5
    labels = [1, 0, 1, 0] * 5
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        baseline = fit_tfidf_baseline(texts, labels, texts, labels, c_grid=(1.0,))
    assert baseline.validation_accuracy == 1.0
    assert [str(w.message) for w in caught] == []
