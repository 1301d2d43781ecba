"""Score the models of the trainer comparison the way ``lirlab bench train`` scores its own: exhaustive
MaxSim, documents at the start checkpoint's 180 tokens, queries with ``[MASK]`` padding to 32 and without.

Runs in lirlab's own environment, after ``benchmarks/peers/st6_trainer_comparison.py`` (see its notes)::

    PYTHONPATH=. python benchmarks/peers/st6_trainer_scores.py \
        lirlab-mask32=benchmarks/cache/train/mask32/checkpoint-NNNNNN/stanford \
        st6-mask32=benchmarks/cache/train/st6-mask32/final --datasets ../shared/data/nfcorpus

Each ``NAME=FOLDER`` is any folder ``ColBERT.load`` opens (a Sentence Transformers 6 folder included).
The table goes to ``benchmarks/results/trainer-comparison.json`` with the machine described.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lirlab.bench.record import cached_flat_index, save_results
from lirlab.bench.train import score
from lirlab.data import load
from lirlab.encoder import ColBERT


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="NAME=FOLDER")
    parser.add_argument("--datasets", nargs="+", default=["../shared/data/nfcorpus"])
    parser.add_argument("--doc-maxlen", type=int, default=180)
    parser.add_argument("--cache", default="benchmarks/cache/train/indexes")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()

    rows = []
    for path in args.datasets:
        dataset = load(path, split="test")
        for spec in args.models:
            name, _, folder = spec.partition("=")
            encoder = ColBERT.load(folder, device="cpu", doc_maxlen=args.doc_maxlen)
            index = cached_flat_index(dataset, encoder, Path(args.cache, f"compare-{name}"))
            row = {"model": name, "folder": folder, "dataset": dataset.name, **score(encoder, dataset, index)}
            print(row, flush=True)
            rows.append(row)
    save_results("trainer-comparison", {"rows": rows, "models": args.models}, args.out)


if __name__ == "__main__":
    main()
