"""Study 3 of issue 30 (query length): whole queries against their first 4, 8 and 16 word pieces,
padded with [MASK] to 32 or not, on one collection with one model.

Per-query rows (:func:`lirlab.analysis.lengths.query_length_effect`) and their means per length bin
(:func:`~lirlab.analysis.lengths.by_length`), with the machine described, as one JSON object.

    python benchmarks/findings_query_length.py --dataset ../shared/data/scifact \\
        --docs benchmarks/cache/scifact-flat > benchmarks/results/amd-zen3-avx2/findings-query-length-scifact.json
"""

from __future__ import annotations

import argparse
import json

from lirlab import data
from lirlab.analysis.lengths import by_length, query_length_effect
from lirlab.encoder import ColBERT
from lirlab.index.flat import FlatIndex
from lirlab.machine import describe_machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="../shared/data/scifact")
    parser.add_argument("--model", default="benchmarks/models/minilm-colbert")
    parser.add_argument("--docs", help="a saved FlatIndex of the collection encoded by --model")
    args = parser.parse_args()
    encoder = ColBERT.load(args.model)
    dataset = data.load(args.dataset, split="test")
    docs = FlatIndex.load(args.docs, encoder=encoder) if args.docs else None
    effect = query_length_effect(encoder, dataset, docs, progress=False)
    print(
        json.dumps(
            {
                "dataset": dataset.name,
                "model": args.model,
                "queries": len(dataset.queries),
                "by_length": by_length(effect).to_dict("records"),
                "by_variant": effect.groupby(["variant", "padded"])[["nDCG@10", "score_spread", "top_score"]]
                .mean()
                .reset_index()
                .to_dict("records"),
                "rows": effect.to_dict("records"),
                "machine": describe_machine(),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
