"""``python -m lirlab.bench.qdrant``: Qdrant (embedded) beside PLAID, and encoding on local Ray workers.

On a dataset (SciFact test by default) with one encoder (the MiniLM-ColBERT benchmark checkpoint), in
one run:

* document encoding throughput on the same documents (the first ``encode_docs``): the plain encoder
  in this process, then 1 and 2 local Ray workers of one CPU each (start-up, i.e. the runtime and the
  model loading in every worker, reported apart), and the largest difference from the plain vectors;
* the embedded Qdrant collection built from the cached corpus encoding: build seconds (upsert and
  optimize), folder size on disk, search latency one query at a time (query encoding excluded) for
  the full MaxSim scan (the default, ``m=0``) and for pooled prefetch + MaxSim re-rank, and nDCG@10
  over every query, with the overlap of the top-10 with exhaustive MaxSim;
* PLAID (nbits=2) from the same vectors, measured the same way.

The machine's load average is recorded at the start and the end: on a shared machine the ratios
within one run are what to read, not the absolute seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from lirlab.analysis.sweeps import timed_search
from lirlab.bench.record import cached_flat_index, load_average, peak_rss_mib, save_results
from lirlab.data import Dataset
from lirlab.evaluate import evaluate

#: Candidates the pooled vector prefetches in the prefetch rows.
PREFETCH = (100, 400)


def folder_bytes(path: str | os.PathLike) -> int:
    """Allocated bytes on disk (Qdrant preallocates sparse files; see :func:`lirlab.index.qdrant.disk_bytes`)."""
    from lirlab.index.qdrant import disk_bytes

    return disk_bytes(path)


class _Rows(list):
    def __init__(self, on_row):
        super().__init__()
        self.on_row = on_row

    def append(self, row) -> None:
        super().append(row)
        if self.on_row is not None:
            self.on_row()


def cached_documents(dataset, encoder, cache_dir, batch_size: int = 32):
    """The corpus encoding kept by :func:`cached_flat_index`, reused when its model matches.

    ``cached_flat_index`` compares the saved model description (which now carries the encoder
    fingerprint) with ``encoder.describe()`` (which does not), so it re-encodes every time; this
    compares without the fingerprint and falls back to it otherwise.
    """
    from lirlab.index.flat import FlatIndex

    folder = Path(cache_dir, f"{dataset.name}-flat") if cache_dir is not None else None
    if folder is not None and (folder / "metadata.json").is_file():
        cached = FlatIndex.load(folder, encoder=encoder)
        model = {k: v for k, v in cached.model.items() if k != "fingerprint"}
        if model == encoder.describe() and list(cached.docnos) == [d.docno for d in dataset.docs]:
            return cached
    return cached_flat_index(dataset, encoder, cache_dir, batch_size=batch_size)


def _ray_version() -> str | None:
    try:
        import ray
    except ImportError:
        return None
    return ray.__version__


def encoding_throughput(
    encoder,
    docs,
    batch_size: int = 32,
    rows: list | None = None,
    plain_threads: tuple[int, ...] | None = None,
) -> list[dict]:
    """Docs per second of the plain encoder (at each of ``plain_threads`` torch threads; default 1 and
    the machine's CPU count) and of 1 and 2 local Ray workers of one CPU and one thread each, over the
    same ``docs`` (appended to ``rows`` when given, e.g. a list that saves on every append).

    ``speed_vs_plain`` divides by the first plain row (1 thread: the same as one Ray worker).
    """
    from lirlab.integrations import ray as lray

    rows = [] if rows is None else rows
    if plain_threads is None:
        plain_threads = tuple(dict.fromkeys((1, os.cpu_count() or 1)))
    before = torch.get_num_threads()
    plain = None
    try:
        for threads in plain_threads:
            torch.set_num_threads(threads)
            encoder.encode_documents(docs[:4], batch_size=batch_size, progress=False)  # warm, like Ray's
            start = time.perf_counter()
            encoded = encoder.encode_documents(docs, batch_size=batch_size, progress=True)
            seconds = time.perf_counter() - start
            plain = encoded if plain is None else plain
            rows.append(
                {
                    "encoder": f"plain (this process, {threads} torch thread(s))",
                    "workers": 0,
                    "torch_threads": threads,
                    "docs": len(docs),
                    "startup_seconds": 0.0,
                    "encode_seconds": seconds,
                    "docs_per_second": len(docs) / seconds,
                    "max_abs_diff_vs_plain": float((encoded.vectors - plain.vectors).abs().max()),
                    "load_average": load_average(),
                }
            )
    finally:
        torch.set_num_threads(before)
    for workers in (1, 2):
        row = {
            "encoder": f"ray, {workers} local worker(s)",
            "workers": workers,
            "torch_threads": 1,
            "docs": len(docs),
            "ray": _ray_version(),
        }
        if not lray.ray_available():
            rows.append({**row, "error": lray.INSTALL_HINT})
            continue
        start = time.perf_counter()
        try:
            ray_encoder = lray.RayEncoder(encoder, num_workers=workers, cpus_per_worker=1)
        except lray.RayStartError as e:
            rows.append({**row, "error": str(e), "load_average": load_average()})
            continue
        with ray_encoder:
            ray_encoder.encode(docs[:4], shard_size=2, progress=False)  # every worker has loaded its model
            startup = time.perf_counter() - start
            start = time.perf_counter()
            got = ray_encoder.encode(docs, shard_size=64, batch_size=batch_size, progress=True)
            seconds = time.perf_counter() - start
        same_shape = got.vectors.shape == plain.vectors.shape and got.ids == plain.ids
        rows.append(
            {
                **row,
                "startup_seconds": startup,
                "encode_seconds": seconds,
                "docs_per_second": len(docs) / seconds,
                "max_abs_diff_vs_plain": float((got.vectors - plain.vectors).abs().max())
                if same_shape
                else None,
                "load_average": load_average(),
            }
        )
    base = rows[0]["docs_per_second"]
    for row in rows:
        if "docs_per_second" in row:
            row["speed_vs_plain"] = row["docs_per_second"] / base
    return rows


def run_qdrant_benchmark(
    dataset: Dataset,
    encoder,
    out_dir: str | Path,
    n_queries: int = 100,
    scan_queries: int = 20,
    encode_docs: int = 1000,
    k: int = 10,
    batch_size: int = 32,
    cache_dir: str | Path | None = None,
    plaid: bool = True,
    parts: tuple[str, ...] = ("index", "encoding"),
) -> Path:
    """Measure and save ``qdrant.json`` (+ CSV tables) under ``out_dir``, rewritten after every row so an
    interrupted run keeps what it measured (``complete`` says whether it finished); returns its path.

    The full MaxSim scan takes seconds a query on a loaded 2-core machine, so it is timed and judged on
    the first ``scan_queries`` queries (with the flat index judged on the same ones beside it).
    """
    from lirlab.index.plaid import PlaidIndex
    from lirlab.index.qdrant import QdrantIndex

    results: dict = {
        "dataset": dataset.name,
        "model": encoder.describe(),
        "k": k,
        "note": (
            "2-core machine shared with other engineers and a training run: read ratios within this run; "
            "query encoding excluded from latency; Qdrant runs on its own threads"
        ),
        "load_average_start": load_average(),
        "complete": False,
        "torch_threads": torch.get_num_threads(),
    }
    name = "qdrant" if "index" in parts else "qdrant_encoding"

    def save() -> Path:
        results["load_average_now"] = load_average()
        return save_results(name, results, out_dir, device=encoder.device)

    docs = list(dataset.docs)
    if "index" in parts:
        flat = cached_documents(dataset, encoder, cache_dir, batch_size=batch_size)
        queries = encoder.encode_queries(dataset.queries)
        timed = queries.select(range(min(n_queries, len(queries))))
        scan = queries.select(range(min(scan_queries, len(queries))))
        results.update(queries_timed=len(timed), queries_all=len(queries), queries_scan=len(scan))

        def ndcg(run) -> float:
            return float(
                evaluate(
                    run, dataset.qrels[dataset.qrels.query_id.isin(set(run.qid))], ["nDCG@10"]
                ).value.iloc[0]
            )

        rows: list[dict] = []
        results["search"] = rows
        work = Path(tempfile.mkdtemp(prefix="lirlab-bench-qdrant-"))
        try:
            rss = peak_rss_mib()
            start = time.perf_counter()
            index = QdrantIndex.from_encoding(flat.docs, encoder=encoder, path=work / "shard", progress=True)
            build_seconds = time.perf_counter() - start
            index.save(work / "saved")
            build = {
                "qdrant_seconds": build_seconds,
                "qdrant_disk_bytes": folder_bytes(work / "saved"),
                "qdrant_shard_bytes": folder_bytes(work / "saved" / "qdrant"),
                "qdrant_bytes_per_vector": folder_bytes(work / "saved") / index.n_vectors(),
                "peak_rss_mib_before": rss,
                "peak_rss_mib_after": peak_rss_mib(),
                "vectors": index.n_vectors(),
                "uncompressed_fp32_bytes": int(flat.docs.vectors.numel() * 4),
                "build_knobs": index.build_knobs,
            }
            results["build"] = build
            save()
            for p in PREFETCH:
                row = {
                    "method": f"qdrant embedded: prefetch {p} pooled + MaxSim re-rank",
                    "knobs": f"prefetch={p}",
                }
                row.update(timed_search(index, timed, k=k, prefetch=p))
                row["nDCG@10_all"] = ndcg(index.search(queries, k=k, prefetch=p))
                rows.append(row)
                save()
            row = {"method": "qdrant embedded: full MaxSim scan (m=0, default)", "knobs": ""}
            row.update(timed_search(index, scan, k=k, warmup=1))
            row["nDCG@10_scan_queries"] = ndcg(index.search(scan, k=k))
            rows.append(row)
            index.close()
            rows.append(
                {
                    "method": "flat (exhaustive MaxSim, torch)",
                    "knobs": "",
                    "nDCG@10_scan_queries": ndcg(flat.search(scan, k=k)),
                }
            )
            save()
            if plaid:
                start = time.perf_counter()
                plaid_index = PlaidIndex.from_encoding(flat.docs, nbits=2, progress=True)
                build["plaid_seconds"] = time.perf_counter() - start
                plaid_index.save(work / "plaid")
                build["plaid_disk_bytes"] = folder_bytes(work / "plaid")
                build["plaid_bytes_per_vector"] = build["plaid_disk_bytes"] / flat.docs.vectors.shape[0]
                save()
                row = {"method": "plaid nbits=2 (default knobs)", "knobs": ""}
                row.update(timed_search(plaid_index, timed, k=k))
                row["nDCG@10_all"] = ndcg(plaid_index.search(queries, k=k))
                row["nDCG@10_scan_queries"] = ndcg(plaid_index.search(scan, k=k))
                rows.append(row)
                save()
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if "encoding" in parts:
        results["encoding"] = _Rows(save)
        encoding_throughput(encoder, docs[:encode_docs], batch_size, rows=results["encoding"])
    results["complete"] = True
    return save()


def main(argv: list[str] | None = None) -> int:
    from lirlab import data
    from lirlab.benchmark_model import BENCH_MODEL, benchmark_model
    from lirlab.encoder import ColBERT

    parser = argparse.ArgumentParser(
        prog="python -m lirlab.bench.qdrant", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--dataset", default="../shared/data/scifact")
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", default=BENCH_MODEL)
    parser.add_argument("--queries", type=int, default=100, help="queries timed one at a time")
    parser.add_argument("--encode-docs", type=int, default=1000, help="documents encoded per encoder")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--cache", default="benchmarks/cache")
    parser.add_argument("--no-plaid", action="store_true", help="skip the PLAID rows")
    parser.add_argument(
        "--scan-queries", type=int, default=20, help="queries the full MaxSim scan is timed on"
    )
    parser.add_argument(
        "--part",
        choices=["all", "index", "encoding"],
        default="all",
        help="index: Qdrant and PLAID rows (qdrant.json); encoding: throughput rows only (qdrant_encoding.json)",
    )
    args = parser.parse_args(argv)
    dataset = data.load(args.dataset, split=args.split)
    encoder = ColBERT.load(benchmark_model(args.model), device="cpu")
    path = run_qdrant_benchmark(
        dataset,
        encoder,
        args.out,
        n_queries=args.queries,
        scan_queries=args.scan_queries,
        encode_docs=args.encode_docs,
        cache_dir=args.cache,
        plaid=not args.no_plaid,
        parts=("index", "encoding") if args.part == "all" else (args.part,),
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
