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


def _draw_map(ax, heatmap: PageHeatmap, image, name: str, outline: bool = True, colors=None):
    """Page, then map ``name`` over it, then (for a token map) its best patch outlined; returns the mesh."""
    ax.imshow(image, extent=(0, 1, 1, 0), interpolation="lanczos")
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


def _layout(n_top: int, n_buffers: int, aspect: float) -> tuple[int, float, list[float]]:
    """``(columns, figure height, heights of the two bands)`` in inches: the fewest columns whose panels
    fit :data:`MAX_HEIGHT_PX`."""
    width, limit = MAX_WIDTH_PX / 100, MAX_HEIGHT_PX / 100
    for columns in range(4, 17):
        panel = (width - 1.0) / columns  # the colour bar takes the rest
        row = panel * aspect + 0.3  # and a title over each panel
        bands = [0.45 + math.ceil(n_top / columns) * row]
        if n_buffers:
            bands.append(0.3 + math.ceil(n_buffers / columns) * row)
        if sum(bands) <= limit or columns == 16:
            return columns, min(sum(bands), limit), bands
    raise AssertionError("unreachable")


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
    """
    real = [str(int(q)) for q in np.flatnonzero(~heatmap.query_is_buffer)]
    buffers = [str(int(q)) for q in np.flatnonzero(heatmap.query_is_buffer)]
    top = ["sum", "max", *real]
    columns, height, bands = _layout(len(top), len(buffers), image.height / image.width)
    figure = Figure(figsize=(MAX_WIDTH_PX / 100, height), layout="constrained")
    colors = token_colors(heatmap)
    if title is None:
        title = f"{heatmap.docno or 'page'}: MaxSim {heatmap.score:.3f}"
        if heatmap.query:
            title += f" · query: {heatmap.query}"
    figure.suptitle(title, x=0.01, ha="left", fontsize=10)
    parts = figure.subfigures(len(bands), 1, height_ratios=bands, squeeze=False)[:, 0]
    for part, names in zip(parts, (top, buffers)):
        axes = part.subplots(math.ceil(len(names) / columns), columns, squeeze=False).ravel()
        for ax, name in zip(axes, names):
            mesh = _draw_map(ax, heatmap, image, name, colors=colors)
            color = "black" if name in WHOLE_MAPS else colors[int(name)]
            ax.set_title(_map_title(heatmap, name), fontsize=8, color=color, pad=2)
        for ax in axes[len(names) :]:
            ax.set_axis_off()
        if names is buffers:
            part.suptitle(
                "augmentation buffers: the pad tokens the processor appends (they count in the score)",
                x=0.01,
                ha="left",
                fontsize=8,
                color="#555555",
            )
        else:
            # the last map drawn is a token's or the max: it has the plain cosine range
            part.colorbar(mesh, ax=axes, label="cosine (sum map: × real tokens)", shrink=0.8, pad=0.01)
    return figure


def plot_page_map(heatmap: PageHeatmap, image, name: str = "sum", width_px: int = 520) -> Figure:
    """One map of the query over the page, ``width_px`` wide: ``"sum"``, ``"max"`` or a query token's
    position as a string (its best patch outlined)."""
    aspect = image.height / image.width
    width = width_px / 100
    figure = Figure(figsize=(width + 0.9, width * aspect + 0.5), layout="constrained")
    ax = figure.add_subplot()
    mesh = _draw_map(ax, heatmap, image, name)
    ax.set_title(
        f"{_map_title(heatmap, name)} · {heatmap.docno or 'page'}: MaxSim {heatmap.score:.3f}", fontsize=10
    )
    figure.colorbar(mesh, ax=ax, label="cosine" if name != "sum" else "sum of cosines", shrink=0.8)
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
    )
    figure.update_xaxes(range=[0, 1], visible=False, constrain="domain")
    figure.update_yaxes(range=[1, 0], visible=False)
    return figure
