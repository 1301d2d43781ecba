"""Test data without a model: seeded random encodings, and small slices of the demo corpus."""

from __future__ import annotations

import torch

from lirlab import data
from lirlab.data import Dataset
from lirlab.encoding import Encoding, offsets_from_lengths

VOCAB = ("a", "b", "c", "d", "e")


def random_encoding(
    n: int, seed: int, dim: int = 16, kind: str = "document", prefix: str = "d", vocab_size: int = 1
) -> Encoding:
    """``n`` items of 2–11 unit vectors each, token ids drawn from the first ``vocab_size`` of :data:`VOCAB`."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 12, (n,), generator=g)
    total = int(lengths.sum())
    return Encoding(
        ids=tuple(f"{prefix}{i}" for i in range(n)),
        vectors=torch.nn.functional.normalize(torch.randn(total, dim, generator=g), dim=1),
        token_ids=torch.randint(0, vocab_size, (total,), generator=g),
        offsets=offsets_from_lengths(lengths),
        vocab=VOCAB[:vocab_size],
        kind=kind,
    )


def demo_slice(n_docs: int, n_queries: int) -> Dataset:
    """The first ``n_docs`` demo passages and up to ``n_queries`` queries judged on them, with their qrels."""
    demo = data.load("demo")
    docs = demo.docs[:n_docs]
    kept = {d.docno for d in docs}
    qrels = demo.qrels[demo.qrels.doc_id.isin(kept)].reset_index(drop=True)
    queries = tuple(q for q in demo.queries if q.qid in set(qrels.query_id))[:n_queries]
    return Dataset("demo-slice", docs, queries, qrels[qrels.query_id.isin({q.qid for q in queries})])
