"""Do colbert-ai and PyLate load a checkpoint lirlab trained as their own, with lirlab's vectors?

Not part of lirlab (it needs the peers, which lirlab does not depend on, and they need older
transformers than lirlab: colbert-ai 4.x, PyLate 1.6.0 at most 5.3). lirlab's vectors are written
first, in lirlab's environment; each peer then runs in its own::

    PYTHONPATH=. python benchmarks/peers/trained_checkpoint_loads.py CKPT   # lirlab's vectors
    python -m venv /tmp/peers --system-site-packages
    /tmp/peers/bin/pip install --no-deps pylate==1.6.0
    /tmp/peers/bin/pip install sentence-transformers==5.3.0 transformers==5.3.0 ujson==5.12.0 datasets
    PYTHONPATH=. /tmp/peers/bin/python benchmarks/peers/trained_checkpoint_loads.py CKPT --peers pylate
    python -m venv /tmp/peers-colbert --system-site-packages
    /tmp/peers-colbert/bin/pip install --no-deps colbert-ai
    /tmp/peers-colbert/bin/pip install transformers==4.46.3 ujson bitarray python-dotenv gitpython datasets
    PYTHONPATH=. /tmp/peers-colbert/bin/python benchmarks/peers/trained_checkpoint_loads.py CKPT \
        --peers colbert_ai

(with ``-c`` a constraints file pinning the installed torch, so pip does not fetch a CUDA build). CKPT
is a lirlab checkpoint folder, for example ``benchmarks/cache/train/mask32/checkpoint-000400``. Each
peer encodes the first queries and documents of the dataset's test split from the layout written for
it (``stanford/`` for colbert-ai, ``pylate/`` for PyLate); the per-token cosines against lirlab's
vectors from the same folder go to ``benchmarks/results/peer-load.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import torch

from lirlab.bench.record import save_results
from lirlab.data import load


def cosines(ours: list[torch.Tensor], theirs: list[torch.Tensor]) -> dict:
    """Per-token cosines of matching texts; every text must keep the same number of tokens."""
    values, same_lengths = [], True
    for a, b in zip(ours, theirs, strict=True):
        b = torch.as_tensor(b, dtype=torch.float32)
        if a.shape != b.shape:
            same_lengths = False
            continue
        values.append(torch.nn.functional.cosine_similarity(a, b, dim=1))
    every = torch.cat(values) if values else torch.zeros(0)
    return {
        "texts": len(ours),
        "same_token_counts": same_lengths,
        "tokens": int(every.numel()),
        "min_cosine": float(every.min()) if every.numel() else None,
        "mean_cosine": float(every.mean()) if every.numel() else None,
    }


def write_ours(checkpoint: Path, queries: list[str], docs: list[str], file: Path) -> None:
    """lirlab's vectors of the texts from each layout folder, as one safetensors file."""
    from safetensors.torch import save_file

    from lirlab.encoder import ColBERT

    tensors = {}
    for layout in LAYOUTS:
        encoder = ColBERT.load(checkpoint / layout, device="cpu")
        for kind, encoding in (
            ("queries", encoder.encode_queries(queries)),
            ("documents", encoder.encode_documents(docs, progress=False)),
        ):
            for i in range(len(encoding)):
                tensors[f"{layout}.{kind}.{i}"] = encoding.vectors_of(i).contiguous()
    file.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(file))


def read_ours(file: Path, layout: str, n_texts: int) -> dict:
    from safetensors.torch import load_file

    tensors = load_file(str(file))
    return {
        kind: [tensors[f"{layout}.{kind}.{i}"] for i in range(n_texts)] for kind in ("queries", "documents")
    }


