"""The WARP engine against exhaustive MaxSim over PLAID's decompressed vectors, and against WARP's
scoring rule written out token by token."""

from __future__ import annotations

import pytest
import torch

from lirlab.encoding import Encoding, offsets_from_lengths
from lirlab.index import warp as warp_module
from lirlab.index.base import StageTimer, UnknownKnobError
from lirlab.index.flat import FlatIndex
from lirlab.index.plaid import PlaidIndex
from lirlab.index.warp import STAGES, WarpIndex
from tests.synthetic import random_encoding


@pytest.fixture(scope="module")
def plaid():
    return PlaidIndex.from_encoding(random_encoding(40, seed=1), nbits=2, n_centroids=16)


@pytest.fixture(scope="module")
def queries():
    return random_encoding(4, seed=2, kind="query", prefix="q")


def exhaustive(plaid, queries):
    decompressed = plaid.documents(range(len(plaid)))
    return torch.tensor(
        [
            [
                float((queries.vectors_of(q) @ decompressed.vectors_of(d).T).max(dim=1).values.sum())
                for d in range(len(plaid))
            ]
            for q in range(len(queries))
        ]
    )


def test_wide_knobs_equal_exhaustive_maxsim_over_decompressed_vectors(plaid, queries, kernel):
    warp = WarpIndex.from_plaid(plaid)
    expected = exhaustive(plaid, queries)
    hits = warp.search_encoded(queries, k=len(plaid), nprobe=16, bound=16)
    for q, (positions, scores) in enumerate(hits):
        assert sorted(positions.tolist()) == list(range(len(plaid)))
        torch.testing.assert_close(scores, expected[q][positions], atol=1e-5, rtol=0)
        assert positions.tolist()[:5] == expected[q].argsort(descending=True).tolist()[:5]


def reference_scores(plaid, query, nprobe, t_prime, bound):
    """WARP's rule by hand: per query token, the bound best centroids, the probed ones, the missing
    similarity at the t_prime walk; per document, the best probed token per query token, else imputed."""
    docs = plaid.documents(range(len(plaid)))
    codes = plaid.codes.long()
    centroid_scores = query @ plaid.codec.centroids.T
    sizes = torch.bincount(codes, minlength=plaid.n_centroids)
    totals = torch.zeros(len(plaid))
    for i in range(query.shape[0]):
        order = centroid_scores[i].argsort(descending=True).tolist()[:bound]
        seen, missing = 0, centroid_scores[i, order[-1]]
        for c in order:
            seen += int(sizes[c])
            if seen >= t_prime:
                missing = centroid_scores[i, c]
                break
        probed = set(order[:nprobe])
        for d in range(len(plaid)):
            rows = range(int(plaid.doc_offsets[d]), int(plaid.doc_offsets[d + 1]))
            matches = [
                float(query[i] @ docs.vectors_of(d)[r - rows.start]) for r in rows if int(codes[r]) in probed
            ]
            totals[d] += max(matches) if matches else float(missing)
    return totals


@pytest.fixture(params=["torch", "numba"])
def kernel(request, monkeypatch):
    """Each test using it runs with the torch path and with the compiled kernel (where numba is)."""
    if request.param == "numba" and warp_module.numba is None:
        pytest.skip("numba is not installed")
    monkeypatch.setattr(warp_module, "NUMBA", request.param == "numba")
    return request.param


@pytest.mark.parametrize("nprobe, t_prime, bound", [(1, 30, 8), (2, 100, 4), (3, 5, 16)])
def test_partial_probing_matches_the_rule_written_out(plaid, queries, nprobe, t_prime, bound, kernel):
    warp = WarpIndex.from_plaid(plaid)
    for q in range(len(queries)):
        query = queries.vectors_of(q)
        scores, reached = warp.score_query(query, nprobe, t_prime, bound, StageTimer(STAGES, False))
        expected = reference_scores(plaid, query, nprobe, t_prime, bound)
        torch.testing.assert_close(scores, expected, atol=1e-5, rtol=0)


