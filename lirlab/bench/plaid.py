"""``lirlab bench plaid``: the compressed index against exhaustive MaxSim, in one run.

On a dataset (SciFact test by default) with one encoder, measures:

* the build from text (encode once, k-means on a sample, compress chunk by chunk): seconds, split
  into encoding, k-means and compression, and peak RSS; and the same vectors built with k-means on at
  most :data:`CAPPED_POINTS_PER_CENTROID` vectors per centroid: its k-means and compression seconds,
  the build seconds they make with this run's encoding, its quality and top-10 overlap with the
  default build;
* for nbits 1, 2 and 4, and nbits 2 with float16 centroids (the same vectors compressed): bytes per
  token vector (codes and residuals, and all-in on disk), index size on disk, nDCG@10 over every query
  and over the timed ones, the overlap of the top-10 with exhaustive MaxSim over the uncompressed
  vectors and with the built index's;
* search latency per query at the default knobs (query encoding excluded; reported separately), with
  per-stage times, one query at a time, and the per-query time of one batch of all queries;
* the same latency on the fused route and on the previous implementation (the staged kernels,
  ``kernels.use_fused(False)``), alternated in this run, per stage, with their ratios, the top-10s
  compared query by query and nDCG@10 of both (the machine is shared: compare ratios), the torch
  thread count and the load average beside them; and the first search's seconds (compiled kernels
  loaded from numba's cache, inverse norms computed);
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
from lirlab.bench.record import cached_flat_index, load_average, peak_rss_mib, percentiles, save_results
from lirlab.data import Dataset
from lirlab.evaluate import evaluate, top_overlap
from lirlab.index.plaid import PlaidIndex, default_search_params

N_PROBES = (1, 2, 4, 8, 16, 32)

#: The codecs compared on the same vectors: (nbits, centroid_dtype); (2, float32) is the built index.
CODECS = ((1, "float32"), (2, "float32"), (2, "float16"), (4, "float32"))

#: The k-means cap the build figure is also reported with (``kmeans_points_per_centroid``).
CAPPED_POINTS_PER_CENTROID = 32

#: Rounds of the route comparison (fused, then the previous implementation, alternated).
COMPARISON_ROUNDS = 3

#: The two routes compared: the default, and the previous implementation behind its flag.
ROUTES = {"fused": True, "previous": False}


def against_previous(index, queries, k: int = 10, rounds: int = COMPARISON_ROUNDS) -> dict:
    """Default-knob latency on the fused route and on the previous implementation
    (:func:`lirlab.index.plaid.kernels.use_fused` off), alternated ``rounds`` times in this run.

    Returns the median over rounds of each figure of :func:`~lirlab.analysis.sweeps.timed_search` for
    both, the ratio fused / previous of the total p50 per round and its median, the ratio of every
    stage's median p50, whether the two return the same top-``k`` for every timed query and their
    largest score difference, with the torch thread count and the load average (1, 5, 15 minutes).
    """
    from lirlab.index.plaid import kernels

    if not kernels.numba_available():
        return {"numba": False, "note": "numba is not installed: only the previous (torch) route ran"}
    runs: dict[str, list[dict]] = {name: [] for name in ROUTES}
    for _ in range(rounds):
        for name, on in ROUTES.items():
            with kernels.use_fused(on):
                runs[name].append(timed_search(index, queries, k=k))
    medians = {
        name: {key: float(np.median([r[key] for r in rows])) for key in rows[0]}
        for name, rows in runs.items()
    }
    ratios = [a["p50_ms"] / b["p50_ms"] for a, b in zip(runs["fused"], runs["previous"], strict=True)]
    stage_ratios = {
        key: medians["fused"][key] / medians["previous"][key]
        for key in medians["fused"]
        if key.endswith("_ms") and medians["previous"][key] > 0
    }
    hits = {}
    for name, on in ROUTES.items():
        with kernels.use_fused(on):
            hits[name] = index.search_encoded(queries, k=k)
    pairs = list(zip(hits["fused"], hits["previous"], strict=True))
    same = sum(a[0].tolist() == b[0].tolist() for a, b in pairs)
    worst = max((float((a[1] - b[1]).abs().max()) for a, b in pairs if len(a[1])), default=0.0)
    return {
        "numba": True,
        "rounds": rounds,
        "torch_threads": torch.get_num_threads(),
        "load_average": load_average(),
        "fused": medians["fused"],
        "previous": medians["previous"],
        "p50_ratio_per_round": ratios,
        "p50_ratio_median": float(np.median(ratios)),
        "ratio_of_medians": stage_ratios,
        "same_top_k_queries": same,
        "queries": len(pairs),
        "max_abs_score_difference": worst,
    }


def first_search_seconds(index, queries, k: int = 10) -> float:
    """Seconds of ``index``'s first search in this process (one query): compiled kernels loaded from
    numba's cache (or compiled, the first time on a machine) and the inverse norms computed."""
    start = time.perf_counter()
    index.search_encoded(queries.select([0]), k=k)
    return time.perf_counter() - start


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
    build_timings: dict[str, float] = {}
    built = PlaidIndex.build(docs, encoder, nbits=2, batch_size=batch_size, timings=build_timings)
    build_seconds = time.perf_counter() - start
    build = {
        "nbits": 2,
        "seconds": build_seconds,
        "stage_seconds": build_timings,
        "peak_rss_mib": peak_rss_mib(),
        "peak_rss_before_build_mib": rss_before,
        "n_centroids": built.n_centroids,
        "stats": built.stats,
    }

    flat = cached_flat_index(dataset, encoder, cache_dir, batch_size=batch_size)
    queries = encoder.encode_queries(dataset.queries)
    timed = queries.select(range(min(n_queries, len(queries))))
    build["first_search_seconds"] = first_search_seconds(built, timed, k=k)
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
    built_run = built.search(queries, k=k)
    for nbits, centroid_dtype in CODECS:
        if (nbits, centroid_dtype) == (2, "float32"):
            index, source = built, "build() from text"
        else:
            index = PlaidIndex.from_encoding(
                flat.docs, nbits=nbits, centroid_dtype=centroid_dtype, progress=True
            )
            source = "from_encoding() of the same vectors"
        with tempfile.TemporaryDirectory() as tmp:
            index.save(Path(tmp) / "index")
            on_disk = sum(f.stat().st_size for f in (Path(tmp) / "index").iterdir())
        run = built_run if index is built else index.search(queries, k=k)
        codecs.append(
            {
                "nbits": nbits,
                "centroid_dtype": centroid_dtype,
                "source": source,
                "bytes_per_vector": index.codec.bytes_per_vector,
                "index_bytes_on_disk": on_disk,
                "bytes_per_vector_all_in": on_disk / max(index.n_tokens, 1),
                "uncompressed_bytes_fp32": int(flat.docs.vectors.numel() * 4),
                **quality(run),
                "top10_overlap_with_default_build": top_overlap(run, built_run),
            }
        )

    timings: dict[str, float] = {}
    capped = PlaidIndex.from_encoding(
        flat.docs, nbits=2, kmeans_points_per_centroid=CAPPED_POINTS_PER_CENTROID, timings=timings
    )
    capped_run = capped.search(queries, k=k)
    build["capped_kmeans"] = {
        "kmeans_points_per_centroid": CAPPED_POINTS_PER_CENTROID,
        "training_vectors": capped.config()["kmeans"]["training_vectors"],
        "stage_seconds": timings,
        "seconds_with_this_run_encoding": build_timings["encoding"]
        + timings["kmeans"]
        + timings["compression"],
        **quality(capped_run),
        "top10_overlap_with_default_build": top_overlap(capped_run, built_run),
    }
    del capped

    defaults = default_search_params(k)
    latency = timed_search(built, timed, k=k)
    previous = against_previous(built, timed, k=k)
    if previous.get("numba"):
        from lirlab.index.plaid import kernels

        for name, on in ROUTES.items():
            with kernels.use_fused(on):
                previous[f"{name}_quality"] = quality(built.search(queries, k=k))
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
        "search_default_knobs_against_previous": previous,
        "codecs": codecs,
        "n_probe_sweep": n_probe_sweep,
        "torch_threads": torch.get_num_threads(),
    }
    return save_results("plaid", results, out_dir, device=encoder.device)
