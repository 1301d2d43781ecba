"""JupyterLab in a real browser: notebooks run, widgets answer, the explorers update what the page shows.

Starts JupyterLab on a free local port (token auth, no browser of its own, every Jupyter/IPython config,
runtime, settings and workspace folder temporary) and drives headless Chromium through Selenium with the
system ``chromium`` and ``chromedriver`` (Debian: ``apt-get install -y chromium chromium-driver``; or set
``LIRLAB_CHROMIUM`` / ``LIRLAB_CHROMEDRIVER``). Nothing is downloaded. Screenshots land in
``test-artifacts/``. Run with ``python -m pytest -m browser``; the tests skip when Selenium, Chromium or
chromedriver is missing. The set-up is shared with the layout test (``browser_support.py``).

The explorers are found by the CSS classes of the widget contract (``lirlab-query``, ``lirlab-results``,
``lirlab-heatmap``, ``lirlab-knob-n_probe``, ``lirlab-sweep-result``, ``lirlab-sweep-plot``...).
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

QUERY = "how does a caldera form"
UPDATE_S = 180

pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[dev]')")

from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

from .browser_support import (  # noqa: E402
    browser_binaries,
    image_rendered,
    open_and_run_all,
    outputs_text,
    screenshot,
    start_chromium,
    start_lab,
    wait_for,
    write_notebook,
)
from .conftest import REPO  # noqa: E402


@pytest.fixture(scope="module")
def binaries() -> tuple[str, str]:
    return browser_binaries()


@pytest.fixture(scope="module")
def lab(binaries, tmp_path_factory):
    server = start_lab(tmp_path_factory.mktemp("notebooks"), tmp_path_factory.mktemp("jupyter-home"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(binaries, tmp_path_factory):
    driver = start_chromium(binaries, tmp_path_factory.mktemp("chromium"), width=1400, height=1800)
    yield driver
    driver.quit()


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


PAGES = f"""
from lirlab import ColBERT, FlatIndex, data
from lirlab.widgets.search import SearchExplorer

encoder = ColBERT.load({str(REPO / "tests" / "fixtures" / "pages" / "colpali")!r}, device="cpu")
pages = data.load("demo-pages")
index = FlatIndex.build(pages.docs[:8], encoder, progress=False)
print("pages", "indexed")
"""


def test_page_explorer_shows_thumbnails_and_a_heatmap_over_the_page(lab, browser):
    name = write_notebook(
        lab.root, "pages.ipynb", [PAGES, "SearchExplorer(index, pages=pages, k=4)", "print('page cells ran')"]
    )
    open_and_run_all(browser, lab, name, "page cells ran")
    box = wait_for(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, ".lirlab-query input"),
        UPDATE_S,
        "the page explorer's query box did not render",
        "page-explorer",
    )
    box.clear()
    box.send_keys("how do honeybees pollinate crops" + Keys.ENTER)
    wait_for(
        browser,
        lambda d: (
            len(d.find_elements(By.CSS_SELECTOR, ".lirlab-results .lirlab-thumbnail img")) == 4
            and all(image_rendered(d, i) for i in d.find_elements(By.CSS_SELECTOR, ".lirlab-thumbnail img"))
        ),
        UPDATE_S,
        "the results did not show as four page thumbnails",
        "page-explorer",
    )
    wait_for(
        browser,
        lambda d: (
            d.find_element(By.CSS_SELECTOR, ".lirlab-page-heatmap .heatmaplayer image")
            and d.find_element(By.CSS_SELECTOR, ".lirlab-page-heatmap .imagelayer image")
        ),
        UPDATE_S,
        "the patch heatmap over the page (plotly) did not render",
        "page-explorer",
    )
    svg = browser.find_element(By.CSS_SELECTOR, ".lirlab-page-heatmap svg.main-svg")
    drawn_width, shown_width = browser.execute_script(
        "const s = arguments[0]; return [Number(s.getAttribute('width')), s.getBoundingClientRect().width]",
        svg,
    )
    assert abs(drawn_width - shown_width) <= 2, (
        f"the page is drawn {drawn_width} px wide but shown {shown_width}"
    )
    cells = browser.find_element(By.CSS_SELECTOR, ".lirlab-page-heatmap rect.nsewdrag")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", cells)
    ActionChains(browser).move_to_element(cells).perform()
    hover = wait_for(
        browser,
        lambda d: (
            (e := d.find_element(By.CSS_SELECTOR, ".lirlab-page-heatmap .hoverlayer .hovertext"))
            and "cosine" in e.text
            and e
        ),
        UPDATE_S,
        "hovering a patch showed no label with the query token and its cosine",
        "page-explorer",
    )
    assert "query token" in hover.text and "adds" in hover.text
    token = browser.find_elements(By.CSS_SELECTOR, ".lirlab-page-map button")[2]  # after sum and max
    token.click()
    wait_for(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, ".lirlab-page-heatmap .shapelayer path"),
        UPDATE_S,
        "clicking a query token did not outline its best patch",
        "page-explorer",
    )
    browser.execute_script(
        "arguments[0].scrollIntoView()", browser.find_element(By.CSS_SELECTOR, ".lirlab-query")
    )
    screenshot(browser, "browser-page-explorer")
