"""MUVERA's knobs: the fixed dimensional encoding's shape (build) and the candidates re-ranked (search)."""

from __future__ import annotations

from lirlab.params import Param

BUILD_PARAMS: dict[str, Param] = {
    "r_reps": Param(
        "r_reps",
        int,
        20,
        "Independent repetitions of the SimHash partitioning, concatenated (FDE size grows linearly).",
        low=1,
        high=4096,
        latency="up",
        memory="up",
        quality="up",
        aliases="MUVERA R_reps, Google FDE num_repetitions",
    ),
    "k_sim": Param(
        "k_sim",
        int,
        5,
        "SimHash hyperplanes per repetition: 2^k_sim partitions (FDE size doubles per step).",
        low=0,
        high=16,
        latency="up",
        memory="up",
        quality="up",
        aliases="MUVERA k_sim, Google FDE num_simhash_projections",
    ),
    "d_proj": Param(
        "d_proj",
        int,
        16,
        "Dimension of each partition block after the random ±1 inner projection (= dim: no projection).",
        low=1,
        latency="up",
        memory="up",
        quality="up",
        aliases="MUVERA d_proj, Google FDE projection_dimension",
    ),
    "d_final": Param(
        "d_final",
        int,
        0,
        "Final Count-Sketch projection of the whole FDE to this many floats (0 = none).",
        low=0,
        latency="up",
        memory="up",
        quality="up",
        aliases="MUVERA d_final, Google FDE final_projection_dimension",
    ),
    "fill_empty": Param(
        "fill_empty",
        bool,
        True,
        "Fill a document's empty partitions with its token nearest in SimHash Hamming distance.",
        quality="up",
        aliases="Google FDE fill_empty_partitions",
    ),
    "seed": Param("seed", int, 0, "Seeds the hyperplanes and projections.", aliases="Google FDE seed"),
    "rerank_from": Param(
        "rerank_from",
        str,
        "vectors",
        "Where the exact re-ranking reads document vectors: the stored vectors (flat) or a PLAID index "
        "built on the same corpus (decompressed).",
        choices=("vectors", "plaid"),
        memory="",
        aliases="",
    ),
    "memory_budget_mib": Param(
        "memory_budget_mib",
        int,
        2048,
        "Largest FDE matrix (float32, all documents) a build may allocate, in MiB.",
        low=1,
        aliases="",
    ),
}

SEARCH_PARAMS: dict[str, Param] = {
    "candidates": Param(
        "candidates",
        int,
        100,
        "Documents, best by FDE inner product, re-ranked by exact MaxSim (at least k).",
        low=1,
        latency="up",
        quality="up",
        aliases="MUVERA re-ranking candidates",
    ),
}
