"""Training data: queries, documents, judged positives, and teacher scores, checked once up front.

:class:`TrainingData` holds what a run draws batches from. Every problem with it is found before the
first step and reported in one line naming the problem and the fix: pairs naming unknown query or
document ids, an empty training set, a teacher file that lacks scores for training pairs.

Examples
--------
>>> data = TrainingData.from_pairs(
...     {"q1": "what do bees eat", "q2": "how do fish breathe"},
...     {"d1": "bees eat nectar", "d2": "fish breathe with gills", "d3": "cats sleep"},
...     [("q1", "d1"), ("q2", "d2")],
... )
>>> data
TrainingData(2 queries, 3 documents, 2 positive pairs)
>>> TrainingData.from_pairs({"q1": "x"}, {"d1": "y"}, [("q1", "d9")])
Traceback (most recent call last):
...
ValueError: training pairs name 1 unknown document id(s), e.g. 'd9': every docno must be in the corpus
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lirlab.data import Dataset


@dataclass(frozen=True)
class TrainingData:
    """Queries and documents by id, and each training query's judged-relevant documents.

    Attributes
    ----------
    queries : dict
        ``qid -> text`` of the training queries (those with at least one positive).
    docs : dict
        ``docno -> text`` (title and body) of the corpus: positives and negatives are drawn from it.
    positives : dict
        ``qid -> tuple of docnos`` judged relevant.
    teacher : dict
        ``qid -> {docno: score}`` from a teacher (a cross-encoder), or empty for contrastive training.
    name : str
        Where the data came from, for the logs.
    """

    queries: dict[str, str]
    docs: dict[str, str]
    positives: dict[str, tuple[str, ...]]
    teacher: dict[str, dict[str, float]] = field(default_factory=dict)
    name: str = ""

    @classmethod
    def from_pairs(
        cls,
        queries: Mapping[str, str],
        docs: Mapping[str, str],
        pairs: Iterable[tuple[str, str]],
        name: str = "",
    ) -> TrainingData:
        """Build from ``{qid: text}``, ``{docno: text}`` and ``(qid, docno)`` positive pairs (validated)."""
        positives: dict[str, list[str]] = {}
        unknown_q, unknown_d = [], []
        for qid, docno in pairs:
            qid, docno = str(qid), str(docno)
            if qid not in queries:
                unknown_q.append(qid)
            elif docno not in docs:
                unknown_d.append(docno)
            elif docno not in positives.setdefault(qid, []):
                positives[qid].append(docno)
        if unknown_q:
            raise ValueError(
                f"training pairs name {len(set(unknown_q))} unknown query id(s), e.g. {unknown_q[0]!r}: "
                "every qid must be in the queries"
            )
        if unknown_d:
            raise ValueError(
                f"training pairs name {len(set(unknown_d))} unknown document id(s), e.g. {unknown_d[0]!r}: "
                "every docno must be in the corpus"
            )
        if not positives:
            where = f" {name}" if name else ""
            raise ValueError(
                f"the training set{where} is empty: no (query, relevant document) pair to learn from"
            )
        kept = {qid: str(queries[qid]) for qid in positives}
        return cls(
            kept,
            {str(k): str(v) for k, v in docs.items()},
            {q: tuple(d) for q, d in positives.items()},
            name=name,
        )

    @classmethod
    def from_dataset(cls, dataset: Dataset) -> TrainingData:
        """Training pairs from a dataset's qrels (relevance > 0), e.g. ``data.load(folder, split="train")``."""
        judged = dataset.qrels[dataset.qrels.relevance > 0]
        queries = {q.qid: q.text for q in dataset.queries}
        docs = {d.docno: d.full_text for d in dataset.docs}
        return cls.from_pairs(queries, docs, zip(judged.query_id, judged.doc_id), name=dataset.name)

    def with_teacher(
        self, teacher: Mapping[str, Mapping[str, float]], min_candidates: int = 2
    ) -> TrainingData:
        """The same data with teacher scores; every training pair must be scored, with enough candidates.

        Raises
        ------
        ValueError
            A training pair the teacher did not score, a teacher docno not in the corpus, or a query with
            fewer than ``min_candidates`` scored documents.
        """
        missing = [(q, d) for q, ds in self.positives.items() for d in ds if d not in teacher.get(q, {})]
        if missing:
            q, d = missing[0]
            raise ValueError(
                f"the teacher file lacks {len(missing)} training pair(s), e.g. ({q!r}, {d!r}): "
                "score every (qid, docno) of the training pairs, or train without --teacher"
            )
        for qid, scores in teacher.items():
            for docno in scores:
                if docno not in self.docs:
                    raise ValueError(
                        f"the teacher file names document {docno!r} (query {qid!r}), not in the corpus"
                    )
        short = [q for q in self.positives if len(teacher.get(q, {})) < min_candidates]
        if short:
            raise ValueError(
                f"the teacher file scores fewer than {min_candidates} documents for {len(short)} training "
                f"query(ies), e.g. {short[0]!r}: distillation needs a positive and negatives per query"
            )
        kept = {q: {d: float(s) for d, s in teacher[q].items()} for q in self.positives}
        return TrainingData(self.queries, self.docs, self.positives, kept, self.name)

    def __repr__(self) -> str:
        n_pairs = sum(len(d) for d in self.positives.values())
        extra = f", teacher scores for {len(self.teacher)} queries" if self.teacher else ""
        return f"TrainingData({len(self.queries)} queries, {len(self.docs)} documents, {n_pairs} positive pairs{extra})"


def read_teacher_scores(path: str | os.PathLike) -> dict[str, dict[str, float]]:
    """``qid -> {docno: score}`` from a JSONL (``{"qid", "docno", "score"}`` per line) or TSV/CSV file.

    A TSV may have a header (``qid docno score``); columns are taken in that order.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no teacher file (JSONL or TSV of qid, docno, score)")
    scores: dict[str, dict[str, float]] = {}
    with open(path, encoding="utf-8", newline="") as f:
        if path.suffix in (".jsonl", ".json"):
            rows = []
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    rows.append((obj["qid"], obj["docno"], obj["score"]))
                except (ValueError, KeyError, TypeError):
                    raise ValueError(
                        f"{path}:{line_no}: expected a JSON object with qid, docno, score"
                    ) from None
        else:
            rows = list(csv.reader(f, delimiter="," if path.suffix == ".csv" else "\t"))
            if rows and rows[0] and rows[0][-1].strip().lower() == "score":
                rows = rows[1:]
        for line_no, row in enumerate(rows, 1):
            if len(row) < 3:
                raise ValueError(
                    f"{path}: row {line_no} has {len(row)} column(s); expected qid, docno, score"
                )
            try:
                value = float(row[2])
            except ValueError:
                raise ValueError(f"{path}: row {line_no}: score {row[2]!r} is not a number") from None
            scores.setdefault(str(row[0]).strip(), {})[str(row[1]).strip()] = value
    if not scores:
        raise ValueError(f"{path}: the teacher file is empty")
    return scores
