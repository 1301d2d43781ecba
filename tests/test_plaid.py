"""PlaidIndex: the four search stages against brute force, persistence, updates, build streaming."""

from __future__ import annotations

import json
import math
import shutil
import time
import warnings

import numpy as np
import pytest
import torch

from lirlab import params
from lirlab.data import Document
from lirlab.encoding import Encoding, offsets_from_lengths
from lirlab.index.base import FewerResultsWarning, StageTimer
from lirlab.index.flat import FlatIndex
from lirlab.index.plaid import (
    BUILD_PARAMS,
    PRUNED_FLOOR,
    SEARCH_PARAMS,
    STAGES,
    AddReport,
    CompressedDocs,
    DriftWarning,
    PlaidIndex,
    default_search_params,
    stages,
)
from lirlab.maxsim import maxsim_pair
from lirlab.storage import ArtifactError, ArtifactWriter, metadata_checksum

DIM, SIGNAL_DIMS, VOCAB_SIZE = 32, 24, 50
VOCAB = tuple(f"t{i}" for i in range(VOCAB_SIZE))
# One center per vocabulary id, living in the first SIGNAL_DIMS dimensions only (the last ones stay free
# for out-of-distribution documents in the drift test).
CENTERS = torch.nn.functional.normalize(
    torch.cat(
        [
            torch.randn(VOCAB_SIZE, SIGNAL_DIMS, generator=torch.Generator().manual_seed(42)),
            torch.zeros(VOCAB_SIZE, DIM - SIGNAL_DIMS),
        ],
        dim=1,
    ),
    dim=1,
)


