"""Patch heatmaps over page images: matplotlib small multiples and one plotly map for the explorer.

:func:`plot_page_heatmaps` draws, over the page image, the whole query's maps (sum and max over its real
tokens) and one small map per query token, with the augmentation buffers in a band of their own below;
every map of the query shares one colour range (:attr:`~lirlab.analysis.pages.PageHeatmap.color_range`),
and each token's best patch is outlined in the token's colour. The figure is sized to fit a notebook's
output area (:data:`MAX_WIDTH_PX` × :data:`MAX_HEIGHT_PX` at 100 dpi). :func:`plot_page_map` draws one map,
larger. :func:`page_figure` is the plotly view of one map for
:class:`~lirlab.widgets.pages.PageExplorer`: drawn at the size it is shown, its hover label names the
query token, the cosine and what the patch adds to the score. They compute nothing: the values come
from :mod:`lirlab.analysis.pages`.

Examples
--------
>>> import numpy as np, torch
>>> from PIL import Image
>>> from lirlab.analysis.pages import heatmap_from_vectors
>>> boxes = np.array([[0, 0, 0.5, 1], [0.5, 0, 1, 1]], dtype=np.float32)
>>> h = heatmap_from_vectors(torch.eye(2), torch.eye(2), boxes, ["cat", "dog"])
>>> fig = plot_page_heatmaps(h, Image.new("RGB", (60, 80), "white"))
>>> [ax.get_title() for ax in fig.axes if ax.get_title()]
['sum over tokens', 'max over tokens', 'cat', 'dog']
"""

from __future__ import annotations

import base64
import io
import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from lirlab.analysis.pages import WHOLE_MAPS, PageHeatmap
from lirlab.plots.alignment import MASK_COLOR, palette

#: Largest figure the small multiples make, in pixels at 100 dpi (a notebook output area: 993 × 757).
MAX_WIDTH_PX, MAX_HEIGHT_PX = 940, 720
#: Opacity of the heatmap over the page.
HEAT_ALPHA = 0.55
CMAP = "inferno"
#: Longest side, in pixels, of the plotly page map (:func:`page_figure`).
PAGE_PX = 520


def token_colors(heatmap: PageHeatmap) -> list[str]:
    """One colour per query token (hex), buffers grey, as the text views colour them."""
    is_buffer = heatmap.query_is_buffer
    colors = palette(int((~is_buffer).sum()))
    ranks = np.cumsum(~is_buffer) - 1
    return [MASK_COLOR if buffer else colors[r] for buffer, r in zip(is_buffer, ranks)]


def _map_title(heatmap: PageHeatmap, name: str) -> str:
    return f"{name} over tokens" if name in ("sum", "max") else heatmap.query_labels[int(name)]


def _fitted(image, width_px: float):
    """The page resized (once, by PIL) to about the pixels it is drawn at: drawing a full-size page in
    every small panel costs seconds each."""
    width = max(8, round(width_px))
    return image.convert("RGB").resize((width, max(8, round(width * image.height / image.width))))


def _draw_map(ax, heatmap: PageHeatmap, image, name: str, outline: bool = True, colors=None):
    """Page, then map ``name`` over it, then (for a token map) its best patch outlined; returns the mesh."""
    ax.imshow(image, extent=(0, 1, 1, 0), interpolation="nearest")
    cells = heatmap.raster(name)
    low, high = heatmap.map_range(name)
    mesh = ax.pcolormesh(
        cells.x_edges,
        cells.y_edges,
        np.ma.masked_invalid(cells.values),
        cmap=CMAP,
        vmin=low,
        vmax=high,
        alpha=HEAT_ALPHA,
        shading="flat",
    )
    if outline and name not in ("sum", "max"):
        token = int(name)
        best = heatmap.best_patches().iloc[token]
        for patch in heatmap.merged_patches(int(best.patch)):
            x0, y0, x1, y1 = heatmap.regions[patch]
            dashed = heatmap.global_view is not None and heatmap.global_view[patch]
            ax.add_patch(
                Rectangle(
                    (x0, y0),
                    x1 - x0,
                    y1 - y0,
                    fill=False,
                    lw=1.6,
                    ec=(colors or token_colors(heatmap))[token],
                    ls="--" if dashed else "-",  # a global-view patch: the page seen whole, coarser
                )
            )
    ax.set_xlim(0, 1)
    ax.set_ylim(1, 0)
    ax.set_aspect(image.height / image.width)
    ax.set_xticks([])
    ax.set_yticks([])
    return mesh


