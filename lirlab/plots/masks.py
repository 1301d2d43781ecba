"""Figures of the ``[MASK]`` term-weighting analysis (:mod:`lirlab.analysis.masks`).

Each function draws an analysis result and returns a :class:`matplotlib.figure.Figure`; none computes
anything of its own. Figures are built without pyplot, so nothing is left open and no display is needed.

Examples
--------
>>> import pandas as pd
>>> curve = pd.DataFrame({"query_maxlen": [0, 0, 32, 32, 32, 32],
...                       "attend_to_mask_tokens": [False, True, False, False, True, True],
...                       "masks_used": [False, False, True, False, True, False],
...                       "nDCG@10": [0.69, 0.69, 0.61, 0.68, 0.54, 0.66]})
>>> figure = plot_query_maxlen_curve(curve)
>>> figure_png(figure)[:4]
b'\\x89PNG'
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from lirlab.plots import (
    MIN_FONT_PT,
    OUTPUT_AREA_PX,
    SCREEN_DPI,
    figure_png,  # noqa: F401  (re-exported: the examples above use it)
)

if TYPE_CHECKING:
    import pandas as pd

    from lirlab.analysis.masks import MaskWeighting

OWN_COLOR = "tab:blue"
MASK_COLOR = "tab:orange"
#: Largest figure drawn, in inches at :data:`~lirlab.plots.SCREEN_DPI`: the output area less the padding
#: of a tight bounding box.
MAX_INCHES = ((OUTPUT_AREA_PX[0] - 40) / SCREEN_DPI, (OUTPUT_AREA_PX[1] - 30) / SCREEN_DPI)
#: Range of the pitch of the ``[MASK]`` rows, in inches: they close up to this to fit the output area.
MASK_ROW_INCHES = (0.15, 0.22)
#: Height around the ``[MASK]`` rows (title, rotated query tokens, margins), in inches.
ASSIGNMENT_MARGIN_INCHES = 2.1


def _axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    return Figure(figsize=size, dpi=SCREEN_DPI, layout="constrained").add_subplot()


def _mask_pitch(n_masks: int) -> float:
    """Inches per ``[MASK]`` row so that the assignment fits the output area's height."""
    budget = MAX_INCHES[1] - ASSIGNMENT_MARGIN_INCHES
    return float(np.clip(budget / max(n_masks, 1), *MASK_ROW_INCHES))


def _assignment_height(n_masks: int) -> float:
    return max(3.0, _mask_pitch(n_masks) * n_masks + ASSIGNMENT_MARGIN_INCHES)


def _what(weighting: MaskWeighting) -> str:
    documents = weighting.documents
    if len(documents) == 1:
        return f"document {documents.docno.iloc[0]}"
    return f"mean over the top {len(documents)} documents"


def plot_term_weights(weighting: MaskWeighting, ax: Axes | None = None) -> Figure:
    """Each query term's effective weight, own MaxSim contribution and ``[MASK]`` share stacked, beside its IDF.

    Special tokens (``[CLS]``, the query marker, ``[SEP]``) are drawn paler. IDF (diamonds) reads on the
    right-hand axis.
    """
    ax = _axes(ax, (min(MAX_INCHES[0], max(5.0, 0.5 * len(weighting.terms) + 2)), 4))
    terms = weighting.terms
    x = list(range(len(terms)))
    alpha = [0.4 if special else 1.0 for special in terms.special]
    own = ax.bar(x, terms.own, color=OWN_COLOR)
    share = ax.bar(x, terms.mask_share, bottom=terms.own, color=MASK_COLOR)
    for bars in (own, share):
        for bar, a in zip(bars, alpha):
            bar.set_alpha(a)
    ax.set_xticks(x, labels=list(terms.label), rotation=60, ha="right")
    ax.set_ylabel(f"effective weight ({_what(weighting)})")
    ax.set_title(textwrap.fill(f"Term weights: {weighting.query}", 50), fontsize=10)
    idf_axis = ax.twinx()
    idf_axis.plot(x, terms.idf, "D", color="black", markersize=5)
    idf_axis.set_ylabel("IDF")
    # headroom above the tallest bar and diamond keeps the legend off the data
    ax.set_ylim(0, 1.4 * max(float((terms.own + terms.mask_share).max()), 1e-6))
    idf_axis.set_ylim(0, 1.4 * max(float(terms.idf.max()), 1e-6))
    handles = [
        Patch(color=OWN_COLOR, label="own MaxSim contribution"),
        Patch(color=MASK_COLOR, label="[MASK] share"),
        Patch(color="gray", alpha=0.4, label="special token (paler)"),
        Line2D([], [], marker="D", linestyle="", color="black", label="IDF (right axis)"),
    ]
    ax.legend(handles=handles, fontsize=8, loc="upper center", ncols=2)
    return ax.figure


