"""examples/fine_tune.ipynb runs from top to bottom in a real kernel, on the small folder of images it draws itself."""

import json
import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="executing the notebook needs nbformat: pip install 'hapi-runner[test]'")
nbclient = pytest.importorskip("nbclient", reason="executing the notebook needs nbclient: pip install 'hapi-runner[test]'")
pytest.importorskip("ipykernel", reason="executing the notebook needs a kernel: pip install 'hapi-runner[test]'")

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "fine_tune.ipynb"


def _outputs(notebook, kind):
    return [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
            if kind in out.get("data", {})]


def test_the_fine_tuning_notebook_runs_and_shows_the_lr_curve_and_the_report(tmp_path, monkeypatch):
    monkeypatch.setenv("FINE_TUNE_PRETRAINED", "")  # no download in tests: the backbone starts from random weights
    monkeypatch.delenv("FINE_TUNE_DATA", raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(NOTEBOOK.parent.parent), os.environ.get("PYTHONPATH")])))
    notebook = nbformat.read(str(NOTEBOOK), as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    finding = json.loads((tmp_path / "lr_find" / "lr_find.json").read_text())
    text = "".join(out.get("text", "") for cell in notebook.cells for out in cell.get("outputs", []))
    assert f"suggested learning rate {finding['suggestion']:.3g}" in text
    assert len(_outputs(notebook, "image/png")) == 1  # the LR curve, inline
    assert any("confusion" in out["data"]["text/html"].lower() for out in _outputs(notebook, "text/html"))
    results_file = next(tmp_path.glob("output/*/run_*/results.json"))
    results = json.loads(results_file.read_text())
    assert results["epochs_run"] == 2 and f"at lr {finding['suggestion']:.3g}" in text
