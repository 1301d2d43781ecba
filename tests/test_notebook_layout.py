"""Every teaching notebook as a teacher sees it: each output fits the screen, no cell shows pink or stops.

Each ``notebooks/*.ipynb`` (a new one is picked up by itself) is opened in JupyterLab in headless Chromium
at 1440×900 with the file browser open (JupyterLab's default layout: an output column of about 993 px and
a page viewport of 757 px, of which the notebook pane under JupyterLab's bars shows 636), run from the
Run menu with a live kernel (the explorers' widgets need one, so the outputs of an nbclient run would not
show them), and measured once every cell has run and the page has stopped changing:

- no output, nor any image, SVG, canvas, table, widget box or plotly figure in it, is wider than the
  output column (its box or, for content cut behind a scrollbar, its ``scrollWidth``) or taller than the
  viewport, unless a window inside the output holds it by design: an element of class ``lirlab-scroll``,
  or one with ``overflow`` auto/scroll and a bounded size (``max-width``/``max-height`` or an inline
  size), which itself fits. JupyterLab's own horizontal scrollbar on an output does not count;
- no output is a stderr block (a raw warning, a log line on stderr) or an error, and every cell ran.

The notebooks run with their committed parameters (as a reader runs them; the hub is offline, so the
default model falls back to the bundled MiniLM with its notice), except that the real-data notebooks get
the small slice ``test_notebooks`` gives them, to keep the run short. Screenshots of every output,
scrolled into view, and the measured list land in ``test-artifacts/<notebook>/``.

Run one notebook with ``python -m pytest -m browser tests/test_notebook_layout.py -k 03`` or
``python -m tests.test_notebook_layout notebooks/03_mask_augmentation.ipynb`` (prints the list).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

from .conftest import REPO, SHARED_DATA
from .test_notebooks import REAL_DATA_NOTEBOOKS, SCIFACT_SLICE, assigned_names, parameters_cells

pytestmark = pytest.mark.browser

pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")

from .browser_support import (  # noqa: E402
    ARTIFACTS,
    JupyterLab,
    browser_binaries,
    click_run_all,
    open_notebook,
    screenshot,
    start_chromium,
    start_lab,
    wait_for,
)

NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
WINDOW = (1440, 900)
#: Every cell of the slowest notebook (08 trains for minutes) must have run by then.
RUN_S = 1800
#: The page counts as drawn once its outputs keep their sizes this long (explorers draw after the kernel).
SETTLE_S = 5
SETTLE_TIMEOUT_S = 180
#: Sub-pixel rounding and borders: an output this much over a limit still fits.
TOLERANCE_PX = 2
#: Parameters the layout run changes, per notebook (only the names its parameters cell declares).
OVERRIDES = {name: SCIFACT_SLICE for name in REAL_DATA_NOTEBOOKS}

#: What a figure can be inside an output (the output itself is measured too).
FIGURES = (
    "img, svg:not(svg svg), canvas, video, iframe, table, pre, .widget-box, .jupyter-widgets,"
    " .js-plotly-plot, .lirlab-scroll"
)

#: Measures the open notebook: its output column and viewport, every output's offending elements.
MEASURE_JS = """
const [FIGURES, TOL] = arguments;
const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
const scroller = panel.querySelector('.jp-WindowedPanel-outer') || panel.querySelector('.jp-Notebook');
const viewport = window.innerHeight;  // the page, as the issue measures it
const pane = scroller.clientHeight;  // the notebook's own scrolling area, under its toolbar
const cells = [...panel.querySelectorAll('.jp-Notebook .jp-Cell')];
const outputs = [...panel.querySelectorAll('.jp-OutputArea-output')];
let column = null;
for (const o of outputs) {
  const child = o.closest('.jp-OutputArea-child');
  const prompt = child && child.querySelector(':scope > .jp-OutputPrompt');
  if (child && prompt) { column = child.clientWidth - prompt.getBoundingClientRect().width; break; }
}
function describe(e, output) {
  if (e === output) return `output (${output.dataset.mimeType || 'widget'})`;
  const classes = [...e.classList].filter(c => !c.startsWith('lm-') && !c.startsWith('p-'));
  const named = [...new Set(classes.filter(c => c.startsWith('lirlab-')).concat(classes))].slice(0, 3);
  let text = e.tagName.toLowerCase() + named.map(c => '.' + c).join('');
  const owner = e.parentElement && e.parentElement.closest('[class*="lirlab-"]');
  if (owner && !named.some(c => c.startsWith('lirlab-'))) {
    const mine = [...owner.classList].find(c => c.startsWith('lirlab-'));
    if (mine) text += ' in .' + mine;
  } else if (!named.some(c => c.startsWith('lirlab-'))) {  // name an explorer by the parts it holds
    const parts = new Set([...e.querySelectorAll('[class*="lirlab-"]')]
      .map(d => [...d.classList].find(c => c.startsWith('lirlab-'))).filter(Boolean));
    if (parts.size) text += ' holding ' + [...parts].slice(0, 3).map(c => '.' + c).join(', ');
  }
  const r = e.getBoundingClientRect();
  const scaled = Math.abs(e.naturalWidth - r.width) > 1 || Math.abs(e.naturalHeight - r.height) > 1;
  if (e.tagName === 'IMG' && e.naturalWidth && scaled)
    text += ` (drawn ${e.naturalWidth}×${e.naturalHeight}, shown ${Math.round(r.width)}×${Math.round(r.height)})`;
  return text;
}
function windowed(a, axis, output) {
  if (a === output) return false;  // JupyterLab's own scrollbar on a too-wide output is not a design
  if (a.classList.contains('lirlab-scroll')) return true;
  const cs = getComputedStyle(a);
  const overflow = axis === 'x' ? cs.overflowX : cs.overflowY;
  if (overflow !== 'auto' && overflow !== 'scroll') return false;
  return axis === 'x' ? (cs.maxWidth !== 'none' || a.style.width !== '')
                      : (cs.maxHeight !== 'none' || a.style.height !== '');
}
function held(e, axis, output, limit) {  // inside a window by design that fits
  for (let a = e; a && a !== output; a = a.parentElement) {
    if (windowed(a, axis, output)) {
      const r = a.getBoundingClientRect();
      if ((axis === 'x' ? r.width : r.height) <= limit + TOL) return true;
    }
  }
  return false;
}
const result = [];
for (const o of outputs) {
  const cell = o.closest('.jp-Cell');
  const index = cells.indexOf(cell);
  const prompt = cell && cell.querySelector('.jp-InputPrompt');
  const typed = o.dataset.mimeType ? o : o.querySelector('[data-mime-type]');
  const mime = typed ? typed.dataset.mimeType : '';
  const r0 = o.getBoundingClientRect();
  const entry = {cell: index, prompt: prompt ? prompt.textContent.trim().replace(/:$/, '') : '', mime,
                 width: Math.round(r0.width), height: Math.round(r0.height), wide: [], tall: []};
  const candidates = [o, ...o.querySelectorAll(FIGURES)];
  const found = {x: [], y: []};
  for (const e of candidates) {
    const r = e.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    const scrollsX = windowed(e, 'x', o), scrollsY = windowed(e, 'y', o);
    let w = scrollsX ? r.width : Math.max(r.width, e.scrollWidth || 0);
    if (e.tagName === 'IMG')  // drawn wider than it is shown: JupyterLab shrinks it, and its text with it
      w = Math.max(w, parseFloat(e.getAttribute('width')) || e.naturalWidth || 0);
    const h = scrollsY ? r.height : Math.max(r.height, e.scrollHeight || 0);
    if (column !== null && w > column + TOL && !held(e.parentElement, 'x', o, column))
      found.x.push({e, w, h});
    if (h > viewport + TOL && !held(e.parentElement, 'y', o, viewport)) found.y.push({e, w, h});
  }
  for (const [axis, list] of [['wide', found.x], ['tall', found.y]]) {
    for (const f of list) {  // the innermost offender is the one to fix
      if (list.some(g => g !== f && f.e.contains(g.e))) continue;
      entry[axis].push({element: describe(f.e, o), width: Math.round(f.w), height: Math.round(f.h)});
    }
  }
  result.push(entry);
}
const stderr = [];
for (const e of panel.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]')) {
  const o = e.closest('.jp-OutputArea-output') || e;
  if (stderr.some(s => s.node === o)) continue;
  const cell = o.closest('.jp-Cell');
  stderr.push({node: o, cell: cells.indexOf(cell), text: o.innerText});
}
const prompts = cells.filter(c => c.classList.contains('jp-CodeCell'))
                     .map(c => [cells.indexOf(c), c.querySelector('.jp-InputPrompt').textContent.trim()]);
