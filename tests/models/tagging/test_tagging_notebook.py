"""The token-classification notebook runs (a tiny BERT trained for a moment on 300 real OANC sentences)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tfxformers.testing import requires_real

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.once
@requires_real("pos-oanc")
def test_token_classification_notebook_runs(monkeypatch):
    from tfxformers.testing import run_notebook

    monkeypatch.delenv("TFXFORMERS_TAGGER_MODEL", raising=False)
    outputs, notebook = run_notebook(ROOT / "examples" / "token_classification.ipynb")
    assert "most-frequent-tag baseline" in outputs and "window(s)" in outputs and "windows; the last five" in outputs
