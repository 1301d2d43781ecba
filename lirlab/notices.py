"""lirlab's notices: the warning category they share and how they show in a notebook.

Python shows a warning as ``file:line: Category: message`` followed by the source line that raised
it; in a notebook the file is an ipykernel temp file and the block sits in the cell's stderr area.
lirlab's notices (every warning whose category is a class defined in a ``lirlab`` module:
``NotColBERTWarning``, ``FewerResultsWarning``, ``EncoderMismatchWarning``, ``DriftWarning``,
:class:`LirlabWarning`) are meant for the reader of the notebook, so inside an IPython kernel they are
shown as one line, ``lirlab: message`` (in a notebook, an amber ``⚠`` line in the cell's output; on
the command line, a line on standard error: ``lirlab`` commands run under :func:`one_line_notices`).
What a long step reports when it ends (``trained 20 steps in 4.5 min``) is no warning: :func:`inform`
says it on one line the same way, without the ``⚠``.

Only lirlab's categories are affected: :func:`install` wraps :func:`warnings.showwarning` and hands
every other warning to the function it replaced, unchanged; filters (``warnings.simplefilter`` and
friends) apply as before, since they run before ``showwarning``. It is installed when ``lirlab`` is
imported inside an IPython kernel, and :func:`uninstall` puts the previous function back.

Examples
--------
>>> import warnings
>>> is_lirlab_category(LirlabWarning), is_lirlab_category(UserWarning)
(True, False)
>>> one_line(LirlabWarning("3 of 10 results:\\n   the index holds 3 documents"))
'lirlab: 3 of 10 results: the index holds 3 documents'
"""

from __future__ import annotations

import contextlib
import sys
import warnings


class LirlabWarning(UserWarning):
    """A lirlab notice with no more specific category of its own."""


def is_lirlab_category(category) -> bool:
    """Whether ``category`` is one of lirlab's own warning classes (defined in a ``lirlab`` module)."""
    if not (isinstance(category, type) and issubclass(category, Warning)):
        return False
    module = getattr(category, "__module__", "") or ""
    return module == "lirlab" or module.startswith("lirlab.")


def one_line(message: Warning | str) -> str:
    """The notice as one line: ``lirlab: `` and the message with its whitespace collapsed."""
    return "lirlab: " + " ".join(str(message).split())


_previous = None


def _show(message, category, filename, lineno, file=None, line=None):
    if not is_lirlab_category(category):
        return _previous(message, category, filename, lineno, file, line)
    text = one_line(message)
    if file is None and _in_kernel():
        _display(text, "#7a5a00", "&#9888; ")
        return None
    stream = file if file is not None else sys.stderr
    try:
        stream.write(text + "\n")
    except (OSError, AttributeError):  # a closed or missing stream: nowhere to show it, as in warnings
        pass
    return None


def inform(message: str) -> None:
    """Say ``message`` on one line: in a notebook, a plain line in the cell's output (not the pink
    standard-error area); elsewhere ``lirlab: message`` on standard error."""
    text = one_line(message)
    if _in_kernel():
        _display(text, "#555", "")
        return
    try:
        sys.stderr.write(text + "\n")
    except (OSError, AttributeError):  # a closed or missing stream: nowhere to say it
        pass


def _display(text: str, colour: str, mark: str) -> None:
    from IPython.display import display

    html = (
        f'<div style="color:{colour};font-family:var(--jp-ui-font-family,sans-serif);font-size:90%">'
        f"{mark}{_escape(text)}</div>"
    )
    display({"text/plain": text, "text/html": html}, raw=True)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _in_kernel() -> bool:
    """Whether this runs inside an IPython kernel (a notebook), not a terminal or a script."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # an IPython too old or half imported: treat as no kernel
        return False
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def install() -> None:
    """Show lirlab's notices on one line from now on (other warnings are shown as before)."""
    global _previous
    if warnings.showwarning is _show:
        return
    _previous = warnings.showwarning
    warnings.showwarning = _show


def uninstall() -> None:
    """Put back the ``warnings.showwarning`` that :func:`install` replaced."""
    global _previous
    if warnings.showwarning is _show and _previous is not None:
        warnings.showwarning = _previous
        _previous = None


@contextlib.contextmanager
def one_line_notices():
    """Within the block, lirlab's notices show as one line (put back as they were after it, unless they
    already were)."""
    installed_here = warnings.showwarning is not _show
    install()
    try:
        yield
    finally:
        if installed_here:
            uninstall()


def install_if_interactive() -> None:
    """:func:`install` when running inside an IPython kernel; nothing elsewhere (scripts, pytest)."""
    if _in_kernel():
        install()
