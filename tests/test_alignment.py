"""Token alignment against direct computation: similarities, best tokens, scores, merging, windowing, views."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from lirlab import data
from lirlab.analysis.alignment import (
    align_hit,
    align_texts,
    align_vectors,
    merge_word_pieces,
    window,
)
from lirlab.data import Document
from lirlab.index.flat import FlatIndex
from lirlab.index.plaid import PlaidIndex
from lirlab.plots.alignment import highlight_html, plot_alignment, query_colors

QUERY = "how does a caldera form"
PIECES = "Zooxanthellae photosynthesize inside the corals of a caldera lake."


@pytest.fixture(scope="module")
def docs() -> list[Document]:
    return [d for d in data.load("demo").docs if d.docno.startswith(("volcano", "bees"))][:24]


@pytest.fixture(scope="module")
def texts(docs) -> dict[str, str]:
    return {d.docno: d.full_text for d in docs}


@pytest.fixture(scope="module")
def flat(docs, stanford) -> FlatIndex:
    return FlatIndex.build(docs, stanford, progress=False)


@pytest.fixture(scope="module")
def plaid(flat, stanford) -> PlaidIndex:
    return PlaidIndex.from_encoding(flat.docs, nbits=1, encoder=stanford)


def direct(query_vectors: torch.Tensor, doc_vectors: torch.Tensor) -> np.ndarray:
    """Cosine matrix by an explicit double loop over float64 numpy rows."""
    q, d = query_vectors.double().numpy(), doc_vectors.double().numpy()
    return np.array([[float(np.dot(qi, dj)) for dj in d] for qi in q])


def test_align_texts_equals_brute_force(stanford):
    alignment = align_texts(stanford, QUERY, PIECES)
    queries = stanford.encode_queries([QUERY])
    doc = stanford.encode_documents([PIECES], progress=False)
    sims = direct(queries.vectors_of(0), doc.vectors_of(0))
    np.testing.assert_allclose(alignment.similarity, sims, atol=1e-5)
    np.testing.assert_array_equal(alignment.best_doc_token, sims.argmax(axis=1))
    np.testing.assert_allclose(alignment.contributions, sims.max(axis=1), atol=1e-5)
    assert alignment.score == pytest.approx(sims.max(axis=1).sum(), abs=1e-4)
    assert alignment.score == pytest.approx(float(alignment.contributions.sum()), abs=1e-4)
    assert alignment.query_tokens == tuple(queries.tokens(0))
    assert alignment.doc_tokens == tuple(doc.tokens(0))


def test_labels_show_markers_masks_and_pieces(stanford):
    alignment = align_texts(stanford, QUERY, PIECES)
    queries = stanford.encode_queries([QUERY])
    assert queries.tokens(0)[1] == "[unused0]" and alignment.query_labels[1] == "[Q]"
    assert alignment.doc_tokens[1] == "[unused1]" and alignment.doc_labels[1] == "[D]"
    masks = queries.mask_positions(0).numpy()
    assert masks.sum() > 0
    np.testing.assert_array_equal(alignment.query_is_mask, masks)
    assert {alignment.query_labels[i] for i in np.flatnonzero(masks)} == {"[MASK]"}
    for token, label in zip(alignment.doc_tokens, alignment.doc_labels):
        if token.startswith("##"):
            assert label == "·" + token[2:]
    assert "·" not in "".join(merge_word_pieces(alignment).doc_labels)


def test_align_hit_flat_matches_index_scores_and_stored_vectors(flat, stanford):
    run = flat.search(QUERY, k=5)
    queries = stanford.encode_queries([QUERY])
    for hit in run.itertuples():
        alignment = align_hit(flat, QUERY, hit.docno)
        assert alignment.score == pytest.approx(hit.score, abs=1e-4)
        sims = direct(queries.vectors_of(0), flat.docs.item(hit.docno).vectors_of(0))
        np.testing.assert_array_equal(alignment.best_doc_token, sims.argmax(axis=1))
        np.testing.assert_allclose(alignment.contributions, sims.max(axis=1), atol=1e-5)
        assert alignment.docno == hit.docno and alignment.query == QUERY


def test_align_hit_plaid_uses_decompressed_vectors(plaid, stanford):
    run = plaid.search(QUERY, k=5)
    queries = stanford.encode_queries([QUERY])
    for hit in run.itertuples():
        alignment = align_hit(plaid, QUERY, hit.docno)
        assert alignment.score == pytest.approx(hit.score, abs=1e-4)
        _doc = plaid.document(hit.docno)
        vectors, token_ids = _doc.vectors, _doc.token_ids
        sims = direct(queries.vectors_of(0), vectors)
        np.testing.assert_allclose(alignment.similarity, sims, atol=1e-5)
        np.testing.assert_array_equal(alignment.best_doc_token, sims.argmax(axis=1))
        assert alignment.doc_tokens == tuple(plaid.vocab[t] for t in token_ids.tolist())


def test_align_hit_accepts_an_encoded_query(flat, stanford):
    queries = stanford.encode_queries([QUERY])
    docno = flat.docnos[3]
    from_encoding = align_hit(FlatIndex(flat.docs), queries, docno)
    np.testing.assert_allclose(from_encoding.similarity, align_hit(flat, QUERY, docno).similarity, atol=1e-6)


def test_reconstruction_cosine_is_one_for_flat_and_below_one_for_1bit_plaid(flat, plaid, texts, stanford):
    docno = flat.docnos[0]
    exact = align_hit(flat, QUERY, docno, document_text=texts[docno])
    np.testing.assert_allclose(exact.reconstruction_cosine, 1.0, atol=1e-4)

    compressed = align_hit(plaid, QUERY, docno, document_text=texts[docno])
    stored = plaid.document(docno).vectors
    fresh = stanford.encode_documents([texts[docno]], progress=False).vectors_of(0)
    expected = [
        float(np.dot(s, f) / np.linalg.norm(s) / np.linalg.norm(f))
        for s, f in zip(stored.numpy(), fresh.numpy())
    ]
    np.testing.assert_allclose(compressed.reconstruction_cosine, expected, atol=1e-5)
    assert compressed.reconstruction_cosine.max() <= 1.0 + 1e-5
    assert compressed.reconstruction_cosine.mean() < 0.99
    assert "reconstruction_cosine" in compressed.to_frame().columns


def test_document_text_that_does_not_match_the_index_is_refused(plaid):
    docno = plaid.docnos[2]
    with pytest.raises(ValueError, match=f"does not match document '{docno}'"):
        align_hit(plaid, QUERY, docno, document_text="something else entirely")


def test_bad_input_raises_value_errors_naming_the_problem(flat, plaid, stanford):
    with pytest.raises(ValueError, match="unknown docno 'no-such-doc'"):
        align_hit(flat, QUERY, "no-such-doc")
    with pytest.raises(ValueError, match="unknown docno 'no-such-doc'"):
        align_hit(plaid, QUERY, "no-such-doc")
    with pytest.raises(ValueError, match="query is empty"):
        align_hit(flat, "   ", flat.docnos[0])
    with pytest.raises(ValueError, match="query is empty"):
        align_texts(stanford, "", "some text")
    with pytest.raises(ValueError, match="document must be a string"):
        align_texts(stanford, QUERY, None)
    with pytest.raises(ValueError, match="needs an encoder"):
        align_hit(FlatIndex(flat.docs), QUERY, flat.docnos[0])
    with pytest.raises(ValueError, match="needs a lirlab index"):
        align_hit(object(), QUERY, "x")
    with pytest.raises(ValueError, match="context"):
        window(align_texts(stanford, QUERY, PIECES), context=-1)
    with pytest.raises(ValueError, match="dim"):
        align_vectors(torch.eye(3), torch.eye(2))


def test_deleted_document_is_refused(flat, stanford):
    small = PlaidIndex.from_encoding(flat.docs.select(range(12)), nbits=2, n_centroids=16)
    small.delete(small.docnos[4])
    with pytest.raises(ValueError, match=f"{small.docnos[4]!r} was deleted"):
        align_hit(small, stanford.encode_queries([QUERY]), small.docnos[4])


def test_merged_word_similarity_is_the_max_over_its_pieces(stanford, plaid, texts):
    alignment = align_texts(stanford, QUERY, PIECES)
    merged = merge_word_pieces(alignment)
    assert len(merged.doc_tokens) < len(alignment.doc_tokens)
    assert "Zooxanthellae" in merged.doc_labels  # as written, not as the uncased vocabulary writes it
    for row, (start, stop) in enumerate(merged.doc_spans):
        pieces = alignment.doc_tokens[start:stop]
        assert all(p.startswith("##") for p in pieces[1:])
        np.testing.assert_allclose(merged.similarity[:, row], alignment.similarity[:, start:stop].max(axis=1))
        assert merged.doc_tokens[row] == " ".join(pieces)
    starts, stops = merged.doc_spans[merged.best_doc_token].T
    assert np.all((starts <= alignment.best_doc_token) & (alignment.best_doc_token < stops))
    np.testing.assert_array_equal(merged.contributions, alignment.contributions)
    assert merged.score == alignment.score
    assert merged.query_labels == alignment.query_labels

    docno = plaid.docnos[1]
    compressed = align_hit(plaid, QUERY, docno, document_text=texts[docno])
    merged = merge_word_pieces(compressed)
    for row, (start, stop) in enumerate(merged.doc_spans):
        assert merged.reconstruction_cosine[row] == compressed.reconstruction_cosine[start:stop].min()


def test_merging_never_crosses_special_tokens_or_elisions():
    q = torch.tensor([[1.0, 0.0]])
    doc = torch.nn.functional.normalize(
        torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.5, 0.5], [1.0, 1.0]]), dim=1
    )
    alignment = align_vectors(q, doc, ["x"], ["[CLS]", "##a", "b", "##c", "##d"])
    assert merge_word_pieces(alignment).doc_labels == ("[CLS]", "·a", "bcd")
    windowed = window(alignment, context=0)
    assert windowed.doc_labels == ("[CLS]",)
    gapped = window(
        align_vectors(
            torch.tensor([[1.0, 0.0], [0.0, 1.0]]), doc, ["x", "y"], ["w", "##a", "b", "##c", "##d"]
        ),
        0,
    )
    assert gapped.doc_labels == ("w", "·a")
    assert merge_word_pieces(gapped).doc_labels == ("wa",)


@pytest.mark.parametrize("context", [0, 1, 3])
def test_window_keeps_every_matched_token_and_its_neighbours(flat, context):
    docno = max(flat.docnos, key=lambda d: len(flat.docs.item(d).vectors))
    alignment = align_hit(flat, QUERY, docno)
    windowed = window(alignment, context=context)
    matched = set(alignment.best_doc_token.tolist())
    expected = sorted(
        {
            r
            for m in matched
            for r in range(m - context, m + context + 1)
            if 0 <= r < len(alignment.doc_tokens)
        }
    )
    kept = windowed.doc_spans[:, 0].tolist()
    assert kept == expected
    assert len(kept) < len(alignment.doc_tokens)
    assert set(windowed.doc_spans[windowed.best_doc_token, 0].tolist()) == matched
    np.testing.assert_array_equal(windowed.similarity, alignment.similarity[:, expected])
    np.testing.assert_array_equal(windowed.contributions, alignment.contributions)
    assert windowed.doc_labels == tuple(alignment.doc_labels[r] for r in expected)
    gaps = [i for i in range(len(kept) + 1) if (kept + [len(alignment.doc_tokens)])[i] > ([-1] + kept)[i] + 1]
    assert np.flatnonzero(windowed.elided_before).tolist() == gaps


def test_frames_are_tidy_and_consistent(stanford):
    alignment = align_texts(stanford, QUERY, PIECES)
    frame = alignment.to_frame()
    n_query, n_doc = alignment.similarity.shape
    assert len(frame) == n_query * n_doc
    np.testing.assert_allclose(frame.similarity.to_numpy().reshape(n_query, n_doc), alignment.similarity)
    best = frame[frame.is_best]
    assert best.query_position.tolist() == list(range(n_query))
    np.testing.assert_allclose(best.similarity, alignment.contributions)
    matches = alignment.matches()
    assert matches.share.sum() == pytest.approx(1.0, abs=1e-5)
    assert matches.doc_label.tolist() == [alignment.doc_labels[j] for j in alignment.best_doc_token]
    with pytest.raises(ValueError):
        alignment.similarity[0, 0] = 5.0


def test_highlight_html_escapes_and_colours_by_serving_query_token():
    q = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    doc = torch.eye(3)
    alignment = align_vectors(
        q, doc, ['"><img src=x>', "hive"], ["<script>alert(1)</script>", "hive", "&amp"]
    )
    out = highlight_html(alignment)
    assert "<script>" not in out and "<img" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "&amp;amp" in out
    colors = query_colors(alignment)
    assert (
        f'solid {colors[1]};padding:0 2px;border-radius:3px" title="query token 1 hive: similarity 1.000">hive'
        in out
    )
    assert "…" not in out
    assert "…" in highlight_html(window(align_vectors(q, torch.eye(3)[[2, 2, 2, 0, 2, 2, 2]]), context=0))


def test_plot_alignment_renders_with_one_label_per_token(plaid, texts):
    docno = plaid.docnos[5]
    alignment = window(
        merge_word_pieces(align_hit(plaid, QUERY, docno, document_text=texts[docno])), context=1
    )
    figure = plot_alignment(alignment)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG")
    bars, heat, *others = figure.axes
    assert [t.get_text() for t in heat.get_xticklabels()] == list(alignment.query_labels)
    doc_labels = [t.get_text() for t in heat.get_yticklabels()]
    assert len(doc_labels) == len(alignment.doc_tokens)
    assert [label.replace("… ", "").replace(" …", "") for label in doc_labels] == list(alignment.doc_labels)
    assert sum("…" in label for label in doc_labels) == int(alignment.elided_before.sum())
    np.testing.assert_allclose([p.get_height() for p in bars.patches], alignment.contributions, atol=1e-6)
    assert len(others) == 2  # colour bar and reconstruction cosine

    plain = plot_alignment(align_vectors(torch.eye(2), torch.eye(2)))
    assert len(plain.axes) == 3
    with pytest.raises(ValueError, match="no tokens"):
        plot_alignment(align_vectors(torch.eye(2), torch.zeros(0, 2)))


def test_highlight_html_shows_every_query_token_a_word_serves():
    # query tokens 0 and 2 both match document token 1 best; query token 1 matches token 0
    q = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.9, 0.1]])
    alignment = align_vectors(q, torch.eye(3), ["bee", "hive", "bees"], ["honey", "bee", "wax"])
    out = highlight_html(alignment)
    colors = query_colors(alignment)
    shared = out[out.index('data-query-positions="0 2"') :].split("</span>")[0]
    assert shared.endswith(">bee")
    assert colors[0] in shared and colors[2] in shared and colors[1] not in shared
    assert "linear-gradient" in shared and shared.count("inset 0 -") == 2
    assert shared.index(colors[0]) < shared.index(colors[2])  # strongest similarity first
    alone = out[out.index('data-query-positions="1"') :].split("</span>")[0]
    assert alone.endswith(">honey") and "linear-gradient" not in alone and colors[1] in alone


def test_query_colours_never_repeat_however_long_the_query():
    n = 32
    labels = [f"w{i}" for i in range(n)] + ["[MASK]"] * 3
    alignment = align_vectors(torch.eye(n + 3), torch.eye(n + 3), labels)
    colors = query_colors(alignment)
    words = colors[:n]
    assert len(set(words)) == n
    assert all(c == "#9e9e9e" for c in colors[n:]) and "#9e9e9e" not in words
