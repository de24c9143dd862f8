"""The token-classification notebook runs (a tiny BERT trained for a moment on 300 real OANC sentences)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tfxformers.testing import requires_real

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.once
@requires_real("pos-oanc")
def test_token_classification_notebook_runs(monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.delenv("TFXFORMERS_TAGGER_MODEL", raising=False)
    notebook = nbformat.read(ROOT / "examples" / "token_classification.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = "".join(o.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs)
    assert "most-frequent-tag baseline" in outputs and "window(s)" in outputs and "windows; the last five" in outputs
