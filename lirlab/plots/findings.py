"""Figures of the findings studies (issue 30): one function per study, drawing its analysis's tidy data.

* :func:`plot_limit` — recall against collection size per representation
  (:func:`lirlab.analysis.limits.single_vs_multi_vector`);
* :func:`plot_query_length` — quality of whole and cut queries, padded or not, and quality and score
  spread per query-length bin (:func:`lirlab.analysis.lengths.query_length_effect` through
  :func:`~lirlab.analysis.lengths.by_length`);
* :func:`plot_padding_gap` — the ``[MASK]`` padding gap across a training run's snapshots
  (:func:`lirlab.analysis.masks.padding_gap`, one row per snapshot);
* :func:`plot_doc_length` — mean score per document-length bin, relevant against non-relevant, and the
  quality of MaxSim, MeanMaxSim and MaxSim / n^a (:func:`lirlab.analysis.doc_lengths.score_by_doc_length`
  and :func:`~lirlab.analysis.doc_lengths.length_normalised_quality`);
* :func:`plot_fixed_count` — quality against index size (or vectors per document), pool factors against
  fixed counts of vectors per document (:func:`lirlab.analysis.fixed_count.fixed_count_quality`).

Each takes DataFrames (or the lists of row dicts a results file holds) and computes nothing of its own;
every figure fits the notebook output area (:data:`~lirlab.plots.OUTPUT_AREA_PX`) with no text under
:data:`~lirlab.plots.MIN_FONT_PT`. :mod:`lirlab.bench.findings` draws the saved full runs with them.

Examples
--------
>>> import pandas as pd
>>> curve = pd.DataFrame({"n_docs": [10, 10, 10, 40, 40, 40],
...                       "representation": ["multi-vector", "mean-pooled", "MUVERA"] * 2,
...                       "dim": [128, 128, 512] * 2,
...                       "R@2": [0.5, 0.3, 0.2, 0.3, 0.1, 0.05], "R@100": [1.0] * 3 + [0.9, 0.6, 0.4]})
>>> figure = plot_limit(curve)
>>> [line.get_label() for line in figure.axes[0].lines]
['multi-vector (MaxSim)', 'mean-pooled (d=128)', 'MUVERA (d=512)']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullLocator

from lirlab.analysis.limits import MEASURES as LIMIT_MEASURES
from lirlab.plots import MIN_FONT_PT, OUTPUT_AREA_PX, SCREEN_DPI

#: Largest figure drawn, in inches at :data:`~lirlab.plots.SCREEN_DPI`: the output area less the padding
#: of a tight bounding box.
MAX_INCHES = ((OUTPUT_AREA_PX[0] - 40) / SCREEN_DPI, (OUTPUT_AREA_PX[1] - 30) / SCREEN_DPI)
#: Height of one row of panels, and of the title and legend around them, in inches.
ROW_INCHES, MARGIN_INCHES = 2.9, 1.1
#: Text sizes, in points: legends and small labels never go under :data:`~lirlab.plots.MIN_FONT_PT`.
TITLE_PT, LEGEND_PT = 10, max(MIN_FONT_PT, 9)

UNPADDED_COLOR, PADDED_COLOR = "tab:blue", "tab:orange"
RELEVANT_COLOR, NON_RELEVANT_COLOR = "tab:green", "tab:gray"
POOL_FACTOR_COLOR, FIXED_COUNT_COLOR = "tab:blue", "tab:red"
MULTI_COLOR, MEAN_COLOR = "black", "tab:blue"


def _frame(data, what: str) -> pd.DataFrame:
    """``data`` as a DataFrame: one already, or the list of row dicts a results file holds."""
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, list | tuple):
        return pd.DataFrame(list(data))
    raise ValueError(f"{what} must be a DataFrame or a list of row dicts, got {type(data).__name__}")


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks the columns {missing}; it has {list(frame.columns)}")


def _figure(height: float) -> Figure:
    return Figure(figsize=(MAX_INCHES[0], min(height, MAX_INCHES[1])), dpi=SCREEN_DPI, layout="constrained")


def _legend_below(figure: Figure, axes: Sequence[Axes], ncols: int) -> None:
    """One legend under the panels, each label once (panels draw the same series)."""
    handles: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    figure.legend(
        handles.values(),
        handles.keys(),
        loc="outside lower center",
        ncols=min(ncols, len(handles)) or 1,
        fontsize=LEGEND_PT,
        frameon=False,
    )


# ---------------------------------------------------------------------------------------------- LIMIT


def _limit_series(curve: pd.DataFrame) -> list[tuple[str, pd.DataFrame, dict]]:
    """Each representation's rows (MUVERA per dimension), in drawing order, with its line style."""
    series = []
    multi = curve[curve.representation == "multi-vector"]
    if len(multi):
        series.append(("multi-vector (MaxSim)", multi, {"color": MULTI_COLOR, "marker": "o", "lw": 2}))
    for dim, rows in curve[curve.representation == "mean-pooled"].groupby("dim"):
        series.append((f"mean-pooled (d={dim})", rows, {"color": MEAN_COLOR, "marker": "s", "lw": 2}))
    muvera = curve[curve.representation == "MUVERA"]
    dims = sorted(muvera.dim.unique())
    shades = colormaps["Oranges"](np.linspace(0.45, 0.95, max(len(dims), 1)))
    for dim, shade in zip(dims, shades):
        series.append(
            (f"MUVERA (d={dim})", muvera[muvera.dim == dim], {"color": shade, "marker": "^", "lw": 1.5})
        )
    others = curve[~curve.representation.isin(["multi-vector", "mean-pooled", "MUVERA"])]
    for i, ((name, dim), rows) in enumerate(others.groupby(["representation", "dim"], sort=False)):
        series.append((f"{name} (d={dim})", rows, {"color": f"C{i + 2}", "marker": "D", "lw": 1.5}))
    return series


