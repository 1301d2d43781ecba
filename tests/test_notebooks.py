"""The teaching notebooks: committed clean, one parameters cell each, and they run end to end headless.

Every ``notebooks/*.ipynb`` is executed with nbclient on the demo corpus and the bundled offline weights:
the test injects a cell after the parameters cell (as papermill does) that overrides the model, device
and dataset. The real-benchmark notebook runs on a small slice of SciFact when ``../shared/data/scifact``
is present, and on the demo corpus otherwise.
"""

from __future__ import annotations

import ast
import base64
import re

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from lirlab.plots import OUTPUT_AREA_PX
from lirlab.widgets import png_size

from .conftest import REPO, SHARED_DATA

NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CLEAR_COMMAND = "jupyter nbconvert --clear-output --inplace notebooks/*.ipynb"

#: What CI runs every notebook with, for the names its parameters cell defines.
CI_PARAMETERS = {"MODEL": "minilm", "DEVICE": "cpu", "DATASET": "demo"}
#: Notebooks meant for real collections: on CI they get a slice of SciFact when it is at hand.
REAL_DATA_NOTEBOOKS = {"06_real_benchmark.ipynb"}
SCIFACT_SLICE = {"MAX_QUERIES": 10, "MAX_DOCS": 150}
#: Notebooks over page images: CI runs them on the tiny random ColPali fixture and the bundled pages.
PAGE_NOTEBOOKS = {"09_page_retrieval.ipynb"}
PAGE_PARAMETERS = {"MODEL": str(REPO / "tests" / "fixtures" / "pages" / "colpali"), "DATASET": "demo-pages"}
CELL_TIMEOUT_S = 600
MEASURES = ["nDCG@10", "RR@10", "R@100"]


def read(path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def parameters_cells(nb) -> list[int]:
    return [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]


def assigned_names(source: str) -> list[str]:
    return [t.id for node in ast.parse(source).body if isinstance(node, ast.Assign) for t in node.targets]


def ci_parameters(path) -> dict:
    overrides = dict(CI_PARAMETERS)
    scifact = SHARED_DATA / "scifact"
    if path.name in REAL_DATA_NOTEBOOKS and (scifact / "corpus.jsonl").is_file():
        overrides.update(DATASET=str(scifact), **SCIFACT_SLICE)
    if path.name in PAGE_NOTEBOOKS:
        overrides.update(PAGE_PARAMETERS)
    return overrides


def with_parameters(nb, overrides: dict) -> nbformat.NotebookNode:
    """A copy of ``nb`` with a cell after its parameters cell setting the overrides it declares."""
    nb = nbformat.from_dict(nb)
    position = parameters_cells(nb)[0]
    declared = assigned_names(nb.cells[position].source)
    source = "\n".join(f"{name} = {value!r}" for name, value in overrides.items() if name in declared)
    injected = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(position + 1, injected)
    return nb


def execute(nb, allow_errors: bool = False) -> nbformat.NotebookNode:
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    client.execute()
    return nb


def without_colours(lines: list[str]) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(lines))


def plain_text(cell) -> str:
    return "\n".join(
        o.get("text", "") if o.output_type == "stream" else o.get("data", {}).get("text/plain", "")
        for o in cell.outputs
    )


