"""Each explorer keeps to one screen: its query box (and hit picker) on top, everything else in a window at most
``BODY_PX`` high that scrolls (the browser layout test measures the same in JupyterLab; the search and
mask explorers were 1,531 and 1,142 px tall in notebooks 02 and 03, in a 757-px viewport)."""

from __future__ import annotations

import pytest

from lirlab.plots import OUTPUT_AREA_PX
from lirlab.widgets import BODY_PX, QUERY_ROW_PX


def kept_to_one_screen(explorer) -> None:
    top, body = explorer.widget.children
    assert explorer.query in (top, *getattr(top, "children", ()))
    hit = getattr(explorer, "hit", None)  # the hit picker stays in view while the body scrolls
    assert hit is None or hit in top.children
    assert "lirlab-scroll" in body._dom_classes and body.layout.overflow == "auto"
    assert body.layout.max_height == f"{BODY_PX}px" and QUERY_ROW_PX + BODY_PX <= OUTPUT_AREA_PX[1]


def test_the_search_explorer_keeps_to_one_screen_with_its_results_in_a_window(stanford):
    from lirlab import data
    from lirlab.index.flat import FlatIndex
    from lirlab.widgets.search import RESULTS_PX, SearchExplorer

    demo = data.load("demo")
    explorer = SearchExplorer(FlatIndex.build(demo.docs[:20], stanford, progress=False), texts=demo.docs[:20])
    explorer.search("how does a caldera form")
    kept_to_one_screen(explorer)
    assert explorer.results.layout.max_height == f"{RESULTS_PX}px" and RESULTS_PX < BODY_PX // 3
    assert 'style="white-space: nowrap"' in explorer.results.value  # a docno never breaks over two lines


def test_the_mask_explorer_keeps_to_one_screen(stanford):
    from lirlab import data
    from lirlab.index.flat import FlatIndex
    from lirlab.widgets.masks import MaskExplorer

    demo = data.load("demo")
    augmented = stanford.with_config(query_augmentation=True, query_maxlen=32)
    explorer = MaskExplorer(
        augmented, FlatIndex.build(demo.docs[:20], stanford, progress=False), query="bees"
    )
    kept_to_one_screen(explorer)


def test_the_page_explorer_keeps_to_one_screen(tmp_path):
    from lirlab import ColBERT, data
    from lirlab.index.flat import FlatIndex
    from lirlab.widgets.pages import BEST_PX, PageExplorer

    from .conftest import REPO

    fixture = REPO / "tests" / "fixtures" / "pages" / "colpali"
    if not (fixture / "config.json").is_file():
        pytest.skip(f"{fixture} is missing (tests/fixtures/make_page_models.py writes it)")
    encoder = ColBERT.load(fixture)
    pages = data.load("demo-pages")
    index = FlatIndex.build(pages.docs[:3], encoder, progress=False)
    explorer = PageExplorer(index, pages=pages, k=2)
    explorer.search("how does a caldera form")
    kept_to_one_screen(explorer)
    assert explorer.best.layout.max_height == f"{BEST_PX}px" and "buffer 1" in explorer.best.value
