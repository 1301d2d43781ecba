"""Matplotlib figures of analysis results; they compute nothing of their own."""

from __future__ import annotations

import io

from matplotlib.figure import Figure

#: The area a notebook figure must fit, in pixels: JupyterLab's output column at 1440×900 with the file
#: browser open (993 wide) and the browser's viewport (757 high). Jupyter shows a PNG at its pixel size.
OUTPUT_AREA_PX = (993, 757)
#: Dots per inch the figures are drawn at, so that their inches give their pixels on screen.
SCREEN_DPI = 100
#: Smallest text a figure draws, in points: 8 pt is 11 px at :data:`SCREEN_DPI`.
MIN_FONT_PT = 8


def figure_png(figure: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (for an ``ipywidgets.Image`` or a file).

    >>> figure = Figure(figsize=(1, 1))
    >>> _ = figure.add_subplot().plot([0, 1])
    >>> figure_png(figure, dpi=20)[:4]
    b'\\x89PNG'
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()
