"""Serving fixtures shared by the export, server and bad-input tests: one tiny GPT-2 per test session."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory):
    """A tiny GPT-2 trained-model directory (2 layers, context 32), trained for one epoch on a toy corpus."""
    from tfxformers.cli import main

    tmp = tmp_path_factory.mktemp("gpt2")
    corpus = tmp / "corpus.txt"
    corpus.write_text("\n\n".join(f"Emma walked to Highbury on day {i} and met Mr Knightley there." for i in range(200)))
    assert main(["train", "gpt2", "--corpus", str(corpus), "--output", str(tmp / "gpt2"), "--preset", "tiny",
                 "--vocab-size", "300", "--block-size", "32", "--epochs", "1"]) == 0
    return tmp / "gpt2"


@pytest.fixture(scope="session")
def tiny_gpt2_base(tiny_gpt2_dir, tmp_path_factory):
    """A model base holding that GPT-2 exported as ``emma`` version 1 (read-only: copy it to change it)."""
    from tfxformers.cli import main

    base = tmp_path_factory.mktemp("gpt2_models")
    assert main(["export", "--model", str(tiny_gpt2_dir), "--name", "emma", "--model-base", str(base)]) == 0
    return base
