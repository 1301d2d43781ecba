"""Evaluation through ir_measures, aggregate and per query, as DataFrames.

Measures are named as ir_measures parses them: ``"nDCG@10"``, ``"RR@10"`` (MRR@10), ``"R@100"``,
``"AP"``... A run is the DataFrame every lirlab search returns (``qid, query, docno, score, rank``).

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

from collections.abc import Sequence

import ir_measures
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
