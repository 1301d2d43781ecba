"""``lirlab bench methods``: token pooling, MUVERA and WARP beside PLAID and exhaustive MaxSim, one sweep.

On one dataset (SciFact test by default) with one encoder and the same encoded vectors for every
method, :func:`run_methods_benchmark` measures, through :func:`lirlab.analysis.sweeps.sweep`:

* **exhaustive** MaxSim (flat) and **PLAID** (nbits 2) over its ``n_probe`` range;
* **WARP** over the same PLAID index (no second build) across ``nprobe`` and ``t_prime``;
* **MUVERA** (FDEs, re-ranked by exact MaxSim over the stored vectors) across ``candidates``;
* **Qdrant** (embedded, optional: ``qdrant_grid`` / ``--qdrant``) built from the same vectors, across
  ``prefetch`` (pooled candidates re-ranked by MaxSim; ``0`` is Qdrant's full MaxSim scan);
* **token pooling** at pool factors 2, 3 and 4 with the flat index and with PLAID (pool, then compress):
  vectors removed and nDCG@10, the table of Clavié et al. (2024).

Latency is one query at a time, query encoding excluded, warm-up excluded, at 1 and 2 torch threads;
quality (nDCG@10, and R@100 from a second search at depth 100) over every judged query; the recall of
exact MaxSim's top-10. Also the Spearman correlation between FDE inner products and exact MaxSim over
every document, per query. Results: ``methods-<dataset>.json`` with the machine described, the sweep
as CSV, and the Pareto chart as a small PNG.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lirlab.analysis.sweeps import pareto_front, sweep
from lirlab.bench.record import SHARED_DATA, cached_flat_index, load_average, save_results
from lirlab.benchmark_model import BENCH_MODEL, benchmark_model
from lirlab.data import Dataset
from lirlab.evaluate import evaluate
from lirlab.index.flat import FlatIndex
from lirlab.index.muvera import MuveraIndex
from lirlab.index.plaid import PlaidIndex
from lirlab.index.pooling import pool_encoding
from lirlab.index.registry import kind_class as index_kind
from lirlab.index.warp import WarpIndex

POOL_FACTORS = (1, 2, 3, 4)
PLAID_GRID = {"n_probe": [1, 2, 4, 8]}
WARP_GRID = {"nprobe": [4, 8, 16, 32], "t_prime": [5_000, 20_000]}
MUVERA_GRID = {"candidates": [100, 300, 1000]}
QDRANT_GRID = {"prefetch": [100, 400]}
MUVERA_BUILD = {"r_reps": 20, "k_sim": 5, "d_proj": 16}


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation of two score vectors (average ranks for ties)."""
    from scipy.stats import spearmanr

    return float(spearmanr(a.numpy(), b.numpy()).statistic)


def fde_rank_correlation(muvera: MuveraIndex, flat: FlatIndex, queries, n: int = 100) -> dict:
    """Per query, Spearman's rho between FDE inner products and exact MaxSim over every document; and
    the share of exact MaxSim's top-10 inside the FDE top-``candidates`` for a few depths."""
    part = queries.select(range(min(n, len(queries))))
    fde = muvera.fde_scores(part)
    exact = flat.scores(part)
    rhos = [_spearman(fde[i], exact[i]) for i in range(len(part))]
    recall = {}
    for depth in (100, 300, 1000):
        depth_ = min(depth, exact.shape[1])
        top = fde.topk(depth_, dim=1).indices
        best = exact.topk(10, dim=1).indices
        recall[f"exact_top10_in_fde_top{depth}"] = float(
            np.mean([len(set(best[i].tolist()) & set(top[i].tolist())) / 10 for i in range(len(part))])
        )
    return {
        "queries": len(part),
        "spearman_mean": float(np.mean(rhos)),
        "spearman_median": float(np.median(rhos)),
        **recall,
    }


def recall_at_100(index, queries, qrels, knobs: dict) -> float:
    run = index.search(queries, k=100, **knobs)
    return float(evaluate(run, qrels, ["R@100"]).value.iloc[0])


