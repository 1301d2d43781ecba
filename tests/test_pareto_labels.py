"""Pareto plot labels never print over one another, nor over other points, however crowded the sweep."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

from lirlab.analysis.sweeps import pareto_front, setting_labels
from lirlab.plots.sweeps import MARKER_HALF, place_labels, plot_pareto


def crowded_sweep() -> pd.DataFrame:
    """33 settings with long labels packed along one curve (notebook 05's grid, shrunk): points a few
    pixels apart, so labels at one fixed offset would overprint."""
    rng = np.random.default_rng(0)
    rows = [
        {
            "device": "cpu",
            "n_probe": n_probe,
            "centroid_score_threshold": threshold,
            "p50_ms": 1 + 0.05 * np.log2(n_probe) + rng.normal(0, 0.01),
            "exhaustive_recall@10": min(1.0, 0.6 + 0.04 * np.log2(n_probe) + rng.normal(0, 0.005)),
        }
        for n_probe in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
        for threshold in (0.3, 0.45, 0.5)
    ]
    table = pd.DataFrame(rows)
    table["on_front"] = pareto_front(table, "p50_ms", "exhaustive_recall@10")
    table["setting"] = setting_labels(table)
    return table


def text_boxes(figure: Figure) -> list:
    """Each label's text box (leader line excluded) in display pixels, as drawn."""
    figure.draw_without_rendering()
    ax = figure.axes[0]
    return [Text.get_window_extent(t) for t in ax.texts]


def overlapping_pairs(boxes) -> list[tuple[int, int]]:
    return [(i, j) for i, a in enumerate(boxes) for j, b in enumerate(boxes) if i < j and a.overlaps(b)]


def test_crowded_pareto_labels_do_not_intersect_and_keep_clear_of_points():
    table = crowded_sweep()
    naive = Figure(figsize=(6.4, 4.2), layout="constrained").add_subplot()
    for x, y, text in zip(table.p50_ms, table["exhaustive_recall@10"], table.setting):
        naive.annotate(text, (x, y), textcoords="offset points", xytext=(4, 4), fontsize="x-small")
    assert len(overlapping_pairs(text_boxes(naive.figure))) > 20, "the example must be crowded"

    figure = plot_pareto(table)
    ax = figure.axes[0]
    boxes = text_boxes(figure)
    assert overlapping_pairs(boxes) == []
    texts = [t.get_text() for t in ax.texts]
    # at a readable size (LABEL_SIZE) about half of the 33 long labels find room
    assert len(texts) >= 16 and len(set(texts)) == len(texts)
    assert texts == [s for s in table.setting if s in texts], "labels are drawn in the table's order"
    left_out = set(table.setting) - set(texts)
    placed_front = table.on_front[table.setting.isin(texts)].mean()
    assert placed_front > table.on_front.mean(), (
        "frontier labels are placed first, dominated ones left out first"
    )
    assert set(table.setting[~table.on_front]) & left_out
    # no label covers another setting's marker, and each sits in the axes
    half = MARKER_HALF * figure.dpi / 72
    points = ax.transData.transform(table[["p50_ms", "exhaustive_recall@10"]].to_numpy())
    inside = ax.get_window_extent()
    for text, box in zip(ax.texts, boxes):
        own = table.index[table.setting == text.get_text()][0]
        for row, (px, py) in enumerate(points):
            if row != own:
                assert not (
                    box.x0 < px + half and px - half < box.x1 and box.y0 < py + half and py - half < box.y1
                )
        assert inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1
    # a label moved away from its point is joined to it by a leader line
    assert any(t.arrow_patch is not None for t in ax.texts)
    assert all(t.arrow_patch is None for t in ax.texts if np.hypot(*t.xyann) < 5)
    # the legend stays where the labels were placed around it
    legend = ax.get_legend().get_window_extent()
    assert not any(box.overlaps(legend) for box in boxes)
    figure.savefig(io.BytesIO(), format="png", dpi=80, bbox_inches="tight")
    assert overlapping_pairs(text_boxes(figure)) == []


def test_place_labels_keeps_every_label_when_there_is_room():
    ax = Figure(figsize=(4, 3)).add_subplot()
    x, y = [0.0, 1.0, 2.0], [0.0, 1.0, 2.0]
    ax.plot(x, y, "o")
    ax.set_xlim(-1, 3)
    ax.set_ylim(-1, 3)
    placed = place_labels(ax, x, y, ["a", "b", "c"], priority=[True, False, True])
    assert [p.get_text() for p in placed] == ["a", "b", "c"]
    assert [p.get_alpha() for p in placed] == [1.0, 0.6, 1.0]
    assert [p.xyann for p in placed] == [(4 / np.sqrt(2), 4 / np.sqrt(2))] * 3  # first choice: up right


def test_place_labels_counts_must_match():
    with pytest.raises(ValueError, match="2 y values for 1 labels"):
        place_labels(Figure().add_subplot(), [0.0], [0.0, 1.0], ["a"])


#: The smallest font, in pixels as the figure is shown, that a reader in a workshop can read.
READABLE_PX = 10.0


def font_px(text: Text, dpi: float) -> float:
    return text.get_fontsize() * dpi / 72


def methods_table() -> pd.DataFrame:
    """Notebook 07's sweep: five methods, two of them with two settings."""
    table = pd.DataFrame(
        {
            "device": "cpu",
            "method": ["flat", "plaid", "plaid", "warp", "warp", "muvera", "muvera", "flat, pool_factor=2"],
            "p50_ms": [4.0, 1.0, 2.0, 0.5, 0.9, 1.5, 2.5, 2.2],
            "exhaustive_recall@10": [1.0, 0.7, 0.9, 0.6, 0.8, 0.75, 0.95, 0.85],
        }
    )
    table["on_front"] = pareto_front(table, "p50_ms", "exhaustive_recall@10")
    table["setting"] = [f"setting {i}" for i in range(len(table))]
    return table


def test_the_legend_has_one_entry_per_group():
    table = methods_table()
    legend = plot_pareto(table, by="method").axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == list(table.method.unique())
    one_group = plot_pareto(table[table.method == "plaid"]).axes[0].get_legend()
    assert [t.get_text() for t in one_group.get_texts()] == ["on the frontier", "dominated"]


def test_point_labels_are_readable_at_the_dpi_the_figure_is_shown():
    figure = plot_pareto(methods_table(), by="method")
    shown_dpi = 100  # the notebook's inline figures (matplotlib's figure.dpi)
    sizes = [font_px(t, shown_dpi) for t in figure.axes[0].texts]
    assert sizes and min(sizes) >= READABLE_PX, sizes


def test_the_ring_of_the_current_setting_leaves_every_label_clear():
    table = crowded_sweep()
    for highlight in (0, int(np.flatnonzero(table.on_front)[-1]), len(table) // 2):
        figure = plot_pareto(table, highlight=highlight)
        ax = figure.axes[0]
        figure.draw_without_rendering()
        ring = ax.collections[-1]
        assert ring.get_label() == "current setting"
        cx, cy = ax.transData.transform(
            (table.p50_ms.iloc[highlight], table["exhaustive_recall@10"].iloc[highlight])
        )
        radius = (np.sqrt(ring.get_sizes()[0]) / 2 + ring.get_linewidths()[0]) * figure.dpi / 72
        for text in ax.texts:
            box = Text.get_window_extent(text)
            nearest_x = min(max(cx, box.x0), box.x1)
            nearest_y = min(max(cy, box.y0), box.y1)
            assert np.hypot(nearest_x - cx, nearest_y - cy) >= radius, (
                f"label {text.get_text()!r} under the ring of row {highlight}"
            )


def test_the_first_setting_an_explorer_draws_is_labelled_clear_of_its_ring():
    # one measured setting, as SweepExplorer first draws it: build knobs ride along in the row
    table = pd.DataFrame(
        {
            "method": ["plaid"],
            "device": ["cpu"],
            "nbits": [2],
            "n_centroids": [512],
            "kmeans_iterations": [4],
            "pool_factor": [1],
            "n_probe": [1],
            "centroid_score_threshold": [0.5],
            "ndocs": [256],
            "p50_ms": [65.1],
            "exhaustive_recall@10": [0.9167],
        }
    )
    table["setting"] = setting_labels(table)
    assert table.setting.tolist() == ["n_probe=1, centroid_score_threshold=0.5, ndocs=256"]
    figure = plot_pareto(table, highlight=0)
    figure.draw_without_rendering()
    ax = figure.axes[0]
    [label] = ax.texts
    ring = ax.collections[-1]
    cx, cy = ax.transData.transform((65.1, 0.9167))
    radius = (np.sqrt(ring.get_sizes()[0]) / 2 + ring.get_linewidths()[0]) * figure.dpi / 72
    box = Text.get_window_extent(label)
    nearest = np.hypot(min(max(cx, box.x0), box.x1) - cx, min(max(cy, box.y0), box.y1) - cy)
    assert nearest >= radius
