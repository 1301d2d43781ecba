"""MUVERA's fixed dimensional encodings on hand-made point clouds, and the index through the protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lirlab.encoding import Encoding, offsets_from_lengths
from lirlab.index.base import UnknownKnobError
from lirlab.index.flat import FlatIndex
from lirlab.index.muvera import FDE, MuveraIndex
from lirlab.index.plaid import PlaidIndex
from lirlab.storage import ArtifactError
from tests.synthetic import random_encoding


def cloud(points, kind="document") -> Encoding:
    vectors = torch.tensor(points, dtype=torch.float32)
    return Encoding(
        ids=("x",),
        vectors=vectors,
        token_ids=torch.zeros(len(points), dtype=torch.long),
        offsets=torch.tensor([0, len(points)]),
        vocab=("t",),
        kind=kind,
    )


def hand_fde(k_sim=1, **knobs) -> FDE:
    fde = FDE(dim=2, r_reps=1, k_sim=k_sim, d_proj=2, **knobs)
    planes = torch.tensor([[1.0, 0.0], [0.0, 1.0]])[:k_sim].T  # bit 0: x > 0, bit 1: y > 0
    fde.hyperplanes = planes.unsqueeze(0)
    return fde


def test_one_hyperplane_by_hand():
    fde = hand_fde()
    doc = cloud([[0.6, 0.8], [0.8, 0.6]])  # both x > 0: partition 1; partition 0 is empty
    query = cloud([[-1.0, 0.0], [0.1, 0.99]], "query")  # partition 0, partition 1
    # document: partition 0 filled with its token nearest in Hamming distance (both at 1: the first),
    # partition 1 the mean of its tokens
    torch.testing.assert_close(fde.encode(doc, "document"), torch.tensor([[0.6, 0.8, 0.7, 0.7]]))
    # query: the sum of its tokens in each partition
    torch.testing.assert_close(fde.encode(query, "query"), torch.tensor([[-1.0, 0.0, 0.1, 0.99]]))
    no_fill = hand_fde(fill_empty=False)
    torch.testing.assert_close(no_fill.encode(doc, "document"), torch.tensor([[0.0, 0.0, 0.7, 0.7]]))


def test_two_hyperplanes_fill_by_hamming_distance():
    fde = hand_fde(k_sim=2)
    # partitions: bit0 = x > 0, bit1 = y > 0 → (+,+) is 3, (-,+) is 2, (+,-) is 1, (-,-) is 0
    doc = cloud([[0.6, 0.8], [-0.6, 0.8], [-0.8, 0.6]])  # partitions 3, 2, 2
    got = fde.encode(doc, "document").view(4, 2)
    torch.testing.assert_close(got[3], torch.tensor([0.6, 0.8]))
    torch.testing.assert_close(got[2], torch.tensor([-0.7, 0.7]))
    # partition 1 (+,-) is one bit from 3 and from 0... tokens in 3 (one bit) beat tokens in 2 (two bits)
    torch.testing.assert_close(got[1], torch.tensor([0.6, 0.8]))
    # partition 0 (-,-) is one bit from 2 (the first such token) and two from 3
    torch.testing.assert_close(got[0], torch.tensor([-0.6, 0.8]))


def test_inner_projection_and_count_sketch_by_hand():
    fde = FDE(dim=4, r_reps=2, k_sim=0, d_proj=3, seed=1)
    doc = cloud([[0.5, 0.5, 0.5, 0.5], [1.0, 0.0, 0.0, 0.0]])
    mean = torch.tensor([0.75, 0.25, 0.25, 0.25])
    expected = torch.cat([mean @ fde.projections[r] for r in range(2)])
    torch.testing.assert_close(fde.encode(doc, "document")[0], expected)
    torch.testing.assert_close(fde.projections.abs(), torch.full((2, 4, 3), 1 / 3**0.5))

    sketched = FDE(dim=4, r_reps=2, k_sim=0, d_proj=3, d_final=2, seed=1)
    full = expected
    by_hand = torch.zeros(2)
    for i in range(full.numel()):
        by_hand[int(sketched.sketch_bucket[i])] += float(sketched.sketch_sign[i]) * float(full[i])
    torch.testing.assert_close(sketched.encode(doc, "document")[0], by_hand)


def test_single_partition_inner_product_is_sum_against_the_mean():
    fde = FDE(dim=3, r_reps=1, k_sim=0, d_proj=3)
    docs, queries = random_encoding(1, seed=3, dim=3), random_encoding(1, seed=4, dim=3, kind="query")
    value = float(fde.encode(queries, "query")[0] @ fde.encode(docs, "document")[0])
    assert value == pytest.approx(float(queries.vectors.sum(0) @ docs.vectors.mean(0)), abs=1e-6)


def test_seeded_and_chunked():
    docs = random_encoding(30, seed=5)
    a = FDE(16, 3, 3, 8, seed=7).encode(docs, "document")
    b = FDE(16, 3, 3, 8, seed=7).encode(docs, "document")
    c = FDE(16, 3, 3, 8, seed=8).encode(docs, "document")
    assert torch.equal(a, b) and not torch.equal(a, c)
    one_by_one = torch.cat([FDE(16, 3, 3, 8, seed=7).encode(docs.select([i]), "document") for i in range(30)])
    torch.testing.assert_close(a, one_by_one)


def test_all_candidates_reranked_equals_exact_maxsim():
    docs = random_encoding(30, seed=6)
    queries = random_encoding(3, seed=7, kind="query", prefix="q")
    index = MuveraIndex.from_encoding(docs, r_reps=2, k_sim=2, d_proj=8)
    exact = FlatIndex(docs).search(queries, k=10)
    got = index.search(queries, k=10, candidates=30)
    assert got.docno.tolist() == exact.docno.tolist()
    assert got.score.tolist() == pytest.approx(exact.score.tolist(), abs=1e-5)


@pytest.mark.parametrize("rerank_from", ["vectors", "plaid"])
def test_protocol_and_save_load(rerank_from, tmp_path):
    docs = random_encoding(40, seed=8)
    queries = random_encoding(3, seed=9, kind="query", prefix="q")
    build = {"n_centroids": 8} if rerank_from == "plaid" else {}
    if rerank_from == "plaid":
        index = MuveraIndex.from_index(PlaidIndex.from_encoding(docs, **build), r_reps=4, k_sim=3, d_proj=8)
    else:
        index = MuveraIndex.from_encoding(docs, r_reps=4, k_sim=3, d_proj=8)
    run = index.search(queries, k=5, candidates=12)
    assert len(run) == 15
    assert index.documents([2]).ids == ("d2",)
    assert index.documents([2]).exact is index.exact is (rerank_from == "vectors")
    described = index.describe()  # the settings() method, not an attribute shadowing it
    assert described["config"] == index.settings() and index.settings()["r_reps"] == 4
    assert described["exact"] is index.exact
    _, timings = index.search_timed(queries, k=5)
    assert list(timings) == ["fde_encoding", "fde_scoring", "rerank"]
    index.save(tmp_path / "m")
    again = MuveraIndex.load(tmp_path / "m")
    assert torch.equal(again.fdes, index.fdes) and again.config() == index.config()
    assert again.search(queries, k=5, candidates=12).docno.tolist() == run.docno.tolist()
    assert again.rerank.KIND == ("plaid" if rerank_from == "plaid" else "flat")


@pytest.mark.parametrize(
    "rerank_from, file, damage",
    [
        ("vectors", "doc_offsets", "negative"),
        ("vectors", "doc_offsets", "huge"),
        ("plaid", "doc_offsets", "negative"),
        ("plaid", "codes", "huge"),
        ("vectors", "fdes", "short"),
    ],
)
def test_a_damaged_folder_fails_at_load_with_verification_off(rerank_from, file, damage, tmp_path):
    """Before, these loaded and failed at search ("repeats can not be negative", or an attempt to
    allocate tens of GB)."""
    docs = random_encoding(30, seed=8)
    if rerank_from == "plaid":
        index = MuveraIndex.from_index(
            PlaidIndex.from_encoding(docs, n_centroids=8), r_reps=2, k_sim=2, d_proj=8
        )
    else:
        index = MuveraIndex.from_encoding(docs, r_reps=2, k_sim=2, d_proj=8)
    index.save(tmp_path / "m")
    path = tmp_path / "m" / f"{file}.npy"
    values = np.load(path)
    if damage == "short":
        values = values[:, :-1]
    else:
        values[len(values) // 2] = -3 if damage == "negative" else np.iinfo(values.dtype).max // 4
    np.save(path, values)
    with pytest.raises(ArtifactError, match=f"{file}.npy"):
        MuveraIndex.load(tmp_path / "m", verify=False)


def test_errors_name_the_knob():
    docs = random_encoding(10, seed=10)
    with pytest.raises(ValueError, match=r"over memory_budget_mib=1; lower r_reps, k_sim or d_proj"):
        MuveraIndex.from_encoding(docs, r_reps=400, k_sim=8, d_proj=16, memory_budget_mib=1)
    with pytest.raises(ValueError, match="k_sim must be <= 16"):
        MuveraIndex.from_encoding(docs, k_sim=40)
    index = MuveraIndex.from_encoding(docs, r_reps=2, k_sim=2, d_proj=4)
    with pytest.raises(UnknownKnobError, match="a muvera index takes candidates, got 'nprobe'"):
        index.search(random_encoding(1, seed=1, kind="query"), k=3, nprobe=4)


def test_fde_scores_track_maxsim_on_clustered_data():
    # documents are noisy copies of a few topics: FDE inner products should rank like MaxSim
    g = torch.Generator().manual_seed(11)
    topics = torch.nn.functional.normalize(torch.randn(6, 16, generator=g), dim=1)
    lengths = torch.full((24,), 8)
    vectors = topics.repeat_interleave(4 * 8, dim=0) + 0.3 * torch.randn(24 * 8, 16, generator=g)
    docs = Encoding(
        ids=tuple(f"d{i}" for i in range(24)),
        vectors=torch.nn.functional.normalize(vectors, dim=1),
        token_ids=torch.zeros(24 * 8, dtype=torch.long),
        offsets=offsets_from_lengths(lengths),
        vocab=("t",),
    )
    index = MuveraIndex.from_encoding(docs, r_reps=10, k_sim=3, d_proj=16)
    fde = index.fde_scores(docs.select([0, 9, 17]))
    exact = FlatIndex(docs).scores(docs.select([0, 9, 17]))
    for row in range(3):
        assert set(fde[row].topk(4).indices.tolist()) == set(exact[row].topk(4).indices.tolist())
