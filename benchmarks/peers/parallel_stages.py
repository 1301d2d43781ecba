"""PLAID and WARP search with the numba kernels on every thread against one thread, alternated in one run.

SciFact test, the MiniLM-ColBERT checkpoint, the index ``plaid_latency.py`` builds, default knobs, k = 10,
the first 100 test queries one at a time; each setting timed ``--rounds`` times, alternating. Prints one
JSON object: the median over rounds of the total and per-stage p50s per setting and engine, and their
ratios (every thread / one thread).

    python benchmarks/peers/parallel_stages.py > benchmarks/results/amd-zen3-avx2/parallel-stages.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from lirlab import data
from lirlab.analysis.sweeps import timed_search
from lirlab.encoder import ColBERT
from lirlab.index.plaid import PlaidIndex, kernels
from lirlab.index.warp import WarpIndex
from lirlab.machine import describe_machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="../shared/data/scifact")
    parser.add_argument("--model", default="benchmarks/models/minilm-colbert")
    parser.add_argument("--index", default="benchmarks/cache/scifact-plaid")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    encoder = ColBERT.load(args.model)
    plaid = PlaidIndex.load(args.index, encoder=encoder)
    engines = {"plaid": plaid, "warp": WarpIndex(plaid)}
    queries = encoder.encode_queries(list(data.load(args.dataset, split="test").queries)[: args.queries])
    runs: dict[str, dict[str, list[dict]]] = {e: {"every": [], "one": []} for e in engines}
    for _ in range(args.rounds):
        for engine, index in engines.items():
            for setting in ("every", "one"):
                with kernels.use_parallel(setting == "every"):
                    runs[engine][setting].append(timed_search(index, queries, k=10))
    result = {"threads": args.threads, "rounds": args.rounds, "queries": len(queries)}
    for engine, settings in runs.items():
        medians = {
            s: {key: float(np.median([r[key] for r in rows])) for key in rows[0] if key.endswith("p50_ms")}
            for s, rows in settings.items()
        }
        result[engine] = {
            **medians,
            "ratio_every_to_one": {k: medians["every"][k] / medians["one"][k] for k in medians["every"]},
        }
    result["machine"] = describe_machine()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