def check_pylate(folder: Path, queries: list[str], docs: list[str], ours: dict) -> dict:
    from pylate import models

    peer = models.ColBERT(model_name_or_path=str(folder), device="cpu")
    q = peer.encode(queries, is_query=True, convert_to_tensor=False)
    d = peer.encode(docs, is_query=False, convert_to_tensor=False)
    return {
        "loaded_by": f"pylate.models.ColBERT {_version('pylate')}",
        "queries": cosines(ours["queries"], q),
        "documents": cosines(ours["documents"], d),
    }


def check_colbert_ai(folder: Path, queries: list[str], docs: list[str], ours: dict) -> dict:
    from colbert.infra import ColBERTConfig
    from colbert.modeling.checkpoint import Checkpoint

    peer = Checkpoint(str(folder), colbert_config=ColBERTConfig(), verbose=0)
    with torch.inference_mode():
        q = peer.queryFromText(queries)
        d = peer.docFromText(docs, keep_dims=False)  # each document's kept tokens
    theirs_q = list(q.float())
    theirs_d = [row.float() for row in d]
    return {
        "loaded_by": f"colbert.modeling.checkpoint.Checkpoint (colbert-ai {_version('colbert-ai')})",
        "peer_settings": {
            "query_maxlen": peer.colbert_config.query_maxlen,
            "doc_maxlen": peer.colbert_config.doc_maxlen,
            "dim": peer.colbert_config.dim,
        },
        "queries": cosines(ours["queries"], theirs_q),
        "documents": cosines(ours["documents"], theirs_d),
    }


#: Each peer's check and the layout folder it reads.
CHECKS = {"pylate": (check_pylate, "pylate"), "colbert_ai": (check_colbert_ai, "stanford")}
LAYOUTS = ("pylate", "stanford")


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", type=Path, help="a lirlab checkpoint folder (holding stanford/ and pylate/)")
    p.add_argument("--dataset", default="../shared/data/nfcorpus", help="BEIR folder (its test split)")
    p.add_argument("--texts", type=int, default=20, help="queries and documents encoded")
    p.add_argument("--out", default="benchmarks/results", help="results folder")
    p.add_argument(
        "--peers",
        nargs="+",
        choices=list(CHECKS),
        default=list(CHECKS),
        help="peers checked (colbert-ai needs transformers 4.x, PyLate 1.6.0 transformers 5.3: two "
        "environments); results of peers not checked in this run are kept from the previous file",
    )
    p.add_argument(
        "--ours",
        type=Path,
        default=Path("benchmarks/cache/peer-load/lirlab-vectors.safetensors"),
        help="lirlab's vectors of the texts: written when missing (run that with lirlab's own "
        "environment first), compared against when present",
    )
    args = p.parse_args(argv)
    dataset = load(args.dataset, split="test")
    queries = [q.text for q in dataset.queries[: args.texts]]
    docs = [d.full_text for d in list(dataset.docs)[: args.texts]]
    if not args.ours.is_file():
        write_ours(args.checkpoint, queries, docs, args.ours)
        print(f"wrote lirlab's vectors to {args.ours}; now run this again in each peer's environment")
        return 0
    previous = Path(args.out) / "peer-load.json"
    kept = json.loads(previous.read_text()) if previous.is_file() else {}
    results = {
        "checkpoint": str(args.checkpoint),
        "dataset": dataset.name,
        **{name: kept[name] for name in CHECKS if name in kept and name not in args.peers},
    }
    for name in args.peers:
        check, layout = CHECKS[name]
        began = time.perf_counter()
        try:
            ours = read_ours(args.ours, layout, len(queries))
            results[name] = check(args.checkpoint / layout, queries, docs, ours)
        except Exception as e:  # a peer that fails to load the folder is the finding, reported as such
            where = traceback.extract_tb(e.__traceback__)[-1]
            results[name] = {"error": f"{type(e).__name__}: {e} ({where.filename}:{where.lineno})"}
        results[name]["seconds"] = time.perf_counter() - began
    path = save_results("peer-load", results, args.out)
    print(json.dumps(results, indent=2), file=sys.stderr)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
