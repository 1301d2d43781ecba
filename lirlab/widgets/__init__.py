"""ipywidgets explorers: thin views over the analysis functions."""

from __future__ import annotations

import struct

from lirlab.plots import OUTPUT_AREA_PX

#: Height of an explorer's first row (the query box, and the hit picker where there is one) with its
#: margins, in pixels.
QUERY_ROW_PX = 46
#: Most pixels an explorer's body (under its query box) takes before it scrolls: the explorer as a
#: whole then fits the viewport, with its query box always on screen.
BODY_PX = OUTPUT_AREA_PX[1] - QUERY_ROW_PX


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


def scrolling(widget, max_height_px: int):
    """``widget`` kept at most ``max_height_px`` high, scrolling beyond (class ``lirlab-scroll``)."""
    widget.layout.max_height = f"{max_height_px}px"
    widget.layout.overflow = "auto"
    widget.layout.flex = "0 0 auto"
    widget.add_class("lirlab-scroll")
    return widget


def scroll_window(children):
    """A ``VBox`` of ``children`` at most :data:`BODY_PX` high, scrolling beyond (classes
    ``lirlab-scroll`` and ``lirlab-body``): how an explorer keeps to one screen under its query box."""
    import ipywidgets as widgets

    box = scrolling(widgets.VBox(list(children)), BODY_PX)
    box.add_class("lirlab-body")
    return box