return {column, viewport, pane, outputs: result,
        stderr: stderr.map(s => ({cell: s.cell, text: s.text})), prompts,
        filebrowser: (document.querySelector('#filebrowser') || {offsetWidth: 0}).offsetWidth};
"""

#: What the page shows, as a fingerprint that changes while anything is still drawing.
DRAWING_JS = """
const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
const parts = [...panel.querySelectorAll('.jp-OutputArea-output')].map(o => {
  const r = o.getBoundingClientRect(); return `${Math.round(r.width)}x${Math.round(r.height)}`;
});
const pending = [...panel.querySelectorAll('img')].filter(i => !i.complete).length;
const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent.trim());
return JSON.stringify([parts, pending, prompts]);
"""


@dataclass
class LayoutReport:
    """What one notebook showed: the limits it was measured against and every violation, readable."""

    notebook: str
    column: float | None = None
    viewport: float | None = None
    #: (cell index or None, kind, readable line); kinds: wide, tall, stderr, error, not run, layout.
    problems: list[tuple[int | None, str, str]] = field(default_factory=list)
    measured: dict = field(default_factory=dict)

    @property
    def lines(self) -> list[str]:
        lines = [line for _, kind, line in self.problems if kind != "not run"]
        not_run = [cell for cell, kind, _ in self.problems if kind == "not run"]
        if not_run:
            lines.append(f"cells {not_run} did not run (Run All stops at the first error)")
        return lines

    def add(self, cell: int | None, kind: str, line: str) -> None:
        self.problems.append((cell, kind, line))

    def __str__(self) -> str:
        column = f"{self.column:.0f}" if self.column is not None else "?"
        viewport = f"{self.viewport:.0f}" if self.viewport is not None else "?"
        pane = self.measured.get("pane")
        head = f"{self.notebook} (output column {column} px, viewport {viewport} px tall"
        head += f"; the notebook pane under JupyterLab's bars: {pane} px)" if pane else ")"
        if not self.lines:
            return f"{head}: every output fits, no stderr"
        return "\n".join([f"{head}: {len(self.lines)} problem(s)", *(f"  - {line}" for line in self.lines)])


def prepare(path: Path, root: Path) -> str:
    """Copies the notebooks folder into ``root`` (once, the rest of the clone linked beside it) with the
    layout run's overrides; returns the notebook's path under ``root``."""
    folder = root / "lirlab" / "notebooks"
    if not folder.is_dir():
        shutil.copytree(NOTEBOOK_DIR, folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "*.ipynb"))
        for entry in REPO.iterdir():  # "../tests/fixtures/..." from a notebook resolves as in the clone
            if entry.name not in {"notebooks", ".git", ARTIFACTS.name}:
                (folder.parent / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
        if SHARED_DATA.parent.is_dir():  # and so does "../../shared/data/..."
            (root / "shared").symlink_to(SHARED_DATA.parent, target_is_directory=True)
    nb = nbformat.read(path, as_version=4)
    overrides = OVERRIDES.get(path.name, {})
    if overrides and parameters_cells(nb):
        cell = nb.cells[parameters_cells(nb)[0]]
        declared = assigned_names(cell.source)
        cell.source += "".join(
            f"\n{name} = {value!r}  # layout test: a short run"
            for name, value in overrides.items()
            if name in declared
        )
    nbformat.write(nb, folder / path.name)
    return f"lirlab/notebooks/{path.name}"


def wait_until_run(driver, lab: JupyterLab, name: str, timeout: float) -> None:
    """Waits until no cell is queued or running and the kernel is idle (Run All stops at an error)."""

    def finished(d) -> bool:
        prompts = d.execute_script(
            "return [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) "
            ".jp-CodeCell .jp-InputPrompt')].map(p => p.textContent.trim())"
        )
        started = any(p[1:-2].strip().isdigit() for p in prompts if p.startswith("["))
        return started and not any("*" in p for p in prompts) and lab.kernel_state(name) == "idle"

    wait_for(driver, finished, timeout, f"{name} did not finish running its cells", screenshot_name(name))


def wait_until_drawn(driver) -> None:
    """Waits until the outputs keep their sizes for ``SETTLE_S`` seconds (or ``SETTLE_TIMEOUT_S`` pass)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = driver.execute_script(DRAWING_JS)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= SETTLE_S:
            return
        time.sleep(1)


