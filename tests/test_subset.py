"""Per-query document filtering (``subset=``) through the protocol, for every index kind."""

from __future__ import annotations

import warnings
from dataclasses import replace

import pytest
import torch

from lirlab import data
from lirlab.index import index_kind
from lirlab.index.base import FewerResultsWarning
from lirlab.maxsim import maxsim_pair

KINDS = {
    "flat": {},
    "plaid": {"nbits": 2, "n_centroids": 32},
    "warp": {"nbits": 2, "n_centroids": 32},
    "muvera": {},
    "bm25": {},
    "bm25_rerank": {},
}


@pytest.fixture(scope="module")
def demo():
    dataset = data.load("demo")
    return dataset, dataset.docs[:60]


@pytest.fixture(scope="module")
def docs(stanford, demo):
    _, documents = demo
    encoded = stanford.encode_documents(documents, progress=False)
    return replace(encoded, texts=tuple(d.full_text for d in documents))


@pytest.fixture(scope="module")
def queries(stanford, demo):
    dataset, _ = demo
    return stanford.encode_queries(dataset.queries[:3])


@pytest.fixture(scope="module", params=list(KINDS))
def index(request, docs, stanford):
    return index_kind(request.param).from_encoding(docs, encoder=stanford, **KINDS[request.param])


def test_results_come_from_the_subset_only_ranked_by_the_kind_s_own_scores(index, docs, queries):
    allowed = {docs.ids[i] for i in (3, 10, 11, 25, 40, 59)}
    hits = index.search_encoded(queries, k=4, subset=allowed)
    for qi, (positions, scores) in enumerate(hits):
        assert len(positions) == 4 and {index.docnos[p] for p in positions.tolist()} <= allowed
        assert scores.tolist() == sorted(scores.tolist(), reverse=True)
        if index.KIND in ("flat", "bm25_rerank", "muvera"):  # exact MaxSim over the encoded vectors
            for p, score in zip(positions.tolist(), scores.tolist()):
                expected = maxsim_pair(queries.vectors_of(qi), docs.vectors_of(p))
                assert score == pytest.approx(float(expected), abs=1e-4)
    # the best of the subset under the kind's scores is first
    full = index.score_positions(queries.select([0]), torch.arange(len(docs)))[0]
    best = max(allowed, key=lambda d: float(full[docs.ids.index(d)]))
    assert index.docnos[int(hits[0][0][0])] == best


def test_per_query_subsets_predicates_and_short_subsets(index, docs, queries):
    per_query = {
        queries.ids[0]: [docs.ids[1]],
        queries.ids[1]: [docs.ids[2], docs.ids[5]],
        queries.ids[2]: [],
    }
    hits = index.search_encoded(queries, k=3, subset=per_query)
    assert [[index.docnos[p] for p in h[0].tolist()] for h in hits][0] == [docs.ids[1]]
    assert set(index.docnos[p] for p in hits[1][0].tolist()) == {docs.ids[2], docs.ids[5]}
    assert len(hits[2][0]) == 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = index.search(queries, k=3, subset=per_query)
    assert any(issubclass(w.category, FewerResultsWarning) and "subset" in str(w.message) for w in caught)
    assert len(run) == 3
    picked = index.search_encoded(queries.select([0]), k=50, subset=lambda docno: docno.startswith("bees"))
    names = [index.docnos[p] for p in picked[0][0].tolist()]
    assert names and all(n.startswith("bees") for n in names)


@pytest.mark.parametrize(
    "subset, message",
    [
        (["no-such-doc"], "does not hold, first: 'no-such-doc'"),
        ("bees-01", "not one string"),
        ({"other-qid": ["bees-01"]}, "gives no documents for query"),
    ],
)
def test_bad_subsets_are_one_clear_line(index, queries, subset, message):
    with pytest.raises(ValueError, match=message) as info:
        index.search_encoded(queries, k=3, subset=subset)
    assert "\n" not in str(info.value)
