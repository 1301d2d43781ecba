"""Reading a colbert-ai index folder: written here in colbert-ai's own layout and bit order."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from lirlab.encoding import Encoding, offsets_from_lengths
from lirlab.index.codec import ResidualCodec
from lirlab.index.plaid import PlaidIndex
from lirlab.index.stanford import is_stanford_index, read_stanford_index
from lirlab.storage import ArtifactError

NBITS, DIM, N_CENTROIDS = 2, 16, 8


def clustered(n_docs, seed):
    g = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(N_CENTROIDS, DIM, generator=g), dim=1)
    lengths = torch.randint(3, 12, (n_docs,), generator=g)
    total = int(lengths.sum())
    vectors = centres[torch.randint(0, N_CENTROIDS, (total,), generator=g)] + 0.3 * torch.randn(
        total, DIM, generator=g
    )
    return Encoding(
        ids=tuple(str(i) for i in range(n_docs)),
        vectors=torch.nn.functional.normalize(vectors, dim=1),
        token_ids=torch.zeros(total, dtype=torch.long),
        offsets=offsets_from_lengths(lengths),
        vocab=("t",),
    )


def colbert_ai_pack(buckets: torch.Tensor) -> torch.Tensor:
    """colbert-ai's ``binarize``: each bucket index's bits least-significant first, then ``np.packbits``."""
    bits = (buckets.unsqueeze(-1) >> torch.arange(NBITS)) & 1
    return torch.from_numpy(
        np.packbits(bits.flatten().numpy().astype(np.uint8)).reshape(buckets.shape[0], -1)
    )


def colbert_ai_decompress(centroids, cutoffs_weights, codes, packed):
    """colbert-ai's decompression written out: unpack bits, rebuild bucket indexes, add, normalize."""
    weights = cutoffs_weights[1]
    bits = np.unpackbits(packed.numpy(), axis=1).reshape(packed.shape[0], DIM, NBITS)
    buckets = (torch.from_numpy(bits.astype(np.int64)) << torch.arange(NBITS)).sum(-1)
    return torch.nn.functional.normalize(centroids[codes.long()] + weights[buckets], dim=1)


@pytest.fixture
def stanford_index(tmp_path):
    docs = clustered(60, seed=1)
    reference = PlaidIndex.from_encoding(docs, nbits=NBITS, n_centroids=N_CENTROIDS)
    centroids = reference.codec.centroids
    cutoffs = reference.codec.bucket_cutoffs.mean(dim=0)
    weights = reference.codec.bucket_weights.mean(dim=0)
    shared = ResidualCodec(centroids, cutoffs.expand(DIM, -1), weights.expand(DIM, -1), NBITS)
    codes, _ = shared.assign(docs.vectors)
    residuals = docs.vectors - centroids[codes]
    buckets = (residuals.unsqueeze(2) > cutoffs).sum(dim=2)

    folder = tmp_path / "colbert-index"
    folder.mkdir()
    config = {"nbits": NBITS, "dim": DIM, "checkpoint": "some/colbert"}
    (folder / "plan.json").write_text(json.dumps({"config": config, "num_chunks": 2}))
    (folder / "metadata.json").write_text(
        json.dumps({"config": config, "num_chunks": 2, "num_partitions": N_CENTROIDS})
    )
    torch.save(centroids.half(), folder / "centroids.pt")
    torch.save((cutoffs, weights), folder / "buckets.pt")
    torch.save(torch.tensor(0.1), folder / "avg_residual.pt")
    lengths = docs.lengths.tolist()
    split = 25
    for n, (first, last) in enumerate(((0, split), (split, len(lengths)))):
        rows = slice(int(docs.offsets[first]), int(docs.offsets[last]))
        torch.save(codes[rows].int(), folder / f"{n}.codes.pt")
        torch.save(colbert_ai_pack(buckets[rows]), folder / f"{n}.residuals.pt")
        (folder / f"doclens.{n}.json").write_text(json.dumps(lengths[first:last]))
    doc_of_token = torch.repeat_interleave(torch.arange(len(lengths)), docs.lengths)
    pairs = torch.unique(torch.stack([codes, doc_of_token]), dim=1)
    torch.save((pairs[1].int(), torch.bincount(pairs[0], minlength=N_CENTROIDS)), folder / "ivf.pid.pt")
    return folder, docs, (centroids.half().float(), (cutoffs, weights)), codes


