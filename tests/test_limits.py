"""LIMIT-style collections and the single- against multi-vector curves on them."""

from __future__ import annotations

import itertools
import re

import pytest
import torch

from lirlab.analysis.limits import (
    MEASURES,
    REPRESENTATIONS,
    limit_collection,
    mean_pooled,
    single_vs_multi_vector,
)
from lirlab.encoding import Encoding


def test_every_pair_of_the_core_answers_exactly_one_query():
    collection = limit_collection(n_docs=30, n_core=6, seed=3)
    assert len(collection.docs) == 30 and len(collection.queries) == 15
    relevant = collection.qrels.groupby("query_id").doc_id.apply(frozenset)
    core = set(collection.qrels.doc_id)
    assert len(core) == 6
    assert set(relevant) == {frozenset(p) for p in itertools.combinations(core, 2)}
    text = {d.docno: d.text for d in collection.docs}
    for query in collection.queries:
        thing = query.text.removeprefix("Who likes ").removesuffix("?")
        likers = {docno for docno, t in text.items() if re.search(rf"\b{thing}\b", t)}
        assert likers == relevant[query.qid]  # the text says so, and nobody else likes it
    core_doc = text[next(iter(core))]
    assert core_doc.count(",") + 2 == 5  # n_core - 1 things ("a, b, c and d."): one per pair
    again = limit_collection(n_docs=30, n_core=6, seed=3)
    assert (again.docs, again.queries) == (collection.docs, collection.queries)
    assert again.qrels.equals(collection.qrels)
    assert limit_collection(n_docs=30, n_core=6, seed=4).docs != collection.docs


def test_bad_knobs_are_refused_in_one_line():
    with pytest.raises(ValueError, match="n_core .* must be at most n_docs"):
        limit_collection(n_docs=3, n_core=5)
    with pytest.raises(ValueError, match="n_core"):
        limit_collection(n_core=1)


def test_mean_pooling_by_hand():
    vectors = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 4.0]])
    encoding = Encoding(("a", "b"), vectors, torch.zeros(3, dtype=torch.long), torch.tensor([0, 2, 3]), {})
    torch.testing.assert_close(
        mean_pooled(encoding), torch.tensor([[0.7071, 0.7071], [0.6, 0.8]]), atol=1e-4, rtol=0
    )


def test_curves_rank_each_representation_as_a_direct_computation_does(stanford):
    collection = limit_collection(n_docs=40, n_core=5, seed=1)
    curve = single_vs_multi_vector(
        stanford, collection, sizes=(10, 40), fde_dims=(64,), k=100, progress=False
    )
    assert list(curve.columns) == ["n_docs", "representation", "dim", *MEASURES, "truncated_docs"]
    assert list(zip(curve.n_docs, curve.representation)) == [
        (n, r) for n in (10, 40) for r in REPRESENTATIONS
    ]
    assert curve[list(MEASURES)].stack().between(0, 1).all()
    assert (curve[curve.n_docs == 10]["R@100"] == 1.0).all()  # every document is retrieved
    # recall at 2 by hand for the mean-pooled vectors of the whole collection
    queries, docs = (
        stanford.encode_queries(collection.queries),
        stanford.encode_documents(collection.docs, progress=False),
    )
    scores = mean_pooled(queries) @ mean_pooled(docs).T
    relevant = collection.qrels.groupby("query_id").doc_id.apply(set)
    by_hand = sum(
        len({docs.ids[j] for j in scores[i].topk(2).indices.tolist()} & relevant[q.qid]) / 2
        for i, q in enumerate(collection.queries)
    ) / len(collection.queries)
    row = curve[(curve.n_docs == 40) & (curve.representation == "mean-pooled")]
    assert row["R@2"].iloc[0] == pytest.approx(by_hand)
    short = single_vs_multi_vector(
        stanford.with_config(doc_maxlen=8), collection, sizes=(40,), fde_dims=(), progress=False
    )
    assert (short.truncated_docs == 40).all() and (curve.truncated_docs == 0).all()
    with pytest.raises(ValueError, match="sizes must lie"):
        single_vs_multi_vector(stanford, collection, sizes=(3,), progress=False)


def test_a_seed_gives_the_same_collection_in_every_process():
    """Python salts string hashes per process: nothing may depend on the order of a set of words."""
    import subprocess
    import sys

    code = (
        "from lirlab.analysis.limits import limit_collection;"
        "print([d.text for d in limit_collection(n_docs=20, n_core=4, seed=2).docs])"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**__import__("os").environ, "PYTHONHASHSEED": salt},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for salt in ("1", "2", "3")
    }
    assert len(outputs) == 1
