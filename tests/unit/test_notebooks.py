"""The notebooks run top to bottom (nbclient), on small data, importing the project's code."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_notebooks__there_are_the_three_the_project_promises():
    assert [p.name for p in NOTEBOOKS] == ["01_tables.ipynb", "02_quality_and_drift.ipynb",
                                           "03_progressive_validation.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebooks__run_top_to_bottom(path, monkeypatch, tmp_path):
    monkeypatch.setenv("RDV_NOTEBOOK_DATA", str(tmp_path))
    monkeypatch.delenv("RDV_PIPELINE", raising=False)
    monkeypatch.setenv("RDV_NOTEBOOK_ROWS", "2000")
    monkeypatch.setenv("GX_ANALYTICS_ENABLED", "False")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    book = nbformat.read(path, as_version=4)
    NotebookClient(book, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    errors = [o for cell in book.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    assert all(cell.get("execution_count") for cell in book.cells if cell.cell_type == "code")
