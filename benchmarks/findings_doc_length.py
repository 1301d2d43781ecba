"""Study 3 of issue 30 (document length): do longer documents score higher under MaxSim whatever their
relevance, and does normalising for length (MeanMaxSim, MaxSim / doc_tokens^a) change the ranking?

Every query scored against every document (:func:`lirlab.analysis.doc_lengths.doc_length_scores` with
``k=None``), then the scores per length bin for relevant and non-relevant documents, the per-query
Spearman correlation between score and length, and the quality of each scoring, with the machine
described, as one JSON object. The per-pair rows it keeps are each query's top 10 and its relevant
documents (the whole table is a million rows).

    python benchmarks/findings_doc_length.py --dataset ../shared/data/scifact \\
        --docs benchmarks/cache/scifact-flat > benchmarks/results/amd-zen3-avx2/findings-doc-length-scifact.json
"""

from __future__ import annotations

import argparse
import json

from lirlab import data
from lirlab.analysis.doc_lengths import (
    DOC_LENGTH_ALPHAS,
    doc_length_scores,
    length_normalised_quality,
    length_score_correlation,
    score_by_doc_length,
)
from lirlab.encoder import ColBERT
from lirlab.index.flat import FlatIndex
from lirlab.machine import describe_machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="../shared/data/scifact")
    parser.add_argument("--model", default="benchmarks/models/minilm-colbert")
    parser.add_argument("--docs", help="a saved FlatIndex of the collection encoded by --model")
    parser.add_argument("--save-docs", help="save the FlatIndex encoded here (when --docs is not given)")
    parser.add_argument(
        "--doc-maxlen", type=int, help="encode documents up to this many tokens (default: the model's)"
    )
    args = parser.parse_args()
    encoder = ColBERT.load(args.model)
    if args.doc_maxlen:
        encoder = encoder.with_config(doc_maxlen=args.doc_maxlen)
    dataset = data.load(args.dataset, split="test")
    if args.docs:
        index = FlatIndex.load(args.docs, encoder=encoder)
    else:
        index = FlatIndex.build(dataset.docs, encoder, progress=False)
        if args.save_docs:
            index.save(args.save_docs)
    rows = doc_length_scores(encoder, dataset, index, k=None, progress=False)
    per_doc = rows.drop_duplicates("docno")
    print(
        json.dumps(
            {
                "dataset": dataset.name,
                "model": args.model,
                "doc_maxlen": index.model.get("doc_maxlen"),  # what encoded the documents
                "queries": int(rows.qid.nunique()),
                "documents": len(index),
                "doc_tokens": {
                    "mean": float(per_doc.doc_tokens.mean()),
                    "median": float(per_doc.doc_tokens.median()),
                    "max": int(per_doc.doc_tokens.max()),
                    "truncated_share": float(per_doc.truncated.mean()),
                },
                "query_tokens": sorted(int(n) for n in rows.query_tokens.unique()),
                "alphas": list(DOC_LENGTH_ALPHAS),
                "quality": length_normalised_quality(rows, dataset).to_dict("records"),
                "correlation": length_score_correlation(rows).to_dict("records"),
                "by_length": score_by_doc_length(rows).to_dict("records"),
                "rows": rows[(rows["rank"] <= 10) | rows.relevant].to_dict("records"),
                "machine": describe_machine(),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
