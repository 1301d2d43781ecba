"""Figures of the compression analysis (:mod:`lirlab.analysis.compression`).

Each function draws an analysis result and returns a :class:`matplotlib.figure.Figure` built without
pyplot (nothing is left open, no display is needed); none computes anything of its own.

Examples
--------
>>> import pandas as pd
>>> errors = pd.DataFrame({"nbits": [1, 1, 2, 2], "exact": [3.0, 2.0, 3.0, 2.0],
...                        "compressed": [2.5, 2.2, 2.9, 2.0]})
>>> figure = plot_score_errors(errors)
>>> figure.axes[0].get_xlabel()
'exact MaxSim (uncompressed vectors)'
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

if TYPE_CHECKING:
    import pandas as pd

    from lirlab.analysis.compression import CosineDistribution, ResidualHistogram


def nbits_color(nbits: int) -> str:
    """The colour of one ``nbits`` value, the same in every compression figure.

    >>> nbits_color(1), nbits_color(4)
    ('#440154', '#35b779')
    """
    return to_hex(colormaps["viridis"](math.log2(nbits) / 3))


def _axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    return ax if ax is not None else Figure(figsize=size, layout="constrained").add_subplot()


def plot_cosine_histograms(
    distribution: CosineDistribution, reconstruction: str = "quantized", ax: Axes | None = None
) -> Figure:
    """Share of token vectors per cosine bin (original against reconstruction), one step line per
    ``nbits``, each median marked by a dashed line."""
    histogram = distribution.histogram[distribution.histogram.reconstruction == reconstruction]
    if histogram.empty:
        raise ValueError(f"the distribution holds no {reconstruction!r} reconstruction")
    summary = distribution.summary[distribution.summary.reconstruction == reconstruction]
    ax = _axes(ax, (6.0, 3.6))
    for nbits, bins in histogram.groupby("nbits"):
        color = nbits_color(int(nbits))
        edges = np.append(bins.left.to_numpy(), bins.right.iloc[-1])
        ax.stairs(bins.share.to_numpy(), edges, color=color, linewidth=1.6, label=f"nbits={nbits}")
        median = summary.loc[summary.nbits == nbits, "p50"]
        if len(median):
            ax.axvline(float(median.iloc[0]), color=color, linestyle="--", linewidth=1)
    ax.set_xlabel("cosine(original, reconstructed)")
    ax.set_ylabel("share of token vectors")
    ax.set_title(f"Token vector reconstruction ({reconstruction}); dashed: medians")
    ax.legend(frameon=False)
    return ax.figure


def plot_residual_histogram(
    residuals: ResidualHistogram, dim: int | None = None, ax: Axes | None = None
) -> Figure:
    """One dimension's residual histogram with the codec's bucket cutoffs (vertical lines) and the
    values buckets decode to (triangles); a pooled histogram is drawn without them, since every
    dimension has its own cutoffs.

    ``dim`` picks a dimension of a per-dimension histogram (default: the first).
    """
    counts = residuals.counts
    if dim is None:
        dim = int(counts.dim.iloc[0])
    bins = counts[counts.dim == dim]
    if bins.empty:
        raise ValueError(f"no histogram for dimension {dim}; it has {sorted(set(counts.dim))}")
    ax = _axes(ax, (6.0, 3.6))
    edges = np.append(bins.left.to_numpy(), bins.right.iloc[-1])
    ax.stairs(bins.share.to_numpy(), edges, fill=True, color="#9ecae1", label="residuals")
    if dim == -1:
        ax.set_title(
            f"Residuals pooled over every dimension (nbits={residuals.nbits}; cutoffs differ per dimension)"
        )
    else:
        buckets = residuals.buckets[residuals.buckets.dim == dim]
        cutoffs = buckets.upper.to_numpy()[:-1]
        for i, cutoff in enumerate(cutoffs):
            ax.axvline(cutoff, color="#d62728", linewidth=1, label="bucket cutoffs" if i == 0 else None)
        ax.plot(
            buckets.weight.to_numpy(),
            np.zeros(len(buckets)),
            linestyle="none",
            marker="^",
            markersize=9,
            color="#2ca02c",
            clip_on=False,
            label="decoded values (bucket weights)",
        )
        ax.set_title(
            f"Residuals of dimension {dim} against the {len(buckets)} buckets (nbits={residuals.nbits})"
        )
    ax.set_xlabel("residual (vector − centroid)")
    ax.set_ylabel("share of token vectors")
    ax.legend(frameon=False, fontsize="small")
    return ax.figure


def plot_score_errors(errors: pd.DataFrame, ax: Axes | None = None) -> Figure:
    """Compressed against exact MaxSim of each (query, document) pair, coloured by ``nbits``; points
    on the diagonal lost nothing."""
    if errors.empty:
        raise ValueError("no score pairs to draw")
    ax = _axes(ax, (4.8, 4.4))
    for nbits, pairs in errors.groupby("nbits"):
        ax.scatter(
            pairs.exact,
            pairs.compressed,
            s=12,
            alpha=0.6,
            color=nbits_color(int(nbits)),
            label=f"nbits={nbits}",
        )
    low = float(min(errors.exact.min(), errors.compressed.min()))
    high = float(max(errors.exact.max(), errors.compressed.max()))
    ax.plot([low, high], [low, high], color="black", linewidth=0.8, linestyle=":", label="no error")
    ax.set_xlabel("exact MaxSim (uncompressed vectors)")
    ax.set_ylabel("MaxSim over decompressed vectors")
    ax.set_title("Score error of each query's exact top-k")
    ax.legend(frameon=False, fontsize="small")
    return ax.figure
