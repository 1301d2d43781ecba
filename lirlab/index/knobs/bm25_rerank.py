"""BM25 then exact MaxSim: BM25's build knobs, and how many of its candidates are re-ranked."""

from __future__ import annotations

from lirlab.index.knobs.bm25 import BUILD_PARAMS
from lirlab.params import Param

SEARCH_PARAMS: dict[str, Param] = {
    "depth": Param(
        "depth",
        int,
        100,
        "BM25 candidates re-ranked by exact MaxSim per query (at least k are).",
        low=1,
        latency="up",
        quality="up",
        aliases="PyTerrier % cutoff (bm25 % 100 >> reranker)",
    )
}

__all__ = ["BUILD_PARAMS", "SEARCH_PARAMS"]
