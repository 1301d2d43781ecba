"""MaskExplorer driven programmatically: it shows what the analysis and plot functions return."""

from __future__ import annotations

import pytest

from lirlab import data
from lirlab.analysis.masks import mask_weighting
from lirlab.index.flat import FlatIndex
from lirlab.widgets.masks import MaskExplorer

QUERY = "how does a caldera form"
PNG = b"\x89PNG"


@pytest.fixture(scope="module")
def index(stanford) -> FlatIndex:
    return FlatIndex.build(data.load("demo").docs[:20], stanford, progress=False)


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
        assert widget in explorer.widget.children
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
