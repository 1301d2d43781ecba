"""Tokens read as the user wrote them, by one convention in every view: labels, plots, widgets and the
highlighted text come from the fast tokenizer's character offsets and word ids, not from the vocabulary."""

from __future__ import annotations

import html
import re
from dataclasses import replace

import pytest

from lirlab.analysis.alignment import (
    align_hit,
    align_texts,
    explain_hit,
    merge_word_pieces,
    search_text,
    token_chars,
    token_labels,
    window,
    with_texts,
)
from lirlab.analysis.masks import mask_weighting
from lirlab.data import Document
from lirlab.index.flat import FlatIndex
from lirlab.plots.alignment import highlight_html, plot_alignment
from lirlab.plots.interactive import alignment_figure
from lirlab.plots.masks import plot_mask_assignment, plot_term_weights

# word pieces (Calder·as, K·rak·ato·a), capitals, an accent the uncased vocabulary strips (naïve, café),
# and punctuation the document skiplist drops (the apostrophe of Fool's, the colon, comma and "!")
QUERY = "Calderas of Krakatoa?"
DOC = "Fool's Mate: the Calderas of Krakatoa, naïve café!"

QUERY_LABELS = ["[CLS]", "[Q]", "Calder", "·as", "of", "K", "·rak", "·ato", "·a", "?", "[SEP]"]
DOC_LABELS = [
    "[CLS]",
    "[D]",
    "Fool",
    "s",
    "Mate",
    "the",
    "Calder",
    "·as",
    "of",
    "K",
    "·rak",
    "·ato",
    "·a",
    "naïve",
    "café",
    "[SEP]",
]
MERGED_LABELS = [
    "[CLS]",
    "[D]",
    "Fool",
    "s",
    "Mate",
    "the",
    "Calderas",
    "of",
    "Krakatoa",
    "naïve",
    "café",
    "[SEP]",
]


@pytest.fixture(scope="module")
def alignment(stanford):
    return align_texts(stanford, QUERY, DOC)


def real_query_labels(alignment) -> list[str]:
    return [label for label, mask in zip(alignment.query_labels, alignment.query_is_mask) if not mask]


def test_labels_of_query_and_document_are_the_text_as_written(alignment):
    # the vocabulary writes these lower-cased, accents stripped, with ## pieces
    assert alignment.doc_tokens[2:5] == ("fool", "s", "mate") and "naive" in alignment.doc_tokens
    assert real_query_labels(alignment) == QUERY_LABELS
    assert list(alignment.doc_labels) == DOC_LABELS
    merged = merge_word_pieces(alignment)
    assert list(merged.doc_labels) == MERGED_LABELS
    assert merged.query_labels == alignment.query_labels  # query tokens stay separate MaxSim terms
    assert alignment.query_text == QUERY and alignment.doc_text == DOC
    # each label (its · mark aside) is the characters its span names in the original text
    for text, labels, chars in (
        (QUERY, alignment.query_labels, alignment.query_chars),
        (DOC, alignment.doc_labels, alignment.doc_chars),
        (DOC, merged.doc_labels, merged.doc_chars),
    ):
        for label, (start, stop) in zip(labels, chars.tolist()):
            if start >= 0:
                assert text[start:stop] == label.removeprefix("·")
            else:
                assert label.startswith("[")
    assert merged.doc_chars[MERGED_LABELS.index("Krakatoa")].tolist() == [29, 37]
    # the query's words, where merging pieces is exact: their contributions add up to the score
    words = alignment.word_contributions()
    real = words[~words.is_mask]
    assert real.word.tolist() == ["[CLS]", "[Q]", "Calderas", "of", "Krakatoa", "?", "[SEP]"]
    assert real.positions.tolist()[4] == [5, 6, 7, 8]
    assert words.contribution.sum() == pytest.approx(alignment.score, abs=1e-4)
    krakatoa = alignment.contributions[5:9].sum()
    assert real.contribution.tolist()[4] == pytest.approx(float(krakatoa), abs=1e-6)


def test_every_view_shows_the_same_labels(stanford, alignment):
    merged = window(merge_word_pieces(alignment), context=1)
    # matplotlib heatmap: columns are query tokens, rows document words
    figure = plot_alignment(merged)
    heat = figure.axes[1]
    assert [t.get_text() for t in heat.get_xticklabels()] == list(merged.query_labels)
    rows = [t.get_text().replace("… ", "").replace(" …", "") for t in heat.get_yticklabels()]
    assert rows == list(merged.doc_labels)
    # plotly heatmap of the explorer: the same tick texts and hover names
    interactive = alignment_figure(merged)
    layout = interactive.layout.to_plotly_json()
    ticks = [v.get("ticktext") for k, v in layout.items() if k.startswith("xaxis") and v.get("ticktext")]
    assert ticks and all(list(t) == list(merged.query_labels) for t in ticks)
    heatmap = next(t for t in interactive.data if t.type == "heatmap")
    assert [y.rstrip("\u200b").removeprefix("… ").removesuffix(" …") for y in heatmap.y] == list(
        merged.doc_labels
    )
    # the [MASK] analysis labels its terms the same way
    weighting = mask_weighting(stanford, QUERY, {"d": DOC}, docno="d")
    assert weighting.labels == alignment.query_labels
    assert weighting.terms.label.tolist() == QUERY_LABELS
    assert [t.get_text() for t in plot_term_weights(weighting).axes[0].get_xticklabels()] == QUERY_LABELS
    columns = [t.get_text() for t in plot_mask_assignment(weighting).axes[0].get_xticklabels()]
    assert set(columns) <= set(QUERY_LABELS) and "·as" in columns
    assert not weighting.matches.doc_label.str.startswith("##").any()
    # no view writes a piece the vocabulary's way
    shown = [*merged.query_labels, *merged.doc_labels, *weighting.labels, *weighting.matches.doc_label]
    assert not any(label.startswith("##") for label in shown)
    # without the text the vocabulary's strings follow the same · rule
    assert token_labels(["[CLS]", "[unused0]", "calder", "##as", "[MASK]"]) == (
        "[CLS]",
        "[Q]",
        "calder",
        "·as",
        "[MASK]",
    )
    assert token_labels(["▁Cal", "dera", "▁lake"]) == ("Cal", "·dera", "lake")


