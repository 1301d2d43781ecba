"""PLAID's numba kernels against their pure-torch references (and the search they serve)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lirlab.encoding import Encoding, offsets_from_lengths
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


# ---------------------------------------------------------------- the fused route's kernels


def fused_and_reference(fn, *args):
    """The kernel on the fused route (numba), then its torch reference."""
    with kernels.use_numba(True), kernels.use_fused(True):
        fast = fn(*args)
    with kernels.use_numba(False):
        reference = fn(*args)
    return fast, reference


def random_table(n_queries=N_QUERIES, n_centroids=N_CENTROIDS, query_len=QUERY_LEN):
    table = torch.rand(n_queries * n_centroids, query_len, generator=G) * 2 - 1
    return torch.cat([table, torch.full((1, query_len), float("-inf"))])


@pytest.mark.parametrize("lengths", [[6, 1, 0], [6, 6, 6], [1, 1, 1]])
def test_table_best_and_argmax_match_reference(lengths):
    table = random_table()
    lengths = torch.tensor(lengths)
    fast, reference = fused_and_reference(kernels.table_best, table, lengths, N_CENTROIDS)
    assert torch.equal(fast, reference)  # a max: exact in any order
    assert bool((fast[lengths == 0] == float("-inf")).all())
    rows = table[:-1].view(N_QUERIES, N_CENTROIDS, QUERY_LEN)
    assert float(fast[0, 3]) == float(rows[0, 3, : int(lengths[0])].max())
    fast, reference = fused_and_reference(kernels.table_argmax, table, N_CENTROIDS)
    assert torch.equal(fast, reference)
    tied = table.clone()
    tied[2] = tied[7] = 5.0  # query 0: centroids 2 and 7 tie for every token; the first wins
    fast, reference = fused_and_reference(kernels.table_argmax, tied, N_CENTROIDS)
    assert fast[0].tolist() == reference[0].tolist() == [2] * QUERY_LEN


def test_probed_lists_match_reference():
    top = torch.randint(0, N_CENTROIDS, (N_QUERIES, QUERY_LEN, 3), generator=G)
    n_probe, lengths = torch.tensor([1, 3, 2]), torch.tensor([6, 2, 0])
    fast, reference = fused_and_reference(kernels.probed_lists, top, n_probe, lengths, N_CENTROIDS)
    assert [f.tolist() for f in fast] == [r.tolist() for r in reference]
    assert set(fast[1][fast[0] == 0].tolist()) == set(top[0, :, 0].tolist()) and 2 not in fast[0].tolist()


def test_keep_best_matches_reference_with_ties():
    groups = torch.randint(0, 4, (200,), generator=G)
    scores = torch.randint(0, 5, (200,), generator=G).float()  # many ties: input order decides
    for keep in (1, 7, 500):
        fast, reference = fused_and_reference(kernels.keep_best, groups, scores, keep, 5)
        assert fast.tolist() == reference.tolist()
    assert kernels.keep_best(groups[:0], scores[:0], 3, 5).tolist() == []


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_residual_rows_and_norms_match_reference(nbits):
    vectors = torch.nn.functional.normalize(torch.randn(int(OFFSETS[-1]), 16, generator=G), dim=1)
    codec = ResidualCodec.train(vectors[:N_CENTROIDS], vectors, nbits=nbits)
    codes, residuals = codec.compress(vectors)
    positions = torch.tensor([5, 0, 17, 3, 59, 5])
    fast, reference = fused_and_reference(kernels.residual_rows, residuals, OFFSETS, positions)
    assert torch.equal(fast[0], reference[0]) and torch.equal(fast[1], reference[1])
    assert fast[0].dtype == torch.int32 and fast[0].shape == (int(fast[1][-1]), codec.packed_dim)
    tokens = torch.cat([torch.arange(int(OFFSETS[p]), int(OFFSETS[p + 1])) for p in positions])
    # the rows select each byte's residual values from decode_table: together, the decoded residuals
    decoded = codec.decode_table[fast[0].long()].reshape(tokens.numel(), codec.dim)
    assert torch.equal(decoded, codec.residual_values(residuals[tokens]))
    fast, reference = fused_and_reference(
        kernels.inverse_norms, codes, residuals, codec.centroids, codec.decode_table
    )
    torch.testing.assert_close(fast, reference, atol=1e-6, rtol=1e-6)
    approx = codec.centroids[codes.long()] + codec.residual_values(residuals)
    torch.testing.assert_close(fast, 1 / approx.norm(dim=1), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_residual_score_table_sums_to_the_decoded_residual_times_the_query(nbits):
    vectors = torch.nn.functional.normalize(torch.randn(200, 16, generator=G), dim=1)
    codec = ResidualCodec.train(vectors[:N_CENTROIDS], vectors, nbits=nbits)
    _, residuals = codec.compress(vectors)
    query = torch.randn(QUERY_LEN, 16, generator=G)
    table = codec.residual_score_table(query)
    assert table.shape == (codec.packed_dim * 256, QUERY_LEN)
    rows, _ = kernels.residual_rows(residuals, torch.tensor([0, 200]), torch.tensor([0]))
    by_table = torch.nn.functional.embedding_bag(rows, table, mode="sum")
    by_decoding = codec.residual_values(residuals).double() @ query.double().T
    torch.testing.assert_close(by_table.double(), by_decoding, atol=1e-5, rtol=0)


@pytest.mark.parametrize("query_len", [1, QUERY_LEN])
def test_residual_maxsim_matches_decompression_and_matmul(query_len):
    vectors = torch.nn.functional.normalize(torch.randn(int(OFFSETS[-1]), 16, generator=G), dim=1)
    codec = ResidualCodec.train(vectors[:N_CENTROIDS], vectors, nbits=2)
    codes, residuals = codec.compress(vectors)
    query = torch.nn.functional.normalize(torch.randn(query_len, 16, generator=G), dim=1)
    table = torch.cat([codec.centroids @ query.T, torch.full((1, query_len), float("-inf"))])
    empty, single = int(torch.nonzero(LENGTHS == 0)[0]), int(torch.nonzero(LENGTHS == 1)[0])
    positions = torch.tensor([empty, 4, single, 30, 4])
    rows, offsets = kernels.residual_rows(residuals, OFFSETS, positions)
    sims = torch.nn.functional.embedding_bag(rows, codec.residual_score_table(query), mode="sum")
    norms = kernels.inverse_norms(codes, residuals, codec.centroids, codec.decode_table)
    args = (codes, OFFSETS, positions, sims, offsets, table, 0, norms)
    fast, reference = fused_and_reference(kernels.residual_maxsim, *args)
    torch.testing.assert_close(fast, reference, atol=1e-5, rtol=0)
    # against the previous route: rebuilt vectors, one matmul, segment MaxSim
    rebuilt, rebuilt_offsets = kernels.decompress_docs(
        codes, residuals, OFFSETS, positions, codec.centroids, codec.decode_table
    )
    previous = kernels.segment_maxsim(rebuilt @ query.T, rebuilt_offsets)
    torch.testing.assert_close(fast, previous, atol=1e-5, rtol=0)
    assert float(fast[0]) == 0.0 and float(fast[1]) == float(fast[4])  # no tokens: 0; repeats agree
    assert float(fast[2]) == pytest.approx(float((rebuilt[rebuilt_offsets[2]] @ query.T).sum()), abs=1e-5)


def test_listed_pruning_equals_token_pruning():
    from lirlab.index.plaid.ivf import IVF

    ivf = IVF.build(CODES, OFFSETS, N_CENTROIDS)
    assert ivf.exact
    table = score_table()
    kept = torch.rand(N_QUERIES, N_CENTROIDS, generator=G) > 0.6
    query_of, positions = pairs()
    order = torch.randperm(positions.numel(), generator=G)  # pairs in any order, documents repeated
    query_of, positions = (
        torch.cat([query_of[order], query_of[:5]]),
        torch.cat([positions[order], positions[:5]]),
    )
    tokens = kernels.pruned_centroid_maxsim(CODES, OFFSETS, query_of, positions, table, kept, -9999.0)
    args = (ivf.positions, ivf.offsets, OFFSETS, query_of, positions, table, kept, -9999.0, CODES)
    fast, reference = fused_and_reference(kernels.listed_pruned_maxsim, *args)
    assert torch.equal(fast, tokens)  # maxima then the same sum: the same floats
    torch.testing.assert_close(reference, tokens, atol=1e-5, rtol=0)  # the torch token scan
    empty = int(torch.nonzero(LENGTHS == 0)[0])
    assert bool((fast[positions == empty] == 0).all()) and bool((fast == -9999.0 * QUERY_LEN).any())


def test_ivf_exact_flag_follows_build_merge_and_storage(tmp_path):
    from lirlab.index.plaid.ivf import IVF

    built = IVF.build(CODES, OFFSETS, N_CENTROIDS)
    foreign = IVF(built.positions, built.offsets)
    assert built.exact and not foreign.exact and built.to("cpu").exact
    assert built.merge(built, shift=N_DOCS).exact and not built.merge(foreign, shift=N_DOCS).exact
    docs = make_docs(80, seed=3)
    index = PlaidIndex.from_encoding(docs, nbits=2, n_centroids=16)
    assert index.ivf.exact
    index.save(tmp_path / "plaid")
    assert PlaidIndex.load(tmp_path / "plaid").ivf.exact


@pytest.mark.parametrize("batch", [1, 32])
def test_fused_search_equals_previous_and_torch(batch):
    docs = make_docs(200, seed=4)
    # documents of one token, a query of one token
    one = Encoding(
        ("one_a", "one_b"), docs.vectors[:2], docs.token_ids[:2], torch.tensor([0, 1, 2]), docs.vocab
    )
    docs = Encoding.concat([docs, one])
    queries = make_queries(docs, n=6, seed=2)
    single = Encoding(
        ("q1",), queries.vectors[:1], queries.token_ids[:1], torch.tensor([0, 1]), queries.vocab, kind="query"
    )
    index = PlaidIndex.from_encoding(docs, nbits=2, n_centroids=32)
    index.delete(["d3", "d77"])
    index.query_batch = batch
    for which in (queries, single):
        for knobs in ({}, {"n_probe": 3, "ndocs": 40, "centroid_score_threshold": 0.3}):
            with kernels.use_fused(True):
                fast = index.search_encoded(which, k=10, **knobs)
            with kernels.use_fused(False):
                previous = index.search_encoded(which, k=10, **knobs)
            with kernels.use_numba(False):
                reference = index.search_encoded(which, k=10, **knobs)
            for (p, s), (pp, ps), (rp, rs) in zip(fast, previous, reference, strict=True):
                assert p.tolist() == pp.tolist() == rp.tolist()
                np.testing.assert_allclose(s.numpy(), ps.numpy(), atol=1e-5)
                np.testing.assert_allclose(s.numpy(), rs.numpy(), atol=1e-5)


def test_inverse_norms_are_cached_per_documents_record_and_survive_deletion():
    from lirlab.index.plaid import stages

    docs = make_docs(60, seed=8)
    index = PlaidIndex.from_encoding(docs, nbits=2, n_centroids=16)
    norms = stages.inverse_norms(index.codec, index.compressed)
    assert stages.inverse_norms(index.codec, index.compressed) is norms
    index.delete(["d4"])
    assert stages.inverse_norms(index.codec, index.compressed) is norms  # same tokens: kept
    index.add(make_docs(5, seed=9, first_id=500))
    fresh = stages.inverse_norms(index.codec, index.compressed)
    assert fresh is not norms and fresh.shape == (index.n_tokens,)
    torch.testing.assert_close(fresh[: norms.numel()], norms)


@pytest.mark.parametrize("parts", [1, 2, 3, QUERY_LEN + 2, N_CENTROIDS + 1])
def test_kernels_split_over_query_tokens_give_the_same_bits_for_any_number_of_parts(parts):
    """Pruning splits the kept centroids' lists between threads, the best centroid per token the
    query tokens; how many parts there are (torch's thread count) must not change a bit, also with more
    parts than tokens or centroids."""
    from lirlab.index.plaid.ivf import IVF

    ivf = IVF.build(CODES, OFFSETS, N_CENTROIDS)
    table, kept = score_table(), torch.rand(N_QUERIES, N_CENTROIDS, generator=G) > 0.6
    query_of, positions = pairs()
    listed = [
        kernels._nb_listed_pruned_maxsim(
            *(t.numpy() for t in (ivf.positions, ivf.offsets, OFFSETS, query_of, positions, table, kept)),
            np.float32(-9999.0),
            n,
        )
        for n in (1, parts)
    ]
    assert np.array_equal(*listed)
    best = [kernels._nb_table_argmax(table.numpy(), N_CENTROIDS, n) for n in (1, parts)]
    assert np.array_equal(*best)
    assert best[0].tolist() == kernels._torch_table_argmax(table, N_CENTROIDS).tolist()


@pytest.mark.parametrize("batch", [1, 32])
def test_search_on_one_thread_and_on_every_thread_gives_the_same_bits(batch):
    docs = make_docs(200, seed=6)
    queries = make_queries(docs, n=6, seed=3)
    index = PlaidIndex.from_encoding(docs, nbits=2, n_centroids=32)
    index.query_batch = batch
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with kernels.use_parallel(True):
            assert kernels.parallel_threads() == min(2, kernels.numba.config.NUMBA_NUM_THREADS)
            many = index.search_encoded(queries, k=10, n_probe=2, ndocs=64)
        with kernels.use_parallel(False):
            assert kernels.parallel_threads() == 1
            one = index.search_encoded(queries, k=10, n_probe=2, ndocs=64)
    finally:
        torch.set_num_threads(threads)
    for (p, s), (op, os_) in zip(many, one, strict=True):
        assert torch.equal(p, op) and torch.equal(s, os_)


@pytest.mark.parametrize("thread_safe_layer", [True, False])
def test_searches_from_several_python_threads_at_once_get_what_each_gets_alone(
    thread_safe_layer, monkeypatch
):
    """Where numba's threading layer cannot take two launches at once (workqueue), they wait their
    turn; elsewhere they run side by side."""
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(kernels, "_launches_are_thread_safe", lambda: thread_safe_layer)
    launches = []
    launch = kernels.launch
    monkeypatch.setattr(kernels, "launch", lambda *args: launches.append(1) or launch(*args))
    docs = make_docs(150, seed=8)
    queries = make_queries(docs, n=8, seed=4)
    index = PlaidIndex.from_encoding(docs, nbits=2, n_centroids=24)
    alone = [index.search_encoded(queries.select([i]), k=5) for i in range(len(queries))]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda i: index.search_encoded(queries.select([i]), k=5), range(8)))
    for [(p, s)], [(tp, ts)] in zip(alone, together, strict=True):
        assert torch.equal(p, tp) and torch.equal(s, ts)
    assert launches and kernels._LAUNCH_LOCK.acquire(blocking=False)
    kernels._LAUNCH_LOCK.release()
