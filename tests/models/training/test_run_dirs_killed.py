"""A killed ``--overwrite`` run (issue 23): its hidden ``.NAME.new-*`` sibling is resumed or removed by the
next run, never left to accumulate, and a replacement keeps the run directory's mode.

The killed run is a real process holding ``run_dirs.claim`` and killed with SIGKILL, as a user's
``train classifier ... --overwrite`` would be; no training is needed to reach that state.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import pytest

from tfxformers.errors import UserError
from tfxformers.models import run_dirs

SETTINGS = {"data": "a.csv", "epochs": 3}

# The child claims OUTPUT with --overwrite, writes what a run writes before its first checkpoint (and the
# checkpoint itself when asked), says where, then waits to be killed.
CHILD = textwrap.dedent("""
    import json, sys, time
    from tfxformers.models import run_dirs
    output, settings, checkpoint = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] == "1"
    with run_dirs.claim(output, "classifier", settings, overwrite=True) as directory:
        (directory / "training_config.json").write_text(json.dumps(settings))
        if checkpoint:
            (directory / "checkpoints" / "backup").mkdir(parents=True)
            (directory / "checkpoints" / "backup" / "ckpt").write_bytes(b"x" * 4096)
        print(directory, flush=True)
        time.sleep(600)
""")


def _finished_run(directory):
    directory.mkdir(mode=0o750)
    directory.chmod(0o750)  # not what mkdtemp gives (0700) nor the umask's default
    (directory / "training_config.json").write_text(json.dumps({"data": "old.csv"}))
    (directory / "tfxformers.json").write_text(json.dumps({"kind": "classifier", "data": "old.csv"}))
    return directory


def _start(output, settings, checkpoint):
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(output), json.dumps(settings), "1" if checkpoint else "0"],
                             stdout=subprocess.PIPE, text=True)
    line = child.stdout.readline().strip()
    assert line, "the child run did not start"
    return child, line


def _kill(child):
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    child.stdout.close()


def _siblings(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir() if p.name != "run")


def test_a_killed_overwrite_run_is_resumed_then_swapped_in_keeping_the_mode(tmp_path, capfd):
    target = _finished_run(tmp_path / "run")
    child, sibling = _start(target, SETTINGS, checkpoint=True)
    _kill(child)
    assert _siblings(tmp_path) == [sibling.rsplit("/", 1)[1]]  # what the issue found left behind
    with run_dirs.claim(target, "classifier", SETTINGS, overwrite=True) as directory:
        assert str(directory) == sibling  # the same command again continues the killed run
        assert (directory / "checkpoints" / "backup" / "ckpt").exists()
        (directory / "tfxformers.json").write_text(json.dumps({"kind": "classifier", **SETTINGS}))
        (directory / "checkpoints" / "backup" / "ckpt").unlink()
        (directory / "checkpoints" / "backup").rmdir()
    assert f"resuming the killed --overwrite run of {target} in {sibling}" in capfd.readouterr().err
    assert _siblings(tmp_path) == []
    assert json.loads((target / "tfxformers.json").read_text())["data"] == "a.csv"
    assert target.stat().st_mode & 0o7777 == 0o750


def test_leftovers_of_other_settings_are_removed_with_one_line_each(tmp_path, capfd):
    target = _finished_run(tmp_path / "run")
    first, first_sibling = _start(target, SETTINGS, checkpoint=False)
    _kill(first)
    second, second_sibling = _start(target, {**SETTINGS, "epochs": 9}, checkpoint=True)
    _kill(second)
    # the second run cleared the first one's (nothing to resume there): leftovers never accumulate
    assert _siblings(tmp_path) == [second_sibling.rsplit("/", 1)[1]]
    assert f"removing {first_sibling} (0 kB), left by a killed --overwrite run of {target}" in capfd.readouterr().err
    with run_dirs.claim(target, "classifier", {**SETTINGS, "epochs": 4}, overwrite=True) as directory:
        assert _siblings(tmp_path) == [directory.name]  # the other settings' one is gone before this run trains
        (directory / "tfxformers.json").write_text(json.dumps({"kind": "classifier"}))
    err = capfd.readouterr().err.splitlines()
    assert err == [f"removing {second_sibling} (4 kB), left by a killed --overwrite run of {target}"]
    assert _siblings(tmp_path) == []
    assert target.stat().st_mode & 0o7777 == 0o750


def test_a_live_overwrite_run_is_neither_removed_nor_raced(tmp_path):
    target = _finished_run(tmp_path / "run")
    child, sibling = _start(target, SETTINGS, checkpoint=True)
    try:
        with pytest.raises(UserError, match="another --overwrite run of .* is still training in"):
            with run_dirs.claim(target, "classifier", SETTINGS, overwrite=True):
                pass
        assert _siblings(tmp_path) == [sibling.rsplit("/", 1)[1]]
    finally:
        _kill(child)
