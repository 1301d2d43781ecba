"""``lirlab bench plaid``: the compressed index against exhaustive MaxSim, in one run.

On a dataset (SciFact test by default) with one encoder, measures:

* the build from text (encode once, k-means on a sample, compress chunk by chunk): seconds, peak RSS;
* for nbits 1, 2 and 4 (the same vectors compressed): bytes per token vector, index size on disk,
  nDCG@10 over every query and over the timed ones, and the overlap of the top-10 with exhaustive
  MaxSim over the uncompressed vectors;
* search latency per query at the default knobs (query encoding excluded; reported separately), with
  per-stage times, one query at a time, and the per-query time of one batch of all queries;
* the same latency with PLAID's numba kernels and with the previous implementation (the torch
  kernels), alternated in this run, with their ratio (the machine is shared: compare ratios);
* an ``n_probe`` sweep (1, 2, 4, 8, 16, 32) with latency, nDCG@10 and recall of the exhaustive top-10.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lirlab.analysis.sweeps import sweep, timed_search
from lirlab.bench.record import cached_flat_index, peak_rss_mib, percentiles, save_results
from lirlab.data import Dataset
from lirlab.evaluate import evaluate, top_overlap
from lirlab.index.plaid import PlaidIndex, default_search_params

N_PROBES = (1, 2, 4, 8, 16, 32)

#: Rounds of the kernel comparison (numba kernels, then the previous torch implementation, alternated).
COMPARISON_ROUNDS = 3


def kernels_against_previous(index, queries, k: int = 10, rounds: int = COMPARISON_ROUNDS) -> dict:
    """Default-knob latency with PLAID's numba kernels and with the previous implementation (the torch
    kernels, :func:`lirlab.index.plaid.kernels.use_numba` off), alternated ``rounds`` times in this run.

    Returns the median over rounds of each figure of :func:`~lirlab.analysis.sweeps.timed_search` for
    both, the ratio of their p50s (numba / previous) per round and its median, and whether the two
    return the same top-``k`` for every timed query.
    """
    from lirlab.index.plaid import kernels

    if not kernels.numba_available():
        return {"numba": False, "note": "numba is not installed: only the torch kernels ran"}
    runs: dict[str, list[dict]] = {"numba": [], "previous": []}
    for _ in range(rounds):
        for name in runs:
            with kernels.use_numba(name == "numba"):
                runs[name].append(timed_search(index, queries, k=k))
    medians = {
        name: {key: float(np.median([r[key] for r in rows])) for key in rows[0]}
        for name, rows in runs.items()
    }
    ratios = [a["p50_ms"] / b["p50_ms"] for a, b in zip(runs["numba"], runs["previous"], strict=True)]
    hits = {}
    for name in runs:
        with kernels.use_numba(name == "numba"):
            hits[name] = index.search_encoded(queries, k=k)
    same = sum(a[0].tolist() == b[0].tolist() for a, b in zip(hits["numba"], hits["previous"], strict=True))
    worst = max(
        (
            float((a[1] - b[1]).abs().max())
            for a, b in zip(hits["numba"], hits["previous"], strict=True)
            if len(a[1])
        ),
        default=0.0,
    )
    return {
        "numba": True,
        "rounds": rounds,
        "numba_kernels": medians["numba"],
        "previous_torch_kernels": medians["previous"],
        "p50_ratio_per_round": ratios,
        "p50_ratio_median": float(np.median(ratios)),
        "same_top_k_queries": same,
        "max_abs_score_difference": worst,
    }


def run_plaid_benchmark(
    dataset: Dataset,
    encoder,
    out_dir: str | Path,
    n_queries: int = 100,
    k: int = 10,
    batch_size: int = 32,
    cache_dir: str | Path | None = None,
) -> Path:
    """Measure and save ``plaid.json`` (+ CSV tables) under ``out_dir``; returns the JSON path."""
    docs = list(dataset.docs)
    rss_before = peak_rss_mib()
    start = time.perf_counter()
    built = PlaidIndex.build(docs, encoder, nbits=2, batch_size=batch_size)
    build_seconds = time.perf_counter() - start
    build = {
        "nbits": 2,
        "seconds": build_seconds,
        "peak_rss_mib": peak_rss_mib(),
        "peak_rss_before_build_mib": rss_before,
        "n_centroids": built.n_centroids,
        "stats": built.stats,
    }

    flat = cached_flat_index(dataset, encoder, cache_dir, batch_size=batch_size)
    queries = encoder.encode_queries(dataset.queries)
    timed = queries.select(range(min(n_queries, len(queries))))
    timed_ids = set(timed.ids)
    qrels_timed = dataset.qrels[dataset.qrels.query_id.isin(timed_ids)]
    exact = flat.search(queries, k=k)

    def quality(run: pd.DataFrame) -> dict:
        run_timed = run[run.qid.isin(timed_ids)]
        return {
            "nDCG@10_all": float(evaluate(run, dataset, ["nDCG@10"]).value.iloc[0]),
            "nDCG@10_timed": float(evaluate(run_timed, qrels_timed, ["nDCG@10"]).value.iloc[0]),
            "top10_overlap_all": top_overlap(run, exact),
            "top10_overlap_timed": top_overlap(run_timed, exact[exact.qid.isin(timed_ids)]),
        }

    exhaustive = {"queries_all": len(queries), "queries_timed": len(timed), **quality(exact)}
    query_seconds = []
    for q in list(dataset.queries)[: len(timed)]:
        start = time.perf_counter()
        encoder.encode_queries([q])
        query_seconds.append(time.perf_counter() - start)

    codecs = []
    for nbits in (1, 2, 4):
        index = built if nbits == 2 else PlaidIndex.from_encoding(flat.docs, nbits=nbits, progress=True)
        with tempfile.TemporaryDirectory() as tmp:
            index.save(Path(tmp) / "index")
            on_disk = sum(f.stat().st_size for f in (Path(tmp) / "index").iterdir())
        codecs.append(
            {
                "nbits": nbits,
                "source": "build() from text" if nbits == 2 else "from_encoding() of the same vectors",
                "bytes_per_vector": index.codec.bytes_per_vector,
                "index_bytes_on_disk": on_disk,
                "uncompressed_bytes_fp32": int(flat.docs.vectors.numel() * 4),
                **quality(index.search(queries, k=k)),
            }
        )

    defaults = default_search_params(k)
    latency = timed_search(built, timed, k=k)
    against_previous = kernels_against_previous(built, timed, k=k)
    start = time.perf_counter()
    built.search_encoded(queries, k=k)
    batched_ms_per_query = (time.perf_counter() - start) / len(queries) * 1000

    table = sweep(
        built, timed, {"n_probe": list(N_PROBES)}, qrels=qrels_timed, k=k, reference=exact, warmup=5
    )
    n_probe_sweep = []
    for row in table.to_dict("records"):
        n_probe = int(row["n_probe"])
        n_probe_sweep.append({**row, **quality(built.search(queries, k=k, n_probe=n_probe))})

    results = {
        "dataset": dataset.name,
        "model": encoder.describe(),
        "k": k,
        "default_knobs": defaults,
        "build": build,
        "exhaustive": exhaustive,
        "query_encoding": {"queries": len(timed), **percentiles(query_seconds)},
        "search_default_knobs": {**latency, "batched_all_queries_ms_per_query": batched_ms_per_query},
        "search_default_knobs_against_previous": against_previous,
        "codecs": codecs,
        "n_probe_sweep": n_probe_sweep,
        "torch_threads": torch.get_num_threads(),
    }
    return save_results("plaid", results, out_dir, device=encoder.device)
