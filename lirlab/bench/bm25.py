"""``python -m lirlab.bench.bm25``: BM25 and BM25 → exact MaxSim re-ranking beside exhaustive MaxSim.

On each dataset (SciFact and NFCorpus test from ``../shared/data`` by default) with the MiniLM-ColBERT
checkpoint, :func:`run_bm25_benchmark` sweeps, through :func:`lirlab.analysis.sweeps.sweep`:

* **bm25** (bm25s, Lucene variant, k1 = 1.2, b = 0.75, English stop words and Snowball stemming);
* **bm25_rerank**: BM25's top ``depth`` (50, 100, 200, 1000) re-scored by exact MaxSim over the encoded
  token vectors;
* **flat**: exhaustive MaxSim, the quality reference.

Latency is one query at a time at one torch thread, query encoding excluded, 5 warm-up queries
excluded; quality is nDCG@10 and R@100 over every judged query (R@100 from a second search 100 deep,
or ``depth`` deep when the pipeline keeps fewer candidates, as ``bm25 % depth >> rerank`` would), and the
recall of exact MaxSim's top 10. The encoded corpus is cached under ``benchmarks/cache``
(:func:`lirlab.bench.record.cached_flat_index`). Results: ``bm25.json`` (machine described) and
``bm25.rows.csv`` under ``benchmarks/results``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from lirlab.analysis.sweeps import sweep
from lirlab.bench.record import SHARED_DATA, cached_flat_index, save_results
from lirlab.benchmark_model import BENCH_MODEL, benchmark_model
from lirlab.data import Dataset
from lirlab.evaluate import evaluate

DEPTHS = (50, 100, 200, 1000)

#: Published BM25 nDCG@10 (Thakur et al., BEIR, 2021: Elasticsearch BM25), for scale.
PUBLISHED_BM25 = {"scifact": 0.665, "nfcorpus": 0.325}


def with_texts(dataset: Dataset, encoder, cache_dir, batch_size: int = 32):
    """(documents, judged queries) encoded, each with its texts attached (what BM25 needs)."""
    flat = cached_flat_index(dataset, encoder, cache_dir, batch_size=batch_size)
    if list(flat.docnos) != [d.docno for d in dataset.docs]:
        raise ValueError(f"the cached encoding of {dataset.name} is not in the corpus order; delete it")
    docs = replace(flat.docs, texts=tuple(d.full_text for d in dataset.docs))
    judged_ids = set(dataset.qrels.query_id.astype(str))
    records = [q for q in dataset.queries if q.qid in judged_ids]
    queries = replace(encoder.encode_queries(records), texts=tuple(q.text for q in records))
    return docs, queries


def run_bm25_benchmark(
    dataset: Dataset,
    encoder,
    depths=DEPTHS,
    k: int = 10,
    n_timed: int | None = None,
    cache_dir: str | Path | None = "benchmarks/cache",
) -> pd.DataFrame:
    """The sweep of one dataset: one row per method and depth, with ``R@100`` added."""
    docs, queries = with_texts(dataset, encoder, cache_dir)
    methods = [("flat", {}), ("bm25", {}), ("bm25_rerank", {"depth": list(depths)})]
    table = sweep(
        docs, queries, methods=methods, qrels=dataset.qrels, k=k, threads=[1], n_timed=n_timed, progress=True
    )
    from lirlab.index.base import index_kind

    built = {name: index_kind(name).from_encoding(docs) for name in ("flat", "bm25", "bm25_rerank")}
    r100 = []
    for row in table.itertuples(index=False):
        knobs, deep = {}, 100
        if row.method == "bm25_rerank":
            knobs = {"depth": int(row.depth)}
            deep = min(100, int(row.depth))
        run = built[row.method].search(queries, k=deep, **knobs)
        r100.append(float(evaluate(run, dataset.qrels, ["R@100"]).value.iloc[0]))
    table["R@100"] = r100
    table.insert(0, "dataset", dataset.name)
    return table


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """The figures to quote: per dataset and setting, nDCG@10, R@100, p50/p90 and p50 over BM25's."""
    out = table[["dataset", "setting", "nDCG@10", "R@100", "exhaustive_recall@10", "p50_ms", "p90_ms"]].copy()
    bm25 = table[table.method == "bm25"].set_index("dataset")["p50_ms"]
    out["p50_over_bm25"] = out.p50_ms / out.dataset.map(bm25)
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    from lirlab.encoder import ColBERT

    parser = argparse.ArgumentParser(prog="python -m lirlab.bench.bm25", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=[str(SHARED_DATA / "scifact"), str(SHARED_DATA / "nfcorpus")],
        help="BEIR folders (default: SciFact and NFCorpus in the workplace's ../shared/data)",
    )
    parser.add_argument("--split", default="test")
    parser.add_argument(
        "--model", default=BENCH_MODEL, help="checkpoint (default: %(default)s, built on first use)"
    )
    parser.add_argument("--depths", type=int, nargs="+", default=list(DEPTHS))
    parser.add_argument("--queries", type=int, default=None, help="queries timed per setting (default: all)")
    parser.add_argument("--cache", default="benchmarks/cache", help="encoded corpora (default: %(default)s)")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)

    from lirlab import data

    encoder = ColBERT.load(benchmark_model(args.model), device="cpu")
    tables = []
    for folder in args.datasets:
        dataset = data.load(folder, split=args.split)
        tables.append(
            run_bm25_benchmark(dataset, encoder, args.depths, n_timed=args.queries, cache_dir=args.cache)
        )
    table = pd.concat(tables, ignore_index=True)
    rows = [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in table.to_dict("records")]
    path = save_results(
        "bm25",
        {
            "model": encoder.describe(),
            "split": args.split,
            "timing": "one query at a time at 1 torch thread, query encoding excluded, 5 warm-up queries "
            "excluded; the machine is shared with other engineers' work, so absolute figures are noisy: "
            "compare ratios within one run",
            "r100": "R@100 from a second search 100 deep (depth deep when depth < 100)",
            "published_bm25_ndcg@10": PUBLISHED_BM25,
            "summary": summary(table).to_dict("records"),
            "rows": rows,
        },
        args.out,
    )
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summary(table).round(4).to_string(index=False))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
