"""Exact MaxSim kernels against a brute-force double loop."""

from __future__ import annotations

import pytest
import torch

from lirlab.encoding import Encoding, offsets_from_lengths
from lirlab.maxsim import LengthGroupedDocs, explain, maxsim_candidates, maxsim_pair, pad_queries


def random_encoding(lengths, dim=16, seed=0, kind="document", prefix="d"):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    total = int(lengths.sum())
    return Encoding(
        ids=tuple(f"{prefix}{i}" for i in range(len(lengths))),
        vectors=torch.nn.functional.normalize(torch.randn(total, dim, generator=g), dim=1),
        token_ids=torch.randint(0, 20, (total,), generator=g),
        offsets=offsets_from_lengths(lengths),
        vocab=tuple(f"t{i}" for i in range(20)),
        kind=kind,
    )


def brute_force(queries: Encoding, docs: Encoding) -> torch.Tensor:
    scores = torch.zeros(len(queries), len(docs))
    for i in range(len(queries)):
        for j in range(len(docs)):
            q, d = queries.vectors_of(i), docs.vectors_of(j)
            scores[i, j] = sum(max(float(qv @ dv) for dv in d) for qv in q) if len(d) else 0.0
    return scores


@pytest.mark.parametrize("chunk_tokens", [7, 64, 16384])
def test_length_grouped_scores_equal_brute_force(chunk_tokens):
    docs = random_encoding([5, 1, 9, 5, 30, 2, 9, 9, 17, 5, 3])
    queries = random_encoding([4, 8, 1], seed=1, kind="query", prefix="q")
    engine = LengthGroupedDocs(docs.vectors, docs.lengths, chunk_tokens=chunk_tokens)
    scores = engine.score(pad_queries(queries))
    torch.testing.assert_close(scores, brute_force(queries, docs), atol=1e-5, rtol=0)


def test_empty_documents_score_zero():
    docs = random_encoding([3, 0, 2])
    queries = random_encoding([2], seed=3, kind="query", prefix="q")
    scores = LengthGroupedDocs(docs.vectors, docs.lengths).score(pad_queries(queries))
    assert scores[0, 1] == 0.0
    torch.testing.assert_close(scores, brute_force(queries, docs), atol=1e-5, rtol=0)


def test_candidates_and_pair_agree_with_brute_force():
    docs = random_encoding([6, 2, 11, 4])
    queries = random_encoding([5], seed=2, kind="query", prefix="q")
    expected = brute_force(queries, docs)[0]
    got = maxsim_candidates(queries.vectors_of(0), docs.vectors, docs.lengths, batch_docs=3)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert float(maxsim_pair(queries.vectors_of(0), docs.vectors_of(2))) == pytest.approx(
        float(expected[2]), abs=1e-5
    )


def test_reduced_precision_stays_close():
    docs = random_encoding([12] * 20 + [7] * 5, dim=32)
    queries = random_encoding([32], dim=32, seed=5, kind="query", prefix="q")
    exact = LengthGroupedDocs(docs.vectors, docs.lengths).score(pad_queries(queries))
    half = LengthGroupedDocs(docs.vectors, docs.lengths, dtype=torch.bfloat16).score(pad_queries(queries))
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, exact, atol=0.25, rtol=0.01)


def test_explain_matrix_best_tokens_and_contributions():
    docs = random_encoding([7, 4])
    queries = random_encoding([5], seed=4, kind="query", prefix="q")
    ex = explain(queries, docs, doc_index=1)
    q, d = queries.vectors_of(0), docs.vectors_of(1)
    torch.testing.assert_close(ex.similarity, q @ d.T)
    assert ex.best_doc_token.tolist() == (q @ d.T).argmax(dim=1).tolist()
    assert ex.score == pytest.approx(float(ex.contributions.sum()), abs=1e-6)
    assert ex.score == pytest.approx(float(brute_force(queries, docs)[0, 1]), abs=1e-5)
    assert ex.query_tokens == queries.tokens(0) and ex.doc_tokens == docs.tokens(1)


def test_dimension_mismatch_is_reported():
    docs = random_encoding([3], dim=8)
    with pytest.raises(ValueError, match="dim"):
        LengthGroupedDocs(docs.vectors, docs.lengths).score(torch.zeros(1, 2, 4))


@pytest.mark.cuda
def test_cuda_scores_equal_cpu():
    docs = random_encoding([5, 9, 9, 30, 2])
    queries = pad_queries(random_encoding([4, 8], seed=1, kind="query", prefix="q"))
    cpu = LengthGroupedDocs(docs.vectors, docs.lengths).score(queries)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        gpu = LengthGroupedDocs(docs.vectors, docs.lengths, device="cuda", dtype=dtype).score(queries)
        torch.testing.assert_close(gpu.cpu(), cpu, atol=0.05 if dtype != torch.float32 else 1e-4, rtol=0.01)


def clustered_encoding(n_docs=300, dim=32, seed=7):
    """Documents drawn around a few topics, so many scores sit close together (a hard case for bounds)."""
    g = torch.Generator().manual_seed(seed)
    topics = torch.randn(6, dim, generator=g)
    lengths = torch.randint(0, 40, (n_docs,), generator=g)
    lengths[::50] = 0
    topic_of_doc = torch.randint(0, 6, (n_docs,), generator=g)
    centers = topics[torch.repeat_interleave(topic_of_doc, lengths)]
    vectors = torch.nn.functional.normalize(centers + 0.6 * torch.randn(centers.shape, generator=g), dim=1)
    return vectors, lengths, topics


