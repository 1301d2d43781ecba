"""Compression error analysis checked against direct computation on a small random corpus."""

from __future__ import annotations

import io
import json

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from lirlab.analysis.compression import (
    RECONSTRUCTIONS,
    compressed_indexes,
    compression_table,
    cosine_distributions,
    ranking_effects,
    reconstruct,
    residual_histogram,
    score_errors,
    spearman,
    spearman_by_query,
    token_cosines,
)
from lirlab.encoding import Encoding
from lirlab.evaluate import top_overlap
from lirlab.index.codec import unpack_buckets
from lirlab.maxsim import maxsim_pair
from lirlab.plots.compression import plot_cosine_histograms, plot_residual_histogram, plot_score_errors

matplotlib.use("Agg")

from . import synthetic

DIM = 16
N_CENTROIDS = 16
K = 5


def random_encoding(n: int, seed: int, kind: str = "document", prefix: str = "d") -> Encoding:
    return synthetic.random_encoding(n, seed, dim=DIM, kind=kind, prefix=prefix, vocab_size=5)


@pytest.fixture(scope="module")
def docs() -> Encoding:
    return random_encoding(40, seed=1)


@pytest.fixture(scope="module")
def queries() -> Encoding:
    return random_encoding(4, seed=2, kind="query", prefix="q")


@pytest.fixture(scope="module")
def indexes(docs):
    return compressed_indexes(docs, (1, 2, 4), n_centroids=N_CENTROIDS)


def hand_decompressed(index, docs: Encoding) -> torch.Tensor:
    """centroid + bucket weight per dimension, normalized: the codec's decoding written out."""
    positions = [index.docnos.index(d) for d in docs.ids]
    rows = torch.cat(
        [torch.arange(int(index.doc_offsets[p]), int(index.doc_offsets[p + 1])) for p in positions]
    )
    buckets = unpack_buckets(index.residuals[rows], index.nbits).long()
    values = index.codec.bucket_weights[torch.arange(DIM), buckets]
    approx = index.codec.centroids[index.codes[rows].long()] + values
    return approx / approx.norm(dim=1, keepdim=True)


def hand_residuals(index, docs: Encoding) -> tuple[torch.Tensor, torch.Tensor]:
    """(exact residuals v - c, nearest centroid codes) computed from scratch."""
    codes = (docs.vectors @ index.codec.centroids.T).argmax(dim=1)
    return docs.vectors - index.codec.centroids[codes], codes