def screenshot_name(name: str) -> str:
    return f"{Path(name).stem}/failed"


def ensure_file_browser(driver) -> None:
    """Opens the file browser in the left sidebar if the layout has it closed (it is open by default)."""
    if driver.execute_script("const f = document.querySelector('#filebrowser'); return f && f.offsetWidth"):
        return
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, ".jp-SideBar.jp-mod-left [data-id='filebrowser']").click()
    time.sleep(1)


def cell_label(nb, index: int, prompt: str = "") -> str:
    """``cell 13 (id alignment) [7]:``: the cell's index in the notebook file, its id, its prompt."""
    cell = nb.cells[index] if 0 <= index < len(nb.cells) else None
    label = f"cell {index}" + (f" (id {cell.id})" if cell is not None and cell.get("id") else "")
    return f"{label} {prompt}".rstrip()


def first_line(text: str, last: bool = False) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "(empty)"
    line = lines[-1] if last else lines[0]
    return line if len(line) <= 160 else line[:157] + "..."


def check_notebook(driver, lab: JupyterLab, path: Path) -> LayoutReport:
    """Runs ``path`` in the browser, measures it, leaves screenshots; returns what did not fit."""
    name = prepare(path, lab.root)
    stem = path.stem
    folder = ARTIFACTS / stem
    for old in folder.glob("*.png"):
        old.unlink()
    open_notebook(driver, lab, name)
    ensure_file_browser(driver)
    start = time.monotonic()
    click_run_all(driver, name)
    wait_until_run(driver, lab, name, RUN_S)
    wait_until_drawn(driver)
    ran_s = time.monotonic() - start
    measured = driver.execute_script(MEASURE_JS, FIGURES, TOLERANCE_PX)
    measured["run_s"] = round(ran_s, 1)
    nb = nbformat.read(path, as_version=4)
    report = LayoutReport(path.name, measured["column"], measured["viewport"], measured=measured)
    if not measured["filebrowser"]:
        report.add(
            None, "layout", "the file browser is not open: the column measured is wider than a reader's"
        )
    column, viewport = measured["column"], measured["viewport"]
    for output in measured["outputs"]:
        where = cell_label(nb, output["cell"], output["prompt"])
        for item in output["wide"]:
            report.add(
                output["cell"],
                "wide",
                f"{where}: {item['element']} {item['width']}×{item['height']} px is "
                f"{item['width'] - column:.0f} px wider than the {column:.0f}-px column",
            )
        for item in output["tall"]:
            report.add(
                output["cell"],
                "tall",
                f"{where}: {item['element']} {item['width']}×{item['height']} px is "
                f"{item['height'] - viewport:.0f} px taller than the {viewport:.0f}-px viewport",
            )
    for block in measured["stderr"]:
        text = block["text"]
        kind = "error" if "Traceback" in text or "Error" in first_line(text, last=True) else "stderr"
        shown = first_line(text, last=kind == "error")
        report.add(block["cell"], kind, f"{cell_label(nb, block['cell'])}: {kind}: {shown}")
    not_run = [index for index, prompt in measured["prompts"] if not prompt[1:-2].strip().isdigit()]
    for index in not_run:
        report.add(index, "not run", f"{cell_label(nb, index)}: did not run")
    take_screenshots(driver, stem, measured)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "layout.txt").write_text(str(report) + "\n")
    (folder / "layout.json").write_text(json.dumps(measured, indent=1) + "\n")
    lab.shut_down_kernels()
    return report


