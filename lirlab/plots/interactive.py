"""Interactive (plotly) figures of a token :class:`~lirlab.analysis.alignment.Alignment`, for the explorers.

Plotly draws in the browser at the size the figure is shown, and its hover labels need no round trip
to the kernel, so a student points at a cell and reads the two tokens, their cosine and what the cell
adds to the score. It is a well-kept library whose JavaScript ships inside the Python package (it runs
offline in JupyterLab, through ``anywidget`` for :class:`plotly.graph_objects.FigureWidget`). The
matplotlib figures of :mod:`lirlab.plots.alignment` stay for ``lirlab demo``, papers and ``savefig``.

:func:`alignment_figure` lays out, top to bottom: each query token's MaxSim contribution as a bar, the
query tokens' names right under their bars, and the document × query heatmap with every query token's
best match ringed. Its height grows with the document's rows and its width with the query's tokens
(:data:`ROW_PX`, :data:`COLUMN_PX`), so nothing is stretched.

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
from lirlab.plots.alignment import ELISION, query_colors

#: Pixels per heatmap row (document token) and column (query token).
ROW_PX, COLUMN_PX = 18, 30
#: Height of the contribution bars and of the query-token labels under them, in pixels.
BARS_PX, LABELS_PX = 110, 80
#: Pixels per character of the document-token labels (left margin).
CHAR_PX = 7


def _doc_labels(alignment: Alignment) -> list[str]:
    """Document row labels, made unique (plotly merges equal category names) with an invisible suffix."""
    elided = alignment.elided_before
    labels = []
    for i, label in enumerate(alignment.doc_labels):
        text = f"{ELISION} {label}" if elided[i] else label
        labels.append(text + "\u200b" * i)
    return labels


def figure_size(alignment: Alignment) -> tuple[int, int]:
    """``(width, height)`` in pixels the figure is drawn at: proportional to the query's tokens and the
    document's rows, never below a readable minimum."""
    n_query, n_doc = alignment.similarity.shape
    left = 40 + CHAR_PX * max((len(label) for label in alignment.doc_labels), default=4)
    width = max(360, left + COLUMN_PX * n_query + 90)
    height = max(260, 60 + BARS_PX + LABELS_PX + ROW_PX * n_doc + 40)
    return int(width), int(height)


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
    width, height = figure_size(alignment)
    heat_px = ROW_PX * n_doc
    plot_px = BARS_PX + LABELS_PX + heat_px
    fig = make_subplots(
        rows=2,
        cols=1,
        row_heights=[BARS_PX / plot_px, heat_px / plot_px],
        vertical_spacing=LABELS_PX / plot_px,
    )
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
    reconstruction = alignment.reconstruction_cosine
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
                "size": min(ROW_PX, COLUMN_PX) - 2,
                "line": {"width": 2.5, "color": [colors[q] for q in matched]},
                "color": [colors[q] for q in matched],
            },
            hoverinfo="skip",
            name="best match",
        ),
        row=2,
        col=1,
    )
    if title is None:
        title = f"{alignment.docno or 'document'}: MaxSim {alignment.score:.3f}"
        if reconstruction is not None:
            title += f" · stored vectors reconstruct the exact ones at cosine {float(np.mean(reconstruction)):.3f} on average"
    fig.update_layout(
        width=width,
        height=height,
        title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 13}},
        margin={"l": 40, "r": 20, "t": 50, "b": 20},
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
