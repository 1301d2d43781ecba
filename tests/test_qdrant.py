"""QdrantIndex: embedded engine (qdrant-edge-py) and the client path (qdrant-client local mode) against
exhaustive MaxSim on the same vectors."""

from __future__ import annotations

import json
import re
import socket
import time
import warnings

import numpy as np
import pytest
import torch

from lirlab.index.base import FewerResultsWarning, UnknownKnobError, index_kind, load_index
from lirlab.index.flat import FlatIndex

from .synthetic import random_encoding

pytest.importorskip("qdrant_edge", reason="qdrant-edge-py is not installed (pip install 'lirlab[qdrant]')")

from lirlab.index.qdrant import QdrantConnectionError, QdrantIndex, payloads_for  # noqa: E402

N_DOCS, DIM = 40, 16
YEARS = [2018 + i % 4 for i in range(N_DOCS)]


@pytest.fixture(scope="module")
def docs():
    return random_encoding(N_DOCS, seed=7, dim=DIM, vocab_size=5)


@pytest.fixture(scope="module")
def queries():
    return random_encoding(6, seed=8, dim=DIM, kind="query", prefix="q")


@pytest.fixture(scope="module")
def flat_scores(docs, queries):
    """Brute-force MaxSim, computed here without any index: ``[queries, docs]``."""
    out = torch.zeros(len(queries), len(docs))
    for qi in range(len(queries)):
        for di in range(len(docs)):
            out[qi, di] = (queries.vectors_of(qi) @ docs.vectors_of(di).T).max(dim=1).values.sum()
    return out


@pytest.fixture(scope="module")
def index(docs):
    built = QdrantIndex.from_encoding(docs, metadata=[{"year": y, "tag": f"t{y % 2}"} for y in YEARS])
    yield built
    built.close()


def ranking(hits):
    return [(p.tolist(), s.tolist()) for p, s in hits]


def test_exact_mode_matches_brute_force_maxsim_and_flat(index, docs, queries, flat_scores):
    hits = index.search_encoded(queries, k=N_DOCS, exact=True)
    flat = FlatIndex(docs).search_encoded(queries, k=N_DOCS)
    for qi, ((pos, scores), (fpos, _)) in enumerate(zip(hits, flat)):
        assert pos.tolist() == fpos.tolist()
        torch.testing.assert_close(scores, flat_scores[qi, pos], rtol=0, atol=1e-5)


def test_default_mode_returns_the_exact_top_k(index, queries, flat_scores):
    # m=0 (no graph on the multi-vector) means Qdrant scores every document by MaxSim
    for qi, (pos, _) in enumerate(index.search_encoded(queries, k=5)):
        assert pos.tolist() == flat_scores[qi].topk(5).indices.tolist()


def test_protocol_surface(index, docs, queries):
    assert index_kind("qdrant") is QdrantIndex and index_kind("lirlab.qdrant") is QdrantIndex
    run = index.search(queries, k=3)
    assert list(run.columns) == ["qid", "query", "docno", "score", "rank"] and len(run) == 18
    _, timings = index.search_timed(queries, k=3)
    assert sorted(timings) == sorted(QdrantIndex.STAGES)
    with pytest.raises(UnknownKnobError, match="qdrant index takes exact, hnsw_ef"):
        index.search_encoded(queries, k=3, n_probe=2)
    back = index.documents([3, 0])
    assert back.ids == (docs.ids[3], docs.ids[0])
    assert torch.equal(
        back.vectors, docs.select([3, 0]).vectors
    )  # float32 read back from Qdrant, bit for bit
    assert torch.equal(back.token_ids, docs.select([3, 0]).token_ids)
    ids, lengths, vocab = index.tokens()
    assert torch.equal(ids, docs.token_ids) and torch.equal(lengths, docs.lengths) and vocab == docs.vocab
    assert index.n_vectors() == docs.vectors.shape[0] and index.dim == DIM and index.to("cuda") is index
    described = index.describe()
    assert described["kind"] == "qdrant" and described["config"]["backend"] == "embedded"
    assert described["size_bytes"] > 0