def take_screenshots(driver, stem: str, measured: dict) -> None:
    """One screenshot per output, scrolled to the top of the screen, named by cell and output number."""
    outputs = driver.execute_script(
        "return [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output')]"
    )
    counts: dict[int, int] = {}
    for element, entry in zip(outputs, measured["outputs"]):
        number = counts[entry["cell"]] = counts.get(entry["cell"], 0) + 1
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", element)
        time.sleep(0.2)
        screenshot(driver, f"{stem}/cell-{entry['cell']:02d}-output-{number}")


@pytest.fixture(scope="module")
def layout_lab(tmp_path_factory):
    binaries = browser_binaries()
    server = start_lab(tmp_path_factory.mktemp("layout-root"), tmp_path_factory.mktemp("layout-home"))
    driver = start_chromium(binaries, tmp_path_factory.mktemp("layout-chromium"), *WINDOW)
    yield server, driver
    driver.quit()
    server.stop()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_fits_the_screen_and_shows_no_stderr(layout_lab, path):
    lab, driver = layout_lab
    report = check_notebook(driver, lab, path)
    assert not report.lines, f"{report}\n(screenshots: {ARTIFACTS / path.stem})"


#: A notebook with one case per rule: (cells, the problems the check must report as (cell, kind)).
PROBE_CELLS = [
    "from IPython.display import HTML\n"
    "HTML('<div style=\"width: 1200px; height: 40px; background: #ddd\">wider than the column</div>')",
    'HTML(\'<div style="overflow-x: auto; max-width: 100%">'
    '<table style="width: 1200px"><tr><td>scrolls sideways by design</td></tr></table></div>\')',
    "HTML('<table style=\"height: 1000px\"><tr><td>taller than the viewport</td></tr></table>')",
    'HTML(\'<div class="lirlab-scroll" style="max-height: 300px; overflow-y: auto">'
    '<table style="height: 2000px"><tr><td>windowed by design</td></tr></table></div>\')',
    "import ipywidgets\n"
    "ipywidgets.HBox([ipywidgets.HTML('a widget box wider than the column')], layout={'width': '1100px'})",
    "%matplotlib inline\nimport matplotlib.pyplot as plt\n"
    "fig, ax = plt.subplots(figsize=(14, 2), dpi=100)\nax.plot([0, 1], [0, 1])\nplt.show()",
    "import sys\nprint('a raw line on stderr', file=sys.stderr)",
    "raise ValueError('the probe stops here')",
    "print('never runs')",
]
PROBE_PROBLEMS = {
    (0, "wide"),
    (2, "tall"),
    (4, "wide"),
    (5, "wide"),
    (6, "stderr"),
    (7, "error"),
    (8, "not run"),
}


