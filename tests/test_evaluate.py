"""Evaluation through ir_measures against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lirlab.evaluate import compare_systems, evaluate, per_query_scores

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


def random_systems(seed: int = 0, n_queries: int = 40, n_docs: int = 30, n_systems: int = 4):
    """Judgments and runs over the same queries; query ``q0`` is judged but no system answers it."""
    rng = np.random.default_rng(seed)
    qids = [f"q{i}" for i in range(n_queries)]
    docnos = [f"d{j}" for j in range(n_docs)]
    qrels = pd.DataFrame(
        [(q, d, 1) for q in qids for d in rng.choice(docnos, size=3, replace=False)],
        columns=["query_id", "doc_id", "relevance"],
    )
    runs = {}
    for s in range(n_systems):
        rows = []
        for q in qids[1:]:
            ranked = rng.permutation(docnos)[:10]
            rows += [(q, "x", d, float(10 - r), r + 1) for r, d in enumerate(ranked)]
        runs[f"system{s}"] = pd.DataFrame(rows, columns=["qid", "query", "docno", "score", "rank"])
    return qrels, runs


def reciprocal_ranks(run: pd.DataFrame, qrels: pd.DataFrame) -> np.ndarray:
    """RR@10 per judged query (sorted by qid), by hand: 1 / rank of the first relevant document."""
    relevant = qrels.groupby("query_id").doc_id.apply(set)
    values = []
    for qid in sorted(relevant.index):
        hits = run[(run.qid == qid) & run.docno.isin(relevant[qid]) & (run["rank"] <= 10)]
        values.append(1.0 / hits["rank"].min() if len(hits) else 0.0)
    return np.array(values)


def test_compare_systems_tests_each_system_against_the_baseline_as_scipy_does():
    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    qrels, runs = random_systems()
    table = compare_systems(runs, qrels, ["RR@10"], baseline="system0")
    base = reciprocal_ranks(runs["system0"], qrels)
    others = ["system1", "system2", "system3"]
    expected_p = []
    for name in others:
        ours = reciprocal_ranks(runs[name], qrels)
        assert table.loc[name, "RR@10"] == pytest.approx(ours.mean())
        assert table.loc[name, "RR@10 +"] == (ours > base).sum()
        assert table.loc[name, "RR@10 -"] == (ours < base).sum()
        expected_p.append(stats.ttest_rel(ours, base).pvalue)
    assert table.loc[others, "RR@10 p-value"].tolist() == pytest.approx(expected_p)
    reject, corrected, _, _ = multipletests(expected_p, alpha=0.05, method="holm")
    assert table.loc[others, "RR@10 p-value corrected"].tolist() == pytest.approx(corrected.tolist())
    assert table.loc[others, "RR@10 reject"].tolist() == reject.tolist()
    assert table.loc["system0", ["RR@10 +", "RR@10 -", "RR@10 p-value"]].isna().all()
    assert not table.loc["system0", "RR@10 reject"]


def test_compare_systems_corrections_and_a_clear_difference():
    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    qrels, runs = random_systems(seed=1, n_systems=5)
    relevant_first = qrels.rename(columns={"query_id": "qid", "doc_id": "docno"}).groupby("qid").head(1)
    runs["oracle"] = relevant_first.assign(query="x", score=1.0, rank=1)[list(runs["system0"].columns)]
    for method in ("bonferroni", "holm"):
        table = compare_systems(runs, qrels, ["RR@10", "nDCG@10"], baseline="system0", correction=method)
        for measure in ("RR@10", "nDCG@10"):
            p = table[f"{measure} p-value"].drop("system0")
            expected = multipletests(p, alpha=0.05, method=method)[1]
            assert table[f"{measure} p-value corrected"].drop("system0").tolist() == pytest.approx(expected)
        base = reciprocal_ranks(runs["system0"], qrels)
        assert table.loc["oracle", "RR@10 reject"] and table.loc["oracle", "RR@10 +"] == (base < 1).sum()
        assert table.loc["oracle", "RR@10 -"] == 0
    uncorrected = compare_systems(runs, qrels, ["RR@10"], baseline="system0", correction=None)
    assert (
        uncorrected["RR@10 p-value"].drop("system0").tolist()
        == table["RR@10 p-value"].drop("system0").tolist()
    )
    assert not {"RR@10 reject", "RR@10 p-value corrected"} & set(uncorrected.columns)


def test_compare_systems_a_system_equal_to_the_baseline_is_never_significant():
    qrels, runs = random_systems(n_systems=3)
    runs["copy"] = runs["system0"].copy()
    table = compare_systems(runs, qrels, ["RR@10"], baseline="system0")
    assert table.loc["copy", ["RR@10 +", "RR@10 -"]].tolist() == [0, 0]
    assert np.isnan(table.loc["copy", "RR@10 p-value"]) and not table.loc["copy", "RR@10 reject"]
    p = table["RR@10 p-value"].drop(["system0", "copy"])
    holm_over_two = np.minimum(1, np.maximum.accumulate(np.array([2, 1]) * np.sort(p)))
    assert sorted(table["RR@10 p-value corrected"].drop(["system0", "copy"])) == pytest.approx(holm_over_two)


def test_compare_systems_refuses_what_it_cannot_test():
    qrels, runs = random_systems(n_systems=2)
    with pytest.raises(ValueError, match="baseline 'bm25' is not one of the runs: system0, system1"):
        compare_systems(runs, qrels, ["RR@10"], baseline="bm25")
    with pytest.raises(ValueError, match="unknown correction 'sidak'.*holm, bonferroni or None"):
        compare_systems(runs, qrels, ["RR@10"], baseline="system0", correction="sidak")
    with pytest.raises(ValueError, match="alpha must be between 0 and 1"):
        compare_systems(runs, qrels, ["RR@10"], baseline="system0", alpha=1.5)
