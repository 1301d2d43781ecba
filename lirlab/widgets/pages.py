"""PageExplorer: search page images, see the hits as thumbnails, and see where on the page each query
token found its match.

A notebook cell ending in an explorer shows it; :class:`~lirlab.widgets.search.SearchExplorer` given an
index of pages becomes one. Search runs when Enter is pressed. The hits show as thumbnails with their
scores; picking one (its button, or the hit list) draws its patch heatmap over the page
(:func:`~lirlab.analysis.pages.page_hit`, drawn by :func:`~lirlab.plots.pages.page_figure` as a plotly
figure at the size it is shown). The map buttons choose what is drawn: the whole query (sum or max over
its real tokens), or one query token, whose best patch is then outlined; the augmentation buffers have a
row of buttons of their own. Hovering a patch names the query token, its cosine and what the patch adds
to the score. Under the page, a table lists every query token's best patch. For a compressed index given
the exact page vectors, the hover label also gives each patch's reconstruction cosine; for a pooled
index, how many patches its vector merged (and the outline covers them all).

Every element carries a CSS class (``lirlab-query``, ``lirlab-message``, ``lirlab-results``,
``lirlab-thumbnail``, ``lirlab-hit``, ``lirlab-page-map``, ``lirlab-page-buffers``, ``lirlab-heatmap``,
``lirlab-page-heatmap``, ``lirlab-page-best``) so browser tests can find it.

Examples
--------
>>> pages = data.load("demo-pages")  # doctest: +SKIP
>>> explorer = PageExplorer(index, pages=pages)  # doctest: +SKIP
>>> explorer.query.value = "how do bees make honey"  # doctest: +SKIP
>>> explorer.heatmap_data.best_patches()  # doctest: +SKIP
"""

from __future__ import annotations

import html
import io
import json
import warnings
from collections.abc import Callable, Mapping

import ipywidgets as widgets

from lirlab.analysis.alignment import search_text
from lirlab.analysis.pages import PageHeatmap, page_hit
from lirlab.index.base import K_PARAM, Index
from lirlab.plots.pages import page_figure
from lirlab.widgets import scroll_window, scrolling, show_png

EMPTY_QUERY = "Type a query and press Enter."
#: Longest side of a result thumbnail, in pixels.
THUMBNAIL_PX = 120
#: Most pixels the table of each query token's best patch takes before it scrolls.
BEST_PX = 300
#: Columns of the best-patch table under the page.
BEST_COLUMNS = ("query_label", "patch", "cosine", "adds", "contribution", "matched")


def page_images(pages) -> Callable:
    """A function from docno to the page's PIL image, from what a user has at hand.

    ``pages`` may be a page :class:`~lirlab.data.Dataset` (``data.load("demo-pages")``), a sequence of
    :class:`~lirlab.page_data.Page` records, a mapping of docno to PIL images (or to records), or a
    function of the docno.
    """
    if callable(pages) and not isinstance(pages, Mapping):
        return pages
    records = pages if isinstance(pages, Mapping) else {p.docno: p for p in getattr(pages, "docs", pages)}

    def image(docno: str):
        try:
            record = records[docno]
        except KeyError:
            raise ValueError(f"no page image for {docno!r}: pass pages= holding every indexed page") from None
        return record.image() if hasattr(record, "image") else record

    return image


def holds_pages(index, encoder=None) -> bool:
    """Whether ``index`` holds page images: its stored vectors carry regions, or its encoder (or
    ``encoder``) encodes pages."""
    from lirlab.page_encoder import PageEncoder

    if isinstance(encoder if encoder is not None else getattr(index, "encoder", None), PageEncoder):
        return True
    if not isinstance(index, Index):
        return False
    live = index.live_positions()
    try:
        return len(live) > 0 and index.documents(live[:1]).regions is not None
    except NotImplementedError:  # a kind that keeps no vectors to hand back
        return False


def _thumbnail_png(image) -> bytes:
    picture = image.convert("RGB")
    picture.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


