"""Token pooling against a brute-force Ward clustering written out here, and through the flat index."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from lirlab.encoding import Encoding, offsets_from_lengths
from lirlab.index.flat import FlatIndex
from lirlab.index.pooling import Pooling, pool_encoding, ward_clusters
from tests.synthetic import random_encoding


def brute_force_ward(points: np.ndarray, n_clusters: int) -> list[frozenset[int]]:
    """Agglomerate by always merging the pair whose union least increases the total within-cluster sum
    of squared distances (computed from scratch, not with the Lance-Williams update scipy uses)."""
    clusters = [frozenset([i]) for i in range(len(points))]

    def sse(members) -> float:
        block = points[list(members)]
        return float(((block - block.mean(axis=0)) ** 2).sum())

    while len(clusters) > n_clusters:
        best = min(
            itertools.combinations(range(len(clusters)), 2),
            key=lambda ab: (
                sse(clusters[ab[0]] | clusters[ab[1]]) - sse(clusters[ab[0]]) - sse(clusters[ab[1]])
            ),
        )
        merged = clusters[best[0]] | clusters[best[1]]
        clusters = [c for i, c in enumerate(clusters) if i not in best] + [merged]
    return clusters


def partition(labels) -> set[frozenset[int]]:
    groups: dict[int, set[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(int(label), set()).add(i)
    return {frozenset(g) for g in groups.values()}


def docs_with_tokens(lengths, seed=0, dim=8, vocab=("[CLS]", "w", "[SEP]")) -> Encoding:
    """Random unit vectors; each document is ``[CLS] w ... w [SEP]`` (empty documents hold nothing)."""
    g = torch.Generator().manual_seed(seed)
    total = sum(lengths)
    ids = []
    for n in lengths:
        ids += [0] + [1] * (n - 2) + [2] if n >= 2 else [1] * n
    return Encoding(
        ids=tuple(f"d{i}" for i in range(len(lengths))),
        vectors=torch.nn.functional.normalize(torch.randn(total, dim, generator=g), dim=1),
        token_ids=torch.tensor(ids, dtype=torch.long),
        offsets=offsets_from_lengths(torch.tensor(lengths)),
        vocab=vocab,
    )


@pytest.mark.parametrize("seed, n, clusters", [(0, 9, 4), (1, 12, 6), (2, 10, 3), (3, 7, 1)])
def test_ward_clusters_match_brute_force(seed, n, clusters):
    points = torch.nn.functional.normalize(
        torch.randn(n, 5, generator=torch.Generator().manual_seed(seed)), dim=1
    )
    labels = ward_clusters(points.numpy(), clusters)
    assert partition(labels) == set(brute_force_ward(points.double().numpy(), clusters))
    assert sorted(set(labels.tolist())) == list(range(clusters))


def test_pooled_vectors_are_normalized_means_of_the_brute_force_clusters():
    docs = docs_with_tokens([11, 6, 9], seed=4)
    pooled, pooling = pool_encoding(docs, 2, protect=())
    for d in range(len(docs)):
        original = docs.vectors_of(d).double()
        expected = brute_force_ward(original.numpy(), math.ceil(len(original) / 2))
        groups = pooling.groups(d)
        assert {frozenset(g) for g in groups} == set(expected)
        assert len(pooled.vectors_of(d)) == math.ceil(len(original) / 2)
        for row, group in enumerate(groups):
            mean = original[group].mean(dim=0)
            torch.testing.assert_close(
                pooled.vectors_of(d)[row].double(), mean / mean.norm(), atol=1e-6, rtol=0
            )
        # pooled vectors are ordered by their first original token
        assert [g[0] for g in groups] == sorted(g[0] for g in groups)


def test_protected_markers_keep_their_own_vectors():
    docs = docs_with_tokens([10, 2], seed=5)
    pooled, pooling = pool_encoding(docs, 3)
    groups = pooling.groups(0)
    assert [0] in groups and [9] in groups
    assert len(groups) == 2 + math.ceil(8 / 3)
    torch.testing.assert_close(pooled.vectors_of(0)[0], docs.vectors_of(0)[0])
    assert pooled.tokens(0)[0] == "[CLS]" and pooled.tokens(0)[-1] == "[SEP]"
    assert pooling.groups(1) == [[0], [1]]  # nothing left to pool
    assert pooled.exact is False and pooled.ids == docs.ids


def test_vectors_removed_and_pool_factor_one():
    docs = docs_with_tokens([12, 12, 12], seed=6)
    _, pooling = pool_encoding(docs, 4, protect=())
    assert pooling.vectors_removed == pytest.approx(1 - 9 / 36)
    same, identity = pool_encoding(docs, 1)
    assert same is docs and identity.vectors_removed == 0.0


def test_empty_documents_stay_empty_and_searchable():
    docs = docs_with_tokens([6, 0, 5], seed=7)
    pooled, pooling = pool_encoding(docs, 2)
    assert pooled.lengths.tolist()[1] == 0 and pooling.groups(1) == []
    index = FlatIndex(pooled)
    run = index.search(docs.select([0]), k=3)
    assert len(run) == 3 and run.docno.iloc[0] == "d0"
    assert float(run[run.docno == "d1"].score.iloc[0]) == 0.0


@pytest.mark.parametrize("bad", [0, -1, 2.5, "2", True])
def test_bad_pool_factor_is_one_clear_line(bad):
    with pytest.raises(ValueError, match="pool_factor") as info:
        pool_encoding(random_encoding(3, seed=0), bad)
    assert "\n" not in str(info.value)


def test_pool_factor_above_the_longest_document():
    docs = docs_with_tokens([4, 5])
    with pytest.raises(ValueError, match=r"pool_factor=6 exceeds the longest document \(5 tokens\)"):
        pool_encoding(docs, 6)


def test_mapping_selects_and_round_trips_through_arrays():
    docs = docs_with_tokens([7, 9, 5], seed=8)
    pooled, pooling = pool_encoding(docs, 2)
    part = pooling.select([2, 0])
    assert part.groups(0) == pooling.groups(2) and part.groups(1) == pooling.groups(0)
    assert part.group_tokens(1) == pooling.group_tokens(0)
    again = Pooling.from_arrays(pooling.arrays(), pooled.offsets, pooled.vocab, 2)
    assert [again.groups(d) for d in range(3)] == [pooling.groups(d) for d in range(3)]


def test_pooled_flat_index_ranks_like_maxsim_over_pooled_vectors():
    docs = random_encoding(12, seed=9)
    queries = random_encoding(3, seed=10, kind="query", prefix="q")
    pooled, _ = pool_encoding(docs, 2, protect=())
    run = FlatIndex(pooled).search(queries, k=12)
    for qi, qid in enumerate(queries.ids):
        q = queries.vectors_of(qi)
        expected = [float((q @ pooled.vectors_of(d).T).max(dim=1).values.sum()) for d in range(len(docs))]
        got = run[run.qid == qid].set_index("docno").score
        assert [got[f"d{d}"] for d in range(len(docs))] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("kind", ["flat", "plaid"])
def test_pool_factor_is_a_build_knob_and_the_mapping_survives_save_add_and_compact(kind, tmp_path):
    from lirlab.index import index_kind, load_index

    docs = docs_with_tokens([9, 14, 0, 11, 7, 12], seed=11, dim=16)
    more = docs_with_tokens([10, 6], seed=12, dim=16)
    more = Encoding(
        ids=("e0", "e1"),
        vectors=more.vectors,
        token_ids=more.token_ids,
        offsets=more.offsets,
        vocab=more.vocab,
    )
    expected, mapping = pool_encoding(docs, 3)
    knobs = {"pool_factor": 3}
    if kind == "plaid":
        knobs.update(nbits=2, n_centroids=8, chunk_docs=4)
    index = index_kind(kind).from_encoding(docs, **knobs)
    assert index.n_vectors() == int(expected.vectors.shape[0]) and not index.exact
    assert index.describe()["config"]["pool_factor"] == 3
    assert [index.pooled_tokens(d) for d in range(len(docs))] == [mapping.group_tokens(d) for d in range(6)]
    if kind == "flat":
        assert torch.equal(index.documents().vectors, expected.vectors)
    index.save(tmp_path / kind)
    loaded = load_index(tmp_path / kind)
    assert [loaded.pooled_tokens(d) for d in range(6)] == [mapping.group_tokens(d) for d in range(6)]
    if kind == "plaid":
        _, added = pool_encoding(more, 3)
        loaded.add(more)
        assert loaded.pooled_tokens(7) == added.group_tokens(1)
        loaded.delete(["d0"])
        loaded.compact()
        assert loaded.pooled_tokens(0) == mapping.group_tokens(1) and len(loaded.pooling) == len(loaded) == 7


def test_unpooled_indexes_have_no_mapping_and_a_pooled_alignment_names_the_merged_tokens(stanford):
    from lirlab import data
    from lirlab.analysis.alignment import align_hit

    demo = data.load("demo").docs[:5]
    docs = stanford.encode_documents(demo, progress=False)
    assert FlatIndex.from_encoding(docs).pooled_tokens(0) is None
    pooled = FlatIndex.from_encoding(docs, pool_factor=2, encoder=stanford)
    hit = align_hit(pooled, "honeybee colony", docs.ids[0])
    groups = pooled.pooled_tokens(0)
    assert len(hit.doc_tokens) == len(groups) and any(len(g) > 1 for g in groups)
    merged = next(i for i, g in enumerate(groups) if len(g) > 1)
    label = hit.doc_tokens[merged]
    assert (
        label.startswith("{") and label.endswith("}") and len(label[1:-1].split(" ")) == len(groups[merged])
    )
    assert "##" not in label and not any(t.startswith("[") for t in hit.doc_tokens if t.startswith("{"))
    with pytest.raises(ValueError, match="is pooled"):
        align_hit(pooled, "honeybee colony", docs.ids[0], document_text=demo[0].full_text)


def test_a_build_knob_the_kind_does_not_take_names_the_ones_it_does():
    from lirlab.index.base import UnknownKnobError

    with pytest.raises(UnknownKnobError, match="pool_factor"):
        FlatIndex.from_encoding(docs_with_tokens([5]), nbits=2)
