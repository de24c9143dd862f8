"""The shared local-run machinery (``pipeline.runner``) without TFX: where a run's noise goes.

Beam's DirectRunner starts worker processes that inherit this process's file descriptors and import
TensorFlow on their own (whose start-up lines TensorFlow 2.21 writes before any log level is read); the run
must keep what they write to stderr off the terminal and in the run's log. A real child process writing to
its inherited stderr stands in for a worker (importing TensorFlow there would only add its start-up time).
"""
from __future__ import annotations

import io
import subprocess
import sys

import pytest

# A worker writing to stderr from C++ (straight to the descriptor) and from Python.
WORKER = ("import os, sys; os.write(2, b'worker noise on fd 2\\n'); "
          "sys.stderr.write('worker noise via sys.stderr\\n'); print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'))")


def test_worker_processes_write_to_the_log_not_the_terminal(tmp_path, capfd, monkeypatch):
    from tfxformers.pipeline.runner import _quiet_tfx_logging

    monkeypatch.delenv("TFXFORMERS_VERBOSE", raising=False)
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    log_file = tmp_path / "logs" / "run.log"
    out = io.StringIO()
    with _quiet_tfx_logging(log_file, out):
        # The environment as a worker gets it: this process's, read when the worker starts.
        child = subprocess.run([sys.executable, "-c", WORKER], stdout=subprocess.PIPE, text=True, timeout=60)
    sys.stderr.write("after the run\n")
    sys.stderr.flush()
    terminal = capfd.readouterr().err
    assert child.returncode == 0
    assert child.stdout.strip() == "3"  # the quiet TensorFlow log level reached the worker
    assert "worker noise" not in terminal, terminal
    assert terminal == "after the run\n"  # stderr is back once the run is over
    logged = log_file.read_text()
    assert "worker noise on fd 2" in logged and "worker noise via sys.stderr" in logged


def test_verbose_leaves_stderr_on_the_terminal(tmp_path, capfd, monkeypatch):
    from tfxformers.pipeline.runner import _quiet_tfx_logging

    monkeypatch.setenv("TFXFORMERS_VERBOSE", "1")
    log_file = tmp_path / "run.log"
    with _quiet_tfx_logging(log_file, io.StringIO()):
        subprocess.run([sys.executable, "-c", "import os; os.write(2, b'worker noise on fd 2\\n')"], check=True,
                       timeout=60)
    assert "worker noise on fd 2" in capfd.readouterr().err
    assert "worker noise" not in log_file.read_text()


@pytest.mark.parametrize("extra,expected", [
    ([], ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]),
    (["--direct_num_workers=1"], ["--direct_running_mode=multi_processing", "--direct_num_workers=2",
                                  "--direct_num_workers=1"]),
    (["--runner=FlinkRunner"], ["--runner=FlinkRunner"]),
])
def test_beam_args_keep_the_users_flags_last(extra, expected):
    from tfxformers.pipeline.runner import beam_args_with_defaults

    assert beam_args_with_defaults(extra) == expected
