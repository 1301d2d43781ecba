"""SearchExplorer driven programmatically, as a user would in a notebook."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lirlab import data
from lirlab.analysis.alignment import align_vectors, window
from lirlab.data import Document
from lirlab.index.flat import FlatIndex
from lirlab.index.plaid import PlaidIndex
from lirlab.plots import OUTPUT_AREA_PX
from lirlab.plots.alignment import COSINE_COLOR
from lirlab.plots.interactive import TITLE_CHAR_PX, alignment_figure, figure_size
from lirlab.widgets.search import EMPTY_QUERY, LONG_DOCUMENT, SearchExplorer


def drawn(explorer):
    """The heatmap widget's traces by type: bars, heatmap, rings when an alignment is shown."""
    return [trace.type for trace in explorer.heatmap.data]


QUERY = "how does a caldera form"
HOSTILE = Document("hostile-01", "<script>alert('pwned')</script> zooxanthellae near a volcano vent")


@pytest.fixture(scope="module")
def docs() -> list[Document]:
    picked = [d for d in data.load("demo").docs if d.docno.startswith(("volcano", "bread"))][:12]
    return [*picked, HOSTILE]


@pytest.fixture(scope="module")
def flat(docs, stanford) -> FlatIndex:
    return FlatIndex.build(docs, stanford, progress=False)


@pytest.fixture()
def explorer(flat, docs) -> SearchExplorer:
    return SearchExplorer(flat, k=5, texts=docs)


def test_elements_carry_the_contract_classes(explorer):
    classes = {
        "lirlab-query": explorer.query,
        "lirlab-results": explorer.results,
        "lirlab-hit": explorer.hit,
        "lirlab-heatmap": explorer.heatmap,
        "lirlab-highlight": explorer.highlight,
        "lirlab-message": explorer.message,
    }
    for css, element in classes.items():
        assert css in element._dom_classes
    assert explorer.query.continuous_update is False
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert EMPTY_QUERY in explorer.message.value


def test_query_shows_results_heatmap_and_highlight(explorer, flat):
    expected = flat.search(QUERY, k=5)
    explorer.query.value = QUERY
    for docno in expected.docno:
        assert f">{docno}</td>" in explorer.results.value
    assert explorer.results.value.index(expected.docno[0]) < explorer.results.value.index(expected.docno[4])
    assert [value for _, value in explorer.hit.options] == expected.docno.tolist()
    assert explorer.hit.value == expected.docno[0]
    assert drawn(explorer) == ["bar", "heatmap", "scatter"]
    heat = explorer.heatmap.data[1]
    assert list(heat.y) and len(heat.y) == len(explorer.alignment.doc_labels)
    assert list(explorer.heatmap.data[0].y) == pytest.approx(explorer.alignment.contributions.tolist())
    assert explorer.heatmap.layout.height >= 18 * len(explorer.alignment.doc_labels)
    assert "cosine" in heat.hovertemplate and "adds" in heat.hovertemplate
    assert "lirlab-alignment-text" in explorer.highlight.value
    assert explorer.alignment.docno == expected.docno[0] and explorer.alignment.query == QUERY
    assert explorer.alignment.score == pytest.approx(expected.score[0], abs=1e-4)
    assert len(explorer.alignment.doc_tokens) <= LONG_DOCUMENT or explorer.alignment.elided_before.any()
    assert explorer.message.value == ""


def test_empty_query_asks_for_one_and_clears(explorer):
    explorer.query.value = QUERY
    explorer.query.value = "   "
    assert "Type a query" in explorer.message.value
    assert explorer.results.value == ""
    assert drawn(explorer) == []
    assert explorer.hit.options == ()


def test_picking_another_hit_redraws(explorer, flat):
    explorer.query.value = QUERY
    first = explorer.heatmap.layout.title.text
    second_docno = explorer.hit.options[1][1]
    explorer.hit.value = second_docno
    assert explorer.alignment.docno == second_docno
    assert drawn(explorer) == ["bar", "heatmap", "scatter"]
    assert explorer.heatmap.layout.title.text != first and second_docno in explorer.heatmap.layout.title.text
    assert explorer.alignment.score == pytest.approx(flat.search(QUERY, k=5).score[1], abs=1e-4)


def test_merge_checkbox_switches_word_pieces(explorer):
    explorer.query.value = "zooxanthellae volcano vent"
    explorer.hit.value = HOSTILE.docno
    explorer.merge.value = False
    pieces = explorer.alignment.doc_labels
    explorer.merge.value = True
    assert explorer.alignment.docno == HOSTILE.docno
    assert "·ae" in pieces and "zooxanthellae" not in pieces
    assert "zooxanthellae" in explorer.alignment.doc_labels
    assert not any(label.startswith("·") for label in explorer.alignment.doc_labels)