def plot_limit(curves, measures: Sequence[str] = LIMIT_MEASURES) -> Figure:
    """Recall against collection size, one line per representation: one row of panels per model, one
    column per measure, each column on one scale (:func:`lirlab.analysis.limits.single_vs_multi_vector`).

    Parameters
    ----------
    curves : pandas.DataFrame, list of row dicts, or mapping of str to either
        One model's curve, or model name to curve (each drawn as a row of panels, top to bottom).
    measures : sequence of str
        Recall columns drawn, left to right.

    Raises
    ------
    ValueError
        No curve, or a curve without the columns drawn.
    """
    curves = dict(curves) if isinstance(curves, Mapping) else {"": curves}
    if not curves:
        raise ValueError("plot_limit needs at least one curve")
    frames = {name: _frame(c, f"the curve {name!r}") for name, c in curves.items()}
    for name, frame in frames.items():
        _require(frame, ["n_docs", "representation", "dim", *measures], f"the curve {name!r}")
    rows = len(frames)
    row_inches = min(ROW_INCHES, (MAX_INCHES[1] - MARGIN_INCHES) / rows)
    figure = _figure(row_inches * rows + MARGIN_INCHES)
    axes = figure.subplots(rows, len(measures), squeeze=False, sharex=True, sharey="col")
    for (name, curve), row in zip(frames.items(), axes):
        sizes = sorted(curve.n_docs.unique())
        for ax, measure in zip(row, measures):
            for label, part, style in _limit_series(curve):
                part = part.sort_values("n_docs")
                ax.plot(part.n_docs, part[measure], label=label, markersize=5, **style)
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(FixedLocator(sizes))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xticks(sizes, labels=[f"{n:,}" for n in sizes])
            ax.grid(alpha=0.3)
            ax.set_title(f"{name}: {measure}" if name else measure, fontsize=TITLE_PT)
        row[0].set_ylabel("recall")
    for ax in axes.flatten():  # once every row is drawn: a column's shared scale has seen them all
        ax.set_ylim(bottom=0)
    for ax in axes[-1]:
        ax.set_xlabel("documents in the collection")
    figure.suptitle(
        "LIMIT-style collection: recall as the collection grows, one vector per document against many",
        fontsize=TITLE_PT,
    )
    _legend_below(figure, axes.flatten(), ncols=3)
    return figure


