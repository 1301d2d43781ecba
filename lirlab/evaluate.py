"""Evaluation through ir_measures, aggregate and per query, as DataFrames.

Measures are named as ir_measures parses them: ``"nDCG@10"``, ``"RR@10"`` (MRR@10), ``"R@100"``,
``"AP"``... A run is the DataFrame every lirlab search returns (``qid, query, docno, score, rank``; TREC files
are read and written by :mod:`lirlab.results`). Systems are compared here too: :func:`top_overlap`
(how much of a reference ranking a run keeps) and :func:`compare_systems` (measures, overlap, and paired
t-tests against a baseline corrected for multiple comparisons, as PyTerrier's ``pt.Experiment`` reports them).

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


#: Corrections for testing several systems against one baseline (as ``statsmodels`` names them).
CORRECTIONS = ("holm", "bonferroni")


def corrected_p_values(p_values: Sequence[float], method: str = "holm") -> np.ndarray:
    """P-values adjusted for testing several hypotheses at once; NaN ones stay NaN and are not counted.

    ``"bonferroni"`` multiplies each by the number of tests; ``"holm"`` (Holm 1979) multiplies the
    i-th smallest by ``m - i + 1`` and keeps the sequence non-decreasing, which rejects at least what
    Bonferroni rejects while holding the same family-wise error rate.

    >>> corrected_p_values([0.01, 0.04, 0.03], "holm").round(2).tolist()
    [0.03, 0.06, 0.06]
    >>> corrected_p_values([0.01, 0.04, 0.03], "bonferroni").round(2).tolist()
    [0.03, 0.12, 0.09]
    """
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; use {', '.join(CORRECTIONS)} or None")
    p = np.asarray(p_values, dtype=float)
    corrected = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    m = len(tested)
    if method == "bonferroni":
        corrected[tested] = np.minimum(1.0, p[tested] * m)
    else:
        order = tested[np.argsort(p[tested], kind="stable")]
        corrected[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return corrected


def compare_systems(
    runs: Mapping[str, pd.DataFrame],
    qrels: pd.DataFrame | Dataset,
    measures: str | Sequence = DEFAULT_MEASURES,
    reference: str | None = None,
    k: int = 10,
    baseline: str | None = None,
    correction: str | None = "holm",
    alpha: float = 0.05,
) -> pd.DataFrame:
    """One row per system: its measures, how much of a reference it keeps, and tests against a baseline.

    Parameters
    ----------
    runs
        Run DataFrames by system name, in the order the rows should take.
    qrels
        The judgments (a :class:`~lirlab.data.Dataset` or a ``query_id, doc_id, relevance`` frame).
    measures
        ir_measures names, e.g. ``["nDCG@10", "RR@10"]``.
    reference
        One of ``runs``: adds ``overlap@k``, the share of its top-``k`` each system keeps.
    k
        The depth of ``overlap@k``.
    baseline
        One of ``runs``: adds, per measure, the queries each system does better (``+``) and worse
        (``-``) on than the baseline, and the p-value of a paired t-test over the judged queries
        (``scipy.stats.ttest_rel``; a query a system does not answer counts as 0), the columns
        PyTerrier's ``pt.Experiment(..., baseline=...)`` reports.
    correction
        ``"holm"`` or ``"bonferroni"``: adds ``reject`` (the difference is significant at ``alpha``
        after correction) and ``p-value corrected``, corrected over the systems other than the
        baseline, per measure; ``None`` leaves the p-values uncorrected.
    alpha
        The family-wise significance level of ``reject``.

    Returns
    -------
    pandas.DataFrame
        Indexed by system name: one column per measure (the means :func:`evaluate` gives), then
        ``overlap@k``, then ``MEASURE +``, ``MEASURE -``, ``MEASURE p-value``, ``MEASURE reject`` and
        ``MEASURE p-value corrected`` for each measure; the baseline's own test cells are empty.

    Examples
    --------
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
    for role, name in (("reference", reference), ("baseline", baseline)):
        if name is not None and name not in runs:
            raise ValueError(f"{role} {name!r} is not one of the runs: {', '.join(runs)}")
    if baseline is not None and correction is not None and correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; use {', '.join(CORRECTIONS)} or None")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, not {alpha}")
    rows = {}
    for name, run in runs.items():
        row = evaluate(run, qrels, measures).set_index("measure")["value"].to_dict()
        if reference is not None:
            row[f"overlap@{k}"] = top_overlap(run, runs[reference], k)
        rows[name] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    if baseline is None:
        return table
    tests = _paired_tests(runs, qrels, measures, baseline, correction, alpha)
    return pd.concat([table, tests], axis=1)


def _paired_tests(
    runs: Mapping[str, pd.DataFrame],
    qrels: pd.DataFrame | Dataset,
    measures: str | Sequence,
    baseline: str,
    correction: str | None,
    alpha: float,
) -> pd.DataFrame:
    """The ``+``, ``-``, p-value (and corrected) columns of :func:`compare_systems`."""
    from scipy import stats  # here, not at the top: scoring a run (``lirlab evaluate``) needs no scipy

    judged_qids = sorted((qrels.qrels if isinstance(qrels, Dataset) else qrels).query_id.astype(str).unique())
    names = [str(m) for m in parse_measures(measures)]
    per_query = {
        name: per_query_scores(run, qrels, measures)
        .pivot(index="qid", columns="measure", values="value")
        .reindex(index=judged_qids, columns=names, fill_value=0.0)
        .fillna(0.0)
        for name, run in runs.items()
    }
    others = [name for name in runs if name != baseline]
    columns = {}
    for measure in names:
        base = per_query[baseline][measure].to_numpy()
        better, worse, p_values = [], [], []
        for name in others:
            ours = per_query[name][measure].to_numpy()
            better.append(int((ours > base).sum()))
            worse.append(int((ours < base).sum()))
            p_values.append(float(stats.ttest_rel(ours, base).pvalue) if len(base) > 1 else np.nan)
        columns[f"{measure} +"] = pd.Series(better, index=others, dtype="Int64")
        columns[f"{measure} -"] = pd.Series(worse, index=others, dtype="Int64")
        columns[f"{measure} p-value"] = pd.Series(p_values, index=others, dtype=float)
        if correction is not None:
            corrected = corrected_p_values(p_values, correction)
            columns[f"{measure} reject"] = pd.Series(corrected <= alpha, index=others)
            columns[f"{measure} p-value corrected"] = pd.Series(corrected, index=others)
    tests = pd.DataFrame(columns).reindex(list(runs))
    for column in tests.columns:
        if column.endswith(" reject"):
            tests[column] = tests[column].fillna(False).astype(bool)
    return tests
