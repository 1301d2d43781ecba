"""Study 3 of issue 30 (fixed-count documents, ConstBERT's idea without its training): every document
pooled to 4, 8, 16 or 32 vectors, beside pool factors 1 to 40 (the larger ones reach the same index
sizes), index size against quality.

Rows of :func:`lirlab.analysis.fixed_count.fixed_count_quality` (exact MaxSim over each pooled flat
index), with the machine described, as one JSON object.

    python benchmarks/findings_fixed_count.py --dataset ../shared/data/scifact \\
        --docs benchmarks/cache/scifact-flat > benchmarks/results/amd-zen3-avx2/findings-fixed-count-scifact.json
"""

from __future__ import annotations

import argparse
import json

from lirlab import data
from lirlab.analysis.fixed_count import DEFAULT_COUNTS, DEFAULT_POOL_FACTORS, fixed_count_quality
from lirlab.encoder import ColBERT
from lirlab.index.flat import FlatIndex
from lirlab.machine import describe_machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="../shared/data/scifact")
    parser.add_argument("--model", default="benchmarks/models/minilm-colbert")
    parser.add_argument("--docs", help="a saved FlatIndex of the collection encoded by --model")
    parser.add_argument("--counts", type=int, nargs="+", default=list(DEFAULT_COUNTS))
    parser.add_argument("--pool-factors", type=int, nargs="+", default=list(DEFAULT_POOL_FACTORS))
    args = parser.parse_args()
    encoder = ColBERT.load(args.model)
    dataset = data.load(args.dataset, split="test")
    docs = FlatIndex.load(args.docs, encoder=encoder) if args.docs else None
    table = fixed_count_quality(
        encoder, dataset, docs, counts=args.counts, pool_factors=args.pool_factors, progress=False
    )
    print(
        json.dumps(
            {
                "dataset": dataset.name,
                "model": args.model,
                "queries": len(dataset.queries),
                "documents": len(dataset.docs),
                "rows": table.to_dict("records"),
                "machine": describe_machine(),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