# --------------------------------------------------------------------------------------- query length


def _cut_of(variant: str) -> float:
    """Where a variant sorts: ``"first n"`` by ``n``, the whole query last."""
    return float(variant.rsplit(" ", 1)[-1]) if variant.startswith("first ") else float("inf")


def _bin_start(label: str) -> float:
    """The low edge of a bin label such as ``"(12, 16]"`` (bins without one last)."""
    try:
        return float(str(label).strip("([").split(",")[0])
    except ValueError:
        return float("inf")


def plot_query_length(
    by_length,
    by_variant,
    measure: str = "nDCG@10",
    variant: str = "whole",
    padded_label: str = "padded with [MASK]",
) -> Figure:
    """Quality of whole and cut queries, unpadded and padded (top), and quality and score spread per
    query-length bin (bottom), from :func:`lirlab.analysis.lengths.query_length_effect`'s rows averaged
    by :func:`~lirlab.analysis.lengths.by_length`.

    Parameters
    ----------
    by_length : pandas.DataFrame or list of row dicts
        :func:`~lirlab.analysis.lengths.by_length` of the rows: ``length_bin, variant, padded, <measure>,
        score_spread`` (and ``queries``, shown under each bin).
    by_variant : pandas.DataFrame or list of row dicts
        The same means per ``variant`` and ``padded`` over all queries (``by_length`` with one bin
        holding every query gives them).
    measure : str
        The quality column drawn.
    variant : str
        The variant drawn per length bin (``"whole"``: the queries as written).
    padded_label : str
        What the padded rows are called in the legend.
    """
    by_length = _frame(by_length, "by_length")
    by_variant = _frame(by_variant, "by_variant")
    _require(by_variant, ["variant", "padded", measure], "by_variant")
    _require(by_length, ["length_bin", "variant", "padded", measure, "score_spread"], "by_length")
    figure = _figure(6.6)
    grid = figure.add_gridspec(2, 2, height_ratios=[1, 1.15])
    bars_ax = figure.add_subplot(grid[0, :])
    quality_ax, spread_ax = figure.add_subplot(grid[1, 0]), figure.add_subplot(grid[1, 1])

    variants = sorted(by_variant.variant.unique(), key=_cut_of)
    for offset, padded, color, label in (
        (-0.2, False, UNPADDED_COLOR, "unpadded"),
        (0.2, True, PADDED_COLOR, padded_label),
    ):
        rows = by_variant[by_variant.padded == padded].set_index("variant")
        shown = [v for v in variants if v in rows.index]
        x = [variants.index(v) + offset for v in shown]
        bars = bars_ax.bar(x, rows.loc[shown, measure], width=0.38, color=color, label=label)
        bars_ax.bar_label(bars, fmt="%.3f", fontsize=MIN_FONT_PT, padding=2)
    bars_ax.set_xticks(range(len(variants)), labels=[f"{v} pieces" if v != "whole" else v for v in variants])
    bars_ax.set_ylabel(f"mean {measure}")
    bars_ax.set_ylim(0, 1.18 * max(float(by_variant[measure].max()), 1e-6))
    bars_ax.set_title(f"{measure} of whole queries and of their first n word pieces", fontsize=TITLE_PT)

    chosen = by_length[by_length.variant == variant]
    bins = sorted(chosen.length_bin.unique(), key=_bin_start)
    counts = chosen[~chosen.padded].set_index("length_bin").get("queries")
    ticks = [f"{b}\n{int(counts[b])} q" if counts is not None and b in counts.index else str(b) for b in bins]
    for ax, column, title in (
        (quality_ax, measure, f"{measure} by query length ({variant} queries)"),
        (spread_ax, "score_spread", "spread of the top scores by query length"),
    ):
        for padded, color, label in ((False, UNPADDED_COLOR, "unpadded"), (True, PADDED_COLOR, padded_label)):
            rows = chosen[chosen.padded == padded].set_index("length_bin")
            shown = [b for b in bins if b in rows.index]
            ax.plot([bins.index(b) for b in shown], rows.loc[shown, column], "o-", color=color, label=label)
        ax.set_xticks(range(len(bins)), labels=ticks, fontsize=MIN_FONT_PT)
        ax.set_xlabel("query length (word pieces; q: queries in the bin)")
        ax.set_title(title, fontsize=TITLE_PT)
        ax.grid(alpha=0.3)
    quality_ax.set_ylabel(f"mean {measure}")
    spread_ax.set_ylabel("std of the top scores")
    _legend_below(figure, [bars_ax], ncols=2)
    return figure


