"""Jupyter conveniences for the teaching notebooks.

lirlab raises errors whose message already says what went wrong and how to fix it (no model reachable,
dataset folder missing, a knob out of range). In a notebook such an error arrives under a long
traceback through library code the reader never wrote. :func:`brief_errors` makes IPython show those
errors as one line; ``%tb`` still prints the full traceback, and errors raised outside lirlab keep
theirs.

Examples
--------
Whether an error is lirlab's own is read from where it was raised:

>>> from lirlab import data
>>> try:
...     data.load("./no-such-folder")
... except FileNotFoundError as e:
...     raised_by_lirlab(e.__traceback__)
True
>>> try:
...     int("seven")
... except ValueError as e:
...     raised_by_lirlab(e.__traceback__)
False
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

PACKAGE_DIR = Path(__file__).resolve().parent

#: Exception types lirlab raises with a message meant for the user (``ModelLoadError`` is a
#: ``RuntimeError``; ``ArtifactError`` a ``ValueError``; a missing dataset a ``FileNotFoundError``).
BRIEF_TYPES = (ValueError, KeyError, OSError, RuntimeError)


def raised_by_lirlab(tb: TracebackType | None) -> bool:
    """Whether the innermost frame of a traceback is lirlab's own code."""
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(PACKAGE_DIR)


def _show(shell, etype, value, tb, tb_offset=None):
    if raised_by_lirlab(tb):
        shell.showtraceback((etype, value, tb), exception_only=True)
    else:
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)


def brief_errors(shell=None) -> None:
    """Show lirlab's own errors in IPython/Jupyter as their one-line message instead of a traceback.

    Call it once at the top of a notebook; outside IPython it does nothing.

    Parameters
    ----------
    shell : IPython.core.interactiveshell.InteractiveShell, optional
        Default: the running IPython shell, if any.

    Examples
    --------
    >>> brief_errors()  # at the top of a notebook; here, outside IPython, it changes nothing
    """
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return
        shell = get_ipython()
    if shell is not None:
        shell.set_custom_exc(BRIEF_TYPES, _show)


class ScrollBox:
    """A table shown in a window of bounded height that scrolls, so that a long table keeps the
    notebook's figures on one screen; what :func:`scroll_box` returns.

    >>> import pandas as pd
    >>> box = scroll_box(pd.DataFrame({"token": ["bee"] * 40}), max_height_px=300)
    >>> 'class="lirlab-scroll"' in box._repr_html_() and "max-height: 300px" in box._repr_html_()
    True
    >>> repr(box).splitlines()[1]  # the table as text, where HTML is not shown
    '0    bee'
    """

    def __init__(self, html: str, text: str, max_height_px: int):
        self.html, self.text, self.max_height_px = html, text, max_height_px

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        return (
            f'<div class="lirlab-scroll" style="max-height: {self.max_height_px}px; overflow: auto">'
            f"{self.html}</div>"
        )


def scroll_box(table, max_height_px: int = 360) -> ScrollBox:
    """Show ``table`` (a DataFrame, or anything with ``to_html``) in a window ``max_height_px`` high."""
    if not isinstance(max_height_px, int) or max_height_px < 50:
        raise ValueError(f"max_height_px must be a whole number of pixels >= 50, got {max_height_px!r}")
    return ScrollBox(table.to_html(), str(table), max_height_px)