INT8_PASSES = ["int8-torch", "int8-onnxruntime"]


@pytest.mark.parametrize("first_pass", INT8_PASSES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_int8_bounds_enclose_exact_scores(seed, first_pass):
    vectors, lengths, topics = clustered_encoding(seed=seed)
    engine = LengthGroupedDocs(vectors, lengths, chunk_tokens=256, first_pass=first_pass)
    g = torch.Generator().manual_seed(100 + seed)
    queries = torch.nn.functional.normalize(
        topics[:4, None, :] + 0.5 * torch.randn(4, 32, 32, generator=g), dim=2
    )
    exact = engine.score(queries)[:, engine.order]
    lower, upper = engine.bounds(queries)
    assert bool((lower <= exact).all()) and bool((exact <= upper).all())
    assert float((upper - lower).max()) < 0.06 * 32  # per query token, tight enough to prune at all


@pytest.mark.parametrize("first_pass", INT8_PASSES)
@pytest.mark.parametrize("k", [1, 10, 37])
@pytest.mark.parametrize("rescore_all_above", [1.0, 0.0])
def test_top_k_with_int8_first_pass_equals_exact_top_k(k, rescore_all_above, first_pass, monkeypatch):
    monkeypatch.setattr("lirlab.maxsim.RESCORE_ALL_ABOVE", rescore_all_above)
    vectors, lengths, topics = clustered_encoding()
    g = torch.Generator().manual_seed(k)
    queries = torch.nn.functional.normalize(
        topics[:3, None, :] + 0.5 * torch.randn(3, 32, 32, generator=g), dim=2
    )
    queries[2, 20:] = 0.0  # a padded query
    reference = LengthGroupedDocs(vectors, lengths, first_pass="none")
    expected_scores, expected_positions = reference.score(queries).topk(k, dim=1)
    engine = LengthGroupedDocs(vectors, lengths, chunk_tokens=512, first_pass=first_pass)
    assert engine.int8_route == first_pass.removeprefix("int8-")
    scores, positions, info = engine.top_k(queries, k)
    assert positions.tolist() == expected_positions.tolist()
    torch.testing.assert_close(scores, expected_scores, atol=1e-5, rtol=0)
    if rescore_all_above:
        assert all(k <= n < len(lengths) for n in info["rescored"])
    else:  # every query had "too many" candidates and was scored against all documents
        assert info["rescored"] == [len(lengths)] * 3


@pytest.mark.parametrize("first_pass", INT8_PASSES)
def test_top_k_without_first_pass_and_with_k_above_the_corpus(first_pass):
    vectors, lengths, _ = clustered_encoding(n_docs=20)
    queries = torch.nn.functional.normalize(torch.randn(2, 8, 32), dim=2)
    engine = LengthGroupedDocs(vectors, lengths, first_pass=first_pass)
    scores, positions, info = engine.top_k(queries, 50)
    expected_scores, expected_positions = engine.score(queries).topk(20, dim=1)
    assert positions.tolist() == expected_positions.tolist() and info["rescored"] == [20, 20]
    torch.testing.assert_close(scores, expected_scores)
    assert LengthGroupedDocs(vectors, lengths, first_pass="none").quantized is None


def test_unknown_first_pass_is_refused():
    vectors, lengths, _ = clustered_encoding(n_docs=5)
    with pytest.raises(
        ValueError, match="first_pass must be one of auto, int8, int8-torch, int8-onnxruntime, none"
    ):
        LengthGroupedDocs(vectors, lengths, first_pass="bf16")
    with pytest.raises(ValueError, match="runs on the CPU only"):
        LengthGroupedDocs(vectors, lengths, first_pass="int8", device="meta")


@pytest.mark.parametrize("route", ["torch", "onnxruntime", None])
def test_auto_first_pass_follows_the_cpu_and_the_corpus_size(route, monkeypatch):
    monkeypatch.setattr("lirlab.maxsim.int8_route", lambda: route)
    monkeypatch.setattr("lirlab.maxsim.AUTO_FIRST_PASS_MIN_TOKENS", 100)
    vectors, lengths, _ = clustered_encoding(n_docs=30)
    assert int(lengths.sum()) >= 100
    assert LengthGroupedDocs(vectors, lengths).int8_route == route
    assert (LengthGroupedDocs(vectors, lengths).quantized is not None) == (route is not None)
    assert LengthGroupedDocs(vectors, lengths, first_pass="int8").int8_route == (route or "torch")
    small = LengthGroupedDocs(vectors[: int(lengths[:2].sum())], lengths[:2])
    assert small.quantized is None  # below the size where a first pass pays


@pytest.mark.parametrize("first_pass", INT8_PASSES)
def test_top_k_when_the_int8_pass_leaves_nothing_but_the_probed_documents(first_pass):
    """A query made of one document's own vectors: the probed best document rules out every other."""
    vectors, lengths, _ = clustered_encoding(n_docs=200)
    offsets = offsets_from_lengths(lengths)
    target = int(torch.nonzero(lengths > 30)[0])
    query = vectors[offsets[target] : offsets[target + 1]][:24].unsqueeze(0)
    engine = LengthGroupedDocs(vectors, lengths, first_pass=first_pass)
    scores, positions, info = engine.top_k(query, 1)
    assert positions.tolist() == [[target]] and info["rescored"] == [1]
    torch.testing.assert_close(scores, engine.score(query).topk(1, dim=1).values, atol=1e-5, rtol=0)
