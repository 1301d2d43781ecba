"""JupyterLab in a real browser: notebooks run, widgets answer, the explorers update what the page shows.

Starts JupyterLab on a free local port (token auth, no browser of its own, every Jupyter/IPython config,
runtime, settings and workspace folder temporary) and drives headless Chromium through Selenium with the
system ``chromium`` and ``chromedriver`` (Debian: ``apt-get install -y chromium chromium-driver``; or set
``LIRLAB_CHROMIUM`` / ``LIRLAB_CHROMEDRIVER``). Nothing is downloaded. Screenshots land in
``test-artifacts/``. Run with ``python -m pytest -m browser``; the tests skip when Selenium, Chromium or
chromedriver is missing.

The explorers are found by the CSS classes of the widget contract (``lirlab-query``, ``lirlab-results``,
``lirlab-heatmap``, ``lirlab-knob-n_probe``, ``lirlab-sweep-result``, ``lirlab-sweep-plot``...).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

from .conftest import REPO

pytestmark = pytest.mark.browser

ARTIFACTS = REPO / "test-artifacts"
QUERY = "how does a caldera form"
SERVER_START_S = 300
KERNEL_RUN_S = 600
UPDATE_S = 180
OUTPUTS = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output"
RUN_ALL_COMMAND = "runmenu:run-all"  # "Run All Cells" in JupyterLab 4's Run menu

pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import (  # noqa: E402
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

INSTALL_HINT = "install them with: apt-get install -y chromium chromium-driver"
#: What a page still rendering raises while a wait polls it.
RENDERING = (NoSuchElementException, StaleElementReferenceException)


def browser_binaries() -> tuple[str, str]:
    """Paths of the system Chromium and chromedriver, or skip."""
    chromium = (
        os.environ.get("LIRLAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    driver = os.environ.get("LIRLAB_CHROMEDRIVER") or shutil.which("chromedriver")
    if not chromium:
        pytest.skip(f"Chromium is not installed; {INSTALL_HINT} (or set LIRLAB_CHROMIUM)")
    if not driver:
        pytest.skip(f"chromedriver is not installed; {INSTALL_HINT} (or set LIRLAB_CHROMEDRIVER)")
    return chromium, driver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_settings(settings_dir: Path) -> None:
    """JupyterLab user settings: no news prompt, every cell rendered, kernels start without asking."""
    for plugin, values in {
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none", "autoStartDefaultKernel": True},
    }.items():
        path = settings_dir / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


class JupyterLab:
    """A JupyterLab server of our own in a temporary folder."""

    def __init__(self, root: Path, home: Path):
        self.root = root
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        write_settings(home / "lab-settings")
        env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(home / "config"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            "JUPYTER_DATA_DIR": str(home / "data"),
            "JUPYTERLAB_SETTINGS_DIR": str(home / "lab-settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
            "IPYTHONDIR": str(home / "ipython"),
            "HF_HUB_OFFLINE": "1",
        }
        self.log_path = home / "jupyterlab.log"
        self.log = open(self.log_path, "w")  # closed in stop(), after the server
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--ip=127.0.0.1",
                f"--port={self.port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={root}",
                "--ServerApp.allow_root=True",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def api(self, path: str, method: str = "GET"):
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
            return json.loads(body) if body else None

    def kernel_idle(self, notebook: str) -> bool:
        """Whether the notebook's kernel has started and waits for work (asked of the server)."""
        sessions = self.api("/api/sessions")
        return any(s["path"] == notebook and s["kernel"]["execution_state"] == "idle" for s in sessions)

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                self.api("/api/status")
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"JupyterLab did not answer within {SERVER_START_S} s:\n{self.log_text()}")

    def log_text(self) -> str:
        self.log.flush()
        return self.log_path.read_text()[-4000:]

    def stop(self) -> None:
        try:
            self.api("/api/shutdown", method="POST")  # shuts its kernels down too
            self.process.wait(timeout=30)
        except (urllib.error.URLError, ConnectionError, TimeoutError, subprocess.TimeoutExpired):
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


@pytest.fixture(scope="module")
def binaries() -> tuple[str, str]:
    return browser_binaries()


@pytest.fixture(scope="module")
def lab(binaries, tmp_path_factory):
    root = tmp_path_factory.mktemp("notebooks")
    server = JupyterLab(root, tmp_path_factory.mktemp("jupyter-home"))
    try:
        server.wait_until_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(binaries, tmp_path_factory):
    chromium, driver_path = binaries
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # Chromium's sandbox cannot start as root, nor in most CI containers
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1800",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(argument)
    log = tmp_path_factory.mktemp("chromedriver") / "chromedriver.log"
    service = webdriver.ChromeService(executable_path=driver_path, log_output=str(log))
    driver = webdriver.Chrome(options=options, service=service)
    yield driver
    driver.quit()


def screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def wait_for(driver, condition, timeout: float, what: str, name: str):
    """``WebDriverWait.until`` that leaves a screenshot and says what did not happen."""
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.5, ignored_exceptions=RENDERING).until(
            condition
        )
    except TimeoutException:
        path = screenshot(driver, f"{name}-failed")
        pytest.fail(f"{what} within {timeout:.0f} s (screenshot: {path})", pytrace=False)


def write_notebook(root: Path, name: str, cells: list[str]) -> str:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nbformat.write(nb, root / name)
    return name


def open_and_run_all(driver, lab: JupyterLab, name: str, ready_text: str) -> None:
    """Open a notebook in JupyterLab, run every cell from the Run menu, wait for ``ready_text`` to show."""
    driver.get(f"{lab.url}/lab/tree/{name}?reset&token={lab.token}")
    wait_for(
        driver, lambda d: lab.kernel_idle(name), KERNEL_RUN_S, f"the kernel of {name} did not start", name
    )
    driver.find_element(By.XPATH, "//li[contains(@class, 'lm-MenuBar-item')][.//*[text()='Run']]").click()
    run_all = wait_for(
        driver,
        lambda d: d.find_element(By.CSS_SELECTOR, f"li[data-command='{RUN_ALL_COMMAND}']"),
        30,
        "the Run menu did not open",
        name,
    )
    run_all.click()
    wait_for(
        driver,
        lambda d: ready_text in outputs_text(d),
        KERNEL_RUN_S,
        f"{name} did not finish running its cells ({ready_text!r} never showed)",
        name,
    )
    errors = driver.find_elements(
        By.CSS_SELECTOR, ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
    )
    tracebacks = [e.text for e in errors if "Traceback" in e.text or "An exception has occurred" in e.text]
    assert not tracebacks, f"{name} raised in the browser:\n{tracebacks[0]}"


def outputs_text(driver) -> str:
    """The text of every cell output in the open notebook (not its sources)."""
    return "\n".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, OUTPUTS))


def image_rendered(driver, element) -> bool:
    return bool(
        driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", element)
    )


def test_jupyterlab_runs_a_notebook_and_its_widgets_answer(lab, browser):
    name = write_notebook(
        lab.root,
        "widgets.ipynb",
        [
            "from lirlab import data\nprint(len(data.load('demo').docs), 'demo passages')",
            "import ipywidgets\n"
            "slider = ipywidgets.IntSlider(value=3, min=0, max=10).add_class('probe-slider')\n"
            "doubled = ipywidgets.HTML('doubled: 6').add_class('probe-doubled')\n"
            "slider.observe(lambda change: setattr(doubled, 'value', f'doubled: {2 * change.new}'), 'value')\n"
            "ipywidgets.VBox([slider, doubled])",
        ],
    )
    open_and_run_all(browser, lab, name, "200 demo passages")
    handle = wait_for(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, ".probe-slider .noUi-handle"),
        UPDATE_S,
        "the slider widget did not render (is the ipywidgets JupyterLab extension installed?)",
        "widgets",
    )
    handle.send_keys(Keys.ARROW_RIGHT)
    wait_for(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, ".probe-doubled").text == "doubled: 8",
        UPDATE_S,
        "moving the slider did not reach the kernel and back",
        "widgets",
    )
    screenshot(browser, "browser-widgets")


EXPLORERS = f"""
from lirlab import ColBERT, FlatIndex, data
from lirlab.index.plaid import PlaidIndex
from lirlab.widgets.search import SearchExplorer
from lirlab.widgets.sweep import SweepExplorer

QUERY = {QUERY!r}
encoder = ColBERT.load("minilm", device="cpu")
dataset = data.load("demo").slice(max_queries=8, max_docs=60)
index = FlatIndex.build(dataset.docs, encoder, progress=False)
print("expected:", " ".join(index.search(QUERY, k=3).docno))
"""


@pytest.fixture(scope="module")
def explorers_page(lab, browser) -> list[str]:
    """A notebook showing the search and sweep explorers; returns the exhaustive top 3 for QUERY it printed."""
    name = write_notebook(
        lab.root,
        "explorers.ipynb",
        [
            EXPLORERS,
            "SearchExplorer(index, texts={d.docno: d.text for d in dataset.docs})",
            "plaid = PlaidIndex.from_encoding(index.docs, nbits=2, encoder=encoder)\n"
            "SweepExplorer(plaid, encoder.encode_queries(dataset.queries), qrels=dataset.qrels, k=10)",
            "print('all', 'cells ran')",
        ],
    )
    open_and_run_all(browser, lab, name, "all cells ran")
    [printed] = [line for line in outputs_text(browser).splitlines() if line.startswith("expected:")]
    return printed.split()[1:]


