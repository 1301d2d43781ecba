"""The LIMIT-style study (issue 30, study 2) on the untrained and the trained MiniLM-ColBERT.

One collection (``--core`` people, every pair the answer to one query), grown to each ``--sizes`` by
distractors; recall at 2 and 100 of multi-vector MaxSim, the mean-pooled vector and MUVERA's FDEs per
model (:func:`lirlab.analysis.limits.single_vs_multi_vector`). Documents are encoded with
``doc_maxlen`` 512 so no liked thing is cut. Prints one JSON object with the machine described.

    python benchmarks/findings_limit.py > benchmarks/results/amd-zen3-avx2/findings-limit.json
"""

from __future__ import annotations

import argparse
import json
import time

from lirlab.analysis.limits import limit_collection, single_vs_multi_vector
from lirlab.encoder import ColBERT
from lirlab.machine import describe_machine

MODELS = {
    "untrained": "benchmarks/models/minilm-colbert",
    "trained (mask32, 20 min)": "benchmarks/cache/train/mask32/checkpoint-000170/stanford",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--core", type=int, default=46)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000, 3000])
    parser.add_argument("--fde-dims", type=int, nargs="+", default=[128, 512, 2048, 8192])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    collection = limit_collection(n_docs=max(args.sizes), n_core=args.core, seed=args.seed)
    results = {"collection": collection.name, "queries": len(collection.queries), "models": {}}
    for name, path in MODELS.items():
        start = time.perf_counter()
        encoder = ColBERT.load(path).with_config(doc_maxlen=512)
        curve = single_vs_multi_vector(encoder, collection, args.sizes, args.fde_dims, progress=False)
        results["models"][name] = {
            "path": path,
            "seconds": time.perf_counter() - start,
            "curve": curve.to_dict("records"),
        }
    results["machine"] = describe_machine()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
