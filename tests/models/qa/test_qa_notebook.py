"""The question-answering notebook runs (tiny model, trained for one epoch on the hand-made course file)."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.once
def test_question_answering_notebook_runs(monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.delenv("TFXFORMERS_QA_MODEL", raising=False)
    notebook = nbformat.read(ROOT / "examples" / "question_answering.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = "".join(o.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs)
    assert "validation exact match" in outputs and "context tokens" in outputs and "windows," in outputs