def test_search_explorer_shows_results_and_heatmap(explorers_page, browser):
    expected = explorers_page
    box = wait_for(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, ".lirlab-query input"),
        UPDATE_S,
        "the search explorer's query box did not render",
        "search-explorer",
    )
    box.clear()
    box.send_keys(QUERY + Keys.ENTER)
    results = wait_for(
        browser,
        lambda d: (e := d.find_element(By.CSS_SELECTOR, ".lirlab-results")) and expected[0] in e.text and e,
        UPDATE_S,
        f"the results table never showed the exhaustive top hit {expected[0]!r}",
        "search-explorer",
    )
    assert all(docno in results.text for docno in expected), f"top 3 {expected} not all in:\n{results.text}"
    wait_for(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, ".lirlab-heatmap .heatmaplayer image"),
        UPDATE_S,
        "the alignment heatmap (plotly) did not render",
        "search-explorer",
    )
    heatmap = browser.find_element(By.CSS_SELECTOR, ".lirlab-heatmap svg.main-svg")
    drawn_width, shown_width = browser.execute_script(
        "const s = arguments[0]; return [Number(s.getAttribute('width')), s.getBoundingClientRect().width]",
        heatmap,
    )
    assert abs(drawn_width - shown_width) <= 2, (
        f"the heatmap is drawn {drawn_width} px wide but shown {shown_width} px wide"
    )

    def title(d) -> str:
        return d.find_element(By.CSS_SELECTOR, ".lirlab-heatmap .gtitle").text

    first_title = title(browser)
    cells = browser.find_element(By.CSS_SELECTOR, ".lirlab-heatmap rect.nsewdrag[data-subplot='x2y2']")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", cells)
    ActionChains(browser).move_to_element_with_offset(cells, -cells.size["width"] // 4, 0).perform()
    hover = wait_for(
        browser,
        lambda d: (
            (e := d.find_element(By.CSS_SELECTOR, ".lirlab-heatmap .hoverlayer .hovertext"))
            and "cosine" in e.text
            and e
        ),
        UPDATE_S,
        "hovering a heatmap cell showed no label with the two tokens and their cosine",
        "search-explorer",
    )
    assert "query token" in hover.text and "document token" in hover.text and "adds" in hover.text
    screenshot(browser, "browser-search-explorer-hover")
    bar = browser.find_element(By.CSS_SELECTOR, ".lirlab-heatmap .barlayer .point path")
    ActionChains(browser).move_to_element(bar).click().perform()
    wait_for(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, ".lirlab-highlight .lirlab-focus"),
        UPDATE_S,
        "clicking a contribution bar did not outline that query token's match in the text",
        "search-explorer",
    )
    hits = Select(browser.find_element(By.CSS_SELECTOR, ".lirlab-hit select"))
    assert len(hits.options) >= 2, "the hit picker should offer every result"
    hits.select_by_index(1)
    wait_for(
        browser,
        lambda d: title(d) not in ("", first_title),
        UPDATE_S,
        "picking another hit did not redraw the heatmap",
        "search-explorer",
    )
    browser.execute_script(
        "arguments[0].scrollIntoView()", browser.find_element(By.CSS_SELECTOR, ".lirlab-query")
    )
    screenshot(browser, "browser-search-explorer")


def test_sweep_explorer_follows_its_slider(explorers_page, browser):
    slider = wait_for(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, ".lirlab-knob-n_probe"),
        UPDATE_S,
        "the sweep explorer's n_probe slider did not render",
        "sweep-explorer",
    )
    for knob in ("ndocs", "centroid_score_threshold"):
        assert browser.find_elements(By.CSS_SELECTOR, f".lirlab-knob-{knob}"), f"no slider for {knob}"
    readout = slider.find_element(By.CSS_SELECTOR, ".widget-readout")
    before_value = readout.text
    before_result = browser.find_element(By.CSS_SELECTOR, ".lirlab-sweep-result").text
    slider.find_element(By.CSS_SELECTOR, ".noUi-handle").send_keys(Keys.ARROW_RIGHT)
    wait_for(
        browser,
        lambda d: (
            readout.text != before_value
            and d.find_element(By.CSS_SELECTOR, ".lirlab-sweep-result").text not in ("", before_result)
        ),
        UPDATE_S,
        "moving n_probe did not update the sweep result",
        "sweep-explorer",
    )
    assert "ms" in browser.find_element(By.CSS_SELECTOR, ".lirlab-sweep-result").text, (
        "the result names no latency"
    )
    wait_for(
        browser,
        lambda d: image_rendered(d, d.find_element(By.CSS_SELECTOR, "img.lirlab-sweep-plot")),
        UPDATE_S,
        "the latency/quality plot did not render",
        "sweep-explorer",
    )
    natural, shown = browser.execute_script(
        "const i = arguments[0]; return [i.naturalWidth, i.getBoundingClientRect().width]",
        browser.find_element(By.CSS_SELECTOR, "img.lirlab-sweep-plot"),
    )
    assert abs(natural - shown) <= 2, f"the plot is {natural} px wide but shown {shown} px wide (stretched)"
    browser.execute_script("arguments[0].scrollIntoView()", slider)
    screenshot(browser, "browser-sweep-explorer")