def exhaustive_row(index: FlatIndex, queries, qrels, reference, n_timed: int, threads, k: int = 10):
    """Rows for an exhaustive index, one per thread count, searched once at depth 100 for quality (nDCG@10
    from its top 10, R@100, the recall of ``reference``) and timed one query at a time on ``n_timed``."""
    from lirlab.analysis.sweeps import index_costs, timed_search, torch_threads

    deep = index.search(queries, k=100)
    top = deep[deep["rank"] <= k]
    quality = {
        "nDCG@10": float(evaluate(top, qrels, ["nDCG@10"]).value.iloc[0]),
        "R@100": float(evaluate(deep, qrels, ["R@100"]).value.iloc[0]),
        f"exhaustive_recall@{k}": 1.0 if reference is None else _overlap(top, reference, k),
    }
    rows = []
    for n in threads:
        with torch_threads(n) as used:
            timing = timed_search(index, queries.select(range(min(n_timed, len(queries)))), k=k)
        rows.append(
            {
                "method": index.KIND,
                "device": "cpu",
                **index_costs(index),
                **timing,
                **quality,
                "threads": used,
            }
        )
    return rows, deep


def _overlap(run, reference, k: int) -> float:
    ours = run[run["rank"] <= k].groupby("qid").docno.apply(set)
    theirs = reference[reference["rank"] <= k].groupby("qid").docno.apply(set)
    return float(np.mean([len(ours.get(q, set()) & d) / len(d) for q, d in theirs.items()]))