def test_the_check_reports_what_does_not_fit_and_spares_what_is_windowed(layout_lab, tmp_path):
    lab, driver = layout_lab
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in PROBE_CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "layout_probe.ipynb"
    nbformat.write(nb, path)
    report = check_notebook(driver, lab, path)
    assert {(cell, kind) for cell, kind, _ in report.problems} == PROBE_PROBLEMS, str(report)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.test_notebook_layout",
        description="Run notebooks in JupyterLab (headless Chromium, 1440×900) and list the outputs that "
        "do not fit the screen and the cells that show stderr or errors.",
    )
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to check (default: all)")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or NOTEBOOKS
    missing = [str(p) for p in paths if p.parent != NOTEBOOK_DIR or not p.is_file()]
    if missing:
        parser.error(f"not a notebook in {NOTEBOOK_DIR}: {', '.join(missing)}")
    try:
        binaries = browser_binaries()
    except pytest.skip.Exception as e:
        print(e, file=sys.stderr)
        return 2
    problems = 0
    with tempfile.TemporaryDirectory(prefix="lirlab-layout-") as scratch:
        scratch = Path(scratch)
        (scratch / "root").mkdir()
        (scratch / "browser").mkdir()
        lab = start_lab(scratch / "root", scratch / "home")
        driver = start_chromium(binaries, scratch / "browser", *WINDOW)
        try:
            for path in paths:
                try:
                    report = check_notebook(driver, lab, path)
                except pytest.fail.Exception as e:
                    print(f"{path.name}: {e}", flush=True)
                    problems += 1
                    continue
                took = f"{report.measured['run_s']:.0f} s; screenshots in {ARTIFACTS / path.stem}"
                print(f"{report}\n  ({took})", flush=True)
                problems += bool(report.lines)
        finally:
            driver.quit()
            lab.stop()
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