def make_docs(n_docs: int = 300, seed: int = 0, first_id: int = 0) -> Encoding:
    """Documents of 5..40 tokens; each token's vector is its token id's center plus noise."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(5, 41, (n_docs,), generator=g)
    token_ids = torch.randint(0, VOCAB_SIZE, (int(lengths.sum()),), generator=g)
    noise = torch.randn(len(token_ids), SIGNAL_DIMS, generator=g) * 0.6 / math.sqrt(SIGNAL_DIMS)
    vectors = CENTERS[token_ids] + torch.cat([noise, torch.zeros(len(token_ids), DIM - SIGNAL_DIMS)], dim=1)
    return Encoding(
        ids=tuple(f"d{first_id + i}" for i in range(n_docs)),
        vectors=torch.nn.functional.normalize(vectors, dim=1),
        token_ids=token_ids,
        offsets=offsets_from_lengths(lengths),
        vocab=VOCAB,
    )


def make_queries(docs: Encoding, n: int = 8, seed: int = 1) -> Encoding:
    """Each query: up to 8 tokens of one document, perturbed."""
    g = torch.Generator().manual_seed(seed)
    picks = torch.randperm(len(docs), generator=g)[:n].tolist()
    vectors, token_ids, lengths = [], [], []
    for p in picks:
        v = docs.vectors_of(p)[:8]
        vectors.append(
            torch.nn.functional.normalize(v + 0.3 * torch.randn(v.shape, generator=g) / math.sqrt(DIM), dim=1)
        )
        token_ids.append(docs.token_ids_of(p)[:8])
        lengths.append(len(v))
    return Encoding(
        ids=tuple(f"q{i}" for i in range(n)),
        vectors=torch.cat(vectors),
        token_ids=torch.cat(token_ids),
        offsets=offsets_from_lengths(torch.tensor(lengths)),
        vocab=VOCAB,
        kind="query",
    )


@pytest.fixture(scope="module")
def docs() -> Encoding:
    return make_docs()


@pytest.fixture(scope="module")
def queries(docs) -> Encoding:
    return make_queries(docs)


@pytest.fixture(scope="module")
def index(docs) -> PlaidIndex:
    return PlaidIndex.from_encoding(docs, nbits=2, n_centroids=64)


def fresh(docs) -> PlaidIndex:
    return PlaidIndex.from_encoding(docs, nbits=2, n_centroids=64)


def doc_codes(index: PlaidIndex, position: int) -> torch.Tensor:
    return index.codes[int(index.doc_offsets[position]) : int(index.doc_offsets[position + 1])].long()


def run_of(index, queries, k=10, **knobs):
    return index.search(queries, k=k, **knobs)[["qid", "docno", "score", "rank"]]


# ---------------------------------------------------------------- building


def test_build_layout_and_default_centroid_count(docs):
    index = PlaidIndex.from_encoding(docs, nbits=2)
    n_tokens = int(docs.offsets[-1])
    expected = 2 ** math.floor(math.log2(16 * math.sqrt(n_tokens)))  # whole corpus is the sample here
    assert index.n_centroids == expected == 1024
    assert torch.allclose(index.codec.centroids.norm(dim=1), torch.ones(index.n_centroids), atol=1e-5)
    assert index.codes.dtype == torch.int16  # 1024 centroids do not fit uint8
    assert index.residuals.shape == (n_tokens, DIM * 2 // 8) and index.residuals.dtype == torch.uint8
    assert index.docnos == docs.ids
    assert torch.equal(index.doc_offsets, docs.offsets)
    assert torch.equal(index.token_ids.long(), docs.token_ids)
    # IVF lists: ascending, unique, and exactly the documents holding a token of that centroid.
    for c in (0, 17, 500):
        listed = index.ivf_positions[int(index.ivf_offsets[c]) : int(index.ivf_offsets[c + 1])].long()
        expected_docs = [p for p in range(len(docs)) if bool((doc_codes(index, p) == c).any())]
        assert listed.tolist() == expected_docs


def test_small_sample_caps_centroids_and_keeps_every_document(docs):
    index = PlaidIndex.from_encoding(docs, nbits=1, kmeans_sample=10, chunk_docs=37)
    sample_cfg = index.config()["kmeans"]
    assert sample_cfg["sample_documents"] == 10
    assert index.n_centroids <= sample_cfg["training_vectors"] < 10 * 40
    assert index.docnos == docs.ids and torch.equal(index.token_ids.long(), docs.token_ids)
    restored = index.documents()
    assert float((restored.vectors * docs.vectors).sum(dim=1).mean()) > 0.8


def test_params_are_declared_for_the_readme():
    table = params.markdown_table(SEARCH_PARAMS)
    for name in ("n_probe", "centroid_score_threshold", "ndocs"):
        assert f"`{name}`" in table
    assert "ncells" in table and "↑" in table
    assert set(BUILD_PARAMS) == {
        "nbits",
        "n_centroids",
        "kmeans_iterations",
        "kmeans_sample",
        "kmeans_points_per_centroid",
        "seed",
        "centroid_dtype",
        "pool_factor",
    }
    assert BUILD_PARAMS["nbits"].choices == (1, 2, 4)
    assert default_search_params(10) == {"n_probe": 1, "centroid_score_threshold": 0.5, "ndocs": 256}
    assert default_search_params(100) == {"n_probe": 2, "centroid_score_threshold": 0.45, "ndocs": 1024}
    assert default_search_params(2000) == {"n_probe": 4, "centroid_score_threshold": 0.4, "ndocs": 8000}


# ---------------------------------------------------------------- the four stages


@pytest.mark.parametrize("n_probe", [1, 3])
def test_stage1_candidates_equal_brute_force(index, queries, n_probe):
    got = index.candidates(queries, n_probe=n_probe)
    for qi in range(len(queries)):
        scores = queries.vectors_of(qi) @ index.codec.centroids.T
        probed = set(scores.argsort(dim=1, descending=True)[:, :n_probe].flatten().tolist())
        expected = [p for p in range(len(index)) if probed & set(doc_codes(index, p).tolist())]
        assert got[qi].tolist() == expected
        assert 0 < len(expected) < len(index)


def brute_centroid_score(index, query: torch.Tensor, position: int, threshold: float | None) -> float:
    scores = query @ index.codec.centroids.T  # [q, C]
    pruned = scores.max(dim=0).values < threshold if threshold is not None else None
    total = 0.0
    for i in range(scores.shape[0]):
        best = PRUNED_FLOOR if pruned is not None else -math.inf
        for code in doc_codes(index, position).tolist():
            if pruned is None or not pruned[code]:
                best = max(best, float(scores[i, code]))
        total += best
    return total


@pytest.mark.parametrize("threshold", [None, 0.5])
def test_stage2_and_3_centroid_scores_equal_brute_force(index, queries, threshold):
    positions = [0, 7, 42, 299]
    got = index.approximate_scores(queries, positions, centroid_score_threshold=threshold)
    assert got.shape == (len(queries), len(positions))
    for qi in range(3):
        for j, p in enumerate(positions):
            expected = brute_centroid_score(index, queries.vectors_of(qi), p, threshold)
            assert got[qi, j].item() == pytest.approx(expected, abs=1e-5)
    if threshold is not None:  # the threshold really prunes here, and pruning changes scores
        best = (queries.vectors_of(0) @ index.codec.centroids.T).max(dim=0).values
        assert 0 < int((best < threshold).sum()) < index.n_centroids
        assert not torch.allclose(got, index.approximate_scores(queries, positions))


def test_stage4_scores_equal_exact_maxsim_of_decompressed(index, queries):
    positions = [3, 50, 120, 298]
    got = index.exact_scores(queries, positions)
    for qi in range(len(queries)):
        for j, p in enumerate(positions):
            vectors, token_ids = index.documents([p]).vectors, index.documents([p]).token_ids
            assert torch.equal(
                token_ids, index.token_ids[index.doc_offsets[p] : index.doc_offsets[p + 1]].long()
            )
            expected = float(maxsim_pair(queries.vectors_of(qi), vectors))
            assert got[qi, j].item() == pytest.approx(expected, abs=1e-5)
    # and the search pipeline reports the same exact scores
    for qi, (hit_positions, hit_scores) in enumerate(index.search_encoded(queries, k=5)):
        again = index.exact_scores(queries.select([qi]), hit_positions)[0]
        assert torch.allclose(hit_scores, again, atol=1e-5)
        assert bool((hit_scores[:-1] >= hit_scores[1:]).all())


def test_exhaustive_settings_rank_like_flat_over_decompressed(index, queries):
    flat = FlatIndex(index.documents())
    exhaustive = dict(n_probe=index.n_centroids, centroid_score_threshold=-1.0, ndocs=4 * len(index))
    ours, reference = run_of(index, queries, k=20, **exhaustive), run_of(flat, queries, k=20)
    assert ours.docno.tolist() == reference.docno.tolist()
    assert np.allclose(ours.score, reference.score, atol=1e-5)


def test_nbits4_default_search_agrees_with_flat_over_original(docs, queries):
    index = PlaidIndex.from_encoding(docs, nbits=4, n_centroids=64)
    ours, reference = run_of(index, queries, k=10), run_of(FlatIndex(docs), queries, k=10)
    overlaps = [
        len(set(ours[ours.qid == q].docno) & set(reference[reference.qid == q].docno)) / 10
        for q in queries.ids
    ]
    assert np.mean(overlaps) >= 0.8


# ---------------------------------------------------------------- never fewer than k


def test_k_beyond_probed_candidates_still_returns_k(index, queries, monkeypatch):
    one_token = queries.select([0])
    one_token = Encoding(
        ("q",), one_token.vectors[:1], one_token.token_ids[:1], torch.tensor([0, 1]), VOCAB, kind="query"
    )
    n_candidates = len(index.candidates(one_token, n_probe=1)[0])
    k = n_candidates + 5
    assert k < len(index)
    probes_used = []
    original_probe = stages.probe

    def spy(ivf, docs, scores, n_probe):
        probes_used.append(n_probe.tolist())
        return original_probe(ivf, docs, scores, n_probe)

    monkeypatch.setattr(stages, "probe", spy)
    positions, scores = index.search_encoded(one_token, k=k, n_probe=1, ndocs=8)[0]
    assert probes_used == [[1], [2]]  # widened once, by doubling n_probe
    monkeypatch.undo()
    assert len(positions) == k == len(set(positions.tolist()))
    assert bool((scores[:-1] >= scores[1:]).all())
    # the query's n_probe was doubled once: same candidates, so same results, as asking for 2 probes
    assert len(index.candidates(one_token, n_probe=2)[0]) >= k
    assert torch.equal(positions, index.search_encoded(one_token, k=k, n_probe=2, ndocs=8)[0][0])


def test_documents_without_tokens_are_reachable(docs, queries):
    empty = Encoding(
        ("e0", "e1"),
        torch.zeros(0, DIM),
        torch.zeros(0, dtype=torch.long),
        torch.zeros(3, dtype=torch.long),
        VOCAB,
    )
    index = PlaidIndex.from_encoding(Encoding.concat([docs, empty]), n_centroids=64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FewerResultsWarning)
        run = index.search(queries, k=302)
    assert run.groupby("qid").size().tolist() == [302] * len(queries)
    tail = run[run.docno.isin(["e0", "e1"])]
    assert len(tail) == 2 * len(queries) and (tail.score == 0).all()
    assert index.documents([301]).vectors.shape == (0, DIM)


@pytest.mark.parametrize(("ndocs", "k", "pruned_keep", "exact_keep"), [(40, 3, 40, 10), (4, 5, 5, 5)])
def test_stage_sizes_follow_ndocs(index, queries, monkeypatch, ndocs, k, pruned_keep, exact_keep):
    seen = {name: [] for name in ("pruning", "centroid_interaction", "exact")}

    def spy(name, original):
        def counted(*args, **kwargs):
            pairs = next(a for a in args if isinstance(a, stages.Pairs))
            seen[name].append(torch.bincount(pairs.query_of, minlength=len(queries)).tolist())
            return original(*args, **kwargs)

        monkeypatch.setattr(stages, {"exact": "exact_scores"}.get(name, name), counted)

    spy("pruning", stages.pruning)
    spy("centroid_interaction", stages.centroid_interaction)
    spy("exact", stages.exact_scores)
    hits = index.search_encoded(queries, k=k, ndocs=ndocs, n_probe=2)
    generated = [len(c) for c in index.candidates(queries, n_probe=2)]
    assert seen["pruning"] == [generated]  # what candidate generation produced
    assert seen["centroid_interaction"] == [[pruned_keep] * len(queries)]
    assert seen["exact"] == [[exact_keep] * len(queries)]  # decompressed and scored exactly
    assert [len(p) for p, _ in hits] == [k] * len(queries)


def test_k_beyond_corpus_returns_all_and_warns(index, queries):
    with pytest.warns(FewerResultsWarning):
        run = index.search(queries, k=len(index) + 50)
    assert run.groupby("qid").size().tolist() == [len(index)] * len(queries)
    assert set(run[run.qid == "q0"].docno) == set(index.docnos)


@pytest.mark.parametrize(
    ("knobs", "name"),
    [
        ({"n_probe": 0}, "n_probe"),
        ({"ndocs": -1}, "ndocs"),
        ({"nprobe": 2}, "nprobe"),
        ({"centroid_score_threshold": 2.0}, "centroid_score_threshold"),
        ({"n_probe": 1.5}, "n_probe"),
    ],
)
def test_knob_validation_names_the_knob(index, queries, knobs, name):
    with pytest.raises(ValueError, match=name):
        index.search_encoded(queries, k=5, **knobs)


def test_bad_k_and_dimension(index, queries):
    with pytest.raises(ValueError, match="k must"):
        index.search_encoded(queries, k=0)
    wrong = Encoding(
        ("q",), torch.ones(2, 16) / 4, torch.zeros(2, dtype=torch.long), torch.tensor([0, 2]), VOCAB
    )
    with pytest.raises(ValueError, match="dim"):
        index.search_encoded(wrong, k=3)


def test_timings_cover_every_stage_in_pipeline_order(index, queries, monkeypatch):
    order: list[str] = []
    original = StageTimer.lap

    def lap(self, stage):
        if not order or order[-1] != stage:
            order.append(stage)
        original(self, stage)

    monkeypatch.setattr(StageTimer, "lap", lap)
    timings: dict = {}
    index.search(queries, k=10, timings=timings)
    monkeypatch.undo()
    assert tuple(order) == STAGES  # every stage laps, once each and in the declared order
    assert all(callable(getattr(stages, name)) for name in STAGES)  # one function per stage, same name
    assert set(timings) == set(STAGES) and all(isinstance(v, float) and v >= 0 for v in timings.values())
    assert sum(timings.values()) > 0
    log: list = []
    index.search_encoded(queries, k=10, timings=log)
    assert len(log) == 1 and set(log[0]) == set(STAGES)
    index.search_encoded(queries, k=10, record_timings=True)
    assert set(index.last_timings) == set(STAGES)


# ---------------------------------------------------------------- persistence


def test_save_load_round_trip(index, queries, tmp_path):
    folder = tmp_path / "plaid"
    index.save(folder)
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["type"] == "lirlab.plaid" and meta["format_version"] == 2
    assert meta["counts"]["documents"] == meta["counts"]["live_documents"] == len(index)
    assert meta["counts"]["bytes_per_vector"] == 8 + 1
    assert meta["config"]["nbits"] == 2 and meta["config"]["n_centroids"] == 64
    assert np.load(folder / "codes.npy").dtype == np.uint8
    on_disk = sum(f.stat().st_size for f in folder.iterdir() if f.name != "metadata.json")
    assert 0 < index.size_on_disk_bytes() <= on_disk
    expected = run_of(index, queries)
    for mmap in (False, True):
        loaded = PlaidIndex.load(folder, mmap=mmap)
        assert loaded.docnos == index.docnos and loaded.vocab == index.vocab
        assert run_of(loaded, queries).equals(expected)
    assert torch.equal(loaded.documents([5]).vectors, index.documents([5]).vectors)


def test_integer_arrays_are_saved_narrow_and_version_1_folders_still_load(
    index, queries, tmp_path, monkeypatch
):
    from lirlab.index.plaid import storage
    from lirlab.index.plaid.ivf import IVF

    folder = tmp_path / "plaid"
    index.save(folder)
    dtypes = {name: np.load(folder / f"{name}.npy").dtype for name in storage.arrays(index)}
    assert dtypes["token_ids"] == dtypes["ivf_positions"] == np.int16
    assert dtypes["doc_offsets"] == dtypes["ivf_offsets"] == np.int32
    assert json.loads((folder / "metadata.json").read_text())["ivf"] == {"exact": True}
    expected = run_of(index, queries)
    # a version 1 folder: int32 ids and positions, int64 offsets, lists not known to be exact
    wide = {
        "token_ids": np.int32,
        "ivf_positions": np.int32,
        "doc_offsets": np.int64,
        "ivf_offsets": np.int64,
    }
    narrow_arrays = storage.arrays
    monkeypatch.setattr(
        storage, "arrays", lambda i: {k: v.astype(wide.get(k, v.dtype)) for k, v in narrow_arrays(i).items()}
    )
    old = PlaidIndex.load(folder)
    old.replace_documents(old.compressed, IVF(old.ivf.positions, old.ivf.offsets), old.docnos, old.pooling)
    monkeypatch.setattr(PlaidIndex, "FORMAT_VERSION", 1)
    old.save(tmp_path / "v1")
    monkeypatch.undo()
    assert json.loads((tmp_path / "v1" / "metadata.json").read_text())["format_version"] == 1
    assert np.load(tmp_path / "v1" / "token_ids.npy").dtype == np.int32
    loaded = PlaidIndex.load(tmp_path / "v1")
    assert not loaded.ivf.exact and run_of(loaded, queries).equals(expected)
    # uint16 (ids from 32,768 on) is widened in memory, where torch cannot index it
    values = np.array([0, 40000], dtype=np.int64)
    assert storage.narrowest(torch.from_numpy(values), storage.SMALL_IDS).dtype == np.uint16


def test_float16_centroids_halve_their_bytes_and_reload_to_the_same_results(docs, index, queries, tmp_path):
    half = PlaidIndex.from_encoding(docs, nbits=2, n_centroids=64, centroid_dtype="float16")
    centroids = half.codec.centroids
    assert centroids.dtype == torch.float32 and torch.equal(centroids.half().float(), centroids)
    # the same k-means, rounded once: every centroid within float16's relative step of the float32 one
    assert torch.allclose(centroids, index.codec.centroids, rtol=2**-10, atol=2**-14)
    assert not torch.equal(centroids, index.codec.centroids)
    assert half.size_on_disk_bytes() == index.size_on_disk_bytes() - 64 * DIM * 2
    half.save(tmp_path / "half")
    assert np.load(tmp_path / "half" / "centroids.npy").dtype == np.float16
    loaded = PlaidIndex.load(tmp_path / "half")
    assert loaded.config()["centroid_dtype"] == "float16" and loaded.codec.centroids.dtype == torch.float32
    assert torch.equal(loaded.codec.centroids, centroids)
    assert run_of(loaded, queries).equals(run_of(half, queries))
    # saving the loaded index again keeps float16 (no silent widening on a round trip)
    loaded.save(tmp_path / "again")
    assert np.load(tmp_path / "again" / "centroids.npy").dtype == np.float16
    index.save(tmp_path / "full")
    assert np.load(tmp_path / "full" / "centroids.npy").dtype == np.float32
    meta = json.loads((tmp_path / "full" / "metadata.json").read_text())
    meta["config"]["centroid_dtype"] = "int8"
    meta["checksum"] = metadata_checksum(meta)  # as if edited by someone who knows the format
    (tmp_path / "full" / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="centroid_dtype='int8' is not one of"):
        PlaidIndex.load(tmp_path / "full")
    with pytest.raises(ValueError, match="centroid_dtype"):
        PlaidIndex.from_encoding(docs, nbits=2, n_centroids=64, centroid_dtype="bfloat16")


def test_failed_save_leaves_the_old_index(index, docs, queries, tmp_path, monkeypatch):
    folder = tmp_path / "plaid"
    index.save(folder)
    expected = run_of(index, queries)
    other = fresh(docs)
    other.delete(list(expected.docno[:3]))
    original = ArtifactWriter.save_array

    def failing(self, name, array):
        if name == "residuals":
            raise OSError("disk full")
        original(self, name, array)

    monkeypatch.setattr(ArtifactWriter, "save_array", failing)
    with pytest.raises(OSError, match="disk full"):
        other.save(folder)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["plaid"]  # no staging or retired folders left
    assert run_of(PlaidIndex.load(folder), queries).equals(expected)


@pytest.mark.parametrize("damage", ["delete", "truncate", "flip", "version", "shape"])
def test_damaged_folder_names_the_file(index, tmp_path, damage):
    folder = tmp_path / "plaid"
    index.save(folder)
    residuals = folder / "residuals.npy"
    if damage == "delete":
        (folder / "ivf_offsets.npy").unlink()
        expected = "ivf_offsets.npy"
    elif damage == "truncate":
        residuals.write_bytes(residuals.read_bytes()[:-100])
        expected = "residuals.npy"
    elif damage == "flip":
        data = bytearray(residuals.read_bytes())
        data[-5] ^= 0xFF
        residuals.write_bytes(bytes(data))
        expected = "residuals.npy"
    elif damage == "version":
        meta = json.loads((folder / "metadata.json").read_text())
        meta["format_version"] += 1
        (folder / "metadata.json").write_text(json.dumps(meta))
        expected = "metadata.json"
    else:  # a well-formed file of the wrong shape, with a matching checksum (verify=False)
        np.save(folder / "deleted.npy", np.zeros(3, dtype=bool))
        with pytest.raises(ArtifactError, match="deleted.npy"):
            PlaidIndex.load(folder, verify=False)
        return
    with pytest.raises(ArtifactError, match=expected):
        PlaidIndex.load(folder)


# ---------------------------------------------------------------- updates


def test_add_makes_documents_searchable_and_reports_drift(docs, queries):
    index = fresh(docs)
    extra = make_docs(30, seed=5, first_id=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DriftWarning)
        report = index.add(extra)
    assert report == AddReport(30, int(extra.offsets[-1]), report.drift, index.stats["drift_threshold"])
    assert report.drift < 0.15  # in distribution: about DRIFT_QUANTILE of vectors fall below the threshold
    assert len(index) == 330 and index.docnos[300:] == extra.ids
    new_queries = make_queries(extra, n=5, seed=9)
    run = run_of(index, new_queries, k=5)
    assert all(run[run["rank"] == 1].docno.str.startswith("d10"))
    # the appended documents are in the IVF and score like a fresh index built on everything
    both = Encoding.concat([docs, extra])
    assert (
        index.candidates(new_queries, n_probe=2)[0].tolist()
        == PlaidIndex(
            index.codec,
            CompressedDocs(index.codes, index.residuals, index.token_ids, index.doc_offsets),
            both.ids,
            VOCAB,
        )
        .candidates(new_queries, n_probe=2)[0]
        .tolist()
    )


def test_add_duplicate_docno_leaves_index_unchanged(docs, queries):
    index = fresh(docs)
    before = run_of(index, queries)
    n_tokens = index.n_tokens
    clash = make_docs(3, seed=6, first_id=298)  # d298, d299 exist, d300 does not
    with pytest.raises(ValueError, match="d298"):
        index.add(clash)
    assert len(index) == 300 and index.n_tokens == n_tokens
    assert run_of(index, queries).equals(before)
    with pytest.raises(ValueError, match="dim"):
        index.add(
            Encoding(
                ("x",), torch.ones(1, 16) / 4, torch.zeros(1, dtype=torch.long), torch.tensor([0, 1]), VOCAB
            )
        )
    assert len(index) == 300


def test_add_far_documents_drift_and_warn(docs):
    index = fresh(docs)
    g = torch.Generator().manual_seed(8)
    far = torch.cat([torch.zeros(100, SIGNAL_DIMS), torch.randn(100, DIM - SIGNAL_DIMS, generator=g)], dim=1)
    extra = Encoding(
        tuple(f"far{i}" for i in range(10)),
        torch.nn.functional.normalize(far, dim=1),
        torch.zeros(100, dtype=torch.long),
        offsets_from_lengths(torch.full((10,), 10)),
        VOCAB,
    )
    with pytest.warns(DriftWarning, match="rebuilding"):
        report = index.add(extra)
    assert report.drift > 0.95 and report.n_vectors == 100


def test_delete_and_compact(docs, queries):
    index = fresh(docs)
    before = run_of(index, queries, k=10)
    victims = sorted(set(before[before["rank"] <= 2].docno))
    survivors_positions = {d: index.docnos.index(d) for d in ("d0", "d150", "d299") if d not in victims}
    with pytest.raises(ValueError, match="nope"):
        index.delete(["d1", "nope"])
    assert index.n_live == 300  # nothing deleted on error
    assert index.delete(victims) == len(victims)
    with pytest.raises(ValueError, match="already deleted"):
        index.delete(victims[0])
    after = run_of(index, queries, k=10)
    assert not set(after.docno) & set(victims)
    assert all(index.docnos.index(d) == p for d, p in survivors_positions.items())
    assert index.n_live == 300 - len(victims) and len(index) == 300
    # surviving documents keep their scores
    kept = before[~before.docno.isin(victims)].merge(after, on=["qid", "docno"])
    assert len(kept) > 0 and np.allclose(kept.score_x, kept.score_y)
    # exhaustive search still returns every live document
    full = index.search_encoded(queries.select([0]), k=300, n_probe=64, ndocs=2000)[0][0]
    assert len(full) == 300 - len(victims)
    assert index.compact() == len(victims)
    assert len(index) == index.n_live == 300 - len(victims) and index.n_tokens < int(docs.offsets[-1])
    assert run_of(index, queries, k=10).equals(after)
    assert index.documents().ids == tuple(d for d in docs.ids if d not in victims)


# ---------------------------------------------------------------- build through an encoder


class CountingEncoder:
    """Encodes a document by a deterministic function of its id; counts what it was asked to encode."""

    def __init__(self):
        self.calls = 0
        self.encoded: list[str] = []
        self.corpus = make_docs(120, seed=3)

    def encode_documents(self, docs, batch_size=32, progress=True):
        self.calls += 1
        ids = [d.docno for d in docs]
        self.encoded.extend(ids)
        return self.corpus.select([self.corpus.position(i) for i in ids])

    def describe(self):
        return {"name": "counting-fake", "dim": DIM}


class SlowEncoder(CountingEncoder):
    """Takes a known time per encoding call, so the build's timings can be checked against it."""

    def encode_documents(self, docs, batch_size=32, progress=True):
        time.sleep(0.05)
        return super().encode_documents(docs, batch_size, progress)


