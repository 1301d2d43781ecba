"""Figure of a run comparison (:func:`lirlab.analysis.compare.compare_runs`): it draws, computes nothing.

Examples
--------
>>> import pandas as pd
>>> from lirlab.analysis.compare import compare_runs
>>> a = pd.DataFrame({"qid": ["q"] * 3, "docno": ["d1", "d2", "d3"], "score": [3.0, 2.0, 1.0], "rank": [1, 2, 3]})
>>> b = pd.DataFrame({"qid": ["q"] * 3, "docno": ["d2", "d1", "d4"], "score": [2.5, 2.4, 2.0], "rank": [1, 2, 3]})
>>> figure = plot_run_comparison(compare_runs(a, b, k=3, names=("exact", "plaid")))
>>> [ax.get_title() for ax in figure.axes]
['query q: top-3, exact → plaid', 'documents that entered and left, all queries']
"""

from __future__ import annotations

from matplotlib.figure import Figure

COLOURS = {"stayed": "#8c8c8c", "left": "#d62728", "entered": "#2ca02c"}


def plot_run_comparison(comparison, qid: str | None = None, figsize=(10, 4.5)) -> Figure:
    """Left: one query's top-k in each run, a line joining each document's two ranks (green: entered,
    red: left, grey: stayed; a filled marker: judged relevant). Right: over all queries, how many
    documents entered and left, and how many of those were relevant.

    ``qid`` defaults to the query whose top-k changed most.
    """
    name_a, name_b = comparison.names
    k = comparison.k
    figure = Figure(figsize=figsize)
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1.1, 1]})
    qid = qid if qid is not None else comparison.busiest_query()
    if qid is None and len(comparison.queries):
        qid = str(comparison.queries.qid.iloc[0])
    rows = (
        comparison.documents[comparison.documents.qid == qid] if qid is not None else comparison.documents[:0]
    )
    for _, row in rows.iterrows():
        colour = COLOURS[row.change]
        ra = row.rank_a if row.rank_a == row.rank_a else k + 1.5
        rb = row.rank_b if row.rank_b == row.rank_b else k + 1.5
        relevant = row.relevance == row.relevance and row.relevance > 0
        left.plot([0, 1], [ra, rb], color=colour, lw=2 if row.change != "stayed" else 1, alpha=0.9)
        for x, r, present in ((0, ra, row.rank_a == row.rank_a), (1, rb, row.rank_b == row.rank_b)):
            if present:
                left.scatter(
                    [x], [r], color=colour, s=40, zorder=3, facecolors=colour if relevant else "white"
                )
        if row.rank_a == row.rank_a:
            left.text(-0.04, ra, row.docno, ha="right", va="center", fontsize=7)
        if row.rank_b == row.rank_b:
            left.text(1.04, rb, row.docno, ha="left", va="center", fontsize=7)
    left.axhline(k + 1, color="#cccccc", lw=0.8, ls="--")
    left.set_ylim(k + 2.2, 0.3)
    left.set_xlim(-0.6, 1.6)
    left.set_xticks([0, 1], [name_a, name_b])
    left.set_ylabel("rank (below the dashed line: outside the top-k)")
    left.set_title(f"query {qid}: top-{k}, {name_a} → {name_b}")

    totals = comparison.summary()
    labels = ["entered", "left"]
    counts = [totals["entered"], totals["left"]]
    relevant = [totals["entered_relevant"], totals["left_relevant"]]
    right.bar(labels, counts, color=[COLOURS["entered"], COLOURS["left"]], alpha=0.35, label="all")
    right.bar(labels, relevant, color=[COLOURS["entered"], COLOURS["left"]], label="judged relevant")
    for x, (c, r) in enumerate(zip(counts, relevant)):
        right.text(x, c, f"{c} ({r} relevant)", ha="center", va="bottom", fontsize=8)
    right.set_ylabel(f"documents, over {totals['queries']} queries")
    right.set_title("documents that entered and left, all queries")
    right.legend(fontsize=8, loc="upper right")
    figure.tight_layout()
    return figure
