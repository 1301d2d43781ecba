"""The latency/quality plot of a knob sweep (:func:`lirlab.analysis.sweeps.sweep`).

Examples
--------
>>> import pandas as pd
>>> from lirlab.analysis.sweeps import setting_labels
>>> table = pd.DataFrame({"n_probe": [1, 2, 4, 8], "p50_ms": [1.0, 2.0, 2.5, 4.0],
...                       "nDCG@10": [0.5, 0.7, 0.6, 0.8]})
>>> table["setting"] = setting_labels(table)
>>> figure = plot_pareto(table, highlight=2)
>>> [t.get_text() for t in figure.axes[0].texts]
['n_probe=1', 'n_probe=2', 'n_probe=4', 'n_probe=8']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Annotation
from matplotlib.transforms import Bbox

from lirlab.analysis.sweeps import frontier

#: Where a label may sit around its point, tried in this order: the direction (x, y signs) and the text
#: alignment that keeps the label on that side.
LABEL_DIRECTIONS = (
    (1, 1, "left", "bottom"),
    (-1, 1, "right", "bottom"),
    (1, -1, "left", "top"),
    (-1, -1, "right", "top"),
    (0, 1, "center", "bottom"),
    (0, -1, "center", "top"),
    (1, 0, "left", "center"),
    (-1, 0, "right", "center"),
)
#: Distances from the point tried, in points; from the second one on a thin leader line joins label and point.
LABEL_RADII = (4.0, 14.0, 26.0, 40.0)
#: Half the side of the square around each marker that labels keep clear of, in points.
MARKER_HALF = 4.0
#: Font size of the point labels: "small" is 8.3 pt, 11.6 px at the 100 dpi figures are shown at.
LABEL_SIZE = "small"
#: Area (points²) and line width (points) of the ring around the current setting.
RING_SIZE, RING_WIDTH = 180.0, 2.0
_RELATIVE = {"left": 0.0, "bottom": 0.0, "center": 0.5, "right": 1.0, "top": 1.0}


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


def _renderer(figure):
    canvas = figure.canvas
    if not hasattr(canvas, "get_renderer"):
        canvas = FigureCanvasAgg(figure)
    return canvas.get_renderer()


def place_labels(
    ax: Axes,
    x: Sequence[float],
    y: Sequence[float],
    texts: Sequence[str],
    *,
    priority: Sequence[bool] | None = None,
    fontsize: str | float = LABEL_SIZE,
    keep_clear: dict[int, float] | None = None,
) -> list[Annotation | None]:
    """Label points so that no two labels, and no label and another point's marker, overlap.

    Each label tries the places of :data:`LABEL_DIRECTIONS` at the distances of :data:`LABEL_RADII` in
    turn and takes the first free one inside the axes (a label set further away than the first distance
    gets a thin leader line to its point). Labels with ``priority`` are placed first, drawn in full;
    the others are faded. A label with no free place is left out, so a crowded plot loses labels of
    dominated points before those of the frontier, and never prints one over another. The axes' layout
    is settled before measuring, the labels take no part in it, and a legend placed at ``"best"`` is
    pinned where it stood, so the measured places hold when the figure is drawn or saved.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Axes whose limits, scales and legend are final.
    x, y : sequence of float
        Data coordinates of the points.
    texts : sequence of str
        One label per point.
    priority : sequence of bool, optional
        Points whose labels are placed first (the frontier).
    fontsize : str or float
        Label font size.
    keep_clear : dict of int to float, optional
        Points drawn larger (a ring around the current setting): position → half the side, in points, of
        the square around it that every label, its own included, keeps clear of.

    Returns
    -------
    list of Annotation or None
        One entry per point, in the order given; None where the label was left out.
    """
    n = len(texts)
    if not (len(x) == len(y) == n):
        raise ValueError(f"{len(x)} x and {len(y)} y values for {n} labels")
    first = np.ones(n, dtype=bool) if priority is None else np.asarray(priority, dtype=bool)
    figure = ax.get_figure(root=True)
    renderer = _renderer(figure)
    figure.draw_without_rendering()  # the layout sizes the axes before anything is measured
    legend = ax.get_legend()
    taken: list[Bbox] = []
    if legend is not None:
        box = legend.get_window_extent(renderer)
        legend.set_loc(tuple(ax.transAxes.inverted().transform((box.x0, box.y0))))
        taken.append(box)
    scale = figure.dpi / 72.0
    halves = np.full(n, MARKER_HALF * scale)
    rings = {int(i): float(r) * scale for i, r in (keep_clear or {}).items()}
    for i, r in rings.items():
        halves[i] = max(halves[i], r)
    points = ax.transData.transform(np.column_stack([np.asarray(x, float), np.asarray(y, float)]))
    markers = [Bbox.from_extents(px - h, py - h, px + h, py + h) for (px, py), h in zip(points, halves)]
    inside = ax.get_window_extent(renderer)
    placed: list[Annotation | None] = [None] * n
    spots: list[tuple | None] = [None] * n
    for i in [*np.flatnonzero(first), *np.flatnonzero(~first)]:
        if not np.all(np.isfinite(points[i])):
            continue
        others = [m for j, m in enumerate(markers) if j != i or j in rings]
        label = ax.annotate(
            texts[i], (x[i], y[i]), xytext=(0, 0), textcoords="offset points", fontsize=fontsize
        )
        spot = None
        # around a ring, the diagonal places must clear the square that holds it: √2 times its half side
        radii = LABEL_RADII if i not in rings else [r + np.sqrt(2) * rings[i] / scale for r in LABEL_RADII]
        for radius in radii:
            for sx, sy, ha, va in LABEL_DIRECTIONS:
                offset = (radius * sx / np.hypot(sx, sy), radius * sy / np.hypot(sx, sy))
                label.xyann = offset
                label.set_horizontalalignment(ha)
                label.set_verticalalignment(va)
                box = label.get_window_extent(renderer)
                fits = (
                    inside.x0 <= box.x0
                    and box.x1 <= inside.x1
                    and inside.y0 <= box.y0
                    and box.y1 <= inside.y1
                )
                if fits and not any(box.overlaps(b) for b in (*taken, *others)):
                    spot = (radius > radii[0], offset, ha, va, box)
                    break
            if spot is not None:
                break
        label.remove()
        if spot is None:
            continue
        taken.append(spot[-1])
        spots[i] = spot[:-1]
    for i, spot in enumerate(spots):  # drawn in the order given, whatever order they were placed in
        if spot is None:
            continue
        leader, offset, ha, va = spot
        style = {"fontsize": fontsize, "alpha": 1.0 if first[i] else 0.6}
        if leader:
            style["arrowprops"] = {
                "arrowstyle": "-",
                "color": "0.55",
                "linewidth": 0.6,
                "shrinkA": 0,
                "shrinkB": 3,
                "relpos": (_RELATIVE[ha], _RELATIVE[va]),
            }
        label = ax.annotate(
            texts[i], (x[i], y[i]), xytext=offset, textcoords="offset points", ha=ha, va=va, **style
        )
        label.set_in_layout(False)
        placed[i] = label
    return placed


def plot_pareto(
    table: pd.DataFrame,
    latency: str = "p50_ms",
    quality: str | None = None,
    *,
    label: str = "setting",
    highlight=None,
    by: str | None = None,
    log_latency: bool = False,
    label_size: str | float = LABEL_SIZE,
    ax: Axes | None = None,
) -> Figure:
    """Latency against quality, one labelled point per setting; the Pareto frontier of the two axes drawn
    (no setting both faster and better) is joined by a line and drawn in full colour, the others faded.

    Labels never overprint (:func:`place_labels`): each takes a free place near its point, with a leader
    line when it had to move away; frontier labels are placed first, and where the plot is too crowded
    a dominated setting's label is left out (its point stays). No label sits under the ring of the
    highlighted setting.

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
        Column whose groups get their own colour and one legend entry each (default: ``method`` when the
        table holds several, else ``device``).
    label_size : str or float
        Font size of the point labels (default :data:`LABEL_SIZE`).

    Notes
    -----
    The frontier marked is that of the axes drawn, by :func:`~lirlab.analysis.sweeps.frontier` (the
    definition behind a sweep's ``on_front``), so a plot of another quality than the sweep's marks that
    quality's frontier.
    """
    if table.empty:
        raise ValueError("the sweep table has no rows to draw")
    if label not in table.columns:
        raise ValueError(
            f"the table has no {label!r} column: plot a table made by lirlab.analysis.sweeps.sweep"
        )
    quality = quality or quality_column(table)
    if by is None:
        by = "method" if "method" in table.columns and table["method"].nunique() > 1 else "device"
    group = by if by in table.columns and table[by].nunique() > 1 else None
    front = frontier(table, quality, latency)
    labels = table[label]
    ax = ax if ax is not None else Figure(figsize=(6.4, 4.2), layout="constrained").add_subplot()
    palette = colormaps["tab10"].colors
    groups = table.groupby(group, sort=False) if group else [(None, table)]
    handles = []
    for i, (name, rows) in enumerate(groups):
        color = palette[i % len(palette)]
        on = rows[front[rows.index]].sort_values(latency)
        off = rows[~front[rows.index]]
        ax.plot(on[latency], on[quality], marker="o", color=color)
        ax.scatter(off[latency], off[quality], color=color, alpha=0.35)
        if name is not None:
            handles.append(Line2D([], [], marker="o", color=color, label=str(name)))
    if group is None:
        color = palette[0]
        handles = [
            Line2D([], [], marker="o", color=color, label="on the frontier"),
            Line2D([], [], marker="o", linestyle="none", color=color, alpha=0.35, label="dominated"),
        ]
    rings = {}
    if highlight is not None:
        if highlight not in table.index:
            raise ValueError(f"no row {highlight!r} to highlight")
        ring = ax.scatter(
            [table.loc[highlight, latency]],
            [table.loc[highlight, quality]],
            s=RING_SIZE,
            facecolors="none",
            edgecolors="#d62728",
            linewidths=RING_WIDTH,
            label="current setting",
            zorder=3,
        )
        handles.append(ring)
        rings[table.index.get_loc(highlight)] = np.sqrt(RING_SIZE) / 2 + RING_WIDTH
    if log_latency:
        ax.set_xscale("log")
    ax.set_xlabel(
        f"{latency.removesuffix('_ms')} latency per query (ms)" if latency.endswith("_ms") else latency
    )
    ax.set_ylabel(quality)
    ax.set_title(
        "Latency against quality: the frontier joined, dominated settings faded"
        if group
        else "Latency against quality, one point per setting"
    )
    ax.legend(handles=handles, frameon=False, fontsize="small")
    place_labels(
        ax,
        table[latency].to_numpy(dtype=float),
        table[quality].to_numpy(dtype=float),
        [str(labels[i]) for i in table.index],
        priority=front.to_numpy(),
        fontsize=label_size,
        keep_clear=rings,
    )
    return ax.figure
