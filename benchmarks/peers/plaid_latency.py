"""lirlab's side of the PLAID comparison with colbert-ai and PyLate (their scripts sit beside this one).

SciFact test, the MiniLM-ColBERT checkpoint, nbits 2, default knobs, k = 10, one query at a time after
5 warm-up queries, the first 100 test queries in 3 rounds (each query keeps its fastest round), 2
threads. The index is built from the cached encodings ``lirlab bench core`` leaves in
``benchmarks/cache/scifact-flat`` (built and saved under ``--index`` the first time). Prints one JSON
object: p50, per-stage p50s, query encoding and text-to-top-10 p50s (timed as ``colbert_time.py`` times
colbert-ai's), nDCG@10 over every test query, build seconds when built, the machine.

    python benchmarks/peers/plaid_latency.py --index benchmarks/cache/scifact-plaid
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from lirlab import data
from lirlab.analysis.sweeps import timed_search
from lirlab.encoder import ColBERT
from lirlab.evaluate import evaluate
from lirlab.index.flat import FlatIndex
from lirlab.index.plaid import PlaidIndex
from lirlab.machine import describe_machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="../shared/data/scifact")
    parser.add_argument("--model", default="benchmarks/models/minilm-colbert")
    parser.add_argument("--flat", default="benchmarks/cache/scifact-flat")
    parser.add_argument("--index", default="benchmarks/cache/scifact-plaid")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    encoder = ColBERT.load(args.model)
    dataset = data.load(args.dataset, split="test")
    build = None
    if not Path(args.index, "metadata.json").is_file():
        timings: dict[str, float] = {}
        start = time.perf_counter()
        index = PlaidIndex.from_encoding(FlatIndex.load(args.flat).docs, nbits=2, timings=timings)
        build = {"seconds": time.perf_counter() - start, "stage_seconds": timings}
        index.save(args.index)
    index = PlaidIndex.load(args.index, encoder=encoder)
    queries = encoder.encode_queries(list(dataset.queries))
    latency = timed_search(index, queries.select(range(args.queries)), k=10, rounds=3)
    texts = [q.text for q in dataset.queries][: args.queries]
    latency |= _encode_and_end_to_end(encoder, index, texts)
    quality = evaluate(index.search(queries, k=10), dataset, ["nDCG@10"]).value.iloc[0]
    print(
        json.dumps(
            {
                "tool": "lirlab",
                "queries_timed": args.queries,
                **latency,
                "nDCG@10_all_queries": float(quality),
                "build_from_cached_encodings": build,
                "machine": describe_machine(),
            },
            indent=1,
        )
    )


def _encode_and_end_to_end(encoder: ColBERT, index: PlaidIndex, texts: list[str], rounds: int = 3) -> dict:
    """Query encoding and text-to-top-10 latency timed as ``colbert_time.py`` times colbert-ai's: in
    each round every query encoded alone, then every query searched from its text; each query keeps
    its fastest round; p50 over queries."""
    encode, end_to_end = np.full(len(texts), np.inf), np.full(len(texts), np.inf)
    for _ in range(rounds):
        for i, text in enumerate(texts):
            start = time.perf_counter()
            encoder.encode_queries([text])
            encode[i] = min(encode[i], time.perf_counter() - start)
        for i, text in enumerate(texts):
            start = time.perf_counter()
            index.search_encoded(encoder.encode_queries([text]), k=10)
            end_to_end[i] = min(end_to_end[i], time.perf_counter() - start)
    return {
        "query_encode_p50_ms": 1e3 * float(np.median(encode)),
        "search_end_to_end_p50_ms": 1e3 * float(np.median(end_to_end)),
        "query_forward": encoder.query_forward,
    }


if __name__ == "__main__":
    main()