def test_build_timings_split_the_build_into_encoding_kmeans_and_compression():
    from lirlab.index.plaid.build import BUILD_STAGES

    encoder, timings = SlowEncoder(), {}
    records = [Document(d, f"text of {d}") for d in encoder.corpus.ids]
    start = time.perf_counter()
    PlaidIndex.build(records, encoder, kmeans_sample=25, chunk_docs=20, progress=False, timings=timings)
    wall = time.perf_counter() - start
    assert tuple(timings) == BUILD_STAGES == ("encoding", "kmeans", "compression")
    assert timings["encoding"] >= 0.05 * encoder.calls  # every encoding call is counted as encoding
    assert timings["kmeans"] > 0 and timings["compression"] > 0
    assert sum(timings.values()) <= wall


def test_kmeans_points_per_centroid_caps_the_training_vectors_only():
    docs = make_docs(200, seed=4)
    full = PlaidIndex.from_encoding(docs, n_centroids=16, seed=1)
    capped = PlaidIndex.from_encoding(docs, n_centroids=16, seed=1, kmeans_points_per_centroid=5)
    roomy = PlaidIndex.from_encoding(docs, n_centroids=16, seed=1, kmeans_points_per_centroid=10_000)
    n_vectors = int(docs.vectors.shape[0])
    assert (
        full.config()["kmeans"]["training_vectors"] == n_vectors - full.config()["kmeans"]["heldout_vectors"]
    )
    assert capped.config()["kmeans"]["training_vectors"] == 5 * 16
    assert capped.config()["kmeans"]["points_per_centroid"] == 5
    assert torch.equal(roomy.codec.centroids, full.codec.centroids)  # a cap above the sample changes nothing
    assert not torch.equal(capped.codec.centroids, full.codec.centroids)
    assert capped.n_tokens == full.n_tokens == n_vectors  # every vector is still compressed
    with pytest.raises(ValueError, match="kmeans_points_per_centroid"):
        PlaidIndex.from_encoding(docs, n_centroids=16, kmeans_points_per_centroid=0)


