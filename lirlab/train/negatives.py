"""Hard negatives mined with lirlab's own index, saved in an open format so a run can be repeated.

:func:`mine_negatives` indexes the corpus with the starting checkpoint in any registered index kind
(:mod:`lirlab.index.registry`; flat, exact MaxSim, by default), searches every training query, and keeps
the top-``depth`` documents that are not judged relevant to it. :class:`Negatives` saves and loads them as a TSV
(``qid  docno  rank  score``) beside a small JSON description of how they were mined.

Examples
--------
>>> negatives = Negatives({"q1": ("d3", "d2")}, {"q1": (1.5, 1.2)}, {"depth": 2})
>>> negatives.for_query("q1")
('d3', 'd2')
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm.auto import tqdm

from lirlab.data import Document, Query
from lirlab.index import registry
from lirlab.train.checkpoints import write_atomically
from lirlab.train.examples import TrainingData

FILE = "negatives.tsv"
META = "negatives.json"


@dataclass(frozen=True)
class Negatives:
    """Ranked non-relevant documents per training query, with the scores the mining index gave them."""

    ranked: dict[str, tuple[str, ...]]
    scores: dict[str, tuple[float, ...]] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def for_query(self, qid: str) -> tuple[str, ...]:
        return self.ranked.get(qid, ())

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``negatives.tsv`` and ``negatives.json`` into ``folder`` (replaced atomically)."""
        with write_atomically(folder) as out:
            with open(out / FILE, "w", encoding="utf-8", newline="") as f:
                writer = csv.writer(f, delimiter="\t", lineterminator="\n")
                writer.writerow(["qid", "docno", "rank", "score"])
                for qid, docnos in self.ranked.items():
                    scores = self.scores.get(qid, (float("nan"),) * len(docnos))
                    for rank, (docno, score) in enumerate(zip(docnos, scores), 1):
                        writer.writerow([qid, docno, rank, f"{score:.6f}"])
            (out / META).write_text(json.dumps({"type": "lirlab.negatives", **self.meta}, indent=2))
        return Path(folder)

    @classmethod
    def load(cls, folder: str | os.PathLike, data: TrainingData | None = None) -> Negatives:
        """Read a folder written by :meth:`save`; with ``data``, check every id and drop judged positives."""
        folder = Path(folder)
        file = folder / FILE if folder.is_dir() else folder
        if not file.is_file():
            raise FileNotFoundError(
                f"{file}: no mined negatives here (written by lirlab train / mine_negatives)"
            )
        ranked: dict[str, list[str]] = {}
        scores: dict[str, list[float]] = {}
        with open(file, encoding="utf-8", newline="") as f:
            reader = csv.reader(f, delimiter="\t")
            header = next(reader, None)
            if header is None or header[:2] != ["qid", "docno"]:
                raise ValueError(f"{file}: expected a header 'qid docno rank score'")
            for row in reader:
                if row:
                    ranked.setdefault(row[0], []).append(row[1])
                    scores.setdefault(row[0], []).append(float(row[3]) if len(row) > 3 else float("nan"))
        if data is not None:
            unknown = [d for ds in ranked.values() for d in ds if d not in data.docs]
            if unknown:
                raise ValueError(
                    f"{file}: names {len(unknown)} document(s) not in the corpus, e.g. {unknown[0]!r}"
                )
            for qid in ranked:
                judged = set(data.positives.get(qid, ()))
                keep = [i for i, d in enumerate(ranked[qid]) if d not in judged]
                ranked[qid] = [ranked[qid][i] for i in keep]
                scores[qid] = [scores[qid][i] for i in keep]
        meta = json.loads((folder / META).read_text()) if (folder / META).is_file() else {}
        return cls({q: tuple(d) for q, d in ranked.items()}, {q: tuple(s) for q, s in scores.items()}, meta)


def mine_negatives(
    encoder,
    data: TrainingData,
    depth: int = 100,
    kind: str = "flat",
    index=None,
    batch_size: int = 32,
    progress: bool = True,
) -> Negatives:
    """The top-``depth`` documents of each training query that are not judged relevant to it.

    Parameters
    ----------
    encoder : lirlab.encoder.ColBERT
        The starting checkpoint, with the query settings to mine with (e.g. ``with_config(query_maxlen=0)``
        to mine without ``[MASK]`` padding).
    data : TrainingData
        Queries, corpus and judged positives.
    depth : int
        Negatives kept per query (the search fetches ``depth`` plus the query's positives).
    kind : str
        Any registered index kind (:func:`lirlab.index.registry.kind_names`): ``"flat"`` (exact MaxSim)
        by default, a compressed one (``"plaid"``) for corpora too large to hold exactly.
    index : optional
        An index of ``data.docs`` already built with ``encoder`` (its documents are then not encoded again).
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a positive whole number, got {depth!r}")
    if kind not in registry.kind_names():
        raise ValueError(
            f"kind must be an index kind, one of {', '.join(registry.kind_names())}; got {kind!r}"
        )
    if index is None:
        docs = [Document(docno, text) for docno, text in data.docs.items()]
        index = registry.kind_class(kind).build(docs, encoder, batch_size=batch_size, progress=progress)
    # batches of similar query length: MaxSim pads each batch to its longest query
    qids = sorted(data.queries, key=lambda q: len(data.queries[q]))
    most_positives = max(len(p) for p in data.positives.values())
    k = min(depth + most_positives, len(index))
    ranked: dict[str, tuple[str, ...]] = {}
    scores: dict[str, tuple[float, ...]] = {}
    chunk = 64
    for start in tqdm(range(0, len(qids), chunk), desc="mine negatives", unit="batch", disable=not progress):
        part = qids[start : start + chunk]
        texts = tuple(data.queries[q] for q in part)
        # the texts travel with the vectors: a kind that ranks by text (BM25) reads them
        encoded = replace(
            encoder.encode_queries([Query(q, text) for q, text in zip(part, texts)]), texts=texts
        )
        run = index.search_encoded(encoded, k=k)
        for qid, (positions, values) in zip(part, run):
            judged = set(data.positives[qid])
            found = [(index.docnos[int(p)], float(s)) for p, s in zip(positions, values)]
            found = [(d, s) for d, s in found if d not in judged][:depth]
            ranked[qid] = tuple(d for d, _ in found)
            scores[qid] = tuple(s for _, s in found)
    meta = {"depth": depth, "kind": index.KIND, "model": encoder.describe(), "queries": len(qids)}
    return Negatives(ranked, scores, meta)