def test_more_than_the_documents_returns_all_with_a_warning(index, queries):
    with pytest.warns(FewerResultsWarning):
        run = index.search(queries.select([0]), k=N_DOCS + 5)
    assert len(run) == N_DOCS


def test_where_filters_by_payload_against_brute_force(index, queries, flat_scores):
    allowed = [i for i, y in enumerate(YEARS) if y >= 2020]
    hits = index.where(year={"gte": 2020}).search_encoded(queries, k=4, exact=True)
    for qi, (pos, _) in enumerate(hits):
        expected = torch.tensor(allowed)[flat_scores[qi, allowed].topk(4).indices]
        assert pos.tolist() == expected.tolist()
    only = index.where(tag="t1", year=[2019, 2021]).search_encoded(queries.select([0]), k=N_DOCS)
    assert sorted(only[0][0].tolist()) == [i for i, y in enumerate(YEARS) if y in (2019, 2021)]
    per_query = index.where([{"year": 2018}, {"year": 2019}]).search_encoded(queries.select([0, 1]), k=N_DOCS)
    assert {YEARS[p] for p in per_query[0][0].tolist()} == {2018}
    assert {YEARS[p] for p in per_query[1][0].tolist()} == {2019}
    with pytest.raises(ValueError, match="no document has the payload key 'colour'"):
        index.where(colour="red")


def test_prefetch_reranks_pooled_candidates_by_full_maxsim(index, queries, flat_scores):
    everything = index.search_encoded(queries, k=5, prefetch=N_DOCS)
    for qi, (pos, _) in enumerate(everything):
        assert pos.tolist() == flat_scores[qi].topk(5).indices.tolist()
    few = index.search_encoded(queries, k=3, prefetch=6)
    for qi, (pos, scores) in enumerate(few):
        assert len(pos) == 3
        torch.testing.assert_close(scores, flat_scores[qi, pos], rtol=0, atol=1e-5)  # re-scored by MaxSim


@pytest.mark.parametrize("quantization", ["scalar", "binary"])
def test_quantized_collections_keep_exact_vectors(docs, queries, flat_scores, quantization):
    index = QdrantIndex.from_encoding(docs, quantization=quantization, m=8)
    try:
        assert torch.equal(index.documents([5]).vectors, docs.select([5]).vectors)
        for qi, (pos, _) in enumerate(index.search_encoded(queries, k=5, exact=True)):
            assert pos.tolist() == flat_scores[qi].topk(5).indices.tolist()
        assert all(len(p) == 5 for p, _ in index.search_encoded(queries, k=5, hnsw_ef=16, oversampling=2.0))
    finally:
        index.close()


def test_save_and_load_embedded(index, queries, tmp_path):
    folder = tmp_path / "qdrant-index"
    index.save(folder)
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["type"] == "lirlab.qdrant" and meta["config"]["backend"] == "embedded"
    assert meta["config"]["build"] == {
        "m": 0,
        "ef_construct": 100,
        "prefetch_m": 16,
        "full_scan_threshold": 10000,
        "quantization": "none",
    }
    index.save(folder)  # an index of ours is replaced without overwrite=, as for every kind
    loaded = load_index(folder)
    try:
        assert isinstance(loaded, QdrantIndex) and loaded.docnos == index.docnos
        assert ranking(loaded.search_encoded(queries, k=5)) == ranking(index.search_encoded(queries, k=5))
        assert loaded.where(year=2018).search_encoded(queries.select([0]), k=1)[0][0].numel() == 1
    finally:
        loaded.close()