#: Inches of a band's header (the figure's title, the buffers' caption), of a title over each panel, and
#: of the room the colour bar takes on the right.
HEADER_IN, PANEL_TITLE_IN, COLORBAR_IN = 0.45, 0.3, 1.0


def _layout(n_top: int, n_buffers: int, aspect: float) -> tuple[int, float, list[float]]:
    """``(columns, panel width, heights of the bands)`` in inches: the fewest columns whose panels fit
    :data:`MAX_HEIGHT_PX`."""
    width, limit = MAX_WIDTH_PX / 100, MAX_HEIGHT_PX / 100
    for columns in range(4, 17):
        panel = (width - COLORBAR_IN) / columns
        row = panel * aspect + PANEL_TITLE_IN
        bands = [HEADER_IN + math.ceil(n_top / columns) * row]
        if n_buffers:
            bands.append(HEADER_IN + math.ceil(n_buffers / columns) * row)
        if sum(bands) <= limit:
            return columns, panel, bands
    # a very long query: shrink the panels to the height
    scale = limit / sum(bands)
    return columns, panel * scale, [b * scale for b in bands]


def plot_page_heatmaps(heatmap: PageHeatmap, image, title: str | None = None) -> Figure:
    """The query's maps over ``image`` (a PIL image of the page): sum and max over the real tokens, one
    map per real token with its best patch outlined, and the augmentation buffers apart below.

    Parameters
    ----------
    heatmap : PageHeatmap
        What to draw.
    image : PIL.Image.Image
        The page as the regions refer to it (the whole page: regions are fractions of its size).
    title : str, optional
        Default: the page id, the MaxSim score and the query.

    Returns
    -------
    matplotlib.figure.Figure
        At most :data:`MAX_WIDTH_PX` × :data:`MAX_HEIGHT_PX` pixels at 100 dpi; one shared colour bar.
        Margins are fixed from the panel sizes (a layout engine takes seconds over this many panels).
    """
    real = [str(int(q)) for q in np.flatnonzero(~heatmap.query_is_buffer)]
    buffers = [str(int(q)) for q in np.flatnonzero(heatmap.query_is_buffer)]
    top = ["sum", "max", *real]
    aspect = image.height / image.width
    columns, panel, bands = _layout(len(top), len(buffers), aspect)
    width, height = MAX_WIDTH_PX / 100, sum(bands)
    figure = Figure(figsize=(width, height))
    colors = token_colors(heatmap)
    image = _fitted(image, 2 * panel * 100)
    if title is None:
        title = f"{heatmap.docno or 'page'}: MaxSim {heatmap.score:.3f}"
        if heatmap.query:
            title += f" · query: {heatmap.query}"
    captions = [title, "augmentation buffers: the pad tokens the processor appends (they count in the score)"]
    parts = figure.subfigures(len(bands), 1, height_ratios=bands, squeeze=False)[:, 0]
    for part, names, band, caption in zip(parts, (top, buffers), bands, captions):
        n_rows = math.ceil(len(names) / columns)
        axes_in = panel * aspect * 0.98
        grid = part.add_gridspec(
            n_rows,
            columns,
            left=0.01,
            right=(width - COLORBAR_IN) / width,
            top=1 - (HEADER_IN + PANEL_TITLE_IN - 0.1) / band,
            bottom=0.1 / band,
            wspace=0.06,
            hspace=PANEL_TITLE_IN / axes_in,
        )
        for i, name in enumerate(names):
            ax = part.add_subplot(grid[divmod(i, columns)])
            mesh = _draw_map(ax, heatmap, image, name, colors=colors)
            color = "black" if name in WHOLE_MAPS else colors[int(name)]
            ax.set_title(_map_title(heatmap, name), fontsize=8, color=color, pad=2)
        big = part is parts[0]
        part.text(
            0.01,
            1 - 0.08 / band,
            caption,
            fontsize=10 if big else 8,
            color="black" if big else "#555555",
            va="top",
        )
        if big:  # the last map drawn is a token's or the max: it has the plain cosine range
            colorbar_axes = part.add_axes(((width - COLORBAR_IN + 0.15) / width, 0.15, 0.12 / width, 0.6))
            figure.colorbar(mesh, cax=colorbar_axes, label="cosine (sum map: × real tokens)")
    return figure


