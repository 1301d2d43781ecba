"""Peak memory of ``PlaidIndex.build`` as the corpus grows: 1×, 4× and 16× the demo corpus.

Each build runs in a fresh Python process, so its peak resident set (``ru_maxrss``) is its own; the
figure reported is the build's share, ``peak - baseline``, where the baseline is the peak after the
model and the corpus are loaded. The larger corpora are copies of the demo passages under new ids
(``docno~copy``), so they encode to the same number of tokens per document. ``python -m lirlab.bench.memory``
writes ``benchmarks/results/memory.json`` with the machine described.

Examples
--------
>>> copies = corpus_copies(2)
>>> len(copies), copies[0].docno, copies[-1].docno.endswith("~1")
(400, 'bees-01', True)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "benchmarks/models/minilm-colbert"


def corpus_copies(multiple: int, dataset: str = "demo"):
    """The documents of ``dataset`` repeated ``multiple`` times, copy ``j`` under ids ``docno~j`` (``j > 0``)."""
    from lirlab import data
    from lirlab.data import Document

    docs = data.load(dataset).docs
    return [
        Document(d.docno if j == 0 else f"{d.docno}~{j}", d.text, d.title)
        for j in range(multiple)
        for d in docs
    ]


def _rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_build(
    multiple: int,
    model: str,
    dataset: str = "demo",
    chunk_docs: int | None = None,
    kmeans_sample: int | None = None,
) -> dict[str, Any]:
    """Build a PLAID index of ``multiple`` copies of ``dataset`` in this process; its memory and time."""
    import torch

    from lirlab.encoder import ColBERT
    from lirlab.index.plaid import PlaidIndex

    docs = corpus_copies(multiple, dataset)
    encoder = ColBERT.load(model, device="cpu")
    encoder.encode_documents(docs[:8], progress=False)  # warm the model's buffers into the baseline
    baseline = _rss_mib()
    start = time.perf_counter()
    extra = {} if chunk_docs is None else {"chunk_docs": chunk_docs}
    if kmeans_sample is not None:
        extra["kmeans_sample"] = kmeans_sample
    index = PlaidIndex.build(docs, encoder, progress=False, **extra)
    seconds = time.perf_counter() - start
    peak = _rss_mib()
    return {
        "multiple": multiple,
        "documents": len(docs),
        "tokens": int(index.n_vectors()),
        "n_centroids": int(index.n_centroids),
        "sample_documents": (getattr(index, "config", {}) or {}).get("kmeans", {}).get("sample_documents"),
        "baseline_mib": round(baseline, 1),
        "peak_mib": round(peak, 1),
        "build_mib": round(peak - baseline, 1),
        "build_s": round(seconds, 1),
        "torch_threads": torch.get_num_threads(),
    }


def run_memory_benchmark(
    multiples: tuple[int, ...] = (1, 4, 16),
    model: str = DEFAULT_MODEL,
    dataset: str = "demo",
    out_dir: str | os.PathLike | None = "benchmarks/results",
    chunk_docs: int | None = None,
    kmeans_sample: int | None = None,
) -> dict[str, Any]:
    """One fresh process per corpus size; the rows, the growth per token, and the saved JSON's path.

    With ``kmeans_sample`` fixed (documents), the sample stops growing with the corpus, so the growth per
    token left is what the index itself keeps; the default sample is the whole corpus below 30,720
    documents (ColBERTv2's formula), capped at ``MAX_SAMPLE_VECTORS`` vectors.
    """
    rows = []
    for multiple in multiples:
        command = [sys.executable, "-m", "lirlab.bench.memory", "--worker", str(multiple), "--model", model]
        command += ["--dataset", dataset] + ([] if chunk_docs is None else ["--chunk-docs", str(chunk_docs)])
        command += [] if kmeans_sample is None else ["--kmeans-sample", str(kmeans_sample)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"the build of {multiple}x {dataset} failed: {tail[0]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr)
    first, last = rows[0], rows[-1]
    growth = (
        (last["build_mib"] - first["build_mib"]) * 1024 / (last["tokens"] - first["tokens"])
        if last["tokens"] > first["tokens"]
        else 0.0
    )
    from lirlab.index.plaid.knobs import MAX_SAMPLE_VECTORS

    report = {
        "model": model,
        "dataset": dataset,
        "kmeans_sample": kmeans_sample if kmeans_sample is not None else "default",
        "chunk_docs": chunk_docs if chunk_docs is not None else "default",
        "max_sample_vectors": MAX_SAMPLE_VECTORS,
        "rows": rows,
        "build_kib_per_extra_token": round(growth, 3),
        "command": " ".join(["python -m lirlab.bench.memory", *sys.argv[1:]]),
    }
    if out_dir is not None:
        from lirlab.bench.record import save_results

        name = "memory" + (f"-{Path(dataset).name}" if dataset != "demo" else "")
        name += f"-sample{kmeans_sample}" if kmeans_sample is not None else ""
        name += f"-chunk{chunk_docs}" if chunk_docs is not None else ""
        report["path"] = str(save_results(name, report, out_dir))
    return report


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m lirlab.bench.memory", description=__doc__.split("\n")[0])
    parser.add_argument("--multiples", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="encoder (default: %(default)s)")
    parser.add_argument("--dataset", default="demo", help="corpus to copy (default: %(default)s)")
    parser.add_argument("--chunk-docs", type=int, default=None, help="documents compressed at a time")
    parser.add_argument(
        "--kmeans-sample", type=int, default=None, help="fixed k-means sample in documents (default: PLAID's)"
    )
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        print(
            json.dumps(
                measure_build(args.worker, args.model, args.dataset, args.chunk_docs, args.kmeans_sample)
            )
        )
        return 0
    if not Path(args.model).exists() and args.model == DEFAULT_MODEL:
        args.model = "minilm"
    report = run_memory_benchmark(
        tuple(args.multiples), args.model, args.dataset, args.out, args.chunk_docs, args.kmeans_sample
    )
    print(
        f"wrote {report.get('path')}: {report['build_kib_per_extra_token']} KiB of build memory per extra token"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