def test_missing_similarity_by_hand():
    # two centroids' worth of tokens: sizes come from the index, scores are given
    plaid = PlaidIndex.from_encoding(random_encoding(30, seed=3), nbits=2, n_centroids=4)
    warp = WarpIndex.from_plaid(plaid)
    sizes = warp.cluster_sizes.tolist()
    scores = torch.tensor([[0.9, 0.1, 0.5, 0.3]])
    # descending order 0, 2, 3, 1: the walk passes sizes[0] then sizes[2]...
    probed, missing = warp.warp_select(scores, nprobe=1, t_prime=sizes[0] + 1, bound=4)
    assert probed.tolist() == [[0]] and float(missing) == pytest.approx(0.5)
    _, missing = warp.warp_select(scores, nprobe=1, t_prime=1, bound=4)
    assert float(missing) == pytest.approx(0.9)
    _, missing = warp.warp_select(scores, nprobe=1, t_prime=10**6, bound=2)  # the walk ends at the bound
    assert float(missing) == pytest.approx(0.5)


def test_protocol_search_documents_and_save_load(plaid, queries, tmp_path):
    warp = WarpIndex.from_plaid(plaid)
    run = warp.search(queries, k=5)
    assert len(run) == 20 and list(run.columns[:5]) == ["qid", "query", "docno", "score", "rank"]
    docs = warp.documents([3, 1])
    assert docs.ids == (plaid.docnos[3], plaid.docnos[1]) and docs.exact is False
    torch.testing.assert_close(docs.vectors, plaid.documents([3, 1]).vectors)
    warp.save(tmp_path / "idx")
    again = WarpIndex.load(tmp_path / "idx")
    assert again.search(queries, k=5).docno.tolist() == run.docno.tolist()
    _, timings = warp.search_timed(queries, k=5)
    assert list(timings) == list(STAGES)
    assert warp.size_bytes() > plaid.size_bytes() and warp.n_vectors() == plaid.n_tokens


def test_from_encoding_builds_plaid_first(queries):
    docs = random_encoding(25, seed=4)
    warp = WarpIndex.from_encoding(docs, nbits=2, n_centroids=8)
    assert isinstance(warp.plaid, PlaidIndex) and warp.n_centroids == 8
    assert len(warp.search(queries, k=3)) == 12


def test_fewer_reached_than_k_are_filled_and_empty_documents_score_zero():
    g = torch.Generator().manual_seed(5)
    lengths = torch.tensor([6, 0, 5, 7, 4, 6, 5, 6])
    docs = Encoding(
        ids=tuple(f"d{i}" for i in range(8)),
        vectors=torch.nn.functional.normalize(torch.randn(int(lengths.sum()), 16, generator=g), dim=1),
        token_ids=torch.zeros(int(lengths.sum()), dtype=torch.long),
        offsets=offsets_from_lengths(lengths),
        vocab=("t",),
    )
    warp = WarpIndex.from_encoding(docs, nbits=2, n_centroids=8)
    query = docs.select([0])
    positions, scores = warp.search_encoded(query, k=8, nprobe=1, bound=1)[0]
    assert sorted(positions.tolist()) == list(range(8))
    assert float(scores[positions.tolist().index(1)]) == 0.0


def test_errors_are_one_clear_line(plaid, queries):
    with pytest.raises(ValueError, match="WARP searches a PLAID index.*FlatIndex lacks"):
        WarpIndex(FlatIndex(random_encoding(3, seed=0)))
    with pytest.raises(UnknownKnobError, match="a warp index takes nprobe, t_prime, bound, got 'n_probe'"):
        WarpIndex.from_plaid(plaid).search(queries, k=3, n_probe=2)
    with pytest.raises(ValueError, match="bound must be >= 1"):
        WarpIndex.from_plaid(plaid).search(queries, k=3, bound=0)