def run_methods_benchmark(
    dataset: Dataset,
    encoder,
    out_dir: str | Path,
    n_queries: int = 100,
    k: int = 10,
    threads=(1, 2),
    cache_dir: str | Path | None = None,
    batch_size: int = 32,
    figure: bool = True,
    max_queries: int | None = None,
    n_exhaustive_timed: int = 10,
    pool_factors=POOL_FACTORS,
    plaid_build: dict | None = None,
    pooled_plaid: bool = True,
    qdrant_grid: dict | None = None,
) -> Path:
    """Run the sweep and save ``methods-<dataset>.json`` (+ CSV, + PNG); returns the JSON path.

    ``max_queries`` keeps the first judged queries only (every method is measured on the same ones);
    exhaustive indexes are timed on ``n_exhaustive_timed`` queries (they are the slow reference).
    ``qdrant_grid`` (e.g. ``QDRANT_GRID``) adds embedded Qdrant rows searched with those knobs.
    """
    flat = cached_flat_index(dataset, encoder, cache_dir, batch_size=batch_size)
    docs = flat.docs
    judged_ids = set(dataset.qrels.query_id.astype(str))
    records = [q for q in dataset.queries if q.qid in judged_ids][:max_queries]
    queries = encoder.encode_queries(records)
    qrels = dataset.qrels[dataset.qrels.query_id.astype(str).isin({q.qid for q in records})]
    n_threads = list(threads)
    flat_rows, deep = exhaustive_row(flat, queries, qrels, None, n_exhaustive_timed, n_threads, k)
    reference = deep[deep["rank"] <= k]

    builds: dict[str, float] = {}
    start = time.perf_counter()
    plaid_build = {"nbits": 2, **(plaid_build or {})}
    plaid = PlaidIndex.from_encoding(docs, progress=True, **plaid_build)
    builds["plaid"] = time.perf_counter() - start
    start = time.perf_counter()
    warp = WarpIndex.from_plaid(plaid)
    builds["warp"] = builds["plaid"] + time.perf_counter() - start
    start = time.perf_counter()
    muvera = MuveraIndex.from_index(flat, progress=True, **MUVERA_BUILD)
    builds["muvera"] = time.perf_counter() - start
    builds["flat"] = 0.0
    by_kind = {"plaid": plaid, "warp": warp, "muvera": muvera}
    if qdrant_grid is not None:
        from lirlab.index.qdrant import QdrantIndex

        start = time.perf_counter()
        by_kind["qdrant"] = QdrantIndex.from_encoding(docs, encoder=encoder, progress=True)
        builds["qdrant"] = time.perf_counter() - start

    common = dict(
        qrels=qrels, k=k, measures=("nDCG@10",), threads=n_threads, reference=reference, n_timed=n_queries
    )
    methods = [(plaid, PLAID_GRID), (warp, WARP_GRID), (muvera, MUVERA_GRID)]
    if qdrant_grid is not None:
        methods.append((by_kind["qdrant"], qdrant_grid))
    table = sweep(docs, queries, methods=methods, **common)
    index_of_row = [by_kind[m] for m in table.method]
    table = pd.concat([pd.DataFrame(flat_rows).assign(setting="method=flat"), table], ignore_index=True)
    index_of_row = [None] * len(flat_rows) + index_of_row
    table["build_s"] = table.method.map(builds)
    table["pool_factor"] = 1
    table["vectors_removed"] = 0.0

    pooling_rows, pooled_tables = [], []
    for factor in [f for f in pool_factors if f > 1]:
        start = time.perf_counter()
        pooled, mapping = pool_encoding(docs, factor, progress=True)
        pool_s = time.perf_counter() - start
        pooled_flat = FlatIndex(pooled, model=flat.model)
        rows, _ = exhaustive_row(pooled_flat, queries, qrels, reference, n_exhaustive_timed, n_threads[:1], k)
        parts, plaid_s = [pd.DataFrame(rows)], 0.0
        if pooled_plaid:
            start = time.perf_counter()
            pooled_index = PlaidIndex.from_encoding(pooled, progress=True, **plaid_build)
            plaid_s = time.perf_counter() - start
            parts.append(
                sweep(pooled, queries, methods=[(pooled_index, {})], **{**common, "threads": n_threads[:1]})
            )
        part = pd.concat(parts, ignore_index=True)
        part["build_s"] = part.method.map({"flat": pool_s, "plaid": pool_s + plaid_s})
        part["method"] = part.method.map({"flat": "flat+pool", "plaid": "plaid+pool"})
        part["setting"] = [f"method={m}, pool_factor={factor}" for m in part.method]
        part["pool_factor"] = factor
        part["vectors_removed"] = mapping.vectors_removed
        pooled_tables.append(part)
        index_of_row += [None] + ([pooled_index] if pooled_plaid else [])
        pooling_rows.append(
            {"pool_factor": factor, "vectors_removed": mapping.vectors_removed, "pool_s": pool_s}
        )

    table = pd.concat([table, *pooled_tables], ignore_index=True)
    r100, cache = [], {}
    for row, index in zip(table.itertuples(index=False), index_of_row):
        if index is None:  # exhaustive rows measured R@100 already
            r100.append(row[table.columns.get_loc("R@100")] if "R@100" in table.columns else float("nan"))
            continue
        knobs = {
            name: getattr(row, name)
            for name in index.SEARCH_PARAMS
            if hasattr(row, name) and not pd.isna(getattr(row, name))
        }
        knobs = {
            n: int(v) if float(v).is_integer() and index.SEARCH_PARAMS[n].type is int else v
            for n, v in knobs.items()
        }
        key = (id(index), tuple(sorted(knobs.items())))
        if key not in cache:
            cache[key] = recall_at_100(index, queries, qrels, knobs)
        r100.append(cache[key])
    table["R@100"] = r100
    table["on_front"] = False
    for _, group in table.groupby("threads"):
        table.loc[group.index, "on_front"] = pareto_front(group, "p50_ms", "nDCG@10").to_numpy()

    pooling_table = _pooling_table(table, k)
    correlation = fde_rank_correlation(muvera, flat, queries)
    results = {
        "dataset": dataset.name,
        "model": encoder.describe(),
        "k": k,
        "queries_judged": len(queries),
        "queries_note": "every method is measured on the same judged queries (the first max_queries)",
        "queries_timed": min(n_queries, len(queries)),
        "threads": n_threads,
        "timing": "one query at a time, query encoding excluded, 5 warm-up queries excluded; on a shared "
        "machine absolute figures are noisy (see load_average_end): compare ratios within this run",
        "load_average_end": load_average(),
        "muvera_build": MUVERA_BUILD,
        "plaid_build": plaid_build,
        "muvera_fde_dim": muvera.fde_dim,
        "fde_rank_correlation": correlation,
        "builds_s": builds,
        "pooling": pooling_rows,
        "pooling_table": pooling_table.to_dict("records"),
        "sweep": _records(table),
    }
    out = save_results(f"methods-{_slug(dataset.name)}", results, out_dir, device="cpu")
    if figure:
        from lirlab.plots import figure_png
        from lirlab.plots.sweeps import plot_pareto

        chart = table[table.threads == n_threads[0]]
        fig = plot_pareto(chart, by="method", log_latency=True)
        fig.suptitle(f"{dataset.name}: latency (1 query, {n_threads[0]} thread) against nDCG@10")
        Path(out).with_suffix(".png").write_bytes(figure_png(fig, dpi=80))
    return out