def test_the_notebooks_are_there():
    assert {"01_quickstart.ipynb", "06_real_benchmark.ipynb"} <= {p.name for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    nb = read(path)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, (
        f"{path.name}: cells {dirty} hold outputs or execution counts; clear them: {CLEAR_COMMAND}"
    )
    assert "widgets" not in nb.metadata, (
        f"{path.name} stores widget state; clear it (Settings > Save Widget State)"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_one_parameters_cell_of_constants_at_the_top(path):
    nb = read(path)
    tagged = parameters_cells(nb)
    assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters', found {len(tagged)}"
    first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    assert tagged[0] == first_code, f"{path.name}: the parameters cell must be the first code cell"
    for node in ast.parse(nb.cells[tagged[0]].source).body:
        assert isinstance(node, ast.Assign), f"{path.name}: the parameters cell may only assign values"
        ast.literal_eval(node.value)  # raises on anything but a literal: no logic in the parameters
    assert {"MODEL", "DATASET", "DEVICE"} <= set(assigned_names(nb.cells[tagged[0]].source))


@pytest.fixture(scope="module")
def executed(minilm_dir) -> dict:
    """Each notebook executed at most once per module (the content checks reuse the runs)."""
    return {}


def run_notebook(path, executed: dict) -> nbformat.NotebookNode:
    if path.name not in executed:
        nb = with_parameters(read(path), ci_parameters(path))
        try:
            executed[path.name] = execute(nb)
        except CellExecutionError as e:
            pytest.fail(f"{path.name} failed on CI parameters {ci_parameters(path)}:\n{e}", pytrace=False)
    return executed[path.name]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_end_to_end(path, executed):
    before = sorted(NOTEBOOK_DIR.rglob("*"))
    nb = run_notebook(path, executed)
    assert sorted(NOTEBOOK_DIR.rglob("*")) == before, (
        f"{path.name} wrote files into notebooks/ (use a temporary folder)"
    )
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    assert last.outputs, f"{path.name}: the last cell showed nothing"


def shown_measures(cell) -> dict[str, float]:
    return {m: float(v) for m, v in re.findall(r"(nDCG@10|RR@10|R@100)\s+([-0-9.e]+)", plain_text(cell))}


def test_quickstart_reports_what_lirlab_demo_reports(executed, tmp_path):
    from lirlab.demo import run_demo

    nb = run_notebook(NOTEBOOK_DIR / "01_quickstart.ipynb", executed)
    cells = {c.get("id"): c for c in nb.cells}
    shown = shown_measures(cells["evaluate"])
    run_demo(model="minilm", out=tmp_path, device="cpu")
    expected = pd.read_csv(tmp_path / "metrics.csv").set_index("measure")["value"].to_dict()
    assert set(shown) == set(MEASURES)
    assert shown == pytest.approx(expected, abs=1e-5)
    compressed = shown_measures(cells["plaid"])
    assert set(compressed) == set(MEASURES) and 0 < compressed["nDCG@10"] <= 1
    assert any("image/png" in o.get("data", {}) for o in cells["alignment"].outputs), (
        "no alignment figure shown"
    )


def test_lirlab_errors_show_as_one_line_in_a_notebook():
    cells = [
        "from lirlab.notebook import brief_errors\nbrief_errors()",
        "from lirlab import ColBERT\nColBERT.load('no-such-org/no-such-model')",
        "%tb",
        "def mine():\n    raise ValueError('not from lirlab')\nmine()",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in cells])
    outputs = [c.outputs for c in execute(nb, allow_errors=True).cells]
    [load_error] = [o for o in outputs[1] if o.output_type == "error"]
    assert (
        load_error.ename == "ModelLoadError"
        and "could not load model 'no-such-org/no-such-model'" in load_error.evalue
    )
    shown = without_colours(load_error.traceback)
    assert "%tb" in shown and "encoder.py" not in shown, (
        "lirlab's own error should be one message, not a traceback"
    )
    assert "encoder.py" in without_colours(outputs[2][0].traceback), (
        "%tb should still give the full traceback"
    )
    [other] = [o for o in outputs[3] if o.output_type == "error"]
    assert "----> 3 mine()" in without_colours(other.traceback), "errors from user code keep their traceback"


def test_training_notebook_shows_the_loss_the_table_the_alignments_and_both_mask_curves(executed):
    nb = run_notebook(NOTEBOOK_DIR / "08_training.ipynb", executed)
    cells = {c.get("id"): c for c in nb.cells}

    def pngs(cell):
        return sum("image/png" in o.get("data", {}) for o in cell.outputs)

    assert pngs(cells["loss"]) == 1, "no loss curve shown"
    table = plain_text(cells["table"])
    assert "untrained" in table and re.search(r"trained \d+ steps", table) and "padded to 32" in table
    rows = [line for line in table.splitlines() if line.startswith(("untrained", "trained"))]
    shown = [float(v) for line in rows for v in re.findall(r"\d+\.\d+", line)]
    assert len(rows) == 2 and len(shown) == 8 and all(0 <= v <= 1 for v in shown), table
    assert pngs(cells["alignment"]) == 1, (
        "the alignments before and after training side by side, in one figure"
    )
    assert "[MASK]" in plain_text(cells["alignment"])
    assert pngs(cells["curve"]) == 1 and "untrained" in plain_text(cells["curve"])
    for cell in ("loss", "alignment", "curve"):  # they were 1,095×1,766 (each alignment) and 1,289 px wide
        for output in cells[cell].outputs:
            if "image/png" in output.get("data", {}):
                width, height = png_size(base64.b64decode(output["data"]["image/png"]))
                assert width <= OUTPUT_AREA_PX[0] and height <= OUTPUT_AREA_PX[1], (cell, width, height)


def parameters(path) -> dict:
    """The literal values a notebook's parameters cell assigns."""
    nb = read(path)
    cell = nb.cells[parameters_cells(nb)[0]].source
    return {
        t.id: ast.literal_eval(node.value)
        for node in ast.parse(cell).body
        if isinstance(node, ast.Assign)
        for t in node.targets
    }


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_default_dataset_loads_offline(path, monkeypatch):
    from lirlab import data

    monkeypatch.chdir(NOTEBOOK_DIR)  # relative folders are relative to the notebook, as in Jupyter
    dataset = parameters(path).get("DATASET")
    if dataset is not None and "data.load(DATASET" in "".join(c.source for c in read(path).cells):
        data.load(dataset)  # an ir_datasets id needs a download: the notebook would stop here offline


def test_sweep_notebook_shows_medians_with_their_spread_and_no_stderr(executed):
    nb = run_notebook(NOTEBOOK_DIR / "05_latency_sweeps.ipynb", executed)
    cells = {c.get("id"): c for c in nb.cells}
    stderr = [c.get("id") for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stderr"]
    assert not stderr, f"stderr blocks in cells {stderr}"
    assert all(column in plain_text(cells["sweep"]) for column in ("p10_ms", "p50_ms", "p90_ms"))
    stages = plain_text(cells["stages"])
    assert "decompression" in stages and "whole search" in stages


def test_real_benchmark_notebook_counts_the_documents_cut_and_says_what_to_do(executed):
    nb = run_notebook(NOTEBOOK_DIR / "06_real_benchmark.ipynb", executed)
    cells = {c.get("id"): c for c in nb.cells}
    said = plain_text(cells["encode"])
    assert re.search(r"\d+ of \d+ documents were cut at doc_maxlen=\d+", said), said
    assert "ENCODER_SETTINGS" in said, "the advice names the parameter to raise"


def test_page_notebook_shows_the_sweep_the_heatmaps_and_the_explorer(executed):
    nb = run_notebook(NOTEBOOK_DIR / "09_page_retrieval.ipynb", executed)
    cells = {c.get("id"): c for c in nb.cells}

    def pngs(cell):
        return sum("image/png" in o.get("data", {}) for o in cell.outputs)

    intro = nb.cells[0].source
    assert "random" in intro and "mean nothing" in intro, (
        "the notebook must say the default model's maps mean nothing"
    )
    table = plain_text(cells["sweep"])
    for method in ("flat", "plaid", "warp", "muvera", "pool_factor=3"):
        assert method in table, f"{method} missing from the sweep table:\n{table}"
    for name in ("pareto", "heatmaps", "compression", "pooling"):
        assert pngs(cells[name]) == 1, f"no figure in the {name} cell"
    assert "buffer 1" in plain_text(cells["best"])
    assert any(
        "application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in cells["explorer"].outputs
    )
