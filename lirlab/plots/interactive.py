"""Interactive (plotly) figures of a token :class:`~lirlab.analysis.alignment.Alignment`, for the explorers.

Plotly draws in the browser at the size the figure is shown, and its hover labels need no round trip
to the kernel, so a student points at a cell and reads the two tokens, their cosine and what the cell
adds to the score. It is a well-kept library whose JavaScript ships inside the Python package (it runs
offline in JupyterLab, through ``anywidget`` for :class:`plotly.graph_objects.FigureWidget`). The
matplotlib figures of :mod:`lirlab.plots.alignment` stay for ``lirlab demo``, papers and ``savefig``.

:func:`alignment_figure` lays out, top to bottom: each query token's MaxSim contribution as a bar, the
query tokens' names right under their bars, and the document × query heatmap with every query token's
best match ringed, and, when the alignment knows how well each stored document vector reconstructs the
exact one (a compressed index), those cosines as grey bars beside the heatmap. Its height grows with
the document's rows and its width with the query's tokens (:data:`ROW_PX`, :data:`COLUMN_PX`), closing
up to fit a notebook's output area (:data:`~lirlab.plots.OUTPUT_AREA_PX`); window long documents first.

Examples
--------
>>> import torch
>>> from lirlab.analysis.alignment import align_vectors
>>> a = align_vectors(torch.eye(2), torch.tensor([[1.0, 0.0], [0.6, 0.8]]), ["cal", "##dera"], ["[CLS]", "x"])
>>> fig = alignment_figure(a)
>>> [trace.type for trace in fig.data]
['bar', 'heatmap', 'scatter']
>>> fig.layout.height == figure_size(a)[1]
True
"""

from __future__ import annotations

import numpy as np

from lirlab.analysis.alignment import Alignment
from lirlab.plots import OUTPUT_AREA_PX
from lirlab.plots.alignment import COSINE_COLOR, ELISION, query_colors

#: Most pixels per heatmap row (document token) and column (query token); rows close up to
#: :data:`MIN_ROW_PX` and columns to :data:`MIN_COLUMN_PX` so that the figure fits the output area.
ROW_PX, COLUMN_PX = 18, 30
MIN_ROW_PX, MIN_COLUMN_PX = 13, 16
#: Height of the contribution bars and of the query-token labels under them, in pixels.
BARS_PX, LABELS_PX = 110, 80
#: Pixels per character of the document-token labels (left margin).
CHAR_PX = 7
#: Pixels per character of the title (13-px font), for its line length.
TITLE_CHAR_PX = 7.5
#: Width of the stored-vs-exact cosine bars beside the heatmap, and the gap before them, in pixels.
COSINE_PX, COSINE_GAP_PX = 110, 12
#: Margins: above (a two-line title), below (the cosine bars' axis), right (the colour bar).
TOP_PX, BOTTOM_PX, RIGHT_PX = 70, 50, 90


def _doc_labels(alignment: Alignment) -> list[str]:
    """Document row labels, made unique (plotly merges equal category names) with an invisible suffix."""
    elided = alignment.elided_before
    labels = []
    for i, label in enumerate(alignment.doc_labels):
        text = f"{ELISION} {label}" if elided[i] else label
        labels.append(text + "\u200b" * i)
    return labels


def _title(alignment: Alignment) -> str:
    title = f"{alignment.docno or 'document'}: MaxSim {alignment.score:.3f}"
    cosine = alignment.reconstruction_cosine
    if cosine is not None:
        title += f"<br>grey bars: cosine of each stored vector with the exact one, mean {float(np.mean(cosine)):.3f}"
    return title


