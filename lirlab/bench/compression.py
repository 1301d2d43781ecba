"""The compression benchmark: what 1, 2 and 4 bits per dimension cost in vectors, scores and rankings.

On a dataset with one encoder, the corpus (or the copy a previous benchmark left in the cache, see
:func:`lirlab.bench.record.cached_flat_index`) and the queries are encoded once; the same vectors are then
compressed at each ``nbits`` with the same seed (so the indexes share centroids and codes and differ
only in residual quantization, see :func:`lirlab.analysis.compression.compressed_indexes`), and for
each one the benchmark records:

* bytes per token vector and the index's array bytes, against ``4 * dim`` for float32;
* quantiles of the cosine between each token vector and its decompressed reconstruction, beside the
  centroid-only reconstruction (the error the residual starts from);
* the MaxSim score error over each query's exact top-``k`` (exact minus compressed);
* nDCG@10, overlap of the top-``k`` with exact MaxSim over the uncompressed vectors, and the
  Spearman correlation of exact and compressed scores, ranking by exhaustive MaxSim over the
  decompressed vectors (compression alone, no PLAID pruning; ``lirlab bench plaid`` measures that).

Results go to ``compression.json`` with the machine described, tables also as CSV.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from lirlab.analysis.compression import compressed_indexes, compression_table, cosine_distributions
from lirlab.bench.record import cached_flat_index, peak_rss_mib, save_results
from lirlab.data import Dataset


def run_compression_benchmark(
    dataset: Dataset,
    encoder,
    out_dir: str | Path,
    nbits: Sequence[int] = (1, 2, 4),
    k: int = 10,
    batch_size: int = 32,
    n_centroids: int | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = None,
) -> Path:
    """Measure and save ``compression.json`` (+ CSV tables) under ``out_dir``; returns the JSON path.

    Parameters
    ----------
    dataset : Dataset
        Documents, queries and qrels.
    encoder : lirlab.encoder.ColBERT
        Encodes the corpus and the queries, once each.
    nbits : sequence of int
        Codecs compared (each of 1, 2, 4).
    k : int
        Top-``k`` whose scores and overlap are compared.
    n_centroids, seed :
        Build knobs shared by every index (default centroids follow the corpus size).
    cache_dir : path, optional
        Where encoded corpora are kept between benchmarks (``None``: always encode).
    """
    docs = cached_flat_index(dataset, encoder, cache_dir, batch_size=batch_size).docs
    queries = encoder.encode_queries(dataset.queries)

    indexes, build_seconds = {}, {}
    for b in nbits:
        start = time.perf_counter()
        indexes.update(compressed_indexes(docs, (b,), n_centroids=n_centroids, seed=seed, progress=True))
        build_seconds[b] = time.perf_counter() - start

    table = compression_table(queries, docs, indexes, qrels=dataset.qrels, k=k)
    table["index_array_bytes"] = [indexes[b].size_on_disk_bytes() for b in table.nbits]
    table["build_seconds"] = [build_seconds[b] for b in table.nbits]
    cosines = cosine_distributions(docs, indexes, reconstructions=("quantized", "centroid"))

    results = {
        "dataset": dataset.name,
        "model": encoder.describe(),
        "k": k,
        "seed": seed,
        "corpus": {
            "documents": len(docs),
            "token_vectors": int(docs.vectors.shape[0]),
            "dim": docs.dim,
            "uncompressed_bytes_per_vector_fp32": 4 * docs.dim,
        },
        "queries": len(queries),
        "compression": table.to_dict("records"),
        "cosine_summary": cosines.summary.to_dict("records"),
        "cosine_histogram": cosines.histogram.to_dict("records"),
        "peak_rss_mib": peak_rss_mib(),
    }
    return save_results("compression", results, out_dir, device=encoder.device)
