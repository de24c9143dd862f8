"""The question-answering notebook runs (tiny model, trained for one epoch on the hand-made course file)."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.once
def test_question_answering_notebook_runs(monkeypatch):
    from tfxformers.testing import run_notebook

    monkeypatch.delenv("TFXFORMERS_QA_MODEL", raising=False)
    outputs, notebook = run_notebook(ROOT / "examples" / "question_answering.ipynb")
    assert "validation exact match" in outputs and "context tokens" in outputs and "windows," in outputs
