"""PyTerrier transformers over lirlab indexes, on a slice of the demo corpus with the offline MiniLM weights.

The retriever is pinned to the index's own run, the re-ranker to exact MaxSim (exhaustive search when the
candidates are the whole corpus), the explainer's contributions to its scores, and ``pt.Experiment``'s
nDCG@10 to lirlab's own evaluation of the same run.
"""

from __future__ import annotations

import pandas as pd
import pytest
from ir_measures import R, nDCG

pt = pytest.importorskip("pyterrier")
pytest.importorskip("bm25s")

from lirlab.encoder import ColBERT  # noqa: E402
from lirlab.evaluate import evaluate  # noqa: E402
from lirlab.index.bm25 import BM25Index  # noqa: E402
from lirlab.index.flat import FlatIndex  # noqa: E402
from lirlab.integrations.pyterrier import explainer, qrels, reranker, retriever, topics  # noqa: E402
from tests.synthetic import demo_slice  # noqa: E402


@pytest.fixture(scope="module")
def demo():
    return demo_slice(80, 12)


@pytest.fixture(scope="module")
def flat(demo, minilm_dir):
    return FlatIndex.build(demo, ColBERT.load("minilm", device="cpu"), progress=False)


@pytest.fixture(scope="module")
def bm25(demo):
    return BM25Index.build(demo, progress=False)


@pytest.fixture(scope="module")
def texts(demo):
    return pd.DataFrame({"docno": [d.docno for d in demo.docs], "text": [d.full_text for d in demo.docs]})


def test_retriever_returns_the_index_run_with_pyterrier_ranks(demo, flat):
    few = topics(demo).head(4).assign(extra="kept")
    out = retriever(flat, k=5)(few)
    assert out.columns.tolist() == ["qid", "query", "extra", "docno", "score", "rank"]
    own = flat.search(few[["qid", "query"]], k=5)
    assert out[["qid", "docno"]].values.tolist() == own[["qid", "docno"]].values.tolist()
    assert out.score.tolist() == pytest.approx(own.score.tolist())
    assert out["rank"].tolist() == (own["rank"] - 1).tolist()  # PyTerrier ranks from 0
    assert (out.extra == "kept").all()


def test_rank_cutoff_fuses_into_k(demo, bm25):
    pipe = retriever(bm25, k=50) % 7
    out = pipe(topics(demo).head(3))
    assert out.groupby("qid").size().tolist() == [7, 7, 7]
    assert (
        out[["qid", "docno"]].values.tolist()
        == retriever(bm25, k=7)(topics(demo).head(3))[["qid", "docno"]].values.tolist()
    )


def test_rerank_of_the_whole_corpus_is_exhaustive_maxsim(demo, flat, bm25):
    few = topics(demo).head(5)
    pipe = retriever(bm25, k=len(demo.docs)) >> reranker(flat) % 10
    out = pipe(few)
    exact = flat.search(few, k=10)
    assert out[["qid", "docno"]].values.tolist() == exact[["qid", "docno"]].values.tolist()
    assert out.score.tolist() == pytest.approx(exact.score.tolist(), abs=1e-5)
    assert out.groupby("qid")["rank"].apply(list).tolist() == [list(range(10))] * 5


def test_rerank_from_the_text_column_matches_the_stored_vectors(demo, flat, bm25, texts):
    first = retriever(bm25, k=8)(topics(demo).head(3)).merge(texts, on="docno")
    by_index = reranker(flat)(first)
    on_the_fly = reranker(encoder=flat.encoder)(first)
    merged = by_index.merge(on_the_fly, on=["qid", "docno"], suffixes=("_index", "_text"))
    assert len(merged) == 24
    assert merged.score_index.tolist() == pytest.approx(merged.score_text.tolist(), abs=1e-4)


def test_explainer_adds_the_alignment(demo, flat):
    run = retriever(flat, k=3)(topics(demo).head(2))
    out = explainer(flat)(run)
    assert out[["qid", "docno", "score"]].values.tolist() == run[["qid", "docno", "score"]].values.tolist()
    assert out.maxsim.tolist() == pytest.approx(run.score.tolist(), abs=1e-4)
    for row in out.itertuples():
        assert len(row.query_tokens) == len(row.matched_tokens) == len(row.contributions)
        assert sum(row.contributions) == pytest.approx(row.maxsim, abs=1e-2)
        top = max(range(len(row.contributions)), key=lambda i: row.contributions[i])
        assert row.alignment.startswith(f"{row.query_tokens[top]}→{row.matched_tokens[top]} ")


def test_experiment_compares_bm25_maxsim_and_the_two_stage_pipeline(demo, flat, bm25):
    bm25_run = retriever(bm25, k=40)
    table = pt.Experiment(
        [bm25_run, retriever(flat, k=40), bm25_run % 20 >> reranker(flat)],
        topics(demo),
        qrels(demo),
        eval_metrics=[nDCG @ 10, R @ 20],
        names=["BM25", "MaxSim", "BM25 >> MaxSim"],
    )
    assert table.name.tolist() == ["BM25", "MaxSim", "BM25 >> MaxSim"]
    own = evaluate(flat.search(demo, k=40), demo.qrels, ["nDCG@10", "R@20"]).set_index("measure").value
    got = table.set_index("name").loc["MaxSim"]
    assert got["nDCG@10"] == pytest.approx(own["nDCG@10"], abs=1e-6)
    assert got["R@20"] == pytest.approx(own["R@20"], abs=1e-6)
    # re-ranking BM25's top 20 keeps its candidates, in another order (R@20 as ir_measures computes it
    # can still differ: it breaks BM25's score ties by docno, not by BM25's rank)
    first = (bm25_run % 20)(topics(demo))
    second = (bm25_run % 20 >> reranker(flat))(topics(demo))
    assert first.groupby("qid").docno.apply(set).equals(second.groupby("qid").docno.apply(set))


def test_clear_errors(demo, flat, texts):
    with pytest.raises(ValueError, match=r"needs the column\(s\) \['query'\]"):
        retriever(flat)(pd.DataFrame({"qid": ["1"]}))
    with pytest.raises(ValueError, match="takes a lirlab index"):
        retriever("not an index")
    with pytest.raises(ValueError, match="does not: re-rank with an index of the same corpus"):
        reranker(flat)(pd.DataFrame({"qid": ["1"], "query": ["bees"], "docno": ["nope"]}))
    with pytest.raises(ValueError, match=r"needs the column\(s\) \['text'\]"):
        reranker(encoder=flat.encoder)(pd.DataFrame({"qid": ["1"], "query": ["bees"], "docno": ["nope"]}))
    with pytest.raises(ValueError, match="pass index="):
        reranker()


def test_explainer_labels_tokens_as_written(demo, flat, texts):
    run = retriever(flat, k=2)(topics(demo).head(3)).merge(texts, on="docno")
    out = explainer(flat)(run)
    for row in out.itertuples():
        labels = [*row.query_tokens, *row.matched_tokens]
        assert not any(label.startswith("##") for label in labels)
        words = [label for label in row.query_tokens if label.isalpha()]
        assert words and all(word in row.query for word in words)  # the query's own characters
