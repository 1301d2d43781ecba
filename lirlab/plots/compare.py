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
from matplotlib.patches import Patch

COLOURS = {"stayed": "#8c8c8c", "left": "#d62728", "entered": "#2ca02c"}
#: Font size of the document ids, in points: 12.5 px at the 100 dpi a notebook shows figures at.
DOCNO_SIZE = 9
#: How faint the bar of every document that moved is, under the bar of the relevant ones.
ALL_ALPHA = 0.35


def plot_run_comparison(comparison, qid: str | None = None, figsize=(9.6, 4.8)) -> Figure:
    """Left: one query's top-k in each run, a line joining each document's two ranks (green: entered,
    red: left, grey: stayed; a filled marker: judged relevant). Right: over all queries, how many
    documents entered and left, and how many of those were relevant.

    ``qid`` defaults to the query whose top-k changed most. At the default size the figure fits a
    notebook's output column (960 px wide at 100 dpi).
    """
    name_a, name_b = comparison.names
    k = comparison.k
    figure = Figure(figsize=figsize, layout="constrained")
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
            left.text(-0.04, ra, row.docno, ha="right", va="center", fontsize=DOCNO_SIZE)
        if row.rank_b == row.rank_b:
            left.text(1.04, rb, row.docno, ha="left", va="center", fontsize=DOCNO_SIZE)
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
    colours = [COLOURS["entered"], COLOURS["left"]]
    right.bar(labels, counts, color=colours, alpha=ALL_ALPHA)
    right.bar(labels, relevant, color=colours)
    for x, (c, r) in enumerate(zip(counts, relevant)):
        right.text(x, c, f"{c} ({r} relevant)", ha="center", va="bottom", fontsize=DOCNO_SIZE)
    right.set_ylim(0, max(1, *counts) * 1.15)  # room for the counts above the bars
    right.set_ylabel(f"documents, over {totals['queries']} queries")
    right.set_title("documents that entered and left, all queries")
    # the swatches stand for what both bars share (faint: all, solid: relevant), in neutral grey
    right.legend(
        handles=[
            Patch(facecolor=COLOURS["stayed"], alpha=ALL_ALPHA, label="all that moved"),
            Patch(facecolor=COLOURS["stayed"], label="judged relevant"),
        ],
        fontsize=DOCNO_SIZE,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.08),
        ncol=2,
        frameon=False,
    )
    return figure
