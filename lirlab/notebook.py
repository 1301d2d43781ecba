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
