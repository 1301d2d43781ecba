"""Document length and MaxSim: rows checked by hand, MeanMaxSim against Sentence Transformers 6's own."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lirlab.analysis.doc_lengths import (
    doc_length_scores,
    length_normalised_quality,
    length_score_correlation,
    mean_maxsim,
    score_by_doc_length,
)
from lirlab.data import Dataset, Query
from lirlab.encoding import Encoding, offsets_from_lengths
from lirlab.index.flat import FlatIndex
from tests.synthetic import random_encoding


def packed(ids, items, kind="document") -> Encoding:
    vectors = torch.tensor([row for item in items for row in item], dtype=torch.float32)
    return Encoding(
        ids=tuple(ids),
        vectors=vectors,
        token_ids=torch.zeros(len(vectors), dtype=torch.long),
        offsets=offsets_from_lengths(torch.tensor([len(item) for item in items])),
        vocab=("t",),
        kind=kind,
        truncated=tuple(len(item) == 3 for item in items) if kind == "document" else (),
    )


# a: 1 token, b: 2, c: 3 (c "cut" by the encoder); every vector a unit vector
DOCS = packed("abc", [[[1, 0]], [[0.6, 0.8], [0, 1]], [[1, 0], [0, 1], [0.8, 0.6]]])
QUERIES = packed(["q1", "q2"], [[[1, 0], [0, 1]], [[0.6, 0.8]]], kind="query")
# MaxSim by hand:  q1: a 1 + 0 = 1,  b 0.6 + 1 = 1.6,  c 1 + 1 = 2      -> c, b, a
#                  q2: a 0.6,        b 1.0,            c 0.96          -> b, c, a
QRELS = pd.DataFrame({"query_id": ["q1", "q1", "q2"], "doc_id": ["a", "b", "c"], "relevance": [1, 0, 2]})
DATASET = Dataset("hand", (), (Query("q1", "one"), Query("q2", "two")), QRELS)


def test_rows_hold_the_top_k_and_every_relevant_document_with_its_true_rank():
    rows = doc_length_scores(None, DATASET, DOCS, k=1, queries=QUERIES, progress=False)
    got = rows.assign(score=rows.score.round(6)).values.tolist()
    assert got == [
        ["q1", "c", 3, 2, 2.0, False, 1, True],
        ["q1", "a", 1, 2, 1.0, True, 3, False],  # relevant, kept from rank 3
        ["q2", "b", 2, 1, 1.0, False, 1, False],
        ["q2", "c", 3, 1, 0.96, True, 2, True],
    ]
    every = doc_length_scores(None, DATASET, DOCS, k=None, queries=QUERIES, progress=False)
    assert len(every) == 6 and every.groupby("qid")["rank"].apply(list).tolist() == [[1, 2, 3]] * 2
    assert every.set_index(["qid", "docno"]).score.round(6).to_dict()[("q1", "b")] == 1.6
    with pytest.raises(ValueError, match="k must be"):
        doc_length_scores(None, DATASET, DOCS, k=0, queries=QUERIES, progress=False)


def test_quality_of_each_scoring_by_hand():
    rows = doc_length_scores(None, DATASET, DOCS, k=None, queries=QUERIES, progress=False)
    quality = length_normalised_quality(rows, QRELS, alphas=(0.5,), measures=("RR", "P@1")).set_index(
        "scoring"
    )
    # MaxSim: q1's relevant a at rank 3, q2's c at rank 2
    assert quality.loc["MaxSim", "RR"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    # over doc_tokens^0.5: q1 c 1.155, b 1.131, a 1.0 (unchanged); q2 b 0.707, a 0.6, c 0.554
    assert quality.loc["MaxSim / doc_tokens^0.5", "RR"] == pytest.approx((1 / 3 + 1 / 3) / 2)
    assert quality.loc["MaxSim / doc_tokens^0.5", "top10_doc_tokens"] == pytest.approx(2.0)
    assert quality.loc["MaxSim / doc_tokens^0.5", "alpha"] == 0.5
    # MeanMaxSim divides by the query's length: nothing moves
    assert quality.loc["MeanMaxSim", "RR"] == quality.loc["MaxSim", "RR"]
    assert quality.loc["MeanMaxSim", "top10_overlap"] == 1.0


def test_relevant_rows_past_the_top_k_are_not_ranked_again():
    rows = doc_length_scores(None, DATASET, DOCS, k=1, queries=QUERIES, progress=False)
    with pytest.raises(ValueError, match="past their top k"):
        length_normalised_quality(rows, QRELS)
    top = length_normalised_quality(rows, QRELS, depth=1, measures=("P@1",)).set_index("scoring")
    assert top.loc["MaxSim", "P@1"] == 0.0  # c for q1 and b for q2: neither relevant


def test_mean_maxsim_is_sentence_transformers_6s_and_changes_no_ranking():
    similarity = pytest.importorskip("sentence_transformers.util.similarity")
    docs = random_encoding(7, seed=1, dim=8)
    queries = random_encoding(3, seed=2, dim=8, kind="query", prefix="q")
    dataset = Dataset(
        "random",
        (),
        tuple(Query(q, q) for q in queries.ids),
        pd.DataFrame({"query_id": list(queries.ids), "doc_id": ["d0", "d3", "d5"], "relevance": 1}),
    )
    rows = doc_length_scores(None, dataset, docs, k=None, queries=queries, progress=False)
    q_list = [queries.vectors_of(i) for i in range(len(queries))]
    d_list = [docs.vectors_of(i) for i in range(len(docs))]
    theirs = similarity.mean_maxsim(q_list, d_list)
    also = similarity.maxsim(q_list, d_list, length_normalize=True)
    plain = similarity.maxsim(q_list, d_list)
    ours = rows.assign(mean=mean_maxsim(rows).to_numpy())
    for i, qid in enumerate(queries.ids):
        mine = ours[ours.qid == qid].set_index("docno")
        expected = pd.Series(theirs[i].numpy(), index=docs.ids)
        np.testing.assert_allclose(mine["mean"].reindex(docs.ids), expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(also[i], theirs[i])
        np.testing.assert_allclose(mine.score.reindex(docs.ids), plain[i].numpy(), rtol=1e-5, atol=1e-6)
        # the same order: a query's scores are all divided by its own token count
        assert (
            np.argsort(-theirs[i].numpy(), kind="stable").tolist()
            == np.argsort(-plain[i].numpy(), kind="stable").tolist()
        )
    quality = length_normalised_quality(rows, dataset, alphas=()).set_index("scoring")
    assert quality.loc["MeanMaxSim", "nDCG@10"] == quality.loc["MaxSim", "nDCG@10"]
    assert quality.loc["MeanMaxSim", "top10_overlap"] == 1.0


def test_correlation_is_spearmans_per_query():
    stats = pytest.importorskip("scipy.stats")
    g = np.random.default_rng(0)
    rows = pd.DataFrame(
        {
            "qid": np.repeat(["q1", "q2", "q3"], 20),
            "doc_tokens": g.integers(5, 40, 60),
            "score": np.round(g.normal(size=60), 1),  # ties on both sides
            "relevant": np.tile([True] * 2 + [False] * 18, 3),
            "rank": np.tile(np.arange(1, 21), 3),
        }
    )
    table = length_score_correlation(rows, depths=(None, 10)).set_index(["depth", "relevant"])
    expected = [
        stats.spearmanr(g_.score, g_.doc_tokens).statistic for _, g_ in rows[~rows.relevant].groupby("qid")
    ]
    assert table.loc[("all", False), "mean_spearman"] == pytest.approx(np.mean(expected))
    assert table.loc[("all", False), "median_spearman"] == pytest.approx(np.median(expected))
    assert table.loc[("all", False), "positive_share"] == pytest.approx(np.mean(np.array(expected) > 0))
    assert table.loc[("all", False), "pairs"] == 54
    assert table.loc[("all", True), "queries"] == 0  # two relevant documents a query: too few
    assert table.loc[("10", False), "pairs"] == 24
    assert table.loc[("10", False), "mean_doc_tokens"] == pytest.approx(
        rows[(rows["rank"] <= 10) & ~rows.relevant].doc_tokens.mean()
    )


def test_bins_average_their_pairs():
    rows = doc_length_scores(None, DATASET, DOCS, k=None, queries=QUERIES, progress=False)
    binned = score_by_doc_length(rows, bins=(0, 1, 3)).set_index(["length_bin", "relevant"])
    long_irrelevant = rows[(rows.doc_tokens > 1) & ~rows.relevant]
    assert binned.loc[("(1, 3]", False), "pairs"] == len(long_irrelevant) == 3
    assert binned.loc[("(1, 3]", False), "mean_score"] == pytest.approx(long_irrelevant.score.mean())
    assert binned.loc[("(1, 3]", False), "truncated"] == 1
    centered = rows.score - rows.groupby("qid").score.transform("mean")
    assert binned.loc[("(0, 1]", True), "score_vs_query_mean"] == pytest.approx(
        centered[(rows.doc_tokens == 1) & rows.relevant].mean()
    )
    assert binned.loc[("(1, 3]", True), "mean_meanmaxsim"] == pytest.approx(0.96)


def test_rows_agree_with_the_index_search_on_the_demo(stanford):
    from lirlab import data

    demo = data.load("demo").slice(max_queries=6, max_docs=40)
    index = FlatIndex.build(demo.docs, stanford, progress=False)
    rows = doc_length_scores(stanford, demo, index, k=5, progress=False)
    run = index.search(demo, k=5)
    top = rows[rows["rank"] <= 5]
    assert top[["qid", "docno", "rank"]].values.tolist() == run[["qid", "docno", "rank"]].values.tolist()
    np.testing.assert_allclose(top.score, run.score, rtol=1e-6)
    lengths = dict(zip(index.docnos, index.documents().lengths.tolist()))
    assert (rows.doc_tokens == rows.docno.map(lengths)).all()
    judged = demo.qrels[demo.qrels.relevance > 0]
    assert set(zip(judged.query_id, judged.doc_id)) <= set(zip(rows.qid, rows.docno))