def plot_mask_assignment(weighting: MaskWeighting, ax: Axes | None = None) -> Figure:
    """Cosine of every ``[MASK]`` vector (rows) with every query token it may be assigned to (columns).

    A white ring marks each ``[MASK]``'s assigned token; row labels give the document token it matched
    in the best-ranked document analysed.
    """
    cosines = weighting.cosines
    n_masks = weighting.n_masks
    ax = _axes(ax, (6.5, _assignment_height(n_masks)))
    if n_masks == 0:
        ax.text(
            0.5,
            0.5,
            "no [MASK] tokens in this query\n(query augmentation off, or the query fills query_maxlen)",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        ax.set_axis_off()
        return ax.figure
    matrix = cosines.pivot(index="mask_position", columns="term_position", values="cosine")
    image = ax.imshow(matrix.to_numpy(), aspect="auto", cmap="viridis", interpolation="nearest")
    columns = list(matrix.columns)
    ax.set_xticks(range(len(columns)), labels=[weighting.labels[p] for p in columns], rotation=60, ha="right")
    top = weighting.matches[weighting.matches["rank"] == 1].set_index("position").doc_label
    ax.set_yticks(
        range(len(matrix.index)),
        # "→" means "nearest query token" only (the title); a row names the document token it matches
        labels=[f"[MASK] {p} · matches {top.get(p, '')}" for p in matrix.index],
        fontsize=MIN_FONT_PT if _mask_pitch(n_masks) < 0.17 else MIN_FONT_PT + 1,
    )
    assigned = weighting.assignments.set_index("position").term_position
    ax.scatter(
        [columns.index(assigned[p]) for p in matrix.index],
        range(len(matrix.index)),
        s=40,
        facecolors="none",
        edgecolors="white",
        linewidths=1.5,
    )
    title = (
        f"[MASK] → nearest query token (ringed); rows: the token each matches in "
        f"{weighting.documents.docno.iloc[0]}"
    )
    ax.set_title(textwrap.fill(title, 48), fontsize=10)
    ax.figure.colorbar(image, ax=ax, label="cosine")
    return ax.figure


def plot_mask_overview(weighting: MaskWeighting) -> Figure:
    """Term weights and the ``[MASK]`` assignment side by side (the explorer's picture), fitting the
    output area (:data:`~lirlab.plots.OUTPUT_AREA_PX`) at :data:`~lirlab.plots.SCREEN_DPI`."""
    size = (MAX_INCHES[0], max(4.5, _assignment_height(weighting.n_masks)))
    figure = Figure(figsize=size, dpi=SCREEN_DPI, layout="constrained")
    weights_ax, assignment_ax = figure.subplots(1, 2, width_ratios=[1.1, 1])
    plot_term_weights(weighting, ax=weights_ax)
    plot_mask_assignment(weighting, ax=assignment_ax)
    return figure


def plot_query_maxlen_curve(curve: pd.DataFrame, measure: str = "nDCG@10", ax: Axes | None = None) -> Figure:
    """Quality against ``query_maxlen`` (:func:`lirlab.analysis.masks.query_maxlen_curve`).

    One line per ``attend_to_mask_tokens`` setting with the ``[MASK]`` vectors scored; hollow markers
    for the same queries with the ``[MASK]`` rows dropped; a dashed line where long queries were kept
    whole (``padding`` ``"min"``); a dotted line for no augmentation (``query_maxlen`` 0).
    """
    if measure not in curve.columns:
        raise ValueError(f"measure {measure!r} is not a column of the curve: {list(curve.columns)}")
    ax = _axes(ax, (8.5, 4))
    padded = curve[curve.query_maxlen > 0]
    kept_whole = padded.assign(padding=padded.get("padding", "fixed")).padding == "min"  # older curves: fixed
    padded, whole = padded[~kept_whole], padded[kept_whole]
    for i, attend in enumerate(sorted(padded.attend_to_mask_tokens.unique())):
        color = f"C{i}"
        setting = padded[padded.attend_to_mask_tokens == attend].sort_values("query_maxlen")
        label = "attending to [MASK]" if attend else "not attending to [MASK]"
        used = setting[setting.masks_used]
        ax.plot(used.query_maxlen, used[measure], "o-", color=color, label=label)
        min_padded = whole[whole.attend_to_mask_tokens == attend].sort_values("query_maxlen")
        if len(min_padded):
            ax.plot(
                min_padded.query_maxlen,
                min_padded[measure],
                "s--",
                color=color,
                label=f"{label}, long queries kept whole (min)",
            )
        dropped = setting[~setting.masks_used]
        if len(dropped):
            ax.plot(
                dropped.query_maxlen,
                dropped[measure],
                "o",
                markerfacecolor="none",
                markersize=9,
                color=color,
                label=f"{label}, [MASK] rows dropped",
            )
    unpadded = curve[curve.query_maxlen == 0]
    if len(unpadded):
        ax.axhline(unpadded[measure].iloc[0], linestyle=":", color="gray", label="no augmentation")
    ax.set_xlabel("query_maxlen (queries padded with [MASK] to this length)")
    ax.set_ylabel(measure)
    ax.set_xticks(sorted(padded.query_maxlen.unique()))
    ax.set_title(f"{measure} as query augmentation varies", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    return ax.figure


def plot_query_maxlen_curves(curves: Mapping[str, pd.DataFrame], measure: str = "nDCG@10") -> Figure:
    """Several models' :func:`plot_query_maxlen_curve` side by side on one quality axis (untrained and
    trained, say), with one legend below, fitting the output area (:data:`~lirlab.plots.OUTPUT_AREA_PX`).

    Parameters
    ----------
    curves : mapping of str to pandas.DataFrame
        Panel name to curve (:func:`lirlab.analysis.masks.query_maxlen_curve`), left to right.
    measure : str
        The quality column drawn.

    Raises
    ------
    ValueError
        No curve, or ``measure`` is not a column of one.
    """
    if not curves:
        raise ValueError("plot_query_maxlen_curves needs at least one curve")
    figure = Figure(figsize=(MAX_INCHES[0], 4.2), dpi=SCREEN_DPI, layout="constrained")
    axes = figure.subplots(1, len(curves), sharey=True, squeeze=False)[0]
    legend: dict[str, object] = {}
    for ax, (name, curve) in zip(axes, curves.items()):
        plot_query_maxlen_curve(curve, measure, ax=ax)
        ax.get_legend().remove()
        ax.set_title(f"{name}: {measure} as query augmentation varies", fontsize=10)
        ax.set_xlabel("query_maxlen ([MASK] padding length)")
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    figure.legend(
        legend.values(), legend.keys(), loc="outside lower center", ncols=2, fontsize=9, frameon=False
    )
    return figure