def _pooling_table(table: pd.DataFrame, k: int) -> pd.DataFrame:
    """nDCG@10 and vectors removed per pool factor, flat and PLAID beside their unpooled rows at the same
    knobs, their defaults (1 thread)."""
    first = table.threads.min()
    rows = []
    for method, pooled in (("flat", "flat+pool"), ("plaid", "plaid+pool")):
        base = table[(table.method == method) & (table.threads == first)]
        for knob, value in index_kind(method).resolve_knobs(k, {}).items():  # the pooled rows' knobs
            if knob in base:
                base = base[base[knob] == value]
        base_row = base.iloc[0]
        rows.append(
            {
                "index": method,
                "pool_factor": 1,
                "vectors_removed": 0.0,
                "nDCG@10": base_row["nDCG@10"],
                "R@100": base_row["R@100"],
            }
        )
        for _, row in table[table.method == pooled].iterrows():
            rows.append(
                {
                    "index": method,
                    "pool_factor": int(row.pool_factor),
                    "vectors_removed": float(row.vectors_removed),
                    "nDCG@10": float(row["nDCG@10"]),
                    "R@100": float(row["R@100"]),
                }
            )
    out = pd.DataFrame(rows)
    out["nDCG@10_change"] = out["nDCG@10"] - out.groupby("index")["nDCG@10"].transform("first")
    return out


def _records(table: pd.DataFrame) -> list[dict]:
    keep = [c for c in table.columns if c not in ("device_name",)]
    return [
        {
            k: (
                None if isinstance(v, float) and np.isnan(v) else v.item() if isinstance(v, np.generic) else v
            )
            for k, v in r.items()
        }
        for r in table[keep].to_dict("records")
    ]


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in str(name).lower()).strip("-")


def add_arguments(parser) -> None:
    """The options of ``lirlab bench methods`` (and ``python -m lirlab.bench.methods``)."""
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=[str(SHARED_DATA / "scifact"), str(SHARED_DATA / "nfcorpus")],
        help="BEIR folders or 'demo' (default: SciFact and NFCorpus in the workplace's ../shared/data)",
    )
    parser.add_argument("--split", default="test", help="qrels split (default: %(default)s)")
    parser.add_argument(
        "--model", default=BENCH_MODEL, help="checkpoint (default: %(default)s, built on first use)"
    )
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch threads to time at")
    parser.add_argument(
        "--queries", type=int, default=100, help="queries timed per setting (default: %(default)s)"
    )
    parser.add_argument(
        "--max-queries",
        type=int,
        default=None,
        help="judged queries measured (default: all), the same for every method",
    )
    parser.add_argument(
        "--pool-factors",
        type=int,
        nargs="+",
        default=list(POOL_FACTORS),
        help="token pooling factors (1 = none)",
    )
    parser.add_argument(
        "--n-centroids",
        type=int,
        default=None,
        help="PLAID centroids (default: PLAID's, from the corpus size)",
    )
    parser.add_argument(
        "--kmeans-iterations", type=int, default=None, help="PLAID k-means rounds (default: PLAID's)"
    )
    parser.add_argument("--no-pooled-plaid", action="store_true", help="pool the flat index only")
    parser.add_argument(
        "--qdrant",
        type=int,
        nargs="*",
        default=None,
        metavar="PREFETCH",
        help="add embedded Qdrant rows at these prefetch depths (0 = full MaxSim scan; no value: "
        f"{QDRANT_GRID['prefetch']}); needs lirlab[qdrant]",
    )
    parser.add_argument("--cache", default="benchmarks/cache", help="encoded corpora (default: %(default)s)")
    parser.add_argument("--out", default="benchmarks/results", help="results folder (default: %(default)s)")


def run_from_args(args) -> list[Path]:
    """Run :func:`run_methods_benchmark` on each of ``args.datasets``; the JSON paths written."""
    from lirlab import data
    from lirlab.encoder import ColBERT

    encoder = ColBERT.load(benchmark_model(args.model), device="cpu")
    plaid_build = {
        name: value
        for name, value in (("n_centroids", args.n_centroids), ("kmeans_iterations", args.kmeans_iterations))
        if value is not None
    }
    paths = []
    for source in args.datasets:
        dataset = data.load(source, split=args.split)
        paths.append(
            run_methods_benchmark(
                dataset,
                encoder,
                args.out,
                n_queries=args.queries,
                threads=tuple(args.threads),
                cache_dir=args.cache,
                max_queries=args.max_queries,
                pool_factors=tuple(args.pool_factors),
                plaid_build=plaid_build,
                pooled_plaid=not args.no_pooled_plaid,
                qdrant_grid=None
                if args.qdrant is None
                else {"prefetch": args.qdrant or QDRANT_GRID["prefetch"]},
            )
        )
        print(f"wrote {paths[-1]}")
    return paths


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m lirlab.bench.methods", description=__doc__.split("\n")[0]
    )
    add_arguments(parser)
    run_from_args(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
