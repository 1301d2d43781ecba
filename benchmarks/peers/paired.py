"""lirlab's PLAID and colbert-ai's, timed in alternating blocks of queries in one run.

On a shared machine the load changes from minute to minute: two scripts run one after the other
measured ratios from 0.35 to 0.82 for the same code. Here both tools stay loaded in their own process
(colbert-ai in its own venv: it needs transformers 4.x) and the driver hands them the same queries in
blocks of ``--block``, alternating which tool goes first, for ``--rounds`` rounds; each query keeps its
fastest round per tool, and the ratio is taken of the p50s. Three figures, each query alone: query
encoding, search from the encoded query (PLAID at default knobs, k = 10), and text to top-10.

    python benchmarks/peers/paired.py --colbert-python /tmp/peers/colbert-venv/bin/python \\
        > benchmarks/results/amd-zen3-avx2/plaid-paired.json

Needs the lirlab index ``benchmarks/peers/plaid_latency.py`` builds and colbert-ai's
(``benchmarks/peers/colbert_index.py``); ``benchmarks/peers/colbert_time.py --serve`` is colbert-ai's side.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FIGURES = ("encode", "search", "end_to_end")


def serve(answer) -> None:
    """Answer the driver's requests on stdin: ``{"figure": ..., "texts": [...]}`` → ``{"seconds": [...]}``."""
    for line in sys.stdin:
        request = json.loads(line)
        answer_line = {"seconds": answer(request["figure"], request["texts"])}
        REPLIES.write(json.dumps(answer_line) + "\n")
        REPLIES.flush()


def lirlab_worker(args) -> None:
    import torch

    from lirlab.encoder import ColBERT
    from lirlab.index.plaid import PlaidIndex
    from lirlab.machine import describe_machine

    torch.set_num_threads(args.threads)
    encoder = ColBERT.load(args.model)
    index = PlaidIndex.load(args.index, encoder=encoder)
    for text in args_warmup():
        index.search_encoded(encoder.encode_queries([text]), k=10)

    def answer(figure: str, texts: list[str]) -> list[float]:
        seconds = []
        encoded = [encoder.encode_queries([t]) for t in texts] if figure == "search" else None
        for i, text in enumerate(texts):
            start = time.perf_counter()
            if figure == "encode":
                encoder.encode_queries([text])
            elif figure == "search":
                index.search_encoded(encoded[i], k=10)
            else:
                index.search_encoded(encoder.encode_queries([text]), k=10)
            seconds.append(time.perf_counter() - start)
        return seconds

    ready({"tool": "lirlab", "query_forward": encoder.query_forward, "machine": describe_machine()})
    serve(answer)


def args_warmup() -> list[str]:
    return json.loads(os.environ["PAIRED_WARMUP"])


def ready(description: dict) -> None:
    REPLIES.write(json.dumps(description) + "\n")
    REPLIES.flush()


def driver(args) -> None:
    sys.path.insert(0, str(HERE))
    import scifact_data

    _, texts, _ = scifact_data.load_test_queries()
    timed, warmup = texts[: args.queries], texts[args.queries : args.queries + 5]
    threads = str(args.threads)
    env = os.environ | {
        "PAIRED_WARMUP": json.dumps(warmup),
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
    }
    commands = {
        "lirlab": [sys.executable, __file__, "--worker", "--threads", str(args.threads)],
        "colbert-ai": [args.colbert_python, str(HERE / "colbert_time.py"), "--serve"],
    }
    workers = {
        name: subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        for name, command in commands.items()
    }
    described = {name: json.loads(worker.stdout.readline()) for name, worker in workers.items()}
    best = {name: {f: np.full(len(timed), np.inf) for f in FIGURES} for name in workers}
    blocks = [range(s, min(s + args.block, len(timed))) for s in range(0, len(timed), args.block)]
    turn = 0
    for _ in range(args.rounds):
        for figure in FIGURES:
            for block in blocks:
                names = list(workers)[:: 1 if turn % 2 == 0 else -1]
                turn += 1
                for name in names:
                    request = {"figure": figure, "texts": [timed[i] for i in block]}
                    workers[name].stdin.write(json.dumps(request) + "\n")
                    workers[name].stdin.flush()
                    seconds = json.loads(workers[name].stdout.readline())["seconds"]
                    column = best[name][figure]
                    column[block.start : block.stop] = np.minimum(column[block.start : block.stop], seconds)
    for worker in workers.values():
        worker.stdin.close()
        worker.wait()
    p50 = {name: {f: 1e3 * float(np.median(best[name][f])) for f in FIGURES} for name in workers}
    print(
        json.dumps(
            {
                "queries": len(timed),
                "block": args.block,
                "rounds": args.rounds,
                "threads": args.threads,
                "p50_ms": p50,
                "ratio_lirlab_to_colbert_ai": {f: p50["lirlab"][f] / p50["colbert-ai"][f] for f in FIGURES},
                "workers": described,
            },
            indent=1,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--colbert-python", default="/tmp/peers/colbert-venv/bin/python")
    parser.add_argument("--model", default="benchmarks/models/minilm-colbert")
    parser.add_argument("--index", default="benchmarks/cache/scifact-plaid")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--block", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    (lirlab_worker if args.worker else driver)(args)


# Replies go to the real stdout; anything the tools print goes to stderr.
REPLIES = sys.stdout
if "--worker" in sys.argv:
    sys.stdout = sys.stderr

if __name__ == "__main__":
    main()
