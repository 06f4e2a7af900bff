"""Every notebook in notebooks/: stored clean, parameterized, and executed end to end at the smoke profile."""

import json
from pathlib import Path

import nbformat
import pytest
from repronets.report import explore

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_without_outputs_and_with_one_parameters_cell(path):
    nb = nbformat.read(path, 4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them before committing"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", "store the generic kernel name"
    assert "papermill" not in nb.metadata


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_at_smoke_through_the_pipeline(path, smoke_build):
    project, code, out = smoke_build  # one build of every notebook, shared with the site's tests
    log = project.build("smoke") / f"{path.stem}.log"
    assert f"ok   {path.stem} in" in out, out + (log.read_text()[-3000:] if log.exists() else "")
    published = project.figures("smoke") / path.stem
    manifest = json.loads((project.figures("smoke") / "MANIFEST.json").read_text())["outputs"]
    figures = sorted(published.glob("*.png"))
    tables = sorted(published.glob("*.md"))
    assert figures and tables, "each notebook should produce at least one figure and one table"
    for f in figures + tables:
        assert f"{path.stem}/{f.name}" in manifest
        assert f.with_suffix(".pdf" if f.suffix == ".png" else ".tex").exists()
    executed = nbformat.read(published / f"{path.stem}.ipynb", 4)
    errors = [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    # the explorer's output: the static view (a PNG) without the widget half, which no headless run can draw
    views = [o for c in executed.cells if ".explorer(" in c.source for o in c.get("outputs", [])]
    assert views and all("image/png" in o.data and explore.WIDGET_VIEW not in o.data for o in views)
