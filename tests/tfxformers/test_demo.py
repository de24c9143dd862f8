"""What ``tfxformers demo`` tells the user to run by hand names the tfxformers that is running it.

Each stack has its own venv (``.venv``, ``.venv-current``, ``/opt/tfxformers-venv`` inside the Debian 13
root), so a fixed ``.venv/bin/tfxformers`` named a command that does not exist on the other stacks.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _venv_bin(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "some-venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("python", "tfxformers", "saved_model_cli"):
        (bin_dir / name).write_text("#!/bin/sh\n")
    return bin_dir


def test_the_script_that_started_the_demo_is_named(tmp_path, monkeypatch):
    from tfxformers.demo.common import tfxformers_here

    bin_dir = _venv_bin(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert tfxformers_here(str(bin_dir / "tfxformers"), "/usr/bin/python3") == "some-venv/bin/tfxformers"
    # Started as `python -m tfxformers`: the script beside that Python.
    assert tfxformers_here("-m", str(bin_dir / "python")) == "some-venv/bin/tfxformers"
    # Outside the working directory: the whole path.
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert tfxformers_here(str(bin_dir / "tfxformers"), "/usr/bin/python3") == str(bin_dir / "tfxformers")


def test_without_a_script_it_falls_back_to_python_dash_m(tmp_path, monkeypatch):
    from tfxformers.demo.common import tfxformers_here, tool_here

    monkeypatch.chdir(tmp_path)
    (tmp_path / "bin").mkdir()
    python = tmp_path / "bin" / "python"
    python.write_text("")
    assert tfxformers_here("-c", str(python)) == "bin/python -m tfxformers"
    assert tool_here("saved_model_cli", str(python)) is None


def test_the_running_environment_has_the_command_it_names(tmp_path):
    """In this test's own environment the named command exists and runs."""
    code = "from tfxformers.demo.common import tfxformers_here; print(tfxformers_here())"
    named = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                           cwd=tmp_path).stdout.strip()
    command = named.split(" ")
    assert os.path.isfile(command[0]) or os.path.isfile(tmp_path / command[0]), named
    result = subprocess.run(command + ["--help"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0 and "pipeline" in result.stdout, result.stderr
