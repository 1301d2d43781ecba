"""Evaluation through ir_measures, aggregate and per query, as DataFrames.

Measures are named as ir_measures parses them: ``"nDCG@10"``, ``"RR@10"`` (MRR@10), ``"R@100"``,
``"AP"``... A run is the DataFrame every lirlab search returns (``qid, query, docno, score, rank``; TREC files
are read and written by :mod:`lirlab.results`). Systems are compared here too: :func:`top_overlap`
(how much of a reference ranking a run keeps) and :func:`compare_systems`.

Examples
--------
>>> import pandas as pd
>>> qrels = pd.DataFrame({"query_id": ["1"], "doc_id": ["a"], "relevance": [1]})
>>> run = pd.DataFrame({"qid": ["1", "1"], "query": ["x", "x"], "docno": ["b", "a"],
...                     "score": [2.0, 1.0], "rank": [1, 2]})
>>> evaluate(run, qrels, ["RR@10", "R@100"])
  measure  value
0   RR@10    0.5
1   R@100    1.0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import ir_measures
import numpy as np
import pandas as pd

from lirlab.data import Dataset

DEFAULT_MEASURES = ("nDCG@10", "RR@10", "R@100")


def parse_measures(measures: str | Sequence) -> list:
    """ir_measures objects from names; ``ValueError`` naming a measure ir_measures does not know."""
    if isinstance(measures, str):
        measures = [measures]
    parsed = []
    for m in measures:
        if isinstance(m, str):
            try:
                parsed.append(ir_measures.parse_measure(m))
            except (ValueError, NameError, SyntaxError, KeyError, TypeError):
                raise ValueError(f"unknown measure {m!r} (examples: nDCG@10, RR@10, R@100, AP)") from None
        else:
            parsed.append(m)
    return parsed


def _inputs(run: pd.DataFrame, qrels: pd.DataFrame | Dataset) -> tuple[pd.DataFrame, pd.DataFrame]:
    if isinstance(qrels, Dataset):
        qrels = qrels.qrels
    missing = {"qid", "docno", "score"} - set(run.columns)
    if missing:
        raise ValueError(f"run lacks column(s) {sorted(missing)}; expected qid, query, docno, score, rank")
    run = run.rename(columns={"qid": "query_id", "docno": "doc_id"})[["query_id", "doc_id", "score"]]
    run = run.astype({"query_id": str, "doc_id": str, "score": float})
    qrels = qrels.astype({"query_id": str, "doc_id": str, "relevance": int})
    return run, qrels


def evaluate(
    run: pd.DataFrame, qrels: pd.DataFrame | Dataset, measures: str | Sequence = DEFAULT_MEASURES
) -> pd.DataFrame:
    """Mean of each measure over the judged queries: a DataFrame ``measure, value``.

    Queries of the qrels with no result in the run count as 0, as in trec_eval with ``-c``.
    """
    parsed = parse_measures(measures)
    run, qrels = _inputs(run, qrels)
    per_query = _per_query(parsed, run, qrels)
    judged = qrels.query_id.unique()
    rows = []
    for m in parsed:
        values = per_query[per_query.measure == str(m)].set_index("qid")["value"]
        rows.append((str(m), float(values.reindex(judged, fill_value=0.0).mean()) if len(judged) else 0.0))
    return pd.DataFrame(rows, columns=["measure", "value"])


def per_query_scores(
    run: pd.DataFrame, qrels: pd.DataFrame | Dataset, measures: str | Sequence = DEFAULT_MEASURES
) -> pd.DataFrame:
    """One row per (query, measure): ``qid, measure, value``."""
    run, qrels = _inputs(run, qrels)
    return _per_query(parse_measures(measures), run, qrels)


def _per_query(parsed: list, run: pd.DataFrame, qrels: pd.DataFrame) -> pd.DataFrame:
    rows = [(m.query_id, str(m.measure), float(m.value)) for m in ir_measures.iter_calc(parsed, qrels, run)]
    return pd.DataFrame(rows, columns=["qid", "measure", "value"])


def judged(qrels: pd.DataFrame | Dataset | None, qids: Sequence[str]) -> pd.DataFrame | None:
    """The judgments of the queries ``qids`` (``None`` stays ``None``).

    >>> qrels = pd.DataFrame({"query_id": ["1", "2"], "doc_id": ["a", "b"], "relevance": [1, 1]})
    >>> judged(qrels, ["2"]).doc_id.tolist()
    ['b']
    """
    if qrels is None:
        return None
    if isinstance(qrels, Dataset):
        qrels = qrels.qrels
    if not isinstance(qrels, pd.DataFrame) or "query_id" not in qrels.columns:
        raise ValueError("qrels must be a Dataset or a DataFrame with query_id, doc_id, relevance columns")
    return qrels[qrels.query_id.astype(str).isin(set(qids))]


def top_overlap(run: pd.DataFrame, reference: pd.DataFrame, k: int = 10) -> float:
    """Mean share of each query's reference top-``k`` that ``run``'s top-``k`` also holds.

    Queries of ``reference`` absent from ``run`` count as 0.

    >>> reference = pd.DataFrame({"qid": ["1"] * 4, "docno": list("abcd"), "rank": [1, 2, 3, 4]})
    >>> run = pd.DataFrame({"qid": ["1"] * 4, "docno": list("axcy"), "rank": [1, 2, 3, 4]})
    >>> top_overlap(run, reference, k=4)
    0.5
    """
    ours = run[run["rank"] <= k].groupby("qid").docno.apply(set)
    theirs = reference[reference["rank"] <= k].groupby("qid").docno.apply(set)
    if not len(theirs):
        return 0.0
    return float(np.mean([len(ours.get(q, set()) & docs) / len(docs) for q, docs in theirs.items()]))


def compare_systems(
    runs: Mapping[str, pd.DataFrame],
    qrels: pd.DataFrame | Dataset,
    measures: str | Sequence = DEFAULT_MEASURES,
    reference: str | None = None,
    k: int = 10,
) -> pd.DataFrame:
    """One row per system: its measures and, with ``reference`` naming one of ``runs``, the share of
    that system's top-``k`` it keeps (``overlap@k``).

    >>> qrels = pd.DataFrame({"query_id": ["1"], "doc_id": ["a"], "relevance": [1]})
    >>> a = pd.DataFrame({"qid": ["1", "1"], "docno": ["a", "b"], "score": [2.0, 1.0], "rank": [1, 2]})
    >>> b = pd.DataFrame({"qid": ["1", "1"], "docno": ["b", "a"], "score": [2.0, 1.0], "rank": [1, 2]})
    >>> compare_systems({"exact": a, "fast": b}, qrels, ["RR@10"], reference="exact", k=1)
           RR@10  overlap@1
    exact    1.0        1.0
    fast     0.5        0.0
    """
    if not runs:
        raise ValueError("no runs to compare")
    if reference is not None and reference not in runs:
        raise ValueError(f"reference {reference!r} is not one of the runs: {', '.join(runs)}")
    rows = {}
    for name, run in runs.items():
        row = evaluate(run, qrels, measures).set_index("measure")["value"].to_dict()
        if reference is not None:
            row[f"overlap@{k}"] = top_overlap(run, runs[reference], k)
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")
