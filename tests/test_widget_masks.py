"""MaskExplorer driven programmatically: it shows what the analysis and plot functions return."""

from __future__ import annotations

import pytest

from lirlab import data
from lirlab.analysis.masks import mask_weighting
from lirlab.index.flat import FlatIndex
from lirlab.plots import OUTPUT_AREA_PX, SCREEN_DPI, figure_png
from lirlab.plots.masks import plot_mask_assignment, plot_mask_overview
from lirlab.widgets import png_size
from lirlab.widgets.masks import MaskExplorer

QUERY = "how does a caldera form"
PNG = b"\x89PNG"


@pytest.fixture(scope="module")
def index(stanford) -> FlatIndex:
    return FlatIndex.build(data.load("demo").docs[:20], stanford, progress=False)


def shown_widgets(box) -> list:
    """Every widget inside ``box``, depth first."""
    found = []
    for child in getattr(box, "children", ()):
        found += [child, *shown_widgets(child)]
    return found


def test_widgets_carry_the_contract_classes(stanford, index):
    explorer = MaskExplorer(stanford, index)
    classes = {
        "lirlab-query": explorer.query,
        "lirlab-mask-plot": explorer.plot,
        "lirlab-mask-table": explorer.table,
        "lirlab-message": explorer.message,
    }
    for css_class, widget in classes.items():
        assert css_class in widget._dom_classes
        assert widget in shown_widgets(explorer.widget)
    assert explorer.query.continuous_update is False
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert explorer.message.value.startswith("Type a query") and explorer.plot.value == b""


def test_typing_a_query_draws_the_analysis(stanford, index):
    explorer = MaskExplorer(stanford, index, top_k=3)
    explorer.query.value = QUERY
    expected = mask_weighting(stanford, QUERY, index, top_k=3)
    assert bytes(explorer.plot.value).startswith(PNG)
    assert explorer.result is not None
    assert explorer.result.terms.effective_weight.tolist() == pytest.approx(
        expected.terms.effective_weight.tolist()
    )
    for token in ("calder", "form", "[CLS]"):
        assert f"<td>{token}</td>" in explorer.table.value
    assert f"{expected.score:.3f}" in explorer.message.value
    assert f"{expected.n_masks} [MASK] tokens" in explorer.message.value

    explorer.query.value = "   "
    assert explorer.message.value.startswith("Type a query")
    assert explorer.plot.value == b"" and explorer.table.value == "" and explorer.result is None


def test_one_document_and_a_first_query(stanford, index):
    docno = index.docnos[0]
    explorer = MaskExplorer(stanford, index, query=QUERY, docno=docno)
    assert bytes(explorer.plot.value).startswith(PNG)
    assert f"document {docno}" in explorer.message.value
    assert explorer.result.documents.docno.tolist() == [docno]


def test_bad_input_is_a_message_not_a_traceback(stanford, index):
    explorer = MaskExplorer(stanford, index, docno="no-such-doc")
    explorer.query.value = QUERY
    assert "no-such-doc" in explorer.message.value and explorer.plot.value == b""


def test_an_encoder_without_augmentation_says_so(stanford, index):
    explorer = MaskExplorer(stanford.with_config(query_maxlen=0), index, query=QUERY, top_k=2)
    assert "No [MASK] padding" in explorer.message.value
    assert bytes(explorer.plot.value).startswith(PNG)


def test_the_explorer_fits_the_output_area_with_readable_row_labels(stanford, index):
    # it was drawn 1,048 px wide (the colour bar and title cut off) with 7-px row labels
    padded = stanford.with_config(query_augmentation=True, query_maxlen=32)
    for query in (QUERY, "volcano"):  # a short query: the most [MASK] rows
        explorer = MaskExplorer(padded, index, query=query, top_k=3)
        width, height = png_size(explorer.plot.value)
        assert width <= OUTPUT_AREA_PX[0] and height <= OUTPUT_AREA_PX[1], (query, width, height)
        assert explorer.plot.layout.width == f"{width}px", "drawn at the size shown"
    figure = plot_mask_overview(explorer.result)
    [assignment] = [a for a in figure.axes if any("[MASK]" in t.get_text() for t in a.get_yticklabels())]
    rows = assignment.get_yticklabels()
    assert len(rows) == explorer.result.n_masks > 20
    assert min(t.get_fontsize() for t in rows) * SCREEN_DPI / 72 >= 11
    alone = plot_mask_assignment(explorer.result)  # notebook 3 also draws it alone: it was 799 px tall
    width, height = png_size(figure_png(alone, dpi=alone.dpi))
    assert width <= OUTPUT_AREA_PX[0] and height <= OUTPUT_AREA_PX[1], (width, height)


def test_while_computing_it_says_so_and_never_shows_an_empty_image(stanford, index):
    explorer = MaskExplorer(stanford, index, top_k=3)
    assert explorer.plot.layout.display == "none", "an empty image is a broken-image icon"
    seen = []
    explorer.message.observe(
        lambda change: seen.append((change["new"], explorer.plot.layout.display)), names="value"
    )
    explorer.query.value = QUERY
    assert seen[0][0].startswith("Computing") and QUERY in seen[0][0] and seen[0][1] == "none"
    assert explorer.plot.layout.display != "none" and bytes(explorer.plot.value).startswith(PNG)
    explorer.query.value = ""
    assert explorer.plot.layout.display == "none" and explorer.message.value.startswith("Type a query")