def test_indexes_share_centroids_and_codes(indexes):
    reference = indexes[1]
    for index in indexes.values():
        assert torch.equal(index.codec.centroids, reference.codec.centroids)
        assert torch.equal(index.codes, reference.codes)
    assert [indexes[b].codec.bytes_per_vector for b in (1, 2, 4)] == [DIM * b // 8 + 1 for b in (1, 2, 4)]


def test_k_means_runs_once_for_every_nbits_and_gives_what_separate_builds_give(docs, indexes, monkeypatch):
    from lirlab.index.plaid import PlaidIndex, build

    runs = []
    kmeans = build.spherical_kmeans
    monkeypatch.setattr(build, "spherical_kmeans", lambda *a, **k: runs.append(1) or kmeans(*a, **k))
    shared = compressed_indexes(docs, (1, 4), n_centroids=N_CENTROIDS)
    assert len(runs) == 1
    alone = PlaidIndex.from_encoding(docs, nbits=4, n_centroids=N_CENTROIDS)
    assert torch.equal(shared[4].codes, alone.codes) and torch.equal(shared[4].residuals, alone.residuals)
    assert torch.equal(shared[4].codec.bucket_weights, alone.codec.bucket_weights)


def test_centroids_of_another_shape_are_refused(docs):
    from lirlab.index.plaid import PlaidIndex

    with pytest.raises(ValueError, match=r"the centroids given are \(3, 16\); this build needs"):
        PlaidIndex.from_encoding(docs, nbits=2, n_centroids=N_CENTROIDS, centroids=torch.zeros(3, 16))


def test_cosine_quantiles_equal_those_of_hand_decompressed_vectors(docs, indexes):
    distribution = cosine_distributions(docs, indexes, quantiles=(0.05, 0.5, 0.9), bins=10)
    summary = distribution.summary.set_index("nbits")
    edges = None
    for nbits, index in indexes.items():
        rebuilt = hand_decompressed(index, docs)
        cosines = ((rebuilt * docs.vectors).sum(dim=1) / rebuilt.norm(dim=1)).double().numpy()
        row = summary.loc[nbits]
        assert row.vectors == len(cosines) == docs.vectors.shape[0]
        assert row["mean"] == pytest.approx(cosines.mean(), abs=1e-6)
        assert row["min"] == pytest.approx(cosines.min(), abs=1e-6)
        for q, column in ((0.05, "p5"), (0.5, "p50"), (0.9, "p90")):
            assert row[column] == pytest.approx(np.quantile(cosines, q), abs=1e-6)
        bins = distribution.histogram[distribution.histogram.nbits == nbits]
        edges = np.append(bins.left.to_numpy(), bins.right.iloc[-1]) if edges is None else edges
        within = np.clip(cosines, edges[0], edges[-1])  # the lowest cosine is the first edge, up to rounding
        assert bins["count"].tolist() == np.histogram(within, bins=edges)[0].tolist()
        assert bins.share.sum() == pytest.approx(1.0)
    assert edges[-1] == 1.0


def test_exact_residual_reconstruction_is_exact_and_centroids_alone_are_not(docs, indexes):
    index = indexes[2]
    exact = token_cosines(docs, index, "exact_residual")
    assert torch.allclose(exact, torch.ones_like(exact), atol=1e-6)
    assert torch.allclose(reconstruct(docs, index, "exact_residual").vectors, docs.vectors, atol=1e-6)
    nearest = (docs.vectors @ index.codec.centroids.T).amax(dim=1)
    assert torch.allclose(token_cosines(docs, index, "centroid"), nearest, atol=1e-6)
    summary = cosine_distributions(docs, indexes, reconstructions=RECONSTRUCTIONS).summary
    quantized = summary[summary.reconstruction == "quantized"].set_index("nbits")["mean"]
    centroid = summary[summary.reconstruction == "centroid"]["mean"]
    assert quantized[1] < quantized[2] < quantized[4] < 1.0
    assert (quantized > centroid.max()).all(), "a quantized residual must improve on the centroid alone"


def test_residual_histogram_against_hand_residuals(docs, indexes):
    index = indexes[2]
    residuals, codes = hand_residuals(index, docs)
    assert torch.equal(codes, index.codes.long()), "hand assignment must agree with the index"
    histogram = residual_histogram(docs, index, dims=(0, 5), bins=12)
    for dim in (0, 5):
        bins = histogram.counts[histogram.counts.dim == dim]
        edges = np.append(bins.left.to_numpy(), bins.right.iloc[-1])
        assert (
            bins["count"].tolist() == np.histogram(residuals[:, dim].double().numpy(), bins=edges)[0].tolist()
        )
        buckets = histogram.buckets[histogram.buckets.dim == dim]
        cutoffs = index.codec.bucket_cutoffs[dim]
        assert buckets.upper.tolist()[:-1] == pytest.approx(cutoffs.tolist())
        assert buckets.lower.iloc[0] == -np.inf and buckets.upper.iloc[-1] == np.inf
        assert buckets.weight.tolist() == pytest.approx(index.codec.bucket_weights[dim].tolist())
        by_hand = (residuals[:, dim].unsqueeze(1) > cutoffs).sum(dim=1)
        shares = torch.bincount(by_hand, minlength=4).double() / len(by_hand)
        assert buckets.share.tolist() == pytest.approx(shares.tolist())
    pooled = residual_histogram(docs, index, dims=None, bins=20)
    assert pooled.pooled and not histogram.pooled
    assert pooled.counts["count"].sum() == residuals.numel()
    assert len(pooled.buckets) == DIM * 4


def test_score_errors_equal_exact_minus_compressed_maxsim_by_hand(docs, queries, indexes):
    errors = score_errors(queries, docs, indexes, k=K)
    assert len(errors) == len(indexes) * len(queries) * K
    for qi, qid in enumerate(queries.ids):
        query = queries.vectors_of(qi)
        exact = torch.stack([maxsim_pair(query, docs.vectors_of(i)) for i in range(len(docs))])
        top = [docs.ids[i] for i in exact.topk(K).indices.tolist()]
        for nbits, index in indexes.items():
            rows = errors[(errors.qid == qid) & (errors.nbits == nbits)]
            assert rows.docno.tolist() == top
            for row in rows.itertuples():
                doc = docs.item(row.docno)
                compressed = maxsim_pair(query, hand_decompressed(index, doc))
                assert row.exact == pytest.approx(float(exact[docs.position(row.docno)]), abs=1e-5)
                assert row.compressed == pytest.approx(float(compressed), abs=1e-5)
                assert row.error == pytest.approx(
                    float(exact[docs.position(row.docno)] - compressed), abs=1e-5
                )


def test_spearman_and_overlap_on_hand_made_rankings():
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(1 - 6 * 2 / (4 * 15))
    assert spearman([10, 20, 30], [0.3, 0.2, 0.1]) == pytest.approx(-1.0)
    tied = np.array([1.5, 1.5, 3.0])  # the mean rank of the tie
    assert spearman([5, 5, 7], [1, 2, 3]) == pytest.approx(np.corrcoef(tied, [1, 2, 3])[0, 1])
    assert np.isnan(spearman([1, 1], [1, 2]))
    errors = pd.DataFrame(
        {
            "nbits": [2] * 6,
            "qid": ["a"] * 3 + ["b"] * 3,
            "exact": [3.0, 2.0, 1.0, 3.0, 2.0, 1.0],
            "compressed": [2.9, 2.1, 0.5, 1.0, 2.5, 0.9],
        }
    )
    assert spearman_by_query(errors).spearman.tolist() == pytest.approx([1.0, 1 - 6 * 2 / (3 * 8)])
    reference = pd.DataFrame(
        {"qid": ["a"] * 4 + ["b"] * 2, "docno": list("wxyz") + list("uv"), "rank": [1, 2, 3, 4, 1, 2]}
    )
    run = pd.DataFrame(
        {"qid": ["a"] * 4 + ["b"] * 2, "docno": list("wqyr") + list("vu"), "rank": [1, 2, 3, 4, 1, 2]}
    )
    assert top_overlap(run, reference, k=4) == pytest.approx((2 / 4 + 2 / 2) / 2)
    assert top_overlap(run, reference, k=1) == pytest.approx((1 + 0) / 2)
    assert top_overlap(run[run.qid == "a"], reference, k=4) == pytest.approx((2 / 4 + 0) / 2)


def test_ranking_effects_against_hand_rankings(docs, queries, indexes):
    qrels = pd.DataFrame(
        {"query_id": list(queries.ids), "doc_id": ["d3", "d7", "d11", "d19"], "relevance": 1}
    )
    effects = ranking_effects(queries, docs, indexes, qrels=qrels, k=K).set_index("nbits")
    errors = score_errors(queries, docs, indexes, k=K)
    for nbits, index in indexes.items():
        rebuilt = hand_decompressed(index, docs)
        overlaps, reciprocal_ranks = [], []
        for qi, qid in enumerate(queries.ids):
            query = queries.vectors_of(qi)
            span = [docs.span(i) for i in range(len(docs))]
            exact = torch.stack([maxsim_pair(query, docs.vectors[s]) for s in span])
            compressed = torch.stack([maxsim_pair(query, rebuilt[s]) for s in span])
            overlaps.append(
                len(set(exact.topk(K).indices.tolist()) & set(compressed.topk(K).indices.tolist())) / K
            )
            ranking = [docs.ids[i] for i in compressed.topk(K).indices.tolist()]
            relevant = qrels.doc_id[qrels.query_id == qid].iloc[0]
            reciprocal_ranks.append(1 / np.log2(ranking.index(relevant) + 2) if relevant in ranking else 0.0)
        assert effects.loc[nbits, f"top{K}_overlap"] == pytest.approx(np.mean(overlaps))
        assert effects.loc[nbits, "nDCG@10"] == pytest.approx(np.mean(reciprocal_ranks), abs=1e-4)
        per_query = [spearman(g.exact, g.compressed) for _, g in errors[errors.nbits == nbits].groupby("qid")]
        assert effects.loc[nbits, "spearman"] == pytest.approx(np.nanmean(per_query))
    plaid = ranking_effects(queries, docs, indexes[4], k=K, search="index", n_probe=N_CENTROIDS)
    assert list(plaid.columns) == ["nbits", f"top{K}_overlap", "spearman"]


def test_compression_table_gathers_one_row_per_nbits(docs, queries, indexes):
    table = compression_table(queries, docs, indexes, k=K)
    assert table.nbits.tolist() == [1, 2, 4]
    assert table.bytes_per_vector.tolist() == [DIM * b // 8 + 1 for b in (1, 2, 4)]
    errors = score_errors(queries, docs, indexes, k=K)
    for row in table.itertuples():
        mine = errors[errors.nbits == row.nbits].error
        assert row.score_error_mean_abs == pytest.approx(mine.abs().mean())
        assert row.score_error_max_abs == pytest.approx(mine.abs().max())
        assert row.cosine_p50 == pytest.approx(
            float(token_cosines(docs, indexes[row.nbits]).double().median()), abs=1e-3
        )
    assert json.loads(table.to_json(orient="records"))[0]["nbits"] == 1


def test_bad_inputs_are_value_errors_naming_the_problem(docs, queries, indexes):
    with pytest.raises(ValueError, match="nbits must be one of"):
        compressed_indexes(docs, (2, 3))
    with pytest.raises(ValueError, match="repeat"):
        compressed_indexes(docs, (2, 2))
    with pytest.raises(ValueError, match="reconstruction must be one of"):
        token_cosines(docs, indexes[2], "rounded")
    stranger = Encoding(("nowhere",), docs.vectors[:3], docs.token_ids[:3], torch.tensor([0, 3]), docs.vocab)
    with pytest.raises(ValueError, match="'nowhere' is not in the index"):
        token_cosines(stranger, indexes[2])
    shorter = docs.select([0])
    shorter = Encoding(
        shorter.ids, shorter.vectors[:1], shorter.token_ids[:1], torch.tensor([0, 1]), docs.vocab
    )
    with pytest.raises(ValueError, match="'d0' has other tokens"):
        token_cosines(shorter, indexes[2])
    with pytest.raises(ValueError, match="dims must be dimensions in 0..15"):
        residual_histogram(docs, indexes[2], dims=(DIM,))
    with pytest.raises(ValueError, match="search must be one of"):
        ranking_effects(queries, docs, indexes, search="ann")
    with pytest.raises(ValueError, match="only apply to search='index'"):
        ranking_effects(queries, docs, indexes, n_probe=2)
    with pytest.raises(ValueError, match="no queries"):
        score_errors(queries.select([]), docs, indexes)
    with pytest.raises(ValueError, match="Encoding"):
        cosine_distributions(["some text"], indexes)
    with pytest.raises(ValueError, match="no 'centroid' reconstruction"):
        plot_cosine_histograms(cosine_distributions(docs, indexes), reconstruction="centroid")


def test_figures_render_headless(docs, queries, indexes):
    import matplotlib.pyplot as plt

    figures = [
        plot_cosine_histograms(cosine_distributions(docs, indexes)),
        plot_residual_histogram(residual_histogram(docs, indexes[2], dims=(3,))),
        plot_residual_histogram(residual_histogram(docs, indexes[1], dims=None)),
        plot_score_errors(score_errors(queries, docs, indexes, k=K)),
    ]
    for figure in figures:
        assert isinstance(figure, Figure)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        assert buffer.getvalue().startswith(b"\x89PNG")
    cutoff_lines = [line for line in figures[1].axes[0].lines if line.get_label() == "bucket cutoffs"]
    assert len(cutoff_lines) == 1 and len(figures[1].axes[0].lines) == 1 + 3  # 3 cutoffs + the weights
    assert plt.get_fignums() == [], "figures are built without pyplot, so none is left open"


def test_compression_benchmark_writes_its_table(stanford, tmp_path):
    from lirlab import data
    from lirlab.bench.compression import run_compression_benchmark
    from lirlab.data import Dataset

    demo = data.load("demo")
    docs = demo.docs[:40]
    kept = {d.docno for d in docs}
    qrels = demo.qrels[demo.qrels.doc_id.isin(kept)]
    queries = tuple(q for q in demo.queries if q.qid in set(qrels.query_id))[:4]
    small = Dataset("demo-slice", docs, queries, qrels[qrels.query_id.isin({q.qid for q in queries})])

    path = run_compression_benchmark(small, stanford, tmp_path, k=K, cache_dir=tmp_path / "cache")
    result = json.loads(path.read_text())
    assert result["machine"]["cpu_count"] >= 1 and result["corpus"]["documents"] == 40
    rows = result["compression"]
    assert [r["nbits"] for r in rows] == [1, 2, 4]
    dim = result["corpus"]["dim"]
    assert [r["bytes_per_vector"] - dim * r["nbits"] // 8 for r in rows] in ([1, 1, 1], [2, 2, 2])
    assert rows[0]["cosine_mean"] < rows[1]["cosine_mean"] < rows[2]["cosine_mean"] <= 1
    assert all(0 <= r[f"top{K}_overlap"] <= 1 and 0 <= r["nDCG@10"] <= 1 for r in rows)
    assert len({r["nDCG@10_uncompressed"] for r in rows}) == 1
    table = pd.read_csv(tmp_path / "compression.compression.csv")
    assert table.nbits.tolist() == [1, 2, 4] and "score_error_mean_abs" in table.columns
    assert (tmp_path / "cache" / "demo-slice-flat" / "metadata.json").is_file(), (
        "the encoded corpus is cached"
    )
    summary = pd.read_csv(tmp_path / "compression.cosine_summary.csv")
    assert set(summary.reconstruction) == {"quantized", "centroid"}
