"""Figures fit a notebook's output area (993 × 757 px, JupyterLab at 1440×900 with the file browser open)
at the size they are drawn, with labels readable at that size.

Jupyter's inline backend shows a figure as a PNG saved with a tight bounding box at the figure's dpi, at
its pixel size: :func:`rendered_px` measures exactly that PNG.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from lirlab.analysis.alignment import align_vectors, window, window_together
from lirlab.plots import MIN_FONT_PT, OUTPUT_AREA_PX, figure_png
from lirlab.plots.alignment import plot_alignment, plot_alignments
from lirlab.plots.masks import plot_query_maxlen_curves
from lirlab.plots.training import plot_training_loss
from lirlab.widgets import png_size

WIDTH, HEIGHT = OUTPUT_AREA_PX
MIN_TEXT_PX = 11


def rendered_px(figure) -> tuple[int, int]:
    """Pixel size of the PNG Jupyter shows for ``figure`` (tight bounding box at the figure's dpi)."""
    return png_size(figure_png(figure, dpi=figure.dpi))


def text_px(text, figure) -> float:
    return text.get_fontsize() * figure.dpi / 72


def vectors(n: int, dim: int = 16, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, dim, generator=generator), dim=1)


def words(n: int, stem: str) -> list[str]:
    return [f"{stem}{i}" for i in range(n)]


def query_with_masks(n_words: int, n_masks: int) -> list[str]:
    return ["[CLS]", "[unused0]", *words(n_words, "query"), "[SEP]"] + ["[MASK]"] * n_masks


def test_an_alignment_of_24_rows_fits_the_output_area_with_its_labels_by_the_bars():
    # notebooks 01 and 02: a windowed hit of about 24 rows was drawn 952 px tall
    alignment = align_vectors(vectors(9), vectors(24, seed=1), words(9, "q"), words(24, "document"))
    figure = plot_alignment(alignment)
    width, height = rendered_px(figure)
    assert width <= WIDTH and height <= HEIGHT, (width, height)
    bars, heat = figure.axes[:2]
    assert heat.xaxis.get_ticks_position() == "top", "query tokens are named under their bars"
    labels = heat.get_xticklabels() + heat.get_yticklabels()
    assert min(text_px(t, figure) for t in labels) >= MIN_TEXT_PX


def test_window_with_max_rows_keeps_the_rows_that_add_most_and_fits():
    # notebook 08: a 59-row document against a 32-token query was drawn 1,095 × 1,766 px
    query = vectors(32)
    doc = vectors(59, seed=2)
    alignment = align_vectors(query, doc, query_with_masks(8, 21), words(59, "word"))
    windowed = window(alignment, context=1, max_rows=24)
    assert len(windowed.doc_tokens) == 24
    rows = pd.DataFrame({"row": alignment.best_doc_token, "adds": alignment.contributions})
    served = rows.groupby("row").adds.sum().sort_values(ascending=False)
    top = {alignment.doc_labels[r] for r in served.index[:24]}
    assert top <= set(windowed.doc_labels), "the rows that add most to the score are kept first"
    assert windowed.elided_before.any(), "left-out rows are marked"
    assert window(alignment, context=1).doc_labels == window(alignment, context=1, max_rows=None).doc_labels
    with pytest.raises(ValueError, match="max_rows"):
        window(alignment, max_rows=0)


def test_before_and_after_side_by_side_fit_the_output_area():
    # notebook 8's query and document: 32 query tokens (22 [MASK]) against 59 words, in two panels
    doc = vectors(59, seed=2)
    labels = ["[CLS]", "[Q]", "volcanic", "ash", "effects", "on", "aviation", "and", "climate", "[SEP]"]
    labels += ["[MASK]"] * 22
    rows = ["[CLS]", "[D]", *words(57, "summers")]
    before = align_vectors(vectors(32), doc, labels, rows)
    after = align_vectors(vectors(32, seed=5), doc, labels, rows)
    pair = window_together([before, after], context=1, max_rows=24)
    assert pair[0].doc_labels == pair[1].doc_labels
    assert all(len(a.doc_tokens) == 24 for a in pair)
    kept = set(pair[0].doc_labels)
    strongest = {a.doc_labels[a.best_doc_token[a.contributions.argmax()]] for a in (before, after)}
    assert strongest <= kept, "each model's strongest match is kept"
    figure = plot_alignments(
        {"untrained": pair[0], "trained": pair[1]},
        title="'volcanic ash effects on aviation and climate' x volcano-09",
    )
    width, height = rendered_px(figure)
    assert width <= WIDTH and height <= HEIGHT, (width, height)
    heats = figure.axes[1:4:2]
    assert all(len(h.get_xticklabels()) == 32 for h in heats)
    assert min(text_px(t, figure) for h in heats for t in h.get_xticklabels()) >= MIN_TEXT_PX
    assert not any(t.get_text() for t in heats[1].get_yticklabels()), "rows are named once, on the left"
    with pytest.raises(ValueError, match="same document rows"):
        plot_alignments({"a": before, "b": align_vectors(vectors(2), vectors(3))})
    with pytest.raises(ValueError, match="different document rows"):
        window_together([before, align_vectors(vectors(2), vectors(3))])


def test_min_font_is_eleven_pixels_at_the_screen_dpi():
    from lirlab.plots import SCREEN_DPI

    assert MIN_FONT_PT * SCREEN_DPI / 72 >= MIN_TEXT_PX


def test_the_loss_curve_has_whole_step_ticks_and_fits():
    # notebook 8's loss curve, drawn with plain matplotlib, had ticks at 2.5, 7.5, 12.5 ...
    log = pd.DataFrame({"step": range(1, 21), "loss": [2.0 / s for s in range(1, 21)]})
    log = pd.concat([log, pd.DataFrame({"step": [20], "loss": [None], "nDCG@10": [0.5]})])
    figure = plot_training_loss(log, title="training loss")
    ax = figure.axes[0]
    figure.canvas.draw()
    ticks = [t for t in ax.get_xticks().tolist() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert len(ticks) >= 3 and all(float(t).is_integer() for t in ticks), ticks
    width, height = rendered_px(figure)
    assert width <= WIDTH and height <= HEIGHT
    with pytest.raises(ValueError, match="no step with a loss"):
        plot_training_loss(log.iloc[-1:])


def test_two_mask_curves_side_by_side_fit():
    # notebook 8 drew them with pyplot at 13 in wide: 1,289 px
    curve = pd.DataFrame(
        {
            "query_maxlen": [0, 0, 8, 8, 16, 16, 32, 32, 32, 64, 64],
            "attend_to_mask_tokens": [False, True, False, True, False, True, False, True, False, False, True],
            "masks_used": [False, False, True, True, True, True, True, True, False, True, True],
            "nDCG@10": [0.6, 0.6, 0.5, 0.4, 0.55, 0.45, 0.58, 0.5, 0.6, 0.57, 0.52],
        }
    )
    figure = plot_query_maxlen_curves({"untrained": curve, "trained": curve.assign(**{"nDCG@10": 0.7})})
    width, height = rendered_px(figure)
    assert width <= WIDTH and height <= HEIGHT, (width, height)
    assert [ax.get_title() for ax in figure.axes[:2]] == [
        "untrained: nDCG@10 as query augmentation varies",
        "trained: nDCG@10 as query augmentation varies",
    ]
    assert len(figure.legends) == 1 and all(ax.get_legend() is None for ax in figure.axes)
