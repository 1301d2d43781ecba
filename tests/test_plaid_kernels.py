"""PLAID's numba kernels against their pure-torch references (and the search they serve)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lirlab.encoding import offsets_from_lengths
from lirlab.index.codec import ResidualCodec
from lirlab.index.plaid import PlaidIndex, kernels

from .test_plaid import make_docs, make_queries

pytest.importorskip("numba")

G = torch.Generator().manual_seed(5)
N_DOCS, N_CENTROIDS, QUERY_LEN, N_QUERIES = 60, 20, 6, 3
LENGTHS = torch.randint(0, 9, (N_DOCS,), generator=G)  # some documents have no tokens
OFFSETS = offsets_from_lengths(LENGTHS)
CODES = torch.randint(0, N_CENTROIDS, (int(OFFSETS[-1]),), generator=G).to(torch.int16)


def both(fn, *args):
    """The kernel's result with numba, then with the torch reference."""
    with kernels.use_numba(True):
        fast = fn(*args)
    with kernels.use_numba(False):
        reference = fn(*args)
    return fast, reference


def pairs():
    query_of = torch.arange(N_QUERIES).repeat_interleave(N_DOCS)
    positions = torch.arange(N_DOCS).repeat(N_QUERIES)
    return query_of, positions


def score_table():
    scores = torch.rand(N_QUERIES * N_CENTROIDS, QUERY_LEN, generator=G) * 2 - 1
    return torch.cat([scores, torch.full((1, QUERY_LEN), float("-inf"))])


def test_ivf_union_matches_reference_with_deletions():
    from lirlab.index.plaid.ivf import IVF

    ivf = IVF.build(CODES, OFFSETS, N_CENTROIDS)
    deleted = torch.zeros(N_DOCS, dtype=torch.bool)
    deleted[::7] = True
    probed = torch.unique(torch.randint(0, N_QUERIES * N_CENTROIDS, (25,), generator=G))
    args = (ivf.positions, ivf.offsets, probed // N_CENTROIDS, probed % N_CENTROIDS, deleted)
    fast, reference = both(kernels.ivf_union, *args)
    assert fast.tolist() == reference.tolist() and len(reference) > 0
    # by hand: query 0's documents are those holding a probed centroid, minus the deleted
    wanted = set((probed[probed < N_CENTROIDS]).tolist())
    by_hand = [
        p
        for p in range(N_DOCS)
        if not deleted[p] and wanted & set(CODES[OFFSETS[p] : OFFSETS[p + 1]].tolist())
    ]
    assert [k for k in fast.tolist() if k < N_DOCS] == by_hand


def test_centroid_maxsim_matches_reference_and_hand_computation():
    table = score_table()
    fast, reference = both(kernels.centroid_maxsim, CODES, OFFSETS, *pairs(), table, N_CENTROIDS)
    torch.testing.assert_close(fast, reference, atol=1e-5, rtol=0)
    q, p = 2, int(torch.nonzero(LENGTHS > 3)[0])
    codes = CODES[OFFSETS[p] : OFFSETS[p + 1]].long()
    by_hand = table[q * N_CENTROIDS + codes].amax(dim=0).sum()
    assert float(fast[q * N_DOCS + p]) == pytest.approx(float(by_hand), abs=1e-5)
    assert float(fast[int(torch.nonzero(LENGTHS == 0)[0])]) == 0.0


def test_pruned_centroid_maxsim_matches_reference():
    table = score_table()
    kept = torch.rand(N_QUERIES, N_CENTROIDS, generator=G) > 0.6
    fast, reference = both(kernels.pruned_centroid_maxsim, CODES, OFFSETS, *pairs(), table, kept, -9999.0)
    torch.testing.assert_close(fast, reference, atol=1e-5, rtol=0)
    assert bool((fast == -9999.0 * QUERY_LEN).any()) and bool((fast > -9999.0).any())


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_decompress_docs_matches_reference(nbits):
    vectors = torch.nn.functional.normalize(torch.randn(int(OFFSETS[-1]), 16, generator=G), dim=1)
    codec = ResidualCodec.train(vectors[:N_CENTROIDS], vectors, nbits=nbits)
    codes, residuals = codec.compress(vectors)
    positions = torch.tensor([5, 0, 17, 3, 59])
    fast, reference = both(
        kernels.decompress_docs, codes, residuals, OFFSETS, positions, codec.centroids, codec.decode_table
    )
    assert torch.equal(fast[1], reference[1])
    torch.testing.assert_close(fast[0], reference[0], atol=1e-6, rtol=0)
    rows = torch.cat([torch.arange(int(OFFSETS[p]), int(OFFSETS[p + 1])) for p in positions])
    torch.testing.assert_close(fast[0], codec.decompress(codes[rows], residuals[rows]), atol=1e-6, rtol=0)


def test_segment_maxsim_matches_reference():
    sims = torch.randn(int(OFFSETS[-1]), QUERY_LEN, generator=G)
    fast, reference = both(kernels.segment_maxsim, sims, OFFSETS)
    torch.testing.assert_close(fast, reference, atol=1e-5, rtol=0)
    p = int(torch.nonzero(LENGTHS > 2)[0])
    assert float(fast[p]) == pytest.approx(
        float(sims[OFFSETS[p] : OFFSETS[p + 1]].amax(dim=0).sum()), abs=1e-5
    )


@pytest.mark.parametrize("knobs", [{}, {"n_probe": 3, "ndocs": 40, "centroid_score_threshold": 0.3}])
def test_search_with_numba_equals_search_with_torch(knobs):
    docs = make_docs(200, seed=4)
    queries = make_queries(docs, n=6, seed=2)
    index = PlaidIndex.from_encoding(docs, nbits=2, n_centroids=32)
    index.delete(["d3", "d77"])
    for batch in (1, 32):
        index.query_batch = batch
        with kernels.use_numba(True):
            fast = index.search_encoded(queries, k=10, **knobs)
        with kernels.use_numba(False):
            reference = index.search_encoded(queries, k=10, **knobs)
        for (fast_positions, fast_scores), (positions, scores) in zip(fast, reference, strict=True):
            assert fast_positions.tolist() == positions.tolist()
            np.testing.assert_allclose(fast_scores.numpy(), scores.numpy(), atol=1e-5)
