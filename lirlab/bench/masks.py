"""``[MASK]`` query augmentation on a dataset (SciFact test by default): how quality follows ``query_maxlen``.

Encodes the corpus once, then for every ``query_maxlen`` (0 = no augmentation, 8, 16, 32, 48, 64) with
``attend_to_mask_tokens`` off and on, encodes all test queries again with the same weights and measures
exhaustive MaxSim; at ``query_maxlen`` 32 it also scores the same queries with their ``[MASK]`` rows
dropped. The rows come from :func:`lirlab.analysis.masks.query_maxlen_curve`; they are saved as
``masks.json`` with the machine described, and as ``masks.curve.csv``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from lirlab.analysis.masks import DEFAULT_QUERY_MAXLENS, query_maxlen_curve
from lirlab.bench.record import cached_flat_index, peak_rss_mib, save_results
from lirlab.data import Dataset

MEASURES = ("nDCG@10", "RR@10", "R@100")


def run_mask_benchmark(
    dataset: Dataset,
    encoder,
    out_dir: str | Path,
    query_maxlens: Sequence[int] = DEFAULT_QUERY_MAXLENS,
    ablate_at: Sequence[int] = (32,),
    measures: Sequence[str] = MEASURES,
    k: int = 100,
    batch_size: int = 32,
    cache_dir: str | Path | None = None,
) -> Path:
    """Measure and save ``masks.json`` (+ ``masks.curve.csv``) under ``out_dir``; returns the JSON path.

    Parameters
    ----------
    dataset : Dataset
        Corpus, test queries and qrels.
    encoder : lirlab.encoder.ColBERT
        The checkpoint; its augmentation settings are overridden per row, its weights loaded once.
    out_dir : str or Path
        Results folder.
    query_maxlens, ablate_at, measures, k :
        See :func:`lirlab.analysis.masks.query_maxlen_curve`.
    batch_size : int
        Documents per forward pass when encoding the corpus.
    cache_dir : str or Path, optional
        Reuse the corpus vectors another benchmark encoded with the same model (see
        :func:`lirlab.bench.record.cached_flat_index`).
    """
    start = time.perf_counter()
    index = cached_flat_index(dataset, encoder, cache_dir, batch_size=batch_size)
    encode_seconds = time.perf_counter() - start
    start = time.perf_counter()
    curve = query_maxlen_curve(
        encoder,
        dataset,
        index,
        query_maxlens=query_maxlens,
        attend=(False, True),
        ablate_at=ablate_at,
        measures=measures,
        k=k,
    )
    curve_seconds = time.perf_counter() - start
    results = {
        "dataset": dataset.name,
        "model": encoder.describe(),
        "corpus": {
            "documents": len(dataset.docs),
            "token_vectors": int(index.docs.vectors.shape[0]),
            "encode_or_load_seconds": encode_seconds,
        },
        "queries": len(dataset.queries),
        "search": {"kind": "exhaustive MaxSim (FlatIndex)", "k": min(k, len(dataset.docs))},
        "curve": curve.to_dict("records"),
        "curve_seconds": curve_seconds,
        "peak_rss_mib": peak_rss_mib(),
    }
    return save_results("masks", results, out_dir, device=encoder.device)
