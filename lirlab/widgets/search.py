"""SearchExplorer: type a query, see the hits, and see why each one scored what it scored.

A notebook cell ending in an explorer shows it. Search runs when Enter is pressed; picking a hit redraws
its token alignment (:func:`~lirlab.analysis.alignment.align_hit`, drawn by
:func:`~lirlab.plots.interactive.alignment_figure` and :func:`~lirlab.plots.alignment.highlight_html`).
The heatmap is a plotly figure drawn at the size it is shown: hovering a cell names the two tokens,
their cosine and what the cell adds to the score; clicking a query token's bar outlines its match in
the text below.
Word pieces are merged into words when the checkbox is ticked, and documents longer than
:data:`LONG_DOCUMENT` rows are windowed around their matched tokens, to that many rows. For an index
that stores a reconstruction (PLAID) and document texts, grey bars beside the heatmap show how far each
reconstructed token vector is from the exact one (its cosine with the vector encoded afresh). The explorer computes nothing itself: it calls
:func:`~lirlab.analysis.alignment.search_text` and :func:`~lirlab.analysis.alignment.explain_hit`.

Every element carries a CSS class (``lirlab-query``, ``lirlab-results``, ``lirlab-hit``, ``lirlab-merge``,
``lirlab-heatmap``, ``lirlab-highlight``, ``lirlab-message``) so browser tests can find it.

Examples
--------
>>> explorer = SearchExplorer(index, texts=dataset)  # doctest: +SKIP
>>> explorer  # doctest: +SKIP
>>> explorer.query.value = "how does a caldera form"  # doctest: +SKIP
>>> explorer.alignment.matches()  # doctest: +SKIP
"""

from __future__ import annotations

import html
import warnings

import ipywidgets as widgets

from lirlab.analysis.alignment import Alignment, explain_hit, search_text
from lirlab.data import as_documents
from lirlab.index.base import K_PARAM
from lirlab.plots.alignment import highlight_html
from lirlab.plots.interactive import alignment_figure
from lirlab.widgets import scroll_window, scrolling

#: Documents with more rows than this (after merging word pieces) are windowed around their matches, to
#: at most this many rows: the heatmap then fits a notebook's output area (757 px high).
LONG_DOCUMENT = 30
#: Rows kept on each side of a matched row when windowing.
WINDOW_CONTEXT = 2
#: Characters of document text shown in the results table.
SNIPPET_CHARS = 120
#: Most pixels the results table takes before it scrolls: about five hits, the alignment right under.
RESULTS_PX = 170

EMPTY_QUERY = "Type a query and press Enter."