def test_build_encodes_every_document_once(tmp_path):
    encoder = CountingEncoder()
    records = [Document(d, f"text of {d}") for d in encoder.corpus.ids]
    index = PlaidIndex.build(records, encoder, nbits=2, kmeans_sample=25, chunk_docs=20, progress=False)
    assert sorted(encoder.encoded) == sorted(encoder.corpus.ids)  # each exactly once
    assert encoder.calls == math.ceil(25 / 20) + math.ceil(95 / 20)
    assert index.docnos == encoder.corpus.ids  # input order, although the sample came first
    assert torch.equal(index.token_ids.long(), encoder.corpus.token_ids)
    cosine = (index.documents().vectors * encoder.corpus.vectors).sum(dim=1)
    assert float(cosine.mean()) > 0.9
    assert index.model == {"name": "counting-fake", "dim": DIM}
    # text add goes through the same encoder, once per new document
    encoder.corpus = Encoding.concat([encoder.corpus, make_docs(4, seed=11, first_id=500)])
    index.add([Document(f"d{500 + i}", "new") for i in range(4)])
    assert encoder.encoded[-4:] == [f"d{500 + i}" for i in range(4)] and len(index) == 124
    index.save(tmp_path / "p")
    assert json.loads((tmp_path / "p" / "metadata.json").read_text())["model"]["name"] == "counting-fake"


