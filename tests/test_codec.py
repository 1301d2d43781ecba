"""ColBERTv2 residual codec: bit packing, bucket fitting, reconstruction quality."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lirlab.index.codec import (
    ResidualCodec,
    code_dtype,
    pack_buckets,
    reverse_bit_groups,
    unpack_buckets,
)
from lirlab.index.kmeans import (
    ARGMAX_WINDOW,
    CPU_SIMILARITY_BUDGET,
    int8_first_pass_available,
    nearest_centroids,
    spherical_kmeans,
)
from lirlab.int8_products import ROUTES


def numba_kernels_on() -> bool:
    from lirlab.index.plaid import kernels

    return kernels.enabled("cpu")


def clustered(n: int, dim: int = 32, clusters: int = 16, noise: float = 0.5, seed: int = 0) -> torch.Tensor:
    """Unit vectors scattered around ``clusters`` random unit centers (cosine to center about 0.9)."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.nn.functional.normalize(torch.randn(clusters, dim, generator=g), dim=1)
    which = torch.randint(0, clusters, (n,), generator=g)
    vectors = centers[which] + noise * torch.randn(n, dim, generator=g) / dim**0.5
    return torch.nn.functional.normalize(vectors, dim=1)


@pytest.fixture(scope="module")
def data():
    vectors = clustered(4000)
    train, heldout, test = vectors[:3000], vectors[3000:3500], vectors[3500:]
    return spherical_kmeans(train, 64, iterations=4, seed=0), heldout, test


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_pack_unpack_round_trip(nbits):
    g = torch.Generator().manual_seed(nbits)
    buckets = torch.randint(0, 1 << nbits, (50, 32), generator=g, dtype=torch.uint8)
    packed = pack_buckets(buckets, nbits)
    assert packed.dtype == torch.uint8 and packed.shape == (50, 32 * nbits // 8)
    assert torch.equal(unpack_buckets(packed, nbits), buckets)


def test_first_dimension_in_most_significant_bits():
    assert pack_buckets(torch.tensor([[1, 0, 0, 0, 0, 0, 0, 0]]), 1).tolist() == [[0b1000_0000]]
    assert pack_buckets(torch.tensor([[0, 0, 0, 0, 0, 0, 0, 1]]), 1).tolist() == [[0b0000_0001]]
    assert pack_buckets(torch.tensor([[1, 2, 3, 0]]), 2).tolist() == [[0b01_10_11_00]]
    assert pack_buckets(torch.tensor([[0xA, 0x3]]), 4).tolist() == [[0xA3]]


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_reverse_bit_groups_is_an_involution(nbits):
    every_byte = torch.arange(256, dtype=torch.int64).to(torch.uint8)
    once = reverse_bit_groups(every_byte, nbits)
    assert torch.equal(reverse_bit_groups(once, nbits), every_byte)
    if nbits > 1:
        assert not torch.equal(once, every_byte)


def test_reverse_bit_groups_hand_computed_colbert_byte():
    # Buckets [1, 2, 3, 0] at nbits=2. colbert-ai writes each bucket least-significant bit first:
    # 1 -> "10", 2 -> "01", 3 -> "11", 0 -> "00"  =>  0b10011100 = 156. lirlab: 0b01101100 = 108.
    ours = pack_buckets(torch.tensor([[1, 2, 3, 0]]), 2)
    assert ours.item() == 108
    assert reverse_bit_groups(ours, 2).item() == 156
    assert reverse_bit_groups(torch.tensor([0b0001_0010], dtype=torch.uint8), 4).item() == 0b1000_0100


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_reverse_bit_groups_matches_colbert_ai_packing(nbits):
    g = torch.Generator().manual_seed(10 + nbits)
    buckets = torch.randint(0, 1 << nbits, (20, 16), generator=g)
    # colbert-ai's ResidualCodec.binarize: bits = (b >> arange(nbits)) & 1, flattened, np.packbits.
    bits = (buckets.unsqueeze(-1) >> torch.arange(nbits)) & 1
    colbert = np.packbits(bits.reshape(20, -1).numpy().astype(np.uint8), axis=1)
    assert np.array_equal(reverse_bit_groups(pack_buckets(buckets, nbits), nbits).numpy(), colbert)


def test_code_dtype_boundaries():
    assert code_dtype(1) == torch.uint8
    assert code_dtype(256) == torch.uint8
    assert code_dtype(257) == torch.int16
    assert code_dtype(1 << 15) == torch.int16
    assert code_dtype((1 << 15) + 1) == torch.int32
    # The largest code of each range fits its dtype.
    for n in (256, 1 << 15, 1 << 20):
        assert torch.tensor([n - 1]).to(code_dtype(n)).item() == n - 1


def test_reconstruction_improves_with_nbits(data):
    centroids, heldout, test = data
    means = {}
    for nbits in (1, 2, 4):
        codec = ResidualCodec.train(centroids, heldout, nbits)
        codes, residuals = codec.compress(test)
        assert codes.dtype == torch.uint8 and residuals.shape == (len(test), 32 * nbits // 8)
        restored = codec.decompress(codes, residuals)
        assert torch.allclose(restored.norm(dim=1), torch.ones(len(test)), atol=1e-5)
        means[nbits] = float((restored * test).sum(dim=1).mean())
    centroid_only = float((centroids[codec.assign(test)[0]] * test).sum(dim=1).mean())
    # Measured on this data: centroid only 0.899, nbits 1/2/4: 0.962, 0.985, 0.9975.
    assert centroid_only < means[1] < means[2] < means[4]
    assert means[1] > 0.94 and means[2] > 0.975 and means[4] > 0.99


def test_bucket_quantiles_match_torch_quantile():
    g = torch.Generator().manual_seed(3)
    heldout = torch.nn.functional.normalize(torch.randn(37, 8, generator=g), dim=1)
    centroid = torch.nn.functional.normalize(torch.ones(1, 8), dim=1)
    for nbits in (1, 2, 4):
        codec = ResidualCodec.train(centroid, heldout, nbits)
        residuals = heldout - centroid  # a single centroid: every vector's residual against it
        n = 1 << nbits
        levels = torch.arange(n, dtype=torch.float32) / n
        expected_cutoffs = torch.quantile(residuals, levels[1:], dim=0).T
        expected_weights = torch.quantile(residuals, levels + 0.5 / n, dim=0).T
        assert torch.allclose(codec.bucket_cutoffs, expected_cutoffs, atol=1e-6, rtol=0)
        assert torch.allclose(codec.bucket_weights, expected_weights, atol=1e-6, rtol=0)


def test_vector_equal_to_a_centroid_decodes_close_to_it(data):
    centroids, heldout, _ = data
    codec = ResidualCodec.train(centroids, heldout, 2)
    codes, residuals = codec.compress(centroids[3:4])
    assert codes.item() == 3
    restored = codec.decompress(codes, residuals)
    assert float((restored * centroids[3]).sum()) > 0.98  # measured 0.993


def test_compress_decompress_buckets_are_consistent(data):
    centroids, heldout, test = data
    codec = ResidualCodec.train(centroids, heldout, 2)
    codes, packed = codec.compress(test[:50])
    buckets = unpack_buckets(packed, 2).long()
    expected = codec.bucket_weights[torch.arange(codec.dim), buckets]  # [50, dim]
    assert torch.allclose(codec.residual_values(packed), expected)


def test_wrong_dim_or_nbits_raise(data):
    centroids, heldout, test = data
    with pytest.raises(ValueError, match="nbits"):
        ResidualCodec.train(centroids, heldout, nbits=3)
    with pytest.raises(ValueError, match="dim 6"):
        ResidualCodec.train(centroids[:, :6], heldout[:, :6], nbits=2)
    with pytest.raises(ValueError, match="nbits"):
        pack_buckets(torch.zeros(2, 8, dtype=torch.uint8), 3)
    codec = ResidualCodec.train(centroids, heldout, nbits=2)
    with pytest.raises(ValueError, match="shape"):
        codec.compress(test[:, :16])
    with pytest.raises(ValueError, match="bucket_cutoffs"):
        ResidualCodec(centroids, codec.bucket_cutoffs[:, :2], codec.bucket_weights, 2)
    with pytest.raises(ValueError, match="held-out"):
        ResidualCodec.train(centroids, heldout[:1], nbits=2)


def test_nearest_centroids_in_cache_sized_blocks_match_one_block_and_a_plain_argmax():
    generator = torch.Generator().manual_seed(3)
    vectors = torch.nn.functional.normalize(torch.randn(3000, 32, generator=generator), dim=1)
    centroids = torch.nn.functional.normalize(torch.randn(700, 32, generator=generator), dim=1)
    codes, cosines = nearest_centroids(vectors, centroids)  # the CPU default: blocks of 1497 rows
    one_codes, one_cosines = nearest_centroids(vectors, centroids, budget=vectors.shape[0] * 700)
    small_codes, _ = nearest_centroids(
        vectors, centroids, budget=700 * 7
    )  # 7 rows a block, a ragged last one
    plain = (vectors.double() @ centroids.double().T).max(dim=1)
    assert CPU_SIMILARITY_BUDGET // 700 < vectors.shape[0]  # the default really cuts the rows into blocks
    assert torch.equal(codes, one_codes) and torch.equal(codes, small_codes)
    assert torch.allclose(cosines, one_cosines, atol=1e-6)
    assert (codes == plain.indices).float().mean() > 0.999  # float32 against float64: ties may differ
    assert torch.allclose(cosines.double(), plain.values, atol=1e-5)


def test_nearest_centroids_windowed_argmax_keeps_the_first_of_tied_centroids():
    generator = torch.Generator().manual_seed(4)
    centroids = torch.nn.functional.normalize(torch.randn(4 * ARGMAX_WINDOW, 16, generator=generator), dim=1)
    centroids[3 * ARGMAX_WINDOW + 2] = centroids[7]  # the same centroid twice, in different windows
    centroids[9] = centroids[8]  # and twice in one window
    vectors = torch.cat(
        [centroids[[7, 8, 3 * ARGMAX_WINDOW + 2]], torch.randn(2000, 16, generator=generator)]
    )
    vectors = torch.nn.functional.normalize(vectors, dim=1)
    codes, cosines = nearest_centroids(vectors, centroids)
    reference = (vectors @ centroids.T).max(dim=1)  # one multiply, torch's first-index argmax
    assert codes[:3].tolist() == [7, 8, 7]
    assert torch.equal(codes, reference.indices)
    torch.testing.assert_close(cosines, reference.values, atol=1e-6, rtol=0)


@pytest.mark.skipif(not numba_kernels_on(), reason="needs numba")
@pytest.mark.parametrize(("route", "expected"), [("torch", True), ("onnxruntime", False), (None, False)])
def test_k_means_scores_in_int8_first_only_where_that_is_faster(route, expected, monkeypatch):
    """Through ONNX Runtime (AVX2) the int8 nearest-centroid pass was measured slower than float32."""
    monkeypatch.setattr("lirlab.index.kmeans.int8_route", lambda: route)
    assert int8_first_pass_available() is expected


@pytest.mark.skipif(not numba_kernels_on(), reason="needs numba")
@pytest.mark.parametrize("route", ROUTES)
def test_nearest_centroids_int8_first_pass_finds_the_float_nearest_even_among_near_twins(route, monkeypatch):
    from lirlab.index.plaid import kernels

    monkeypatch.setattr("lirlab.index.kmeans.int8_route", lambda: route)
    monkeypatch.setattr("lirlab.index.kmeans.int8_first_pass_available", lambda: True)

    generator = torch.Generator().manual_seed(6)
    spread = torch.nn.functional.normalize(torch.randn(3 * ARGMAX_WINDOW, 64, generator=generator), dim=1)
    # near twins: centroids 1e-3 apart, far closer than the int8 rounding error (~1e-2)
    twins = torch.nn.functional.normalize(
        spread[:ARGMAX_WINDOW] + 1e-3 * torch.randn(ARGMAX_WINDOW, 64, generator=generator), dim=1
    )
    centroids = torch.cat([spread, twins])
    centroids[2 * ARGMAX_WINDOW + 1] = centroids[5]  # exact duplicates: the first must win
    vectors = torch.nn.functional.normalize(
        torch.cat(
            [
                centroids[:ARGMAX_WINDOW] + 5e-4 * torch.randn(ARGMAX_WINDOW, 64, generator=generator),
                centroids[[5]],
                torch.zeros(1, 64),
                torch.randn(3000, 64, generator=generator),
            ]
        ),
        dim=1,
    )
    codes, cosines = nearest_centroids(vectors, centroids)  # the int8 first pass
    with kernels.use_numba(False):
        float_codes, float_cosines = nearest_centroids(vectors, centroids)  # float32 only
    exact = vectors.double() @ centroids.double().T
    top2 = exact.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 1e-5  # a best that float32 rounding cannot swap
    assert int(clear.sum()) > 3000
    assert torch.equal(codes[clear], exact.argmax(dim=1)[clear])
    assert torch.equal(codes, float_codes)
    assert int(codes[ARGMAX_WINDOW]) == 5 and int(codes[ARGMAX_WINDOW + 1]) == 0  # duplicate; zero row
    torch.testing.assert_close(cosines, float_cosines, atol=1e-6, rtol=0)


@pytest.mark.skipif(not numba_kernels_on(), reason="needs numba")
@pytest.mark.parametrize("route", ROUTES)
def test_kmeans_with_the_int8_first_pass_gives_the_float32_centroids_bit_for_bit(route, monkeypatch):
    from lirlab.index.plaid import kernels

    monkeypatch.setattr("lirlab.index.kmeans.int8_route", lambda: route)
    monkeypatch.setattr("lirlab.index.kmeans.int8_first_pass_available", lambda: True)

    generator = torch.Generator().manual_seed(8)
    centers = torch.nn.functional.normalize(torch.randn(64, 32, generator=generator), dim=1)
    members = torch.randint(0, 64, (20_000,), generator=generator)
    points = torch.nn.functional.normalize(
        centers[members] + 0.3 * torch.randn(20_000, 32, generator=generator), dim=1
    )
    with_int8 = spherical_kmeans(points, 2 * ARGMAX_WINDOW, iterations=4, seed=0)
    with kernels.use_numba(False):
        float32_only = spherical_kmeans(points, 2 * ARGMAX_WINDOW, iterations=4, seed=0)
    assert torch.equal(with_int8, float32_only)