def _results_table(run, texts: dict[str, str]) -> str:
    """The run as an HTML table: rank, docno, score and, when known, the start of the text."""
    rows = []
    for hit in run.itertuples():
        text = texts.get(hit.docno, "")
        snippet = text[:SNIPPET_CHARS] + ("…" if len(text) > SNIPPET_CHARS else "")
        rows.append(
            f'<tr><td>{hit.rank}</td><td style="white-space: nowrap">{html.escape(str(hit.docno))}</td>'
            f"<td>{hit.score:.3f}</td><td>{html.escape(snippet)}</td></tr>"
        )
    return (
        '<table class="lirlab-results-table"><thead><tr><th>rank</th><th>docno</th><th>score</th>'
        f"<th>text</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


class SearchExplorer:
    """Search an index interactively and inspect each hit's token alignment.

    Parameters
    ----------
    index : FlatIndex or PlaidIndex
        What to search.
    encoder : lirlab.encoder.ColBERT, optional
        Encodes the queries (default: ``index.encoder``).
    k : int
        Hits shown per query.
    texts : mapping of docno to text, Dataset or documents, optional
        Document texts (as encoded, title included) for the results table and, for a PLAID index,
        the reconstruction cosine.

    Attributes
    ----------
    widget : ipywidgets.VBox
        The root box.
    query, results, hit, merge, heatmap, highlight, message :
        The elements (``Text``, ``HTML``, ``Dropdown``, ``Checkbox``, plotly ``FigureWidget``, ``HTML``,
        ``HTML``).
    run : pandas.DataFrame or None
        The last search's run.
    alignment : Alignment or None
        The alignment drawn last (merged and windowed as shown).
    """

    def __new__(cls, index=None, *args, **kwargs):
        """An index of page images (or ``pages=`` given) gets a :class:`~lirlab.widgets.pages.PageExplorer`."""
        from lirlab.widgets.pages import PageExplorer, holds_pages

        if cls is SearchExplorer and index is not None:
            if "pages" in kwargs or holds_pages(index, kwargs.get("encoder", args[0] if args else None)):
                return PageExplorer(index, *args, **kwargs)
        return super().__new__(cls)

    def __init__(self, index, encoder=None, k: int = 10, texts=None):
        k = K_PARAM.validate(k)
        self.index = index
        self.encoder = encoder if encoder is not None else getattr(index, "encoder", None)
        if self.encoder is None:
            raise ValueError("SearchExplorer needs an encoder: pass encoder=... or load the index with one")
        self.k = k
        self.texts = {d.docno: d.full_text for d in as_documents(texts)} if texts is not None else {}
        self.run = None
        self.alignment: Alignment | None = None
        self._encoded_query = None
        self._search_note = ""
        self._updating = False

        self.query = widgets.Text(
            placeholder="Type a query and press Enter",
            description="query",
            continuous_update=False,
            layout=widgets.Layout(width="45%"),
        )
        self.query.add_class("lirlab-query")
        self.message = widgets.HTML(EMPTY_QUERY)
        self.message.add_class("lirlab-message")
        self.results = scrolling(widgets.HTML(), RESULTS_PX)
        self.results.add_class("lirlab-results")
        self.hit = widgets.Dropdown(options=[], description="hit")
        self.hit.add_class("lirlab-hit")
        self.merge = widgets.Checkbox(value=True, description="merge word pieces", indent=False)
        self.merge.add_class("lirlab-merge")
        import plotly.graph_objects as go

        self.heatmap = go.FigureWidget()
        self.heatmap.add_class("lirlab-heatmap")
        self.focus: int | None = None
        self.highlight = widgets.HTML()
        self.highlight.add_class("lirlab-highlight")
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.query, self.hit, self.merge]),
                scroll_window([self.message, self.results, self.heatmap, self.highlight]),
            ]
        )

        self.query.observe(self._on_query, names="value")
        self.hit.observe(self._on_hit, names="value")
        self.merge.observe(self._on_merge, names="value")

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    # -- callbacks ------------------------------------------------------------------------------------

    def _on_query(self, change) -> None:
        self.search(change["new"])

    def _on_hit(self, change) -> None:
        if not self._updating and change["new"] is not None:
            self.show_hit(change["new"])

    def _on_merge(self, change) -> None:
        if self.hit.value is not None:
            self.show_hit(self.hit.value)

    # -- actions --------------------------------------------------------------------------------------

    def _say(self, text: str, error: bool = False) -> None:
        color = "#b00020" if error else "#555555"
        self.message.value = f'<span style="color:{color}">{html.escape(text)}</span>' if text else ""

    def _clear(self) -> None:
        self.run, self.alignment, self._encoded_query = None, None, None
        self.results.value = ""
        self._draw(None)
        self.highlight.value = ""
        self._updating = True
        try:
            self.hit.options = []
        finally:
            self._updating = False

    def search(self, text: str) -> None:
        """Search ``text`` and show the hits and the alignment of the first one."""
        self._clear()
        if not isinstance(text, str) or not text.strip():
            self._say(EMPTY_QUERY)
            return
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                run, encoded = search_text(self.index, text, k=self.k, encoder=self.encoder)
        except (ValueError, KeyError) as error:
            self._say(f"Cannot search: {error}", error=True)
            return
        if run.empty:
            self._say("No results")
            return
        self._encoded_query = encoded
        self.run = run
        self.results.value = _results_table(run, self.texts)
        self._updating = True
        try:
            self.hit.options = [(f"{r.rank}. {r.docno} ({r.score:.3f})", r.docno) for r in run.itertuples()]
            self.hit.value = run.docno.iloc[0]
        finally:
            self._updating = False
        self._search_note = " ".join(str(w.message) for w in caught)
        self.show_hit(run.docno.iloc[0])

    def show_hit(self, docno: str) -> None:
        """Draw the alignment of the current query with ``docno``."""
        try:
            if self._encoded_query is None:
                raise ValueError("search a query first")
            alignment, note = explain_hit(
                self.index,
                self._encoded_query,
                docno,
                encoder=self.encoder,
                document_text=self.texts.get(docno),
                merge=self.merge.value,
                long_document=LONG_DOCUMENT,
                context=WINDOW_CONTEXT,
            )
            figure = alignment_figure(alignment)
        except (ValueError, KeyError) as error:
            self._draw(None)
            self.highlight.value = ""
            self._say(f"Cannot explain {docno!r}: {error}", error=True)
            return
        self.alignment, self.focus = alignment, None
        self._draw(figure)
        self.highlight.value = highlight_html(alignment)
        self._say(" ".join(n for n in (self._search_note, note) if n))

    def focus_query_token(self, position: int | None) -> None:
        """Outline only query token ``position``'s match in the text (None: every match again); what
        clicking its bar does."""
        if self.alignment is None:
            return
        self.focus = position
        self.highlight.value = highlight_html(self.alignment, focus=position)

    def _draw(self, figure) -> None:
        """Show ``figure`` (a plotly Figure) in the heatmap widget, or nothing."""
        with self.heatmap.batch_update():
            self.heatmap.data = []
            if figure is None:
                self.heatmap.layout = {"width": 10, "height": 10}
                return
            self.heatmap.add_traces(list(figure.data))
            self.heatmap.layout = figure.layout
        self.heatmap.data[0].on_click(self._on_bar_click)

    def _on_bar_click(self, trace, points, state) -> None:
        if points.point_inds:
            position = int(points.point_inds[0])
            self.focus_query_token(None if position == self.focus else position)