class PageExplorer:
    """Search an index of page images and inspect each hit's patch heatmap.

    Parameters
    ----------
    index : lirlab.index.base.Index
        An index over page vectors (any kind).
    encoder : optional
        Encodes the queries (default: ``index.encoder``), a :class:`~lirlab.page_encoder.PageEncoder`.
    k : int
        Hits shown per query.
    pages : Dataset, Page records, mapping or function
        The page images (see :func:`page_images`).
    exact : Encoding, optional
        The pages as the encoder produced them: a compressed index's heatmap then shows each patch's
        reconstruction cosine.
    texts : optional
        Read as ``pages`` when ``pages`` is not given (so ``SearchExplorer(index, texts=pages)`` works).

    Attributes
    ----------
    widget : ipywidgets.VBox
        The root box.
    query, message, results, hit, maps, buffers, heatmap, best :
        The elements (``Text``, ``HTML``, ``HBox`` of thumbnails, ``Dropdown``, two ``ToggleButtons``,
        ``Output`` showing the plotly figure, ``HTML``).
    figure : plotly.graph_objects.Figure or None
        The page map drawn last.
    run : pandas.DataFrame or None
        The last search's run.
    heatmap_data : PageHeatmap or None
        The heatmap drawn last.
    shown : str
        The map drawn: ``"sum"``, ``"max"`` or a query token's position.
    """

    def __init__(self, index, encoder=None, k: int = 6, pages=None, exact=None, texts=None):
        k = K_PARAM.validate(k)
        pages = pages if pages is not None else texts  # SearchExplorer's name for what documents show
        if pages is None:
            raise ValueError(
                "PageExplorer draws over the page images: pass pages=... (e.g. the page dataset)"
            )
        self.index = index
        self.encoder = encoder if encoder is not None else getattr(index, "encoder", None)
        if self.encoder is None:
            raise ValueError("PageExplorer needs an encoder: pass encoder=... or load the index with one")
        self.k = k
        self.image = page_images(pages)
        self.exact = exact
        self.run = None
        self.heatmap_data: PageHeatmap | None = None
        self.shown = "sum"
        self.focus: int | None = None
        self._encoded_query = None
        self._page = None
        self._updating = False

        self.query = widgets.Text(
            placeholder="Type a query and press Enter",
            description="query",
            continuous_update=False,
            layout=widgets.Layout(width="50%"),
        )
        self.query.add_class("lirlab-query")
        self.message = widgets.HTML(EMPTY_QUERY)
        self.message.add_class("lirlab-message")
        self.results = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap"))
        self.results.add_class("lirlab-results")
        self.hit = widgets.Dropdown(options=[], description="hit")
        self.hit.add_class("lirlab-hit")
        self.maps = widgets.ToggleButtons(options=[], description="map", style={"button_width": "auto"})
        self.maps.add_class("lirlab-page-map")
        self.buffers = widgets.ToggleButtons(
            options=[], description="buffers", style={"button_width": "auto"}
        )
        self.buffers.add_class("lirlab-page-buffers")
        self.figure = None
        self.heatmap = widgets.Output()
        self.heatmap.add_class("lirlab-heatmap")
        self.heatmap.add_class("lirlab-page-heatmap")
        self.best = scrolling(widgets.HTML(), BEST_PX)
        self.best.add_class("lirlab-page-best")
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.query, self.hit]),
                scroll_window([self.message, self.results, self.maps, self.buffers, self.heatmap, self.best]),
            ]
        )
        self.query.observe(lambda change: self.search(change["new"]), names="value")
        self.hit.observe(self._on_hit, names="value")
        self.maps.observe(self._on_map, names="value")
        self.buffers.observe(self._on_map, names="value")

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    # -- callbacks ------------------------------------------------------------------------------------

    def _on_hit(self, change) -> None:
        if not self._updating and change["new"] is not None:
            self.show_hit(change["new"])

    def _on_map(self, change) -> None:
        if self._updating or change["new"] is None:
            return
        self.show_map(change["new"])

    # -- actions --------------------------------------------------------------------------------------

    def _say(self, text: str, error: bool = False) -> None:
        color = "#b00020" if error else "#555555"
        self.message.value = f'<span style="color:{color}">{html.escape(text)}</span>' if text else ""

    def _clear(self) -> None:
        self.run, self.heatmap_data, self._encoded_query, self._page = None, None, None, None
        self.results.children = ()
        self.best.value = ""
        self._draw(None)
        self._set_options(self.hit, [])
        self._set_options(self.maps, [])
        self._set_options(self.buffers, [])

    def _set_options(self, toggle, options, value=None) -> None:
        self._updating = True
        try:
            toggle.options = options
            toggle.value = value
        finally:
            self._updating = False

    def _thumbnail(self, rank: int, docno: str, score: float):
        image = widgets.Image(format="png")
        try:
            show_png(image, _thumbnail_png(self.image(docno)))
        except (ValueError, OSError) as error:
            image = widgets.HTML(html.escape(str(error)))
        button = widgets.Button(
            description=f"{rank}. {docno} · {score:.3f}", tooltip=docno, layout=widgets.Layout(width="auto")
        )
        button.on_click(lambda _: self._pick(docno))
        box = widgets.VBox([image, button], layout=widgets.Layout(align_items="center", margin="0 6px 6px 0"))
        box.add_class("lirlab-thumbnail")
        return box

    def _pick(self, docno: str) -> None:
        self.hit.value = docno  # draws it through _on_hit

    def search(self, text: str) -> None:
        """Search ``text``, show the hits as thumbnails and the heatmap of the first one."""
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
        self._encoded_query, self.run = encoded, run
        self.results.children = [self._thumbnail(r.rank, r.docno, r.score) for r in run.itertuples()]
        options = [(f"{r.rank}. {r.docno} ({r.score:.3f})", r.docno) for r in run.itertuples()]
        self._set_options(self.hit, options, run.docno.iloc[0])
        self._say(" ".join(str(w.message) for w in caught))
        self.show_hit(run.docno.iloc[0])

    def show_hit(self, docno: str) -> None:
        """Draw the heatmap of the current query over page ``docno`` (the map chosen stays chosen)."""
        try:
            if self._encoded_query is None:
                raise ValueError("search a query first")
            heatmap = page_hit(self.index, self._encoded_query, docno, encoder=self.encoder, exact=self.exact)
            self._page = self.image(docno)
        except (ValueError, KeyError, OSError) as error:
            self.heatmap_data = None
            self._draw(None)
            self.best.value = ""
            self._say(f"Cannot explain {docno!r}: {error}", error=True)
            return
        self.heatmap_data = heatmap
        labels = heatmap.query_labels
        real = [(labels[q], str(q)) for q in range(len(labels)) if not heatmap.query_is_buffer[q]]
        buffers = [(labels[q], str(q)) for q in range(len(labels)) if heatmap.query_is_buffer[q]]
        shown = self.shown if self.shown in heatmap.maps() else "sum"
        self._set_options(
            self.maps,
            [("sum", "sum"), ("max", "max"), *real],
            shown if shown not in dict(buffers).values() else None,
        )
        self._set_options(self.buffers, buffers, shown if shown in dict(buffers).values() else None)
        self.buffers.layout.display = None if buffers else "none"
        self.best.value = self._best_table(heatmap)
        self.show_map(shown)

    def show_map(self, name: str) -> None:
        """Draw map ``name``: ``"sum"``, ``"max"``, or a query token's position (its best patch
        outlined); what clicking a map button does."""
        if self.heatmap_data is None:
            return
        self.shown = name
        self.focus = None if name in ("sum", "max") else int(name)
        is_buffer = self.focus is not None and bool(self.heatmap_data.query_is_buffer[self.focus])
        self._set_options(self.maps, self.maps.options, None if is_buffer else name)
        self._set_options(self.buffers, self.buffers.options, name if is_buffer else None)
        self._draw(page_figure(self.heatmap_data, self._page, name, focus=self.focus))

    def focus_query_token(self, position: int | None) -> None:
        """Outline query token ``position``'s best patch over its map (None: the sum map again)."""
        self.show_map("sum" if position is None else str(position))

    def _best_table(self, heatmap: PageHeatmap) -> str:
        best = heatmap.best_patches()
        head = "".join(f"<th>{c}</th>" for c in BEST_COLUMNS)
        rows = []
        for row in best.itertuples():
            style = ' style="color:#888"' if row.is_buffer else ""
            cells = [html.escape(str(row.query_label)), row.patch, f"{row.cosine:.3f}", f"{row.adds:.3f}"]
            cells += [f"{row.contribution:.3f}", html.escape(str(row.matched))]
            rows.append(f"<tr{style}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        return f'<table class="lirlab-page-best-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'

    def _draw(self, figure) -> None:
        """Show ``figure`` (a plotly Figure), or nothing, as the output of the heatmap widget: the whole
        figure reaches the browser in one message, drawn by JupyterLab's plotly renderer (a
        ``FigureWidget`` made or updated after display sometimes stayed blank, its data arriving after
        its first drawing)."""
        self.figure = figure
        if figure is None:
            self.heatmap.outputs = ()
            return
        bundle = {
            "application/vnd.plotly.v1+json": json.loads(figure.to_json()),
            "text/plain": "page heatmap",
        }
        self.heatmap.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)