def plot_page_map(heatmap: PageHeatmap, image, name: str = "sum", width_px: int = 520) -> Figure:
    """One map of the query over the page, ``width_px`` wide: ``"sum"``, ``"max"`` or a query token's
    position as a string (its best patch outlined)."""
    aspect = image.height / image.width
    width = width_px / 100
    figure = Figure(figsize=(width + 0.9, width * aspect + 0.5), layout="constrained")
    ax = figure.add_subplot()
    mesh = _draw_map(ax, heatmap, _fitted(image, 2 * width_px), name)
    ax.set_title(
        f"{_map_title(heatmap, name)} · {heatmap.docno or 'page'}: MaxSim {heatmap.score:.3f}", fontsize=10
    )
    figure.colorbar(mesh, ax=ax, label="cosine" if name != "sum" else "sum of cosines", shrink=0.8)
    return figure


def plot_page_values(
    heatmap: PageHeatmap,
    image,
    values,
    title: str,
    label: str,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    width_px: int = 420,
) -> Figure:
    """Any per-patch values (``[n_patches]``) over the page, ``width_px`` wide, with a colour bar."""
    width = width_px / 100
    figure = Figure(figsize=(width + 0.9, width * image.height / image.width + 0.6), layout="constrained")
    ax = figure.add_subplot()
    ax.imshow(_fitted(image, 2 * width_px), extent=(0, 1, 1, 0), interpolation="nearest")
    cells = heatmap.cells(values)
    mesh = ax.pcolormesh(
        cells.x_edges,
        cells.y_edges,
        np.ma.masked_invalid(cells.values),
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        alpha=HEAT_ALPHA,
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(1, 0)
    ax.set_aspect(image.height / image.width)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    figure.colorbar(mesh, ax=ax, label=label, shrink=0.8)
    return figure


def plot_reconstruction(heatmap: PageHeatmap, image) -> Figure:
    """How far a compressed index's stored patch vectors are from the exact ones, over the page: each
    patch's reconstruction cosine (:attr:`~lirlab.analysis.pages.PageHeatmap.reconstruction_cosine`)."""
    if heatmap.reconstruction_cosine is None:
        raise ValueError(
            "no reconstruction to show: give page_hit the exact page vectors (exact=...) of a compressed index"
        )
    cosine = heatmap.reconstruction_cosine
    title = f"{heatmap.docno or 'page'}: stored vs exact patch vectors, cosine {float(cosine.mean()):.3f} on average"
    return plot_page_values(heatmap, image, cosine, title, "cosine (1 = exact)", cmap="magma", vmax=1.0)


def plot_pooled_patches(heatmap: PageHeatmap, image) -> Figure:
    """Which patches each pooled vector merged: patches of one pooled vector share a colour (a cycle of 20
    colours, so far-apart groups may share one too); every patch is outlined thinly in white."""
    if heatmap.pooled_vector is None:
        raise ValueError("the page is not pooled: build the index with pool_factor > 1")
    pooled = heatmap.pooled_vector
    n_vectors = len(np.unique(pooled))
    title = f"{heatmap.docno or 'page'}: {heatmap.n_patches} patches stored as {n_vectors} pooled vectors"
    figure = plot_page_values(
        heatmap, image, pooled % 20, title, "pooled vector (mod 20)", cmap="tab20", vmin=-0.5, vmax=19.5
    )
    ax = figure.axes[0]
    for patch in range(heatmap.n_patches):
        x0, y0, x1, y1 = heatmap.regions[patch]
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=0.3, ec="white"))
    return figure


# ---------------------------------------------------------------------------------------------- plotly


def image_uri(image, width: int, height: int) -> str:
    """The image resized to ``width`` × ``height`` as a PNG data URI (what the browser is sent)."""
    buffer = io.BytesIO()
    image.convert("RGB").resize((max(1, width), max(1, height))).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def page_size(image, longest: int = PAGE_PX) -> tuple[int, int]:
    """``(width, height)`` in pixels the page is drawn at: its aspect, ``longest`` on its longer side."""
    scale = longest / max(image.width, image.height)
    return max(1, round(image.width * scale)), max(1, round(image.height * scale))


#: Margins of the plotly page map, in pixels: left, right (colour bar), top (title), bottom.
MARGIN = {"l": 10, "r": 90, "t": 40, "b": 10}


