"""What one run does differently from another: per query, the documents that entered and left the top-k.

Approximate search (PLAID, WARP, MUVERA, pooled documents) does not only lose documents; it also lets
others in, and the two can leave nDCG where it was, or raise it. :func:`compare_runs` lays the
difference out as tidy tables, for any two runs of the run contract (``qid, query, docno, score,
rank``):

* ``documents``: one row per query and document in either top-k — whether it ``stayed``, ``entered``
  (in run *b* only) or ``left`` (in run *a* only), its rank and score in each run, its judged relevance
  (NaN when unjudged), and, given an ``exact`` index, its exact MaxSim score;
* ``queries``: per query, how many entered and left, how many of each were relevant, the overlap;
* ``tokens`` (given the encoded ``queries`` and an index for each run): for every document that moved,
  each query token's best-matching document token and its contribution under run *a*'s vectors and
  under run *b*'s (``index.documents()`` — compressed indexes return their reconstruction, pooled ones
  their pooled vectors), and whether that match ``changed``.

Examples
--------
>>> import pandas as pd
>>> a = pd.DataFrame({"qid": ["q"] * 3, "query": ["x"] * 3, "docno": ["d1", "d2", "d3"],
...                   "score": [3.0, 2.0, 1.0], "rank": [1, 2, 3]})
>>> b = pd.DataFrame({"qid": ["q"] * 3, "query": ["x"] * 3, "docno": ["d2", "d1", "d4"],
...                   "score": [2.5, 2.4, 2.0], "rank": [1, 2, 3]})
>>> qrels = pd.DataFrame({"query_id": ["q"], "doc_id": ["d4"], "relevance": [1]})
>>> c = compare_runs(a, b, qrels=qrels, k=3)
>>> c.documents[["docno", "change", "rank_a", "rank_b", "relevance"]].values.tolist()
[['d1', 'stayed', 1.0, 2.0, nan], ['d2', 'stayed', 2.0, 1.0, nan], ['d3', 'left', 3.0, nan, nan], ['d4', 'entered', nan, 3.0, 1.0]]
>>> c.queries[["qid", "entered", "left", "entered_relevant", "left_relevant", "overlap"]].values.tolist()
[['q', 1, 1, 1, 0, 0.6666666666666666]]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lirlab.analysis.alignment import token_labels
from lirlab.encoding import Encoding
from lirlab.index.base import K_PARAM
from lirlab.maxsim import explain

#: A query token's contribution must move by more than this for its match to count as changed when
#: the best-matching token string stays the same.
CONTRIBUTION_TOLERANCE = 0.01


@dataclass(frozen=True)
class RunComparison:
    """The tables :func:`compare_runs` returns (see the module docstring)."""

    documents: pd.DataFrame
    queries: pd.DataFrame
    tokens: pd.DataFrame
    names: tuple[str, str]
    k: int

    def busiest_query(self) -> str | None:
        """The query whose top-k changed most (ties: the first), or ``None`` when nothing changed."""
        if self.queries.empty or int(self.queries.entered.max()) == 0:
            return None
        return str(self.queries.sort_values("entered", ascending=False, kind="stable").qid.iloc[0])

    def summary(self) -> dict:
        """Totals over queries: documents that entered and left, and how many of each were relevant."""
        q = self.queries
        return {
            "queries": int(len(q)),
            "queries_changed": int((q.entered > 0).sum()),
            "entered": int(q.entered.sum()),
            "left": int(q.left.sum()),
            "entered_relevant": int(q.entered_relevant.sum()),
            "left_relevant": int(q.left_relevant.sum()),
            "mean_overlap": float(q.overlap.mean()) if len(q) else float("nan"),
        }


def _top(run: pd.DataFrame, k: int) -> pd.DataFrame:
    missing = {"qid", "docno", "score", "rank"} - set(run.columns)
    if missing:
        raise ValueError(f"a run needs qid, docno, score, rank columns; missing {', '.join(sorted(missing))}")
    top = run[run["rank"] <= k][["qid", "docno", "score", "rank"]].copy()
    top["qid"], top["docno"] = top.qid.astype(str), top.docno.astype(str)
    return top


def compare_runs(
    run_a: pd.DataFrame,
    run_b: pd.DataFrame,
    *,
    qrels=None,
    k: int = 10,
    exact=None,
    queries: Encoding | None = None,
    index_a=None,
    index_b=None,
    names: tuple[str, str] = ("a", "b"),
) -> RunComparison:
    """Compare the top-``k`` of two runs query by query.

    Parameters
    ----------
    run_a, run_b : DataFrame
        Runs (``qid, docno, score, rank``); ``a`` is the reference ("before"), ``b`` the other.
    qrels : DataFrame or Dataset, optional
        Judgments (``query_id, doc_id, relevance``) for the ``relevance`` columns.
    k : int
        Depth compared.
    exact : Index, optional
        An index returning the encoded vectors (e.g. :class:`~lirlab.index.flat.FlatIndex`): adds each
        document's exact MaxSim as ``exact_score`` (needs ``queries``).
    queries : Encoding, optional
        The encoded queries of both runs (ids = the runs' qids).
    index_a, index_b : Index, optional
        The indexes behind each run: with ``queries``, fills the ``tokens`` table from their
        ``documents()``.
    names : (str, str)
        What to call the two runs in figures.
    """
    k = K_PARAM.validate(k)
    top_a, top_b = _top(run_a, k), _top(run_b, k)
    merged = top_a.merge(top_b, on=["qid", "docno"], how="outer", suffixes=("_a", "_b"))
    merged["change"] = np.where(
        merged.rank_a.notna() & merged.rank_b.notna(),
        "stayed",
        np.where(merged.rank_a.notna(), "left", "entered"),
    )
    if qrels is not None:
        judgments = getattr(qrels, "qrels", qrels)
        if not {"query_id", "doc_id", "relevance"} <= set(judgments.columns):
            raise ValueError("qrels must have query_id, doc_id, relevance columns (or be a Dataset)")
        grades = judgments.assign(qid=judgments.query_id.astype(str), docno=judgments.doc_id.astype(str))
        merged = merged.merge(grades[["qid", "docno", "relevance"]], on=["qid", "docno"], how="left")
    else:
        merged["relevance"] = np.nan
    merged["relevance"] = merged.relevance.astype(float)
    merged["exact_score"] = np.nan
    if exact is not None:
        if queries is None:
            raise ValueError("exact scores need the encoded queries: pass queries=")
        merged["exact_score"] = _scores_under(exact, queries, merged)
    order = {"stayed": 0, "left": 1, "entered": 2}
    merged = merged.sort_values(
        ["qid", "change", "rank_a", "rank_b"], key=lambda c: c.map(order) if c.name == "change" else c
    )
    merged = merged.reset_index(drop=True)[
        ["qid", "docno", "change", "rank_a", "rank_b", "score_a", "score_b", "exact_score", "relevance"]
    ]

    relevant = merged.relevance.fillna(0) > 0
    per_query = (
        merged.assign(
            entered=merged.change == "entered",
            left=merged.change == "left",
            stayed=merged.change == "stayed",
            entered_relevant=(merged.change == "entered") & relevant,
            left_relevant=(merged.change == "left") & relevant,
            in_a=merged.rank_a.notna(),
        )
        .groupby("qid", sort=True)[["entered", "left", "stayed", "entered_relevant", "left_relevant", "in_a"]]
        .sum()
        .astype(int)
        .reset_index()
    )
    per_query["overlap"] = per_query.stayed / per_query.in_a.clip(lower=1)
    per_query = per_query.drop(columns="in_a")

    tokens = (
        _token_changes(merged, queries, index_a, index_b)
        if index_a is not None and index_b is not None
        else None
    )
    if tokens is None:
        tokens = pd.DataFrame(
            columns=[
                "qid",
                "docno",
                "change",
                "query_token",
                "token",
                "match_a",
                "match_b",
                "contribution_a",
                "contribution_b",
                "changed",
            ]
        )
    return RunComparison(merged, per_query, tokens, tuple(names), k)


def _scores_under(index, queries: Encoding, rows: pd.DataFrame) -> np.ndarray:
    """MaxSim of each row's (query, document) under ``index.documents()``."""
    out = np.full(len(rows), np.nan)
    query_pos = {q: i for i, q in enumerate(queries.ids)}
    for qid, group in rows.groupby("qid"):
        if qid not in query_pos:
            continue
        query = queries.vectors_of(query_pos[qid]).float()
        positions = [index.position(d) for d in group.docno]
        docs = index.documents(positions)
        for j, (row, _) in enumerate(zip(group.index, positions)):
            vectors = docs.vectors_of(j).float()
            out[rows.index.get_loc(row)] = (
                float((query @ vectors.T).max(dim=1).values.sum()) if vectors.shape[0] else 0.0
            )
    return out


def _token_changes(rows: pd.DataFrame, queries: Encoding | None, index_a, index_b) -> pd.DataFrame:
    if queries is None:
        raise ValueError("the token table needs the encoded queries: pass queries=")
    moved = rows[rows.change != "stayed"]
    query_pos = {q: i for i, q in enumerate(queries.ids)}
    records = []
    for qid, group in moved.groupby("qid", sort=False):
        if qid not in query_pos:
            continue
        qi = query_pos[qid]
        query_tokens = token_labels(queries.tokens(qi))
        positions_a = [index_a.position(d) for d in group.docno]
        positions_b = [index_b.position(d) for d in group.docno]
        docs_a, docs_b = index_a.documents(positions_a), index_b.documents(positions_b)
        for j, (docno, change) in enumerate(zip(group.docno, group.change)):
            ex_a = explain(queries, docs_a, query_index=qi, doc_index=j)
            ex_b = explain(queries, docs_b, query_index=qi, doc_index=j)
            labels_a, labels_b = token_labels(ex_a.doc_tokens), token_labels(ex_b.doc_tokens)
            for t, token in enumerate(query_tokens):
                match_a = labels_a[int(ex_a.best_doc_token[t])] if labels_a else ""
                match_b = labels_b[int(ex_b.best_doc_token[t])] if labels_b else ""
                ca, cb = float(ex_a.contributions[t]), float(ex_b.contributions[t])
                records.append(
                    {
                        "qid": qid,
                        "docno": docno,
                        "change": change,
                        "query_token": t,
                        "token": token,
                        "match_a": match_a,
                        "match_b": match_b,
                        "contribution_a": ca,
                        "contribution_b": cb,
                        "changed": match_a != match_b or abs(ca - cb) > CONTRIBUTION_TOLERANCE,
                    }
                )
    return pd.DataFrame.from_records(records)