def test_the_explorer_path_labels_hits_as_written(stanford):
    index = FlatIndex.build(
        [Document("fool", DOC), Document("other", "Bees make honey.")], stanford, progress=False
    )
    run, encoded = search_text(index, QUERY, k=2)
    assert run.docno.iloc[0] == "fool"
    shown, note = explain_hit(index, encoded, "fool", document_text=DOC)
    assert note == "" and list(shown.doc_labels) == MERGED_LABELS
    assert real_query_labels(shown) == QUERY_LABELS
    # an index hit aligned without the document text still shows the query as written
    bare = align_hit(index, QUERY, "fool")
    assert real_query_labels(bare) == QUERY_LABELS and bare.doc_labels[2] == "fool"
    assert list(with_texts(bare, stanford.tokenizer, doc_text=DOC).doc_labels) == DOC_LABELS


def chips(fragment: str) -> list[tuple[int, int, str]]:
    """``(start, stop, text)`` of every element that names its characters."""
    found = re.findall(r'data-chars="(\d+) (\d+)"[^>]*>([^<]*)<', fragment)
    return [(int(a), int(b), html.unescape(t)) for a, b, t in found]


def plain_text(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", fragment)).split())


def test_highlight_spans_map_to_the_original_characters(alignment):
    for shown in (alignment, merge_word_pieces(alignment)):
        out = highlight_html(shown)
        legend, body = out.split('<div style="margin-bottom:4px">')[1].split("</div>", 1)
        # the document as written, special tokens around it, punctuation between tokens kept
        assert plain_text(body) == f"[CLS] [D] {DOC} [SEP]"
        spans = chips(body)
        assert spans and all(DOC[start:stop] == text for start, stop, text in spans)
        rows = [tuple(c) for c in shown.doc_chars.tolist() if c[0] >= 0]
        assert [(start, stop) for start, stop, _ in spans] == rows
        # the legend is the query as written, each token over its own characters
        assert plain_text(legend).startswith(f"query: [CLS] [Q] {QUERY} [SEP] [MASK] ×")
        assert all(QUERY[start:stop] == text for start, stop, text in chips(legend))
    merged = merge_word_pieces(alignment)
    krakatoa = next(c for c in chips(highlight_html(merged)) if c[2] == "Krakatoa")
    assert krakatoa[:2] == (29, 37)
    # a windowed document marks what it leaves out, and what it keeps still maps to its characters
    windowed = window(merged, context=0)
    out = highlight_html(windowed)
    body = out.split("</div>")[2]
    assert "…" in body and all(DOC[a:b] == t for a, b, t in chips(body))


def test_texts_that_do_not_make_the_tokens_leave_the_labels_as_they_were(stanford, alignment):
    bare = replace(alignment, doc_text=None, doc_chars=None, doc_words=None)
    other = with_texts(bare, stanford.tokenizer, doc_text="Something else entirely.")
    assert other.doc_text is None and other.doc_chars is None and other.doc_labels == bare.doc_labels
    assert token_chars(stanford.tokenizer, "Something else", ["[CLS]", "fool", "[SEP]"]) is None
    assert token_chars(None, DOC, ["fool"]) is None  # no tokenizer (or a slow one): no offsets
    with pytest.raises(ValueError, match="before merging"):
        with_texts(merge_word_pieces(alignment), stanford.tokenizer, doc_text=DOC)
    assert alignment.doc_words[2:5].tolist() == [0, 2, 3]  # Fool ' s Mate: "'" is a word of its own, dropped


def test_a_character_the_vocabulary_lacks_shows_as_written(stanford):
    shown = merge_word_pieces(align_texts(stanford, "dinosaur 🦕 eggs", "A 🦕 laid eggs."))
    assert "[UNK]" in shown.doc_tokens and "[UNK]" in shown.query_tokens
    assert list(shown.doc_labels) == ["[CLS]", "[D]", "A", "🦕", "laid", "eggs", "[SEP]"]
    assert real_query_labels(shown)[2:5] == ["dinosaur", "🦕", "eggs"]
    for show_special in (True, False):
        body = highlight_html(shown, show_special=show_special).split("</div>")[2]
        assert "A 🦕 laid eggs." in plain_text(body)