def test_save_refuses_a_folder_lirlab_did_not_write(index, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a lirlab artifact"):
        index.save(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_chunked_build_equals_one_shot(docs, queries, index):
    chunks = (docs.select(range(i, min(i + 15, N_DOCS))) for i in range(0, N_DOCS, 15))
    streamed = QdrantIndex.from_encoding(chunks, metadata={d: {"year": y} for d, y in zip(docs.ids, YEARS)})
    try:
        assert streamed.docnos == docs.ids
        assert ranking(streamed.search_encoded(queries, k=5)) == ranking(index.search_encoded(queries, k=5))
        assert streamed.where(year=2021).search_encoded(queries.select([0]), k=N_DOCS)[0][0].numel() == 10
    finally:
        streamed.close()


def test_client_path_local_mode(docs, queries, flat_scores, tmp_path, monkeypatch):
    qdrant_client = pytest.importorskip("qdrant_client")
    monkeypatch.setenv("QDRANT_API_KEY", "do-not-save-me")
    client = qdrant_client.QdrantClient(":memory:")
    index = QdrantIndex.from_encoding(
        docs,
        client=client,
        collection="lirlab-test",
        metadata=[{"year": y} for y in YEARS],
        model={"name": "m1"},
    )
    assert index.backend_kind == "server"
    for qi, (pos, scores) in enumerate(index.search_encoded(queries, k=5, exact=True)):
        assert pos.tolist() == flat_scores[qi].topk(5).indices.tolist()
        torch.testing.assert_close(scores, flat_scores[qi, pos], rtol=0, atol=1e-5)
    assert torch.equal(index.documents([2]).vectors, docs.select([2]).vectors)
    filtered = index.where(year=2019).search_encoded(queries.select([0]), k=N_DOCS, prefetch=20)
    assert {YEARS[p] for p in filtered[0][0].tolist()} == {2019}
    folder = tmp_path / "server-index"
    index.save(folder)
    text = (folder / "metadata.json").read_text()
    assert "do-not-save-me" not in text
    config = json.loads(text)["config"]
    assert config["collection"] == "lirlab-test" and config["api_key_env"] == "QDRANT_API_KEY"
    loaded = QdrantIndex.load(folder, client=client)
    assert ranking(loaded.search_encoded(queries, k=5)) == ranking(index.search_encoded(queries, k=5))
    with pytest.raises(ValueError, match="already exists"):
        QdrantIndex.from_encoding(docs, client=client, collection="lirlab-test", model={"name": "m1"})
    other = random_encoding(3, seed=1, dim=DIM + 8)
    with pytest.raises(ValueError, match=r"built with m1 \(dim 16\), not m2 \(dim 24\)"):
        QdrantIndex.from_encoding(other, client=client, collection="lirlab-test", model={"name": "m2"})


def test_unreachable_server_is_named_quickly():
    pytest.importorskip("qdrant_client")
    with pytest.raises(QdrantConnectionError, match=r"server at http://127\.0\.0\.1:9 did not answer"):
        QdrantIndex.from_encoding(random_encoding(2, seed=0), url="http://127.0.0.1:9")


def test_a_server_that_never_answers_is_named_within_the_timeout():
    """A port that accepts connections and never replies (a hung server, a firewall that swallows
    packets) must not hang the build: the error comes after the short connect timeout, naming the URL."""
    pytest.importorskip("qdrant_client")
    from lirlab.index.qdrant import CONNECT_TIMEOUT

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the TCP handshake; nobody ever reads or replies
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        start = time.perf_counter()
        with pytest.raises(
            QdrantConnectionError,
            match=rf"server at {re.escape(url)} did not answer within {CONNECT_TIMEOUT} s",
        ):
            QdrantIndex.from_encoding(random_encoding(2, seed=0), url=url)
        waited = time.perf_counter() - start
    assert CONNECT_TIMEOUT * 0.5 <= waited < CONNECT_TIMEOUT * 3, f"waited {waited:.1f} s"


def test_methods_sweep_on_the_demo_corpus(plain):
    """The sweep builds Qdrant from an Encoding by its kind name, beside flat, through the protocol: the
    default mode (no graph on the multi-vector) finds exhaustive MaxSim's top-k, prefetch trades it away."""
    from lirlab import data
    from lirlab.analysis.sweeps import sweep

    demo = data.load("demo")
    docs = plain.encode_documents(list(demo.docs)[:120], progress=False)
    queries = plain.encode_queries(list(demo.queries)[:12])
    methods = [("flat", {}), ("qdrant", {"prefetch": [0, 10], "quantization": ["none", "binary"]})]
    table = sweep(docs, queries, methods=methods, qrels=demo, k=5, warmup=0, progress=False)
    assert table.method.tolist() == ["flat"] + ["qdrant"] * 4
    qdrant = table[table.method == "qdrant"].set_index("setting")
    assert list(qdrant.index) == [
        "method=qdrant, prefetch=0, quantization=none",
        "method=qdrant, prefetch=10, quantization=none",
        "method=qdrant, prefetch=0, quantization=binary",
        "method=qdrant, prefetch=10, quantization=binary",
    ]
    full = qdrant.loc["method=qdrant, prefetch=0, quantization=none"]
    flat = table[table.method == "flat"].iloc[0]
    assert full["exhaustive_recall@5"] == 1.0 and full["nDCG@10"] == pytest.approx(flat["nDCG@10"], abs=1e-9)
    assert (qdrant["build_s"] > 0).all() and (qdrant["p50_ms"] > 0).all()
    assert (qdrant["bytes_per_vector"] > 0).all() and (qdrant["vectors"] == docs.vectors.shape[0]).all()
    assert qdrant["exhaustive_recall@5"].between(0, 1).all() and qdrant["nDCG@10"].between(0, 1).all()


def test_loading_with_another_model_is_refused_naming_both(index, tmp_path):
    folder = tmp_path / "idx"
    index.save(folder)

    class Other:
        name, dim = "other-model", DIM * 2

    with pytest.raises(
        ValueError, match=r"built with an unrecorded model \(dim 16\), not other-model \(dim 32\)"
    ):
        QdrantIndex.load(folder, encoder=Other())


def test_metadata_qdrant_cannot_store_names_the_key():
    with pytest.raises(ValueError, match="key 'when' holds set"):
        payloads_for(["a"], [{"when": {1, 2}}])
    with pytest.raises(ValueError, match=r"key 'score\.bad' holds float nan"):
        payloads_for(["a"], [{"score": {"bad": float("nan")}}])
    with pytest.raises(ValueError, match="key 'docno' is reserved"):
        payloads_for(["a"], [{"docno": "x"}])
    with pytest.raises(ValueError, match="does not hold: 'zz'"):
        QdrantIndex.from_encoding(random_encoding(2, seed=0), metadata={"zz": {"a": 1}})
    with pytest.raises(UnknownKnobError, match="building a qdrant index takes m, ef_construct"):
        QdrantIndex.from_encoding(random_encoding(2, seed=0), nbits=2)


@pytest.mark.realdata
def test_scifact_exact_mode_matches_flat(minilm_dir):
    from lirlab import data
    from lirlab.encoder import ColBERT

    from .conftest import shared_dataset

    dataset = data.load(shared_dataset("scifact"))
    encoder = ColBERT.load("minilm", device="cpu")
    docs = encoder.encode_documents(list(dataset.docs)[:400], progress=False)
    queries = encoder.encode_queries(list(dataset.queries)[:30])
    flat = FlatIndex(docs).search_encoded(queries, k=10)
    index = QdrantIndex.from_encoding(docs, encoder=encoder)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            hits = index.search_encoded(queries, k=10, exact=True)
        for (pos, scores), (fpos, fscores) in zip(hits, flat):
            assert pos.tolist() == fpos.tolist()
            np.testing.assert_allclose(scores.numpy(), fscores.numpy(), rtol=0, atol=1e-4)
    finally:
        index.close()
