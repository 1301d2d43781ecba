"""Run comparison: entered/left documents, relevance, exact scores and token matches, pinned by hand."""

from __future__ import annotations

import io
import math

import pandas as pd
import pytest
import torch
from matplotlib.colors import to_rgba

from lirlab.analysis.compare import compare_runs
from lirlab.encoding import Encoding
from lirlab.index.flat import FlatIndex
from lirlab.index.pooling import pool_encoding
from lirlab.plots.compare import COLOURS, plot_run_comparison
from lirlab.widgets import png_size


def run(qid, docnos, scores=None):
    scores = scores or [float(len(docnos) - i) for i in range(len(docnos))]
    return pd.DataFrame(
        {"qid": qid, "query": "x", "docno": docnos, "score": scores, "rank": list(range(1, len(docnos) + 1))}
    )


def test_entered_left_and_relevance_per_query():
    a = pd.concat([run("1", ["a", "b", "c", "d"]), run("2", ["x", "y"])])
    b = pd.concat([run("1", ["b", "e", "a", "f"]), run("2", ["y", "x"])])
    qrels = pd.DataFrame({"query_id": ["1", "1", "1"], "doc_id": ["e", "c", "f"], "relevance": [2, 1, 0]})
    c = compare_runs(a, b, qrels=qrels, k=3)
    one = c.documents[c.documents.qid == "1"].set_index("docno")
    assert one.change.to_dict() == {"a": "stayed", "b": "stayed", "c": "left", "e": "entered"}
    assert one.relevance["e"] == 2.0 and one.relevance["c"] == 1.0 and math.isnan(one.relevance["a"])
    assert one.rank_b["a"] == 3 and math.isnan(one.rank_b["c"])
    q = c.queries.set_index("qid")
    assert q.loc["1", ["entered", "left", "entered_relevant", "left_relevant"]].tolist() == [1, 1, 1, 1]
    assert q.loc["2", "overlap"] == 1.0 and q.loc["1", "overlap"] == pytest.approx(2 / 3)
    assert c.busiest_query() == "1"
    assert c.summary()["queries_changed"] == 1


def test_exact_scores_and_token_matches_under_each_index():
    # one query token that matches "near" exactly; pooling merges "near" with "far" and moves the match
    vocab = ("##near", "far", "other")  # a word piece: labelled as every view labels it
    vectors = torch.nn.functional.normalize(
        torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.9, 0.1], [0.0, 0.0, 1.0]]), dim=1
    )
    docs = Encoding(
        ids=("d0", "d1"),
        vectors=vectors,
        token_ids=torch.tensor([0, 1, 1, 2]),
        offsets=torch.tensor([0, 2, 4]),
        vocab=vocab,
    )
    queries = Encoding(
        ids=("q",),
        vectors=torch.tensor([[1.0, 0.0, 0.0]]),
        token_ids=torch.tensor([0]),
        offsets=torch.tensor([0, 1]),
        vocab=vocab,
        kind="query",
    )
    exact = FlatIndex(docs)
    pooled_docs, _ = pool_encoding(docs, 2, protect=())
    pooled = FlatIndex(pooled_docs)
    a = exact.search(queries, k=1)
    b = run("q", ["d1"], [0.0])
    c = compare_runs(a, b, k=1, exact=exact, queries=queries, index_a=exact, index_b=pooled)
    rows = c.documents.set_index("docno")
    assert rows.exact_score["d0"] == pytest.approx(1.0) and rows.exact_score["d1"] == pytest.approx(0.0)
    tokens = c.tokens.set_index("docno")
    assert tokens.loc["d0", "match_a"] == "·near" and tokens.loc["d0", "contribution_a"] == pytest.approx(1.0)
    # pooled d0 is one vector, the mean of near and far: cosine 1/sqrt(2)
    assert tokens.loc["d0", "contribution_b"] == pytest.approx(2**-0.5)
    assert bool(tokens.loc["d0", "changed"])


def test_errors():
    with pytest.raises(ValueError, match="missing rank"):
        compare_runs(pd.DataFrame({"qid": [], "docno": [], "score": []}), run("1", ["a"]))
    with pytest.raises(ValueError, match="k must be"):
        compare_runs(run("1", ["a"]), run("1", ["a"]), k=0)
    with pytest.raises(ValueError, match="pass queries="):
        compare_runs(run("1", ["a"]), run("1", ["a"]), exact=object())


def test_figure_draws_the_comparison():
    c = compare_runs(run("1", ["a", "b"]), run("1", ["b", "c"]), k=2, names=("exact", "warp"))
    figure = plot_run_comparison(c)
    assert figure.axes[0].get_title() == "query 1: top-2, exact → warp"
    assert "1 (0 relevant)" in [t.get_text() for t in figure.axes[1].texts]


def busy_comparison():
    """Ten queries of a top-10 where many documents move (the counts reach the top of their bars)."""
    before = pd.concat([run(str(q), [f"doc-{q}-{i}" for i in range(10)]) for q in range(10)])
    after = pd.concat([run(str(q), [f"doc-{q}-{i}" for i in range(3, 13)]) for q in range(10)])
    qrels = pd.DataFrame({"query_id": ["1"], "doc_id": ["doc-1-11"], "relevance": [1]})
    return compare_runs(before, after, qrels=qrels, k=10, names=("exact", "warp"))


def test_figure_fits_the_notebook_column_with_readable_docnos_and_a_true_legend():
    figure = plot_run_comparison(busy_comparison())
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")  # as a notebook shows it
    width, height = png_size(buffer.getvalue())
    assert width <= 993 and height <= 757, (width, height)
    left, right = figure.axes
    docnos = [t for t in left.texts if t.get_text().startswith("doc-")]
    assert docnos and min(t.get_fontsize() for t in docnos) * 100 / 72 >= 10, "docnos under 10 px"
    counts = [t for t in right.texts if "relevant)" in t.get_text()]
    assert {t.get_text() for t in counts} == {"30 (1 relevant)", "30 (0 relevant)"}
    legend = right.get_legend() or figure.legends[0]
    figure.draw_without_rendering()
    box = legend.get_window_extent()
    for text in counts:
        assert not box.overlaps(text.get_window_extent()), f"the legend covers {text.get_text()!r}"
    # the swatches stand for what both bars share (all documents / judged relevant), not for one colour
    swatches = [to_rgba(p.get_facecolor()) for p in legend.get_patches()]
    bar_colours = {to_rgba(COLOURS["entered"])[:3], to_rgba(COLOURS["left"])[:3]}
    assert len(swatches) == 2 and not {s[:3] for s in swatches} & bar_colours
    assert swatches[0][3] < swatches[1][3], "the 'all' swatch is as faint as the 'all' bars"
