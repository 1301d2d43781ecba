"""BM25 (bm25s) and BM25 → exact MaxSim re-ranking under the retriever protocol.

Scores are pinned against the BM25 formula computed by hand here; re-ranking against brute-force MaxSim
over the candidates; the protocol through save/load by metadata type and a sweep.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace

import pytest
import torch

pytest.importorskip("bm25s")

from lirlab.analysis.sweeps import sweep  # noqa: E402
from lirlab.index.base import UnknownKnobError, index_kind, load_index  # noqa: E402
from lirlab.index.bm25 import BM25Index, BM25RerankIndex  # noqa: E402
from lirlab.index.flat import FlatIndex  # noqa: E402
from lirlab.maxsim import maxsim_pair  # noqa: E402
from tests.synthetic import random_encoding  # noqa: E402

CORPUS = [
    "apple banana apple cherry",
    "banana banana durian",
    "cherry elder fig grape honeydew kiwi",
    "apple",
    "fig fig fig banana",
    "kiwi lemon mango",
]
QUERIES = ["apple banana", "fig kiwi kiwi", "banana", "zucchini", "cherry grape mango apple"]
PLAIN = {"stopwords": "none", "stemmer": "none"}


def hand_bm25(corpus: list[str], query: str, k1: float, b: float) -> list[float]:
    """Lucene BM25 (bm25s's default variant): sum over query words (repeats counted) of
    ln(1 + (N - df + 0.5) / (df + 0.5)) * tf / (tf + k1 * (1 - b + b * dl / avgdl))."""
    docs = [Counter(text.split()) for text in corpus]
    lengths = [sum(d.values()) for d in docs]
    avgdl = sum(lengths) / len(docs)
    n = len(docs)
    scores = []
    for doc, dl in zip(docs, lengths):
        total = 0.0
        for word in query.split():
            df = sum(word in d for d in docs)
            if not df or not doc[word]:
                continue
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            tf = doc[word]
            total += idf * tf / (tf + k1 * (1 - b + b * dl / avgdl))
        scores.append(total)
    return scores


def with_texts(encoding, texts):
    return replace(encoding, texts=tuple(texts))


@pytest.fixture
def docs():
    """Six documents: random token vectors with the fruit texts attached."""
    return with_texts(random_encoding(len(CORPUS), seed=3), CORPUS)


@pytest.fixture
def queries():
    return with_texts(random_encoding(len(QUERIES), seed=4, kind="query", prefix="q"), QUERIES)


@pytest.mark.parametrize("k1,b", [(1.2, 0.75), (0.9, 0.4), (2.0, 1.0)])
def test_scores_equal_the_bm25_formula_by_hand(k1, b):
    index = BM25Index.from_texts([f"d{i}" for i in range(len(CORPUS))], CORPUS, k1=k1, b=b, **PLAIN)
    for query in QUERIES:
        expected = hand_bm25(CORPUS, query, k1, b)
        run = index.search([query], k=len(CORPUS))
        got = dict(zip(run.docno, run.score))
        for i, score in enumerate(expected):
            assert got[f"d{i}"] == pytest.approx(score, rel=1e-5, abs=1e-6), (query, i)
        assert list(run.score) == sorted(run.score, reverse=True)


def test_stemming_and_stop_words_apply_to_documents_and_queries():
    index = BM25Index.from_texts(["a", "b"], ["the runners were running", "a quiet walk"])
    run = index.search(["RUN"], k=2)
    assert run.docno.iloc[0] == "a" and run.score.iloc[0] > 0 and run.score.iloc[1] == 0
    assert index.search(["the was it"], k=2).score.tolist() == [0.0, 0.0]  # stop words only
    plain = BM25Index.from_texts(["a", "b"], ["the runners were running", "a quiet walk"], **PLAIN)
    assert plain.search(["run"], k=2).score.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_rerank_equals_exact_maxsim_over_the_bm25_candidates(docs, queries, depth):
    index = BM25RerankIndex.from_encoding(docs, **PLAIN)
    k = 2
    hits = index.search_encoded(queries, k=k, depth=depth)
    for qi, query in enumerate(QUERIES):
        bm25 = hand_bm25(CORPUS, query, 1.2, 0.75)
        # candidates: the best max(depth, k) by BM25 (ties by position, as a stable sort gives them)
        candidates = sorted(range(len(CORPUS)), key=lambda d: (-bm25[d], d))[: max(depth, k)]
        exact = {d: float(maxsim_pair(queries.vectors_of(qi), docs.vectors_of(d))) for d in candidates}
        expected = sorted(candidates, key=lambda d: -exact[d])[:k]
        positions, scores = hits[qi]
        assert positions.tolist() == expected, (query, depth)
        assert scores.tolist() == pytest.approx([exact[d] for d in expected], abs=1e-5)


def test_depth_past_the_corpus_is_exhaustive_maxsim(docs, queries):
    index = BM25RerankIndex.from_encoding(docs, **PLAIN)
    exact = FlatIndex(docs).search(queries, k=4)
    run = index.search(queries, k=4, depth=1000)
    assert run[["qid", "docno"]].values.tolist() == exact[["qid", "docno"]].values.tolist()
    assert run.score.tolist() == pytest.approx(exact.score.tolist(), abs=1e-5)


def test_never_fewer_than_k_results(docs, queries):
    run = BM25RerankIndex.from_encoding(docs, **PLAIN).search(queries, k=5, depth=1)
    assert run.groupby("qid").size().tolist() == [5] * len(QUERIES)
    bm25 = BM25Index.from_encoding(docs, **PLAIN).search(queries, k=6)  # "zucchini" matches nothing
    assert bm25.groupby("qid").size().tolist() == [6] * len(QUERIES)


def test_protocol_documents_and_save_load_by_type(docs, queries, tmp_path):
    for cls in (BM25Index, BM25RerankIndex):
        index = cls.from_encoding(docs, k1=0.9, b=0.4, **PLAIN)
        assert index_kind(cls.KIND) is cls and index.dim == docs.dim
        held = index.documents([4, 1])
        assert held.ids == ("d4", "d1")
        assert torch.equal(held.vectors, docs.select([4, 1]).vectors)
        before = index.search(queries, k=3)
        index.save(tmp_path / cls.KIND)
        loaded = load_index(tmp_path / cls.KIND)
        assert type(loaded) is cls and loaded.docnos == docs.ids
        assert (loaded.k1, loaded.b, loaded.stemmer) == (0.9, 0.4, "none")
        assert torch.equal(loaded.documents().vectors, docs.vectors)
        after = loaded.search(queries, k=3)
        assert after[["qid", "docno"]].values.tolist() == before[["qid", "docno"]].values.tolist()
        assert after.score.tolist() == pytest.approx(before.score.tolist())


def test_text_only_index_saves_without_vectors(tmp_path):
    index = BM25Index.build(["apple pie", "banana split"], stemmer="none")
    assert index.n_vectors() == 0 and index.describe()["vectors"] == 0
    with pytest.raises(ValueError, match="holds no token vectors"):
        index.documents()
    index.save(tmp_path / "bm25")
    loaded = load_index(tmp_path / "bm25")
    assert loaded.search(["banana"], k=1).docno.tolist() == ["1"]


def test_clear_errors(docs, queries):
    with pytest.raises(ValueError, match="needs the documents' texts"):
        BM25Index.from_encoding(replace(docs, texts=()))
    with pytest.raises(ValueError, match="needs the documents' token vectors"):
        BM25RerankIndex.from_texts(["a"], ["apple"])
    with pytest.raises(ValueError, match="needs an encoder"):
        BM25RerankIndex.build(["apple"])
    index = BM25RerankIndex.from_encoding(docs, **PLAIN)
    with pytest.raises(ValueError, match="needs the query texts"):
        index.search_encoded(replace(queries, texts=()), k=2)
    with pytest.raises(UnknownKnobError, match="takes depth"):
        index.search_encoded(queries, k=2, cutoff=3)
    with pytest.raises(ValueError, match="depth must be >= 1"):
        index.search_encoded(queries, k=2, depth=0)
    with pytest.raises(ValueError, match="k1 must be"):
        BM25Index.from_encoding(docs, k1=-1.0)
    with pytest.raises(ValueError, match="stemmer must be one of"):
        BM25Index.from_encoding(docs, stemmer="klingon")


def test_in_a_sweep_beside_exhaustive(docs, queries):
    table = sweep(
        docs,
        queries,
        methods=[("flat", {}), ("bm25", {}), ("bm25_rerank", {"depth": [1, 3, 100]})],
        build={"stemmer": "none", "stopwords": "none"},
        k=2,
        warmup=0,
        progress=False,
    )
    assert table.method.tolist() == ["flat", "bm25", "bm25_rerank", "bm25_rerank", "bm25_rerank"]
    recall = table["exhaustive_recall@2"].tolist()
    assert recall[0] == 1.0 and recall[-1] == 1.0  # depth past the corpus: exhaustive
    assert recall[2] <= recall[3] <= recall[4]
    assert {"bm25_p50_ms", "maxsim_rerank_p50_ms"} <= set(table.columns)


@pytest.mark.parametrize(
    "texts, problem",
    [
        ([], "no documents"),
        (["", "   "], "none of the 2 documents has a word"),
        (["the of and", "is it"], "none of the 2 documents has a word"),
    ],
)
def test_nothing_to_index_is_one_clear_line(texts, problem):
    """bm25s itself fails with "max() arg is an empty sequence" on these."""
    with pytest.raises(ValueError, match=problem) as refused:
        BM25Index.from_texts([str(i) for i in range(len(texts))], texts, stemmer="none")
    assert "\n" not in str(refused.value) and ("stopwords=" in str(refused.value)) == bool(texts)
    empty = random_encoding(0, seed=0)
    with pytest.raises(ValueError, match="no documents"):
        BM25RerankIndex.from_encoding(replace(empty, texts=()))


@pytest.mark.parametrize("file", ["offsets", "bm25s.indptr.csc.index", "bm25s.indices.csc.index"])
@pytest.mark.parametrize("damage", ["negative", "huge"])
def test_a_damaged_folder_fails_at_load_with_verification_off(docs, file, damage, tmp_path):
    """Structural checks run whether or not the files are hashed: before, a damaged offsets array loaded
    and failed at search."""
    import numpy as np

    from lirlab.storage import ArtifactError

    BM25RerankIndex.from_encoding(docs, **PLAIN).save(tmp_path / "b")
    path = tmp_path / "b" / f"{file}.npy"
    values = np.load(path)
    values[len(values) // 2] = -3 if damage == "negative" else np.iinfo(values.dtype).max // 4
    np.save(path, values)
    with pytest.raises(ArtifactError, match=file.replace(".", r"\.")):
        load_index(tmp_path / "b", verify=False)
