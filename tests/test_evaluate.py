"""Evaluation through ir_measures against hand-computed values."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from lirlab.evaluate import evaluate, per_query_scores

QRELS = pd.DataFrame(
    {"query_id": ["1", "1", "2", "3"], "doc_id": ["a", "b", "c", "z"], "relevance": [2, 1, 1, 1]}
)
RUN = pd.DataFrame(
    {
        "qid": ["1", "1", "1", "2", "2"],
        "query": ["x"] * 5,
        "docno": ["b", "x", "a", "y", "c"],
        "score": [3.0, 2.0, 1.0, 2.0, 1.0],
        "rank": [1, 2, 3, 1, 2],
    }
)


def test_per_query_values_match_hand_computation():
    table = per_query_scores(RUN, QRELS, ["nDCG@10", "RR@10"]).set_index(["qid", "measure"])["value"]
    # trec_eval's nDCG: linear gain (the grade itself), log2(rank + 1) discount
    dcg = 1 / math.log2(2) + 2 / math.log2(4)
    ideal = 2 / math.log2(2) + 1 / math.log2(3)
    assert table[("1", "nDCG@10")] == pytest.approx(dcg / ideal)
    assert table[("2", "RR@10")] == pytest.approx(0.5)


def test_unanswered_judged_queries_count_as_zero():
    result = evaluate(RUN, QRELS, ["RR@10"]).set_index("measure")["value"]
    assert result["RR@10"] == pytest.approx((1 + 0.5 + 0) / 3)


def test_bad_measure_and_bad_run():
    with pytest.raises(ValueError, match="unknown measure 'nDCG@ten'"):
        evaluate(RUN, QRELS, ["nDCG@ten"])
    with pytest.raises(ValueError, match="run lacks column"):
        evaluate(RUN.drop(columns=["docno"]), QRELS)
