"""The tutorial notebooks run from top to bottom (committed without outputs)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import needs_lava

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@needs_lava
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path, tmp_path, monkeypatch):
    from dpap_neuro.data.fixtures import write_nmnist

    # The own-model notebook reads N-MNIST from DPAP_DATA_DIR: fixture-sized files in N-MNIST's format.
    write_nmnist(tmp_path / "data", n_per_class=3)
    monkeypatch.setenv("DPAP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DPAP_CACHE_DIR", str(tmp_path / "cache"))
    notebook = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), \
        "commit notebooks without outputs"
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    text = "".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))
    assert "spike agreement with Norse 1.0000" in text
    assert "stand-in" not in text  # it read the files it was given
