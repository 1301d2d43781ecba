"""Matplotlib figures of analysis results; they compute nothing of their own."""

from __future__ import annotations

import io

from matplotlib.figure import Figure


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
