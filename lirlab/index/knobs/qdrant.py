"""The Qdrant kind's knobs: the collection's HNSW graphs and quantization (build), how a search walks them."""

from __future__ import annotations

from lirlab.params import Param

BUILD_PARAMS: dict[str, Param] = {
    "m": Param(
        "m",
        int,
        0,
        "HNSW edges per node on the token multi-vector; 0 builds no graph there and every search scores "
        "all documents by MaxSim (Qdrant's advice for ColBERT vectors: a graph over MaxSim is slow to build).",
        low=0,
        high=256,
        latency="down",
        memory="up",
        quality="down",
        aliases="Qdrant hnsw_config.m of the multi-vector",
    ),
    "ef_construct": Param(
        "ef_construct",
        int,
        100,
        "Candidates kept while building each HNSW graph (token multi-vector when m > 0, pooled vector).",
        low=4,
        high=4096,
        quality="up",
        aliases="Qdrant hnsw_config.ef_construct",
    ),
    "prefetch_m": Param(
        "prefetch_m",
        int,
        16,
        "HNSW edges per node on the pooled single vector that prefetch= searches.",
        low=0,
        high=256,
        memory="up",
        quality="up",
        aliases="Qdrant hnsw_config.m of the pooled vector",
    ),
    "full_scan_threshold": Param(
        "full_scan_threshold",
        int,
        10000,
        "Kilobytes of vectors under which Qdrant scans a segment rather than walking its graph.",
        low=0,
        high=2**31 - 1,
        aliases="Qdrant hnsw_config.full_scan_threshold",
    ),
    "quantization": Param(
        "quantization",
        str,
        "none",
        "Compressed copies Qdrant searches first (the float32 originals stay for rescoring and documents()): "
        "scalar = int8 per dimension, binary = one bit per dimension.",
        choices=("none", "scalar", "binary"),
        latency="down",
        memory="up",
        quality="down",
        aliases="Qdrant quantization_config: ScalarQuantization(int8) / BinaryQuantization",
    ),
}

SEARCH_PARAMS: dict[str, Param] = {
    "exact": Param(
        "exact",
        bool,
        False,
        "Score every document exactly (no graph, no quantized copies): the same scores as a flat index.",
        latency="up",
        quality="up",
        aliases="Qdrant search_params.exact",
    ),
    "hnsw_ef": Param(
        "hnsw_ef",
        int,
        None,
        "Candidates kept while walking an HNSW graph (auto: Qdrant's default, ef_construct).",
        low=1,
        high=2**31 - 1,
        latency="up",
        quality="up",
        aliases="Qdrant search_params.hnsw_ef",
    ),
    "prefetch": Param(
        "prefetch",
        int,
        0,
        "Candidates fetched by the pooled vector (mean of token vectors) and then re-ranked by full MaxSim; "
        "0 scores the token multi-vector directly. Raised to k when smaller.",
        low=0,
        high=2**31 - 1,
        latency="up",
        quality="up",
        aliases="Qdrant query prefetch (Prefetch on 'pooled', query on 'tokens')",
    ),
    "rescore": Param(
        "rescore",
        bool,
        True,
        "With quantization: re-score the quantized candidates with the float32 vectors.",
        latency="up",
        quality="up",
        aliases="Qdrant search_params.quantization.rescore",
    ),
    "oversampling": Param(
        "oversampling",
        float,
        1.0,
        "With quantization: candidates taken from the quantized copies per result, before rescoring.",
        low=1.0,
        high=100.0,
        latency="up",
        quality="up",
        aliases="Qdrant search_params.quantization.oversampling",
    ),
}