def test_sample_stops_at_the_vector_cap_and_every_document_is_encoded_once(monkeypatch):
    from lirlab.index.plaid import build

    encoder = CountingEncoder()
    records = [Document(d, f"text of {d}") for d in encoder.corpus.ids]
    uncapped = PlaidIndex.build(records, encoder, nbits=2, kmeans_sample=60, chunk_docs=20, progress=False)
    first_chunk = [encoder.corpus.position(i) for i in encoder.encoded[:20]]
    first_chunk_vectors = int(encoder.corpus.select(first_chunk).vectors.shape[0])
    assert uncapped.config()["kmeans"]["sample_documents"] == 60
    monkeypatch.setattr(build, "MAX_SAMPLE_VECTORS", first_chunk_vectors + 1)
    encoder.encoded.clear()
    capped = PlaidIndex.build(records, encoder, nbits=2, kmeans_sample=60, chunk_docs=20, progress=False)
    kmeans = capped.config()["kmeans"]
    assert 20 <= kmeans["sample_documents"] < 60
    assert kmeans["training_vectors"] + kmeans["heldout_vectors"] <= first_chunk_vectors * 2
    assert sorted(encoder.encoded) == sorted(encoder.corpus.ids)
    assert capped.docnos == encoder.corpus.ids
    assert torch.equal(capped.token_ids.long(), encoder.corpus.token_ids)


