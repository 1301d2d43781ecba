"""ipywidgets explorers: thin views over the analysis functions."""

from __future__ import annotations

import struct


def png_size(png: bytes) -> tuple[int, int]:
    """``(width, height)`` in pixels of PNG bytes, read from the header.

    >>> import io
    >>> from matplotlib.figure import Figure
    >>> buffer = io.BytesIO()
    >>> Figure(figsize=(2, 1)).savefig(buffer, format="png", dpi=50)
    >>> png_size(buffer.getvalue())
    (100, 50)
    """
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not PNG bytes")
    return struct.unpack(">II", png[16:24])


def show_png(image, png: bytes) -> None:
    """Show ``png`` in the ``ipywidgets.Image`` ``image`` at its own pixel size: a flex box would
    otherwise stretch it to the box's width (and scale it up, blurred)."""
    width, height = png_size(png)
    image.value = png
    image.layout.width, image.layout.height = f"{width}px", f"{height}px"
    image.layout.max_width = "none"
