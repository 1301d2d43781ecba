"""PLAID's declared knobs: search (:data:`SEARCH_PARAMS`), build (:data:`BUILD_PARAMS`) and the
streaming setting :data:`CHUNK_DOCS`, with ColBERTv2's defaults derived from ``k``.

Examples
--------
>>> from lirlab import params
>>> params.validate(SEARCH_PARAMS, {"ndocs": 512})
{'n_probe': None, 'centroid_score_threshold': None, 'ndocs': 512}
>>> CHUNK_DOCS.validate(0)
Traceback (most recent call last):
...
ValueError: chunk_docs must be >= 1, got 0
"""

from __future__ import annotations

from typing import Any

from lirlab.index.knobs.codec import CENTROID_DTYPES, NBITS_CHOICES
from lirlab.index.knobs.pooling import POOL_FACTOR
from lirlab.params import Param

#: Cap on the default k-means sample, in documents (its vectors are held until the codec is trained).
MAX_DEFAULT_SAMPLE_DOCS = 1 << 15

#: Cap on the token vectors the k-means sample holds (float32: 1 GiB at 128 dimensions), whatever
#: ``kmeans_sample`` says: beyond it the sample is thinned, so build memory stops growing with the corpus.
MAX_SAMPLE_VECTORS = 1 << 21

#: Documents encoded and compressed at a time by ``PlaidIndex.build``, ``from_encoding`` and ``add``.
DEFAULT_CHUNK_DOCS = 4096

SEARCH_PARAMS: dict[str, Param] = {
    "n_probe": Param(
        "n_probe",
        int,
        None,
        "Centroids probed per query token in candidate generation (default from k: 1, 2 or 4).",
        low=1,
        latency="up",
        quality="up",
        aliases="Stanford ncells, fast-plaid n_ivf_probe, WARP nprobe",
    ),
    "centroid_score_threshold": Param(
        "centroid_score_threshold",
        float,
        None,
        "Document tokens whose centroid scores below this against every query token are skipped in stage 2 "
        "(default from k: 0.5, 0.45 or 0.4).",
        low=-1.0,
        high=1.0,
        latency="down",
        quality="down",
        aliases="Stanford centroid_score_threshold",
    ),
    "ndocs": Param(
        "ndocs",
        int,
        None,
        "Candidates kept after stage 2; a quarter of them (at least k) are decompressed "
        "(default from k: 256, 1024 or max(4k, 4096)).",
        low=1,
        latency="up",
        memory="up",
        quality="up",
        aliases="Stanford ndocs, fast-plaid n_full_scores (≈ ndocs/4)",
    ),
}

BUILD_PARAMS: dict[str, Param] = {
    "nbits": Param(
        "nbits",
        int,
        2,
        "Bits per dimension of each residual.",
        choices=NBITS_CHOICES,
        latency="up",
        memory="up",
        quality="up",
        aliases="Stanford nbits, fast-plaid nbits",
    ),
    "n_centroids": Param(
        "n_centroids",
        int,
        None,
        "Number of k-means centroids (default 2^floor(log2(16·sqrt(tokens))), at most the sample's vectors).",
        low=1,
        latency="up",
        memory="up",
        quality="up",
        aliases="Stanford num_partitions",
    ),
    "kmeans_iterations": Param(
        "kmeans_iterations",
        int,
        4,
        "Spherical k-means rounds.",
        low=1,
        quality="up",
        aliases="Stanford kmeans_niters, fast-plaid kmeans_niters",
    ),
    "kmeans_sample": Param(
        "kmeans_sample",
        int,
        None,
        "Documents encoded first to train k-means and the codec "
        f"(default min(n, 16·sqrt(120·n), {MAX_DEFAULT_SAMPLE_DOCS}); thinned to hold at most "
        f"{MAX_SAMPLE_VECTORS:,} token vectors).",
        low=1,
        memory="up",
        quality="up",
        aliases="Stanford sampled pids",
    ),
    "kmeans_points_per_centroid": Param(
        "kmeans_points_per_centroid",
        int,
        None,
        "Most k-means training vectors per centroid: when the sample holds more, a seeded subset of them "
        "trains k-means, whose cost is proportional to their number (default: all, as colbert-ai does; "
        "the codec and compression still see every vector).",
        low=1,
        quality="up",
        aliases="FAISS and fast-plaid max_points_per_centroid (256 there)",
    ),
    "seed": Param("seed", int, 0, "Seeds the k-means sample, held-out split and initialization."),
    "centroid_dtype": Param(
        "centroid_dtype",
        str,
        "float32",
        "Precision the centroids are kept and saved in; float16 halves their bytes (about 2.6 of ~43 B per "
        "vector at SciFact's size) and rounds them before the residuals are taken, so results move slightly.",
        choices=CENTROID_DTYPES,
        memory="down",
        quality="down",
        aliases="colbert-ai and fast-plaid save float16 centroids",
    ),
    "pool_factor": POOL_FACTOR,
}

#: How many documents are encoded and compressed at a time: bounds build memory, changes nothing in the
#: index (so it is not one of :data:`BUILD_PARAMS`).
CHUNK_DOCS = Param(
    "chunk_docs",
    int,
    DEFAULT_CHUNK_DOCS,
    "Documents encoded and compressed at a time (peak build memory), without effect on the index.",
    low=1,
    memory="up",
)


def default_search_params(k: int) -> dict[str, Any]:
    """ColBERTv2's search defaults for ``k`` results.

    >>> default_search_params(10), default_search_params(1000)["ndocs"]
    ({'n_probe': 1, 'centroid_score_threshold': 0.5, 'ndocs': 256}, 4096)
    """
    if k <= 10:
        return {"n_probe": 1, "centroid_score_threshold": 0.5, "ndocs": 256}
    if k <= 100:
        return {"n_probe": 2, "centroid_score_threshold": 0.45, "ndocs": 1024}
    return {"n_probe": 4, "centroid_score_threshold": 0.4, "ndocs": max(k * 4, 4096)}
