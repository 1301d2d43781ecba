"""The latency/quality plot of a knob sweep (:func:`lirlab.analysis.sweeps.sweep`).

Examples
--------
>>> import pandas as pd
>>> from lirlab.analysis.sweeps import pareto_front, setting_labels
>>> table = pd.DataFrame({"n_probe": [1, 2, 4, 8], "p50_ms": [1.0, 2.0, 2.5, 4.0],
...                       "nDCG@10": [0.5, 0.7, 0.6, 0.8]})
>>> table["on_front"] = pareto_front(table, "p50_ms", "nDCG@10")
>>> table["setting"] = setting_labels(table)
>>> figure = plot_pareto(table, highlight=2)
>>> [t.get_text() for t in figure.axes[0].texts]
['n_probe=1', 'n_probe=2', 'n_probe=4', 'n_probe=8']
"""

from __future__ import annotations

import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def quality_column(table: pd.DataFrame) -> str:
    """The quality a sweep table measured: ``nDCG@10`` when judged, else the recall of the exhaustive
    top-k (pass ``quality=`` to :func:`plot_pareto` for another column).

    >>> quality_column(pd.DataFrame(columns=["p50_ms", "exhaustive_recall@10"]))
    'exhaustive_recall@10'
    """
    if "nDCG@10" in table.columns:
        return "nDCG@10"
    recall = [c for c in table.columns if str(c).startswith("exhaustive_recall@")]
    if not recall:
        raise ValueError("the table has no quality column (nDCG@10 or exhaustive_recall@k); pass quality=")
    return recall[0]


def plot_pareto(
    table: pd.DataFrame,
    latency: str = "p50_ms",
    quality: str | None = None,
    *,
    label: str = "setting",
    highlight=None,
    by: str | None = None,
    log_latency: bool = False,
    ax: Axes | None = None,
) -> Figure:
    """Latency against quality, one labelled point per setting; the Pareto frontier (no setting both
    faster and better) is joined by a line and drawn in full colour, the others faded.

    Parameters
    ----------
    table : DataFrame
        A sweep table (one row per setting).
    latency, quality : str
        Columns for the axes (quality default: :func:`quality_column`).
    label : str
        Column of point labels (a sweep's ``setting``).
    highlight : index label, optional
        A row to ring (the current setting of an explorer).
    by : str, optional
        Column whose groups get their own colour (default: ``method`` when the table holds several,
        else ``device``).

    The frontier is the table's ``on_front`` column (:func:`~lirlab.analysis.sweeps.sweep` computes it):
    the plot draws, it computes nothing.
    """
    if table.empty:
        raise ValueError("the sweep table has no rows to draw")
    for column in ("on_front", label):
        if column not in table.columns:
            raise ValueError(
                f"the table has no {column!r} column: plot a table made by lirlab.analysis.sweeps.sweep"
            )
    quality = quality or quality_column(table)
    if by is None:
        by = "method" if "method" in table.columns and table["method"].nunique() > 1 else "device"
    group = by if by in table.columns else None
    front = table["on_front"].astype(bool)
    labels = table[label]
    ax = ax if ax is not None else Figure(figsize=(6.4, 4.2), layout="constrained").add_subplot()
    palette = colormaps["tab10"].colors
    groups = table.groupby(group, sort=False) if group else [(None, table)]
    for i, (name, rows) in enumerate(groups):
        color = palette[i % len(palette)]
        suffix = f" ({name})" if name is not None else ""
        on = rows[front[rows.index]].sort_values(latency)
        off = rows[~front[rows.index]]
        ax.plot(on[latency], on[quality], marker="o", color=color, label=f"on the frontier{suffix}")
        ax.scatter(off[latency], off[quality], color=color, alpha=0.35, label=f"dominated{suffix}")
    for row_label, x, y in zip(table.index, table[latency], table[quality]):
        ax.annotate(
            str(labels[row_label]),
            (x, y),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize="x-small",
            alpha=1.0 if front[row_label] else 0.6,
        )
    if highlight is not None:
        if highlight not in table.index:
            raise ValueError(f"no row {highlight!r} to highlight")
        ax.scatter(
            [table.loc[highlight, latency]],
            [table.loc[highlight, quality]],
            s=180,
            facecolors="none",
            edgecolors="#d62728",
            linewidths=2,
            label="current setting",
            zorder=3,
        )
    if log_latency:
        ax.set_xscale("log")
    ax.set_xlabel(
        f"{latency.removesuffix('_ms')} latency per query (ms)" if latency.endswith("_ms") else latency
    )
    ax.set_ylabel(quality)
    ax.set_title("Latency against quality, one point per setting")
    ax.legend(frameon=False, fontsize="small")
    return ax.figure