def _layout(alignment: Alignment, title: str) -> dict[str, int]:
    """Pixel sizes: the figure's width and height, the left margin, the row and column pitch."""
    n_query, n_doc = alignment.similarity.shape
    max_width, max_height = OUTPUT_AREA_PX[0] - 10, OUTPUT_AREA_PX[1] - 10
    left = 40 + CHAR_PX * max((len(label) for label in alignment.doc_labels), default=4)
    cosine = COSINE_GAP_PX + COSINE_PX if alignment.reconstruction_cosine is not None else 0
    room = max_width - left - cosine - RIGHT_PX
    column = int(np.clip(room // max(n_query, 1), MIN_COLUMN_PX, COLUMN_PX))
    row = int(
        np.clip((max_height - TOP_PX - BARS_PX - LABELS_PX - BOTTOM_PX) // max(n_doc, 1), MIN_ROW_PX, ROW_PX)
    )
    title_px = 20 + TITLE_CHAR_PX * max(len(line) for line in title.split("<br>"))
    width = max(360, left + column * n_query + cosine + RIGHT_PX, min(max_width, int(title_px)))
    height = max(260, TOP_PX + BARS_PX + LABELS_PX + row * n_doc + BOTTOM_PX)
    return {"width": int(width), "height": int(height), "left": left, "row": row, "column": column}


def figure_size(alignment: Alignment) -> tuple[int, int]:
    """``(width, height)`` in pixels the figure is drawn at: proportional to the query's tokens and the
    document's rows, closing up to fit the output area, never below a readable minimum."""
    layout = _layout(alignment, _title(alignment))
    return layout["width"], layout["height"]


def alignment_figure(alignment: Alignment, title: str | None = None):
    """The alignment as a plotly Figure: contribution bars with the query tokens under them, and the
    heatmap below with a hover label per cell.

    Parameters
    ----------
    alignment : Alignment
        What to draw (merged and windowed as it should be shown).
    title : str, optional
        Default: the document id and its MaxSim score.

    Returns
    -------
    plotly.graph_objects.Figure
        Traces: the bars (one per query token, in the query's colours), the heatmap, the rings on the
        best matches. Wrap it in ``plotly.graph_objects.FigureWidget`` for click callbacks.

    Raises
    ------
    ValueError
        The document has no tokens to draw.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    n_query, n_doc = alignment.similarity.shape
    if n_doc == 0:
        raise ValueError("nothing to draw: the document has no tokens")
    reconstruction = alignment.reconstruction_cosine
    if title is None:
        title = _title(alignment)
    size = _layout(alignment, title)
    width, height = size["width"], size["height"]
    heat_px, heat_width = size["row"] * n_doc, size["column"] * n_query
    plot_px = BARS_PX + LABELS_PX + heat_px
    plot_width = width - size["left"] - RIGHT_PX
    subplots = {"rows": 2, "row_heights": [BARS_PX / plot_px, heat_px / plot_px]}
    if reconstruction is not None:  # the stored-vs-exact cosines beside the heatmap's rows
        cosine_width = plot_width - heat_width - COSINE_GAP_PX
        subplots.update(
            cols=2,
            column_widths=[heat_width / plot_width, cosine_width / plot_width],
            horizontal_spacing=COSINE_GAP_PX / plot_width,
            specs=[[{}, None], [{}, {}]],
        )
    else:
        subplots.update(cols=1)
    fig = make_subplots(**subplots, vertical_spacing=LABELS_PX / plot_px)
    columns = [f"{i}:{label}" for i, label in enumerate(alignment.query_labels)]
    names = list(alignment.query_labels)
    doc_labels = _doc_labels(alignment)
    best = alignment.best_doc_token
    colors = query_colors(alignment)
    similarity = np.asarray(alignment.similarity, dtype=float)

    best_text = [doc_labels[b].rstrip("\u200b") if b >= 0 else "none" for b in best]
    fig.add_trace(
        go.Bar(
            x=columns,
            y=alignment.contributions,
            marker_color=colors,
            customdata=np.stack([names, best_text], axis=1),
            hovertemplate="query token %{customdata[0]}<br>best match %{customdata[1]}"
            "<br>adds %{y:.3f} to the score<extra></extra>",
            name="contribution",
        ),
        row=1,
        col=1,
    )
    # cell (document row r, query column q): what it adds to the score is its similarity when it is q's
    # best match, nothing otherwise
    adds = np.where(np.arange(n_doc)[None, :] == best[:, None], similarity, 0.0)
    query_names = np.broadcast_to(np.asarray(names, dtype=object)[None, :], (n_doc, n_query))
    doc_names = np.broadcast_to(
        np.asarray([d.rstrip("\u200b") for d in doc_labels], dtype=object)[:, None], (n_doc, n_query)
    )
    cells = [query_names, doc_names, adds.T]
    hover = (
        "query token %{customdata[0]}<br>document token %{customdata[1]}"
        "<br>cosine %{z:.3f}<br>adds %{customdata[2]:.3f} to the score"
    )
    if reconstruction is not None:
        cells.append(np.broadcast_to(np.asarray(reconstruction, dtype=float)[:, None], (n_doc, n_query)))
        hover += "<br>stored vs exact vector: cosine %{customdata[3]:.3f}"
    fig.add_trace(
        go.Heatmap(
            z=similarity.T,
            x=columns,
            y=doc_labels,
            colorscale="Viridis",
            zmin=min(0.0, float(np.nanmin(similarity))),
            zmax=1.0,
            customdata=np.stack(cells, axis=-1),
            hovertemplate=hover + "<extra></extra>",
            colorbar={
                "title": {"text": "cosine"},
                "len": min(1.0, 200 / max(heat_px, 1)),
                "y": 0,
                "yanchor": "bottom",
            },
            name="similarity",
        ),
        row=2,
        col=1,
    )
    matched = np.flatnonzero(best >= 0)
    fig.add_trace(
        go.Scatter(
            x=[columns[q] for q in matched],
            y=[doc_labels[best[q]] for q in matched],
            mode="markers",
            marker={
                "symbol": "square-open",
                "size": min(size["row"], size["column"]) - 2,
                "line": {"width": 2.5, "color": [colors[q] for q in matched]},
                "color": [colors[q] for q in matched],
            },
            hoverinfo="skip",
            name="best match",
        ),
        row=2,
        col=1,
    )
    if reconstruction is not None:
        cosine = np.asarray(reconstruction, dtype=float)
        fig.add_trace(
            go.Bar(
                x=cosine,
                y=doc_labels,
                orientation="h",
                marker_color=COSINE_COLOR,
                customdata=[d.rstrip("\u200b") for d in doc_labels],
                hovertemplate="%{customdata}: stored vs exact vector, cosine %{x:.3f}<extra></extra>",
                name="stored vs exact",
            ),
            row=2,
            col=2,
        )
        fig.update_xaxes(
            range=[max(-1.0, float(cosine.min()) - 0.02), 1.0],
            title_text="cos(stored, exact)",
            title_font={"size": 11},
            tickfont={"size": 11},
            row=2,
            col=2,
        )
        fig.update_yaxes(matches="y2", showticklabels=False, row=2, col=2)
    fig.update_layout(
        width=width,
        height=height,
        title={"text": title, "x": 0, "xanchor": "left", "xref": "container", "font": {"size": 13}},
        margin={"l": size["left"], "r": RIGHT_PX, "t": TOP_PX, "b": BOTTOM_PX},
        showlegend=False,
        bargap=0.15,
        template="plotly_white",
        modebar={"orientation": "v"},
    )
    tick_labels = {"tickmode": "array", "tickvals": columns, "ticktext": names, "tickangle": -90}
    fig.update_xaxes(**tick_labels, row=1, col=1)
    fig.update_xaxes(**tick_labels, matches="x", showticklabels=False, row=2, col=1)
    fig.update_yaxes(title_text="MaxSim contribution", row=1, col=1)
    fig.update_yaxes(range=[n_doc - 0.5, -0.5], tickfont={"size": 11}, row=2, col=1)
    fig.update_xaxes(range=[-0.5, n_query - 0.5], row=1, col=1)
    return fig
