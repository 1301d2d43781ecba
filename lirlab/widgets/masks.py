"""MaskExplorer: type a query, see how its ``[MASK]`` tokens weigh its terms.

A thin view over :func:`lirlab.analysis.masks.mask_weighting` and :func:`lirlab.plots.masks.plot_mask_overview`:
a query box (search runs on Enter), the term-weight and ``[MASK]`` assignment figure, a table of the
terms, and a message line for empty input and errors.

Examples
--------
>>> import torch
>>> from lirlab.encoding import Encoding
>>> docs = Encoding(("a",), torch.eye(2), torch.tensor([0, 1]), torch.tensor([0, 2]), ("x", "y"))
>>> explorer = MaskExplorer(None, docs)
>>> explorer.message.value
'Type a query and press Enter.'
>>> explorer.query.value = "volcanoes"
>>> explorer.message.value
'an encoder is needed to encode the query text'
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from lirlab.analysis.masks import MaskWeighting, as_index, mask_weighting, term_statistics
from lirlab.plots import SCREEN_DPI, figure_png
from lirlab.plots.masks import plot_mask_overview
from lirlab.widgets import scroll_window, show_png

TABLE_COLUMNS = {
    "label": "token",
    "idf": "IDF",
    "own": "own",
    "mask_share": "[MASK] share",
    "effective_weight": "effective weight",
    "n_masks": "[MASK]s",
}


EMPTY_QUERY = "Type a query and press Enter."


class MaskExplorer:
    """Interactive view of the ``[MASK]`` term weighting of one query at a time.

    Parameters
    ----------
    encoder : lirlab.encoder.ColBERT
        Encodes queries, with its own ``query_maxlen`` and ``attend_to_mask_tokens`` (change them with
        :meth:`~lirlab.encoder.ColBERT.with_config`).
    index_or_docs :
        An index of any kind, encoded documents, or texts (encoded once, here).
    query : str, optional
        A first query to show.
    docno : str, optional
        Weigh against this document; by default the mean over each query's ``top_k`` hits.
    top_k : int
        Hits averaged over when no ``docno`` is given.

    Attributes
    ----------
    widget : ipywidgets.VBox
        The root box; a notebook cell ending in the explorer shows it.
    query, plot, table, message :
        The query ``Text`` (class ``lirlab-query``), the figure ``Image`` (``lirlab-mask-plot``), the
        terms ``HTML`` table (``lirlab-mask-table``) and the message ``HTML`` (``lirlab-message``).
    result : MaskWeighting or None
        The analysis behind what is shown.
    """

    def __init__(
        self, encoder, index_or_docs, query: str | None = None, docno: str | None = None, top_k: int = 10
    ):
        self.encoder = encoder
        self.index = as_index(index_or_docs, encoder)
        self.statistics = term_statistics(self.index)
        self.docno = docno
        self.top_k = top_k
        self.result: MaskWeighting | None = None

        self.query = widgets.Text(
            placeholder="Type a query and press Enter",
            description="Query",
            continuous_update=False,
            layout=widgets.Layout(width="60%"),
        )
        self.query.add_class("lirlab-query")
        self.message = widgets.HTML()
        self.message.add_class("lirlab-message")
        self.plot = widgets.Image(format="png", layout=widgets.Layout(display="none"))
        self.plot.add_class("lirlab-mask-plot")
        self.table = widgets.HTML()
        self.table.add_class("lirlab-mask-table")
        self.widget = widgets.VBox([self.query, scroll_window([self.message, self.plot, self.table])])

        self.query.observe(self._on_query, names="value")
        if query:
            self.query.value = query
        else:
            self._clear(EMPTY_QUERY)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def _on_query(self, change) -> None:
        self.show(change["new"])

    def _clear(self, message: str) -> None:
        self.result = None
        self.message.value = html.escape(message)
        self.plot.layout.display = "none"  # an empty image shows as a broken-image icon
        self.plot.value = b""
        self.table.value = ""

    def show(self, text: str) -> None:
        """Analyse ``text`` and redraw; bad input only changes the message."""
        if not text.strip():
            self._clear(EMPTY_QUERY)
            return
        self._clear(f"Computing the [MASK] weighting of {text.strip()!r}…")
        try:
            result = mask_weighting(
                self.encoder, text, self.index, docno=self.docno, top_k=self.top_k, statistics=self.statistics
            )
        except ValueError as error:
            self._clear(str(error))
            return
        self.result = result
        show_png(self.plot, figure_png(plot_mask_overview(result), dpi=SCREEN_DPI))
        self.plot.layout.display = None
        self.table.value = (
            result.terms[list(TABLE_COLUMNS)]
            .rename(columns=TABLE_COLUMNS)
            .to_html(index=False, float_format="{:.3f}".format, border=0)
        )
        self.message.value = html.escape(self._summary(result))

    @staticmethod
    def _summary(result: MaskWeighting) -> str:
        against = (
            f"document {result.documents.docno.iloc[0]}"
            if len(result.documents) == 1
            else f"the mean over the top {len(result.documents)} documents"
        )
        if result.n_masks == 0:
            return (
                f"No [MASK] padding in this query (augmentation off, or the query fills query_maxlen): every "
                f"weight is the token's own. MaxSim {result.score:.3f}, {against}."
            )
        return (
            f"{result.n_masks} [MASK] tokens. MaxSim {result.score:.3f} with them, "
            f"{result.score_without_masks:.3f} without, {against}."
        )
