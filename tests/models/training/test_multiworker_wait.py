"""``--distribute multi-worker`` whose peer never starts (issue 23): the worker stops with one ``error:``
line after ``TFXFORMERS_WORKER_TIMEOUT`` seconds, and SIGTERM / SIGINT stop it while it waits, with no
traceback and nothing written to ``--output``. (Before, it printed one line and hung for ever, deaf to
both signals.) Real ``tfxformers train classifier`` processes with a TF_CONFIG naming a free port for the
absent worker; the three start together to share one TensorFlow start-up's worth of wall time.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tfxformers.errors import UserError
from tfxformers.models import multiworker
from tfxformers.testing import _die_with_parent, free_port, tfxformers_command, write_two_class_reviews

START_TIMEOUT = 240  # TensorFlow's import on a loaded 2-core machine; the waits themselves are seconds


def _start(tmp_path, name, timeout):
    data = tmp_path / "reviews.csv"
    if not data.exists():
        write_two_class_reviews(data, {"train": 4, "validation": 2, "test": 2})
    cluster = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    env = dict(os.environ, PYTHONUNBUFFERED="1", TFXFORMERS_WORKER_TIMEOUT=str(timeout),
               TF_CONFIG=json.dumps({"cluster": {"worker": cluster}, "task": {"type": "worker", "index": 0}}))
    out, err = open(tmp_path / f"{name}.out", "w"), open(tmp_path / f"{name}.err", "w")
    process = subprocess.Popen(tfxformers_command() + [
        "train", "classifier", "--data", str(data), "--output", str(tmp_path / f"{name}-run"), "--epochs", "1",
        "--distribute", "multi-worker"], stdout=out, stderr=err, env=env, preexec_fn=_die_with_parent)
    out.close()
    err.close()
    process.name, process.peer = name, cluster[1]
    return process


def _read(tmp_path, process, stream):
    return (tmp_path / f"{process.name}.{stream}").read_text()


def _wait_until_waiting(tmp_path, process):
    deadline = time.monotonic() + START_TIMEOUT
    while "waiting up to" not in _read(tmp_path, process, "out"):
        assert process.poll() is None, _read(tmp_path, process, "err")
        assert time.monotonic() < deadline, "the worker never started waiting for its cluster"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """name -> (exit code, stdout, stderr, seconds from the signal or the wait's start to the exit)."""
    tmp_path = tmp_path_factory.mktemp("multiworker-wait")
    processes = {"timeout": _start(tmp_path, "timeout", 3), "sigterm": _start(tmp_path, "sigterm", 600),
                 "sigint": _start(tmp_path, "sigint", 600)}
    results = {}
    try:
        for name, process in processes.items():
            _wait_until_waiting(tmp_path, process)
            began = time.monotonic()
            if name != "timeout":
                process.send_signal(signal.SIGTERM if name == "sigterm" else signal.SIGINT)
            try:
                code = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                code = None  # hung: what the issue found
            results[name] = (code, _read(tmp_path, process, "out"), _read(tmp_path, process, "err"),
                             time.monotonic() - began, tmp_path / f"{name}-run", process.peer)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return results


def test_a_missing_peer_stops_the_worker_after_the_timeout(stopped):
    code, out, err, seconds, run, peer = stopped["timeout"]
    assert code == 2, err
    assert seconds < 25
    assert err.strip().splitlines()[-1] == (
        f"error: worker 1 at {peer} did not start within 3 s; start every worker of TF_CONFIG's cluster within "
        "TFXFORMERS_WORKER_TIMEOUT seconds (default 60) of the first, at the address TF_CONFIG names")
    assert "Traceback" not in err
    assert "waiting up to 3 s for 1 other worker(s) to start" in out
    assert not run.exists()  # nothing written


@pytest.mark.parametrize("name, code", [("sigterm", 128 + signal.SIGTERM), ("sigint", 128 + signal.SIGINT)])
def test_sigterm_and_sigint_stop_the_wait_in_one_line(stopped, name, code):
    exit_code, _, err, seconds, run, peer = stopped[name]
    assert exit_code == code, err
    assert seconds < 10
    assert err.strip().splitlines()[-1] == (f"error: stopped by {name.upper()} while waiting for the other workers "
                                            f"(worker 1 at {peer}); nothing was written")
    assert "Traceback" not in err
    assert not run.exists()


@pytest.mark.parametrize("value", ["0", "-1", "soon", "inf", "nan"])
def test_a_bad_timeout_is_refused_before_tensorflow(value):
    config = json.dumps({"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 0}})
    with pytest.raises(UserError, match=f"TFXFORMERS_WORKER_TIMEOUT must be a number of seconds > 0 \\(got '{value}'\\)"):
        multiworker.worker_role("multi-worker", {"TF_CONFIG": config, "TFXFORMERS_WORKER_TIMEOUT": value})
