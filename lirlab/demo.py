"""``lirlab demo``: the quickstart, headless, on the bundled demo corpus.

Loads the default model (or, offline, the bundled MiniLM weights with a visible notice), indexes the
demo corpus exhaustively, searches its 30 queries, evaluates them, and writes into one folder: the run
(``run.tsv``), the measures (``metrics.csv``, ``per_query.csv``) and the token alignment of the first
query's best hit (``alignment.csv``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from lirlab import data
from lirlab.encoder import DEFAULT_MODEL, ColBERT
from lirlab.evaluate import evaluate, per_query_scores
from lirlab.index.flat import FlatIndex
from lirlab.maxsim import explain

MEASURES = ["nDCG@10", "RR@10", "R@100"]


def alignment_table(index: FlatIndex, queries, qid: str, docno: str) -> pd.DataFrame:
    """One row per query token: the document token it matched and its share of the score."""
    ex = explain(queries.item(qid), index.docs.item(docno))
    return pd.DataFrame({
        "query_token": ex.query_tokens,
        "doc_token": [ex.doc_tokens[j] if j >= 0 else "" for j in ex.best_doc_token.tolist()],
        "similarity": ex.contributions.numpy(),
    })


def run_demo(model: str | None = None, out: str | Path = "lirlab-demo", device: str | None = None) -> Path:
    """Run the quickstart end to end; returns the output folder."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    encoder = ColBERT.load(model or DEFAULT_MODEL, device=device, fallback_to_minilm=model is None)
    print(f"model: {encoder}", file=sys.stderr)
    dataset = data.load("demo")
    index = FlatIndex.build(dataset.docs, encoder)
    queries = encoder.encode_queries(dataset.queries)
    run = index.search(queries, k=100)
    run = run.assign(query=run.qid.map({q.qid: q.text for q in dataset.queries}))
    run.to_csv(out / "run.tsv", sep="\t", index=False)
    metrics = evaluate(run, dataset, MEASURES)
    metrics.to_csv(out / "metrics.csv", index=False)
    per_query_scores(run, dataset, MEASURES).to_csv(out / "per_query.csv", index=False)
    first = run.iloc[0]
    alignment_table(index, queries, first.qid, first.docno).to_csv(out / "alignment.csv", index=False)
    print(f"{dataset} with {encoder.name}:")
    print(metrics.to_string(index=False))
    print(f"wrote run, metrics and the alignment of {first.qid!r} -> {first.docno!r} to {out}/")
    return out
