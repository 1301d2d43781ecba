"""Study 4 of issue 30: the [MASK]-padding gap against training steps, from a run's snapshots.

For the start model (step 0) and every ``checkpoint-<step>`` of ``--run`` (or every ``--every``-th),
NFCorpus test nDCG@10 and R@100 with queries padded with ``[MASK]`` to 32 and unpadded, and the gap
(padded - unpadded; :func:`lirlab.analysis.masks.padding_gap`), documents re-encoded by each snapshot
at its own ``doc_maxlen``. Rewrites ``--out`` (JSON, the machine described) after every snapshot, so a
partial run reports what it measured.

    python benchmarks/findings_mask_gap.py --run benchmarks/cache/train/mask32-long \\
        --out benchmarks/results/amd-zen3-avx2/findings-mask-gap.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from lirlab import data
from lirlab.analysis.masks import padding_gap
from lirlab.encoder import ColBERT
from lirlab.machine import describe_machine
from lirlab.train.checkpoints import load_checkpoint
from lirlab.train.loop import checkpoints


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="benchmarks/cache/train/mask32-long")
    parser.add_argument("--start", default="benchmarks/models/minilm-colbert")
    parser.add_argument("--dataset", default="../shared/data/nfcorpus")
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    dataset = data.load(args.dataset, split="test")
    snapshots = [(0, None)] + [
        (int(folder.name.split("-")[1]), folder) for folder in checkpoints(args.run)[:: args.every]
    ]
    results = {"run": args.run, "dataset": dataset.name, "queries": len(dataset.queries), "rows": []}
    for step, folder in snapshots:
        start = time.perf_counter()
        encoder = ColBERT.load(args.start) if folder is None else load_checkpoint(folder)
        meta = {} if folder is None else json.loads((Path(folder) / "metadata.json").read_text())
        row = {"step": step, "train_seconds_wall": meta.get("trainer_state", {}).get("train_seconds", 0.0)}
        row |= padding_gap(encoder, dataset, padding_to=32, measures=("nDCG@10", "R@100"))
        row["seconds"] = time.perf_counter() - start
        results["rows"].append(row)
        results["machine"] = describe_machine()
        partial = Path(f"{args.out}.partial")
        partial.write_text(json.dumps(results, indent=1))
        os.replace(partial, args.out)


if __name__ == "__main__":
    main()