def test_decompression_matches_colbert_ai_bit_order(stanford_index):
    folder, docs, (centroids, buckets), codes = stanford_index
    assert is_stanford_index(folder)
    index = read_stanford_index(folder)
    assert index.docnos[:3] == ("0", "1", "2") and len(index) == 60
    packed = torch.cat([torch.load(folder / f"{n}.residuals.pt", weights_only=True) for n in (0, 1)])
    expected = colbert_ai_decompress(centroids, buckets, codes, packed)
    got = index.documents().vectors
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_an_imported_index_saved_by_lirlab_keeps_float16_centroids(stanford_index, tmp_path):
    folder, _, (centroids, _), _ = stanford_index
    index = read_stanford_index(folder)
    assert index.config()["centroid_dtype"] == "float16"
    index.save(tmp_path / "lirlab")
    saved = np.load(tmp_path / "lirlab" / "centroids.npy")
    assert saved.dtype == np.float16 and torch.equal(torch.from_numpy(saved).float(), centroids)


def test_search_equals_an_index_built_from_the_same_codes(stanford_index):
    folder, docs, _, _ = stanford_index
    index = read_stanford_index(folder, docnos=[f"doc{i}" for i in range(60)])
    queries = clustered(4, seed=7)
    queries = Encoding(**{**queries.__dict__, "kind": "query", "ids": ("a", "b", "c", "d")})
    run = index.search(queries, k=5, n_probe=2)
    assert run.docno.str.startswith("doc").all() and len(run) == 20
    exact = index.documents()
    for qid, group in run.groupby("qid"):
        q = queries.vectors_of(queries.ids.index(qid))
        expected = [float((q @ exact.vectors_of(int(d[3:])).T).max(dim=1).values.sum()) for d in group.docno]
        np.testing.assert_allclose(group.score, expected, atol=1e-4)
    rebuilt = PlaidIndex(index.codec, index.compressed, index.docnos)
    pd.testing.assert_frame_equal(rebuilt.search(queries, k=5, n_probe=2), run)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: (f / "buckets.pt").unlink(), "buckets.pt: missing"),
        (
            lambda f: (f / "1.residuals.pt").write_bytes(b"not a tensor file"),
            "1.residuals.pt: cannot be read",
        ),
        (lambda f: (f / "doclens.0.json").write_text("[1, 2]"), "doclens.0.json: lengths sum"),
        (lambda f: (f / "metadata.json").write_text(json.dumps({"config": {}})), "lacks nbits or dim"),
        (lambda f: torch.save({"code": "x"}, f / "buckets.pt"), "expected \\(bucket_cutoffs"),
    ],
)
def test_damaged_colbert_ai_folders(stanford_index, damage, message):
    folder = stanford_index[0]
    damage(folder)
    with pytest.raises(ArtifactError, match=message):
        read_stanford_index(folder)


def test_pickled_code_is_refused(stanford_index):
    folder = stanford_index[0]

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save(Payload(), folder / "avg_residual.pt")
    torch.save((Payload(), Payload()), folder / "buckets.pt")
    with pytest.raises(ArtifactError, match="buckets.pt: cannot be read"):
        read_stanford_index(folder)


def test_ivf_entries_past_the_list_lengths_are_ignored(stanford_index):
    """colbert-ai pads ivf.pid.pt past the end of its lists (optimize_ivf) and reads them by length."""
    folder = stanford_index[0]
    queries = clustered(3, seed=11)
    queries = Encoding(**{**queries.__dict__, "kind": "query", "ids": ("a", "b", "c")})
    before = read_stanford_index(folder).search(queries, k=5, n_probe=2)
    pids, lengths = torch.load(folder / "ivf.pid.pt", weights_only=True)
    torch.save(
        (torch.cat([pids, torch.zeros(int(lengths.max()), dtype=pids.dtype)]), lengths), folder / "ivf.pid.pt"
    )
    index = read_stanford_index(folder)
    assert index.ivf.positions.numel() == int(lengths.sum())
    pd.testing.assert_frame_equal(index.search(queries, k=5, n_probe=2), before)


@pytest.mark.parametrize(
    "ivf, message",
    [
        (lambda p, n: (p[:-1], n), "add up to .* passage ids, the file holds only"),
        (lambda p, n: (p, n[:-1]), "7 inverted lists for 8 centroids"),
        (lambda p, n: (p + 1000, n), "passage ids out of range"),
        (lambda p, n: (p.float(), n), "must be integers"),
        (lambda p, n: p, "expected \\(passage_ids, list_lengths\\)"),
    ],
)
def test_inconsistent_ivf_is_named(stanford_index, ivf, message):
    folder = stanford_index[0]
    pids, lengths = torch.load(folder / "ivf.pid.pt", weights_only=True)
    torch.save(ivf(pids, lengths), folder / "ivf.pid.pt")
    with pytest.raises(ArtifactError, match=message):
        read_stanford_index(folder)