def test_text_is_escaped_in_the_results(explorer):
    explorer.query.value = "zooxanthellae volcano vent script alert"
    assert "hostile-01" in explorer.results.value
    assert "<script>" not in explorer.results.value
    assert "&lt;script&gt;" in explorer.results.value


def test_errors_show_as_messages_not_tracebacks(explorer):
    explorer.query.value = QUERY
    explorer.show_hit("no-such-doc")
    assert "no-such-doc" in explorer.message.value and "unknown docno" in explorer.message.value
    assert drawn(explorer) == []


def test_clicking_a_bar_outlines_that_query_token_s_match(explorer):
    explorer.query.value = QUERY
    alignment = explorer.alignment
    position = int(alignment.contributions.argmax())
    explorer.focus_query_token(position)
    outlined = explorer.highlight.value.count("lirlab-focus")
    best = alignment.best_doc_token[position]
    assert outlined == 1 and alignment.doc_labels[best] in explorer.highlight.value
    assert f'data-query-positions="{position}"' in explorer.highlight.value
    explorer.focus_query_token(None)
    assert "lirlab-focus" not in explorer.highlight.value
    with pytest.raises(ValueError, match="focus must be a query token position"):
        explorer.focus_query_token(999)


def test_plaid_hits_show_reconstruction_and_mismatched_texts_say_so(flat, stanford, docs):
    plaid = PlaidIndex.from_encoding(flat.docs, nbits=1, encoder=stanford)
    explorer = SearchExplorer(plaid, k=3, texts=docs)
    explorer.query.value = QUERY
    assert drawn(explorer) == ["bar", "heatmap", "scatter", "bar"]
    assert explorer.alignment.reconstruction_cosine is not None
    assert explorer.alignment.reconstruction_cosine.mean() < 0.99
    assert "stored vs exact" in explorer.heatmap.data[1].hovertemplate

    wrong = SearchExplorer(plaid, k=3, texts={d.docno: "unrelated words" for d in docs})
    wrong.query.value = QUERY
    assert drawn(wrong) == ["bar", "heatmap", "scatter"]
    assert wrong.alignment.reconstruction_cosine is None
    assert "no reconstruction view" in wrong.message.value


def test_constructor_checks_its_arguments(flat):
    with pytest.raises(ValueError, match="encoder"):
        SearchExplorer(FlatIndex(flat.docs))
    with pytest.raises(ValueError, match="k must be"):
        SearchExplorer(flat, k=0)


def test_plaid_hits_show_the_stored_vs_exact_bars_beside_the_heatmap(flat, stanford, docs):
    # notebook 4 describes "grey bars beside the heatmap"; the explorer had only a hover and a title
    # clipped at the figure's edge
    plaid = PlaidIndex.from_encoding(flat.docs, nbits=1, encoder=stanford)
    explorer = SearchExplorer(plaid, k=3, texts=docs)
    explorer.query.value = QUERY
    heat, cosine = explorer.heatmap.data[1], explorer.heatmap.data[3]
    assert cosine.orientation == "h" and cosine.marker.color == COSINE_COLOR
    assert list(cosine.y) == list(heat.y), "one bar per heatmap row, on the same rows"
    np.testing.assert_allclose(cosine.x, explorer.alignment.reconstruction_cosine, atol=1e-6)
    layout = explorer.heatmap.layout
    lines = layout.title.text.split("<br>")
    assert max(len(line) for line in lines) * TITLE_CHAR_PX <= layout.width - 20, lines
    assert "mean" in layout.title.text and "grey bars" in layout.title.text


def test_the_heatmap_fits_the_output_area_for_long_queries_and_documents():
    # a 32-token query (a ColBERT checkpoint's padding) against a long document
    generator = torch.Generator().manual_seed(0)
    query = torch.nn.functional.normalize(torch.randn(32, 8, generator=generator), dim=1)
    doc = torch.nn.functional.normalize(torch.randn(90, 8, generator=generator), dim=1)
    labels = ["[CLS]", "[unused0]", "how", "does", "a", "calder", "·a", "form", "[SEP]"] + ["[MASK]"] * 23
    alignment = window(
        align_vectors(query, doc, labels, [f"word{i}" for i in range(90)]), max_rows=LONG_DOCUMENT
    )
    width, height = figure_size(alignment)
    assert width <= OUTPUT_AREA_PX[0] and height <= OUTPUT_AREA_PX[1], (width, height)
    figure = alignment_figure(alignment)
    assert (figure.layout.width, figure.layout.height) == (width, height)


def test_long_documents_are_windowed_to_at_most_long_document_rows(flat, stanford, docs):
    long_text = " ".join(d.text for d in docs[:6])
    index = FlatIndex.build([Document("long-01", long_text)], stanford, progress=False)
    explorer = SearchExplorer(index, k=1, texts={"long-01": long_text})
    explorer.query.value = QUERY
    assert len(explorer.alignment.doc_tokens) <= LONG_DOCUMENT
