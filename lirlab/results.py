"""The run DataFrame contract shared by every search: ``qid, query, docno, score, rank``.

Examples
--------
>>> import torch
>>> hits = [(torch.tensor([1, 0]), torch.tensor([2.5, 1.0]))]
>>> run_frame(["q1"], ["cats"], hits, ["d0", "d1"])
  qid query docno  score  rank
0  q1  cats    d1    2.5     1
1  q1  cats    d0    1.0     2
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

RUN_COLUMNS = ["qid", "query", "docno", "score", "rank"]


def run_frame(
    qids: Sequence[str],
    query_texts: Sequence[str],
    hits: Sequence[tuple[torch.Tensor, torch.Tensor]],
    docnos: Sequence[str],
) -> pd.DataFrame:
    """Build a run from per-query ``(doc positions, scores)`` pairs, best first; ranks start at 1."""
    rows_qid, rows_query, rows_docno, rows_score, rows_rank = [], [], [], [], []
    docno_array = np.asarray(docnos, dtype=object)
    for qid, text, (positions, scores) in zip(qids, query_texts, hits):
        positions = positions.cpu().numpy()
        n = len(positions)
        rows_qid.extend([qid] * n)
        rows_query.extend([text] * n)
        rows_docno.extend(docno_array[positions].tolist())
        rows_score.extend(scores.float().cpu().tolist())
        rows_rank.extend(range(1, n + 1))
    return pd.DataFrame(
        {
            "qid": pd.Series(rows_qid, dtype=object),
            "query": pd.Series(rows_query, dtype=object),
            "docno": pd.Series(rows_docno, dtype=object),
            "score": np.asarray(rows_score, dtype=np.float64),
            "rank": np.asarray(rows_rank, dtype=np.int64),
        },
        columns=RUN_COLUMNS,
    )