# ----------------------------------------------------------------------------------------- [MASK] gap


def gap_measures(rows: pd.DataFrame) -> list[str]:
    """The measures a table of :func:`lirlab.analysis.masks.padding_gap` rows holds a gap for.

    >>> gap_measures(pd.DataFrame(columns=["step", "nDCG@10 pad32", "nDCG@10 nopad", "nDCG@10 gap"]))
    ['nDCG@10']
    """
    return [str(c)[: -len(" gap")] for c in rows.columns if str(c).endswith(" gap")]


def plot_padding_gap(
    rows, measures: Sequence[str] | None = None, x: str = "step", xscale: str = "symlog"
) -> Figure:
    """Padded and unpadded quality (top) and the gap between them (bottom, padded - unpadded; above 0
    padding helps) across a training run's snapshots: one row per snapshot, each a
    :func:`lirlab.analysis.masks.padding_gap` result with its ``step`` (and ``train_seconds_wall``).

    Parameters
    ----------
    rows : pandas.DataFrame or list of row dicts
        ``<x>``, and per measure ``"<m> pad<n>"``, ``"<m> nopad"``, ``"<m> gap"``.
    measures : sequence of str, optional
        Measures drawn (default: every one with a gap column), one colour each.
    x : str
        The column along the x axis: ``"step"`` or ``"train_seconds_wall"``.
    xscale : str
        Matplotlib scale of the x axis; ``"symlog"`` (the default) spreads the early snapshots, where the
        gap moves most, and keeps step 0.
    """
    rows = _frame(rows, "rows")
    measures = list(measures) if measures is not None else gap_measures(rows)
    if not measures:
        raise ValueError(f"no '<measure> gap' column among {list(rows.columns)}")
    padded_columns = {}
    for m in measures:
        padded = [c for c in rows.columns if str(c).startswith(f"{m} pad")]
        if not padded:
            raise ValueError(f"no '{m} pad<n>' column among {list(rows.columns)}")
        padded_columns[m] = padded[0]
        _require(rows, [x, f"{m} nopad", f"{m} gap"], "rows")
    rows = rows.sort_values(x)
    figure = _figure(6.4)
    quality_ax, gap_ax = figure.subplots(2, 1, sharex=True)
    for i, m in enumerate(measures):
        color = f"C{i}"
        length = padded_columns[m].rsplit("pad", 1)[-1]
        quality_ax.plot(rows[x], rows[padded_columns[m]], "o-", color=color, label=f"{m}, padded to {length}")
        quality_ax.plot(
            rows[x], rows[f"{m} nopad"], "s--", color=color, markerfacecolor="none", label=f"{m}, unpadded"
        )
        gap_ax.plot(rows[x], rows[f"{m} gap"], "o-", color=color, label=f"{m} gap")
    gap_ax.axhline(0.0, color="gray", linestyle=":", label="no gap")
    low, high = float(rows[x].min()), float(rows[x].max())
    if xscale == "symlog":
        positive = rows[x][rows[x] > 0]
        gap_ax.set_xscale("symlog", linthresh=float(positive.min()) if len(positive) else 1.0)
        gap_ax.set_xlim(low, high * 1.25 if high > 0 else 1.0)
        ticks = [
            t for t in (0, 10, 30, 100, 300, 1_000, 3_000, 10_000, 30_000, 100_000) if low <= t <= high * 1.25
        ]
        gap_ax.xaxis.set_major_locator(FixedLocator(ticks))
        gap_ax.xaxis.set_minor_locator(NullLocator())
        gap_ax.set_xticks(ticks, labels=[f"{t:,}" for t in ticks])
    else:
        gap_ax.set_xscale(xscale)
    quality_ax.set_ylabel("quality")
    quality_ax.set_title(
        "quality with and without [MASK] padding across the run's snapshots", fontsize=TITLE_PT
    )
    gap_ax.set_ylabel("padded - unpadded")
    gap_ax.set_title("the padding gap (above 0: padding helps)", fontsize=TITLE_PT)
    gap_ax.set_xlabel(
        "training step" if x == "step" else "training seconds (wall)" if x == "train_seconds_wall" else x
    )
    for ax in (quality_ax, gap_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=LEGEND_PT, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return figure


def plot_curves_by_step(rows, measure: str = "nDCG@10") -> Figure:
    """Each snapshot's ``query_maxlen`` curve, one line per snapshot (lighter = earlier), ``[MASK]``
    padding "fixed" (solid) and "min" (dashed): whether training grows the curve's rise and plateau.

    Parameters
    ----------
    rows : pandas.DataFrame or list of row dicts
        The mask-gap study's rows: ``step`` and ``curve`` (the rows of
        :func:`lirlab.analysis.masks.query_maxlen_curve`, with ``padding`` and ``query_maxlen``).
    measure : str
        The quality column drawn.
    """
    rows = _frame(rows, "rows")
    _require(rows, ["step"], "rows")
    has_curve = rows.get("curve", pd.Series(index=rows.index, dtype=object))
    with_curves = rows[has_curve.map(lambda c: isinstance(c, list | tuple) and len(c) > 0)]
    if with_curves.empty:
        raise ValueError("no snapshot has a query_maxlen curve (run the mask-gap study with --curve-maxlens)")
    with_curves = with_curves.sort_values("step")
    shades = colormaps["viridis"](np.linspace(0.85, 0.1, len(with_curves)))
    figure = _figure(4.2)
    ax = figure.subplots()
    for (_, row), shade in zip(with_curves.iterrows(), shades):
        curve = _frame(row["curve"], f"the curve of step {row['step']}")
        _require(curve, ["padding", "query_maxlen", measure], f"the curve of step {row['step']}")
        for padding, style in (("fixed", "-"), ("min", "--")):
            line = curve[curve.padding == padding].sort_values("query_maxlen")
            if len(line):
                ax.plot(
                    line.query_maxlen,
                    line[measure],
                    style,
                    marker="o",
                    color=shade,
                    label=f"step {int(row['step']):,}, {padding}",
                )
    ax.set_xlabel("query_maxlen (tokens, [MASK] padding included)")
    ax.set_ylabel(measure)
    ax.set_title(
        "query_maxlen curve per snapshot: fixed padding (solid), min padding (dashed)", fontsize=TITLE_PT
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=LEGEND_PT, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return figure


# ------------------------------------------------------------------------------------------ XTR / WARP


def plot_xtr(quality, sweeps, centroids, measure: str = "nDCG@10") -> Figure:
    """Study 1 (:func:`lirlab.analysis.xtr.compare_models`): per model, exhaustive MaxSim against XTR-style
    scoring (left), PLAID's and WARP's latency against quality at each knob setting (middle), and how
    informative the centroid-only scores are (right: mean Spearman with exact MaxSim over the
    candidates, and the share of the exhaustive top 10 kept for exact scoring).
    """
    quality = _frame(quality, "quality")
    sweeps = _frame(sweeps, "sweeps")
    centroids = _frame(centroids, "centroids")
    _require(quality, ["model", "scoring", "k_prime", measure], "quality")
    _require(sweeps, ["model", "method", "p50_ms", measure], "sweeps")
    _require(centroids, ["model", "spearman", "recall_kept"], "centroids")
    models = list(dict.fromkeys(quality.model))
    colors = {model: f"C{i}" for i, model in enumerate(models)}
    figure = _figure(4.4)
    scoring_ax, sweep_ax, centroid_ax = figure.subplots(1, 3)
    labels = [
        "MaxSim" if row.scoring == "maxsim" else f"XTR k'={int(row.k_prime):,}"
        for row in quality.drop_duplicates(["scoring", "k_prime"]).itertuples()
    ]
    width = 0.8 / max(len(models), 1)
    for i, model in enumerate(models):
        mine = quality[quality.model == model].drop_duplicates(["scoring", "k_prime"])
        positions = np.arange(len(mine)) + i * width
        scoring_ax.bar(positions, mine[measure], width, color=colors[model], label=model)
    scoring_ax.set_xticks(
        np.arange(len(labels)) + width * (len(models) - 1) / 2, labels, rotation=30, ha="right"
    )
    scoring_ax.set_ylabel(measure)
    scoring_ax.set_title("exhaustive scoring", fontsize=TITLE_PT)
    for model in models:
        for method, marker in (("plaid", "o"), ("warp", "s")):
            mine = sweeps[(sweeps.model == model) & (sweeps.method == method)].sort_values("p50_ms")
            if len(mine):
                sweep_ax.plot(
                    mine.p50_ms,
                    mine[measure],
                    marker=marker,
                    ls="-" if method == "plaid" else "--",
                    color=colors[model],
                    label=f"{model}, {method.upper()}",
                )
    sweep_ax.set_xlabel("p50 latency (ms, this CPU)")
    sweep_ax.set_ylabel(measure)
    sweep_ax.set_title("PLAID and WARP knob settings", fontsize=TITLE_PT)
    means = centroids.groupby("model", sort=False)[["spearman", "recall_kept"]].mean().reindex(models)
    x = np.arange(2)
    for i, model in enumerate(models):
        centroid_ax.bar(x + i * width, means.loc[model].to_numpy(), width, color=colors[model], label=model)
    centroid_ax.set_xticks(
        x + width * (len(models) - 1) / 2, ["Spearman\n(centroid vs exact)", "top 10 kept"]
    )
    centroid_ax.set_ylim(0, 1)
    centroid_ax.set_title("centroid-only scores", fontsize=TITLE_PT)
    for ax in (scoring_ax, sweep_ax, centroid_ax):
        ax.grid(alpha=0.3, axis="y")
    _legend_below(figure, [sweep_ax], ncols=4)
    return figure


def plot_warp_knobs(rows, chosen: Mapping[str, float] | None = None) -> Figure:
    """WARP's share of the exhaustive top 10 against ``nprobe``, one panel per collection, one line per
    ``t_prime`` share (:func:`lirlab.analysis.xtr.warp_knob_sweep`); ``chosen`` (from
    :func:`~lirlab.analysis.xtr.choose_warp_defaults`) is ringed."""
    rows = _frame(rows, "rows")
    _require(rows, ["collection", "nprobe", "t_prime_share", "exhaustive_recall@10"], "rows")
    collections = list(dict.fromkeys(rows.collection))
    figure = _figure(4.0)
    axes = figure.subplots(1, len(collections), squeeze=False, sharey=True)[0]
    shares = sorted(rows.t_prime_share.unique())
    shades = colormaps["viridis"](np.linspace(0.1, 0.85, len(shares)))
    for ax, collection in zip(axes, collections):
        mine = rows[rows.collection == collection]
        for share, shade in zip(shares, shades):
            line = mine[mine.t_prime_share == share].sort_values("nprobe")
            ax.plot(
                line.nprobe,
                line["exhaustive_recall@10"],
                "o-",
                color=shade,
                label=f"t' = {share:.2%} of tokens",
            )
        if chosen is not None:
            pick = mine[(mine.nprobe == chosen["nprobe"]) & (mine.t_prime_share == chosen["t_prime_share"])]
            ax.plot(
                pick.nprobe,
                pick["exhaustive_recall@10"],
                "o",
                ms=14,
                mfc="none",
                mec="red",
                label="chosen default",
            )
        ax.set_xscale("log", base=2)
        ax.set_title(str(collection), fontsize=TITLE_PT)
        ax.set_xlabel("nprobe")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("share of the exhaustive top 10")
    _legend_below(figure, list(axes), ncols=3)
    return figure


# --------------------------------------------------------------------------------- document length


def _scoring_label(name: str) -> str:
    """A short tick label of a :func:`~lirlab.analysis.doc_lengths.length_normalised_quality` scoring.

    >>> _scoring_label("MaxSim / doc_tokens^0.05"), _scoring_label("MeanMaxSim")
    ('/ n^0.05', 'MeanMaxSim')
    """
    return "/ n^" + name.rsplit("^", 1)[-1] if "/ doc_tokens^" in name else name


def plot_doc_length(by_length, quality, measure: str = "nDCG@10", score: str = "mean_score") -> Figure:
    """Study 3 (document length): the mean MaxSim score per document-length bin, relevant and
    non-relevant documents apart (left), and the quality of each scoring of the same rows (right:
    MaxSim, MeanMaxSim, MaxSim / n^a with ``n`` the document's scored tokens).

    Parameters
    ----------
    by_length : pandas.DataFrame or list of row dicts
        :func:`lirlab.analysis.doc_lengths.score_by_doc_length`: ``length_bin, relevant, <score>`` (and
        ``pairs``).
    quality : pandas.DataFrame or list of row dicts
        :func:`lirlab.analysis.doc_lengths.length_normalised_quality`: ``scoring, <measure>``, one row per
        scoring, drawn in their order.
    measure : str
        The quality column drawn.
    score : str
        The score column drawn per bin: ``"mean_score"``, ``"mean_meanmaxsim"`` or
        ``"score_vs_query_mean"`` (each pair's score less its query's mean, so queries' levels cancel).

    Raises
    ------
    ValueError
        A table without the columns drawn.
    """
    by_length = _frame(by_length, "by_length")
    quality = _frame(quality, "quality")
    _require(by_length, ["length_bin", "relevant", score], "by_length")
    _require(quality, ["scoring", measure], "quality")
    figure = _figure(4.4)
    score_ax, quality_ax = figure.subplots(1, 2, width_ratios=[1.35, 1])
    by_length = by_length.assign(length_bin=by_length.length_bin.astype(str))
    bins = sorted(by_length.length_bin.unique(), key=_bin_start)
    for relevant, color, marker, label in (
        (False, NON_RELEVANT_COLOR, "s", "non-relevant documents"),
        (True, RELEVANT_COLOR, "o", "relevant documents"),
    ):
        rows = by_length[by_length.relevant.astype(bool) == relevant].set_index("length_bin")
        shown = [b for b in bins if b in rows.index]
        score_ax.plot(
            [bins.index(b) for b in shown], rows.loc[shown, score], marker=marker, color=color, label=label
        )
    score_ax.set_xticks(range(len(bins)), labels=bins, fontsize=MIN_FONT_PT, rotation=30, ha="right")
    score_ax.set_xlabel("document length (scored tokens)")
    score_ax.set_ylabel(
        {
            "mean_score": "mean MaxSim score",
            "mean_meanmaxsim": "mean MeanMaxSim score",
            "score_vs_query_mean": "score - its query's mean",
        }.get(score, score)
    )
    score_ax.set_title("scores by document length", fontsize=TITLE_PT)
    score_ax.grid(alpha=0.3)

    labels = [_scoring_label(str(name)) for name in quality.scoring]
    colors = [
        "black" if i == 0 else "tab:purple" if label == "MeanMaxSim" else "tab:olive"
        for i, label in enumerate(labels)
    ]
    bars = quality_ax.bar(range(len(quality)), quality[measure], color=colors, width=0.65)
    quality_ax.bar_label(bars, fmt="%.3f", fontsize=MIN_FONT_PT, padding=2)
    quality_ax.set_xticks(range(len(quality)), labels=labels, fontsize=MIN_FONT_PT, rotation=30, ha="right")
    quality_ax.set_ylim(0, 1.18 * max(float(quality[measure].max()), 1e-6))
    quality_ax.set_ylabel(measure)
    quality_ax.set_xlabel("scoring (n: the document's scored tokens)")
    quality_ax.set_title(f"{measure} of each scoring", fontsize=TITLE_PT)
    quality_ax.grid(alpha=0.3, axis="y")
    _legend_below(figure, [score_ax], ncols=2)
    return figure


# ------------------------------------------------------------------------------------ fixed counts


def plot_fixed_count(rows, measures: Sequence[str] | None = None, x: str = "index_bytes") -> Figure:
    """Study 3 (fixed-count documents): quality against index size, pool factors and fixed counts of
    vectors per document as two lines, one panel per measure, the x axis logarithmic; each point is
    marked with its factor or count (:func:`lirlab.analysis.fixed_count.fixed_count_quality`).

    Parameters
    ----------
    rows : pandas.DataFrame or list of row dicts
        ``method`` (``"pool factor f"`` or ``"fixed count n"``), ``setting``, ``<x>`` and the measures.
    measures : sequence of str, optional
        Quality columns drawn, one panel each (default: those of ``nDCG@10`` and ``R@100`` the rows hold).
    x : str
        ``"index_bytes"`` (drawn in bytes, ticks labelled in MB: 10^6 bytes) or ``"vectors_per_doc"``.

    Raises
    ------
    ValueError
        Rows without the columns drawn, or neither method among them.
    """
    rows = _frame(rows, "rows")
    if measures is None:
        measures = [m for m in ("nDCG@10", "R@100") if m in rows.columns] or ["nDCG@10"]
    _require(rows, ["method", "setting", x, *measures], "rows")
    methods = (
        ("pool factor", POOL_FACTOR_COLOR, "o", "-", "pool factor f (points: f)"),
        ("fixed count", FIXED_COUNT_COLOR, "s", "--", "fixed count of n vectors (points: n)"),
    )
    if not any(rows.method.astype(str).str.startswith(name).any() for name, *_ in methods):
        raise ValueError(
            f"no 'pool factor' or 'fixed count' row among the methods {sorted(set(rows.method))}"
        )
    figure = _figure(4.2)
    axes = figure.subplots(1, len(measures), squeeze=False)[0]
    for ax, measure in zip(axes, measures):
        for name, color, marker, style, label in methods:
            line = rows[rows.method.astype(str).str.startswith(name)].sort_values(x)
            if line.empty:
                continue
            ax.plot(line[x], line[measure], marker=marker, ls=style, color=color, label=label)
            for setting, px, py in zip(line.setting, line[x], line[measure]):
                ax.annotate(
                    f"{setting:g}",
                    (px, py),
                    textcoords="offset points",
                    xytext=(0, 6 if name == "pool factor" else -12),
                    ha="center",
                    fontsize=MIN_FONT_PT,
                    color=color,
                )
        ax.set_xscale("log")
        scale = 1e6 if x == "index_bytes" else 1.0
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _, scale=scale: f"{value / scale:g}"))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel(
            "index size (MB: fp32 vectors and token ids)"
            if x == "index_bytes"
            else "vectors per document (mean)"
            if x == "vectors_per_doc"
            else x
        )
        low, high = ax.get_ylim()
        ax.set_ylim(low - 0.04 * (high - low), high + 0.04 * (high - low))  # room for the point labels
        ax.set_ylabel(measure)
        ax.set_title(
            f"{measure} against {'index size' if x == 'index_bytes' else 'vectors per document'}",
            fontsize=TITLE_PT,
        )
        ax.grid(alpha=0.3)
    _legend_below(figure, list(axes), ncols=2)
    return figure