def page_figure(
    heatmap: PageHeatmap, image, name: str = "sum", focus: int | None = None, longest: int = PAGE_PX
):
    """Map ``name`` of the query over the page as a plotly Figure, drawn at a fixed pixel size.

    Parameters
    ----------
    heatmap : PageHeatmap
        What to draw.
    image : PIL.Image.Image
        The page.
    name : str
        ``"sum"``, ``"max"``, or a query token's position as a string.
    focus : int, optional
        A query token whose best patch (all the patches its pooled vector merged) is outlined.
    longest : int
        Pixels of the page's longer side.

    Returns
    -------
    plotly.graph_objects.Figure
        One heatmap trace over the page image (a layout image); hovering a cell names the query token
        (for a whole-query map: the real token that matches the patch most), its cosine and what the
        patch adds to the score through it.
    """
    import plotly.graph_objects as go

    width, height = page_size(image, longest)
    cells = heatmap.raster(name)
    similarity, adds = heatmap.similarity, heatmap.adds
    if name in ("sum", "max"):
        real = np.flatnonzero(~heatmap.query_is_buffer)
        token_of_patch = (
            real[similarity[real].argmax(axis=0)] if len(real) else np.zeros(heatmap.n_patches, int)
        )
    else:
        token_of_patch = np.full(heatmap.n_patches, int(name))
    patch = np.where(cells.patch >= 0, cells.patch, 0)
    token = token_of_patch[patch]
    labels = np.asarray(heatmap.query_labels, dtype=object)[token]
    customdata = np.stack(
        [labels, similarity[token, patch], adds[token, patch], cells.patch.astype(float)], axis=-1
    )
    hover = "query token %{customdata[0]}<br>cosine %{customdata[1]:.3f}<br>adds %{customdata[2]:.3f} to the score"
    if heatmap.reconstruction_cosine is not None:
        customdata = np.concatenate(
            [customdata, heatmap.reconstruction_cosine[patch][..., None].astype(object)], axis=-1
        )
        hover += "<br>stored vs exact patch vector: cosine %{customdata[4]:.3f}"
    if heatmap.pooled_vector is not None:
        merged = np.bincount(heatmap.pooled_vector)[heatmap.pooled_vector[patch]]
        customdata = np.concatenate([customdata, merged[..., None].astype(object)], axis=-1)
        hover += f"<br>one pooled vector for %{{customdata[{customdata.shape[-1] - 1}]}} patches"
    low, high = heatmap.map_range(name)
    figure = go.Figure(
        go.Heatmap(
            x=cells.x_edges,
            y=cells.y_edges,
            z=cells.values,
            zmin=low,
            zmax=high,
            colorscale=CMAP.capitalize(),
            opacity=HEAT_ALPHA,
            customdata=customdata,
            hovertemplate=hover + "<extra></extra>",
            colorbar={"title": {"text": "sum" if name == "sum" else "cosine"}, "thickness": 14},
            name="patches",
        )
    )
    figure.add_layout_image(
        source=image_uri(image, width, height),
        xref="x",
        yref="y",
        x=0,
        y=0,
        sizex=1,
        sizey=1,
        sizing="stretch",
        layer="below",
        xanchor="left",
        yanchor="top",
    )
    if focus is not None:
        best = int(heatmap.best_patches().patch.iloc[focus])
        color = token_colors(heatmap)[focus]
        for member in heatmap.merged_patches(best):
            x0, y0, x1, y1 = (float(v) for v in heatmap.regions[member])
            dashed = heatmap.global_view is not None and heatmap.global_view[member]
            line = {"color": color, "width": 3, "dash": "dash" if dashed else "solid"}
            figure.add_shape(type="rect", x0=x0, y0=y0, x1=x1, y1=y1, line=line)
    title = f"{_map_title(heatmap, name)} · {heatmap.docno or 'page'}: MaxSim {heatmap.score:.3f}"
    figure.update_layout(
        width=width + MARGIN["l"] + MARGIN["r"],
        height=height + MARGIN["t"] + MARGIN["b"],
        margin=MARGIN,
        title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 13}},
        template="plotly_white",
        showlegend=False,
        modebar={"orientation": "v"},  # beside the page, not over the title
    )
    figure.update_xaxes(range=[0, 1], visible=False, constrain="domain")
    figure.update_yaxes(range=[1, 0], visible=False)
    return figure