def test_gather_rows_equals_indexing_the_concatenation(docs):
    from lirlab.index.plaid.build import gather_rows

    parts = [docs.select(list(range(a, b))) for a, b in ((0, 7), (7, 8), (8, 50), (50, len(docs)))]
    rows = torch.randperm(int(docs.vectors.shape[0]), generator=torch.Generator().manual_seed(0))[:300]
    assert torch.equal(gather_rows(parts, rows), docs.vectors[rows])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_search_matches_cpu(docs, queries, tmp_path):
    cpu = fresh(docs)
    cpu.save(tmp_path / "p")
    gpu = PlaidIndex.load(tmp_path / "p", device="cuda")
    timings: dict = {}
    a, b = run_of(cpu, queries), gpu.search(queries, k=10, timings=timings)
    assert a.docno.tolist() == b.docno.tolist() and np.allclose(a.score, b.score, atol=1e-4)
    assert set(timings) == set(STAGES)
    shutil.rmtree(tmp_path / "p")


def test_tokens_match_documents_without_decompressing(index, monkeypatch):
    positions = [9, 0, len(index) - 1]
    expected = index.documents(positions)
    monkeypatch.setattr(type(index.compressed), "decompress", lambda *a, **k: pytest.fail("decompressed"))
    token_ids, lengths, vocab = index.tokens(positions)
    assert torch.equal(token_ids, expected.token_ids) and torch.equal(lengths, expected.lengths)
    assert vocab == expected.vocab
