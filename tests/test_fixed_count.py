"""Fixed-count documents: exact counts, and vectors equal to a brute-force Ward clustering's means."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lirlab.analysis.fixed_count import fixed_count_quality, pool_to_count
from lirlab.data import Dataset, Query
from lirlab.evaluate import evaluate
from lirlab.index.flat import FlatIndex
from tests.synthetic import random_encoding
from tests.test_pooling import brute_force_ward, docs_with_tokens


@pytest.mark.parametrize("count", [1, 3, 4, 8, 20])
def test_a_document_keeps_exactly_min_of_count_and_its_tokens(count):
    docs = docs_with_tokens([12, 2, 0, 7, 5, 1, 16], seed=3)
    pooled = pool_to_count(docs, count)
    assert pooled.lengths.tolist() == [min(count, n) for n in docs.lengths.tolist()]
    assert pooled.ids == docs.ids and pooled.vectors.shape[1] == docs.dim
    torch.testing.assert_close(pooled.vectors.norm(dim=1), torch.ones(len(pooled.vectors)))
    assert pooled.exact is (count >= 16)


def test_pooled_vectors_are_normalized_means_of_the_brute_force_clusters():
    docs = docs_with_tokens([11, 6, 9], seed=4)
    count = 4
    pooled = pool_to_count(docs, count)
    for d in range(len(docs)):
        original = docs.vectors_of(d).double()
        clusters = brute_force_ward(original.numpy(), count)  # every token, markers too
        expected = {}
        for members in clusters:
            mean = original[sorted(members)].mean(dim=0)
            expected[min(members)] = (mean / mean.norm(), members)
        ours = pooled.vectors_of(d).double()
        # ordered by each cluster's first token
        for row, first in enumerate(sorted(expected)):
            vector, members = expected[first]
            torch.testing.assert_close(ours[row], vector, atol=1e-6, rtol=0)
            cosines = original[sorted(members)] @ vector
            closest = sorted(members)[int(torch.argmax(cosines))]
            assert pooled.token_ids_of(d)[row] == docs.token_ids_of(d)[closest]


def test_short_documents_are_kept_as_they_are():
    docs = docs_with_tokens([3, 9, 4], seed=5)
    pooled = pool_to_count(docs, 4)
    for d in (0, 2):
        torch.testing.assert_close(pooled.vectors_of(d), docs.vectors_of(d))
        assert pooled.tokens(d) == docs.tokens(d)
    assert pooled.exact is False


@pytest.mark.parametrize("bad", [0, -2, 1.5])
def test_bad_counts_are_refused(bad):
    with pytest.raises(ValueError):
        pool_to_count(docs_with_tokens([4], seed=0), bad)


def test_the_table_puts_fixed_counts_beside_pool_factors():
    docs = random_encoding(30, seed=7, dim=8)
    queries = random_encoding(5, seed=8, dim=8, kind="query", prefix="q")
    g = np.random.default_rng(1)
    qrels = pd.DataFrame(
        {
            "query_id": np.repeat(queries.ids, 2),
            "doc_id": g.choice(docs.ids, 10, replace=False),
            "relevance": 1,
        }
    )
    dataset = Dataset("random", (), tuple(Query(q, q) for q in queries.ids), qrels)
    table = fixed_count_quality(
        None, dataset, docs, counts=(2, 4), pool_factors=(1, 2), queries=queries, k=20, progress=False
    ).set_index("method")
    assert list(table.index) == ["pool factor 1", "pool factor 2", "fixed count 2", "fixed count 4"]
    lengths = docs.lengths.numpy()
    assert table.loc["fixed count 4", "vectors"] == np.minimum(lengths, 4).sum()
    assert table.loc["fixed count 2", "vectors_per_doc"] == pytest.approx(np.minimum(lengths, 2).mean())
    assert table.loc["pool factor 1", "vectors"] == lengths.sum()
    assert table.loc["fixed count 4", "index_bytes"] == np.minimum(lengths, 4).sum() * (8 + 1) * 4
    unpooled = evaluate(FlatIndex(docs).search(queries, k=20), dataset, ["nDCG@10", "R@100"])
    assert table.loc["pool factor 1", "nDCG@10"] == pytest.approx(unpooled.value[0])
    direct = evaluate(FlatIndex(pool_to_count(docs, 2)).search(queries, k=20), dataset, ["R@100"])
    assert table.loc["fixed count 2", "R@100"] == pytest.approx(direct.value[0])
