"""Patch heatmaps of page images: crafted pages whose matches are known, checked against hand computations.

A crafted page is a grid of patch vectors (portrait or landscape) plus a few text-token vectors with no
region; a crafted query copies one patch's vector into one of its tokens, so that token's best patch,
and the hottest cell of its map, must be exactly that patch.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from lirlab.analysis.pages import page_heatmap, page_hit, raster
from lirlab.encoding import Encoding
from lirlab.index.flat import FlatIndex
from lirlab.plots import figure_png
from lirlab.plots.pages import MAX_HEIGHT_PX, MAX_WIDTH_PX, page_figure, plot_page_heatmaps, plot_page_map
from lirlab.widgets import png_size

DIM = 64
VOCAB = ("<bos>", "<image>", "Describe", "<pad>", "what", "is", "the", "bee", "count", "year")
IMAGE, PAD = 1, 3
N_TEXT = 3  # text tokens after the patches ("<bos> Describe" ...): vectors with no region
SHAPES = {"portrait": (6, 4), "landscape": (4, 6)}  # grid rows × columns


def grid_regions(rows: int, columns: int) -> torch.Tensor:
    ys, xs = np.meshgrid(np.arange(rows), np.arange(columns), indexing="ij")
    boxes = np.stack([xs / columns, ys / rows, (xs + 1) / columns, (ys + 1) / rows], axis=-1).reshape(-1, 4)
    return torch.tensor(boxes, dtype=torch.float32)


def unit(rows: int, seed: int, dims: int = DIM) -> torch.Tensor:
    vectors = torch.randn(rows, DIM, generator=torch.Generator().manual_seed(seed))
    vectors[:, dims:] = 0
    return torch.nn.functional.normalize(vectors, dim=1)


def pages_encoding(shape: str, n_pages: int = 1, seed: int = 0) -> Encoding:
    rows, columns = SHAPES[shape]
    n_patches = rows * columns
    length = n_patches + N_TEXT
    regions = torch.cat([grid_regions(rows, columns), torch.full((N_TEXT, 4), float("nan"))])
    token_ids = torch.tensor([IMAGE] * n_patches + [0, 2, 2])
    return Encoding(
        ids=tuple(f"{shape}-{i}" for i in range(n_pages)),
        vectors=unit(n_pages * length, seed, dims=DIM - 8),  # the last 8 dimensions stay free
        token_ids=token_ids.repeat(n_pages),
        offsets=torch.arange(n_pages + 1) * length,
        vocab=VOCAB,
        regions=regions.repeat(n_pages, 1),
    )


def query_encoding(vectors: torch.Tensor, words: list[str], n_buffers: int = 3) -> Encoding:
    ids = [VOCAB.index(w) for w in words] + [PAD] * n_buffers
    assert len(ids) == len(vectors)
    return Encoding(
        ids=("q",),
        vectors=vectors,
        token_ids=torch.tensor(ids),
        offsets=torch.tensor([0, len(ids)]),
        vocab=VOCAB,
        kind="query",
        mask_token_id=PAD,
        texts=(" ".join(words),),
    )


def crafted(shape: str, patch: int):
    """A page, and a query whose token 1 ("bee") is patch ``patch``'s vector exactly."""
    page = pages_encoding(shape)
    query = unit(7, 1)
    query[1] = page.vectors[patch]
    return page, query_encoding(query, ["what", "bee", "count", "year"])


def inside(box, x: float, y: float) -> bool:
    x0, y0, x1, y1 = (float(v) for v in box)
    return x0 <= x <= x1 and y0 <= y <= y1


@pytest.mark.parametrize("shape", SHAPES)
def test_the_best_patch_and_the_hottest_cell_are_the_patch_the_token_copies(shape):
    rows, columns = SHAPES[shape]
    patch = columns * (rows - 2) + 1  # not a corner, not on the first row
    page, query = crafted(shape, patch)
    heatmap = page_heatmap(query, page)
    best = heatmap.best_patches().set_index("query_label")
    assert best.loc["bee", "patch"] == patch
    assert best.loc["bee", "cosine"] == pytest.approx(1.0, abs=1e-6)
    assert best.loc["bee", "adds"] == pytest.approx(1.0, abs=1e-6) and best.loc["bee", "matched"] == "patch"
    box = page.regions[patch].tolist()
    assert best.loc["bee", ["x0", "y0", "x1", "y1"]].tolist() == pytest.approx(box)

    cells = heatmap.raster("1")
    assert cells.values.shape == (rows, columns)
    hot_row, hot_column = np.unravel_index(np.nanargmax(cells.values), cells.values.shape)
    centre = (
        (cells.x_edges[hot_column] + cells.x_edges[hot_column + 1]) / 2,
        (cells.y_edges[hot_row] + cells.y_edges[hot_row + 1]) / 2,
    )
    assert inside(box, *centre) and cells.patch[hot_row, hot_column] == patch

    image = Image.new("RGB", (40 * columns, 40 * rows), "white")
    figure = page_figure(heatmap, image, "1", focus=1)
    z = np.array(figure.data[0].z, dtype=float)
    hot_row, hot_column = np.unravel_index(np.nanargmax(z), z.shape)
    x, y = np.asarray(figure.data[0].x), np.asarray(figure.data[0].y)
    assert inside(box, (x[hot_column] + x[hot_column + 1]) / 2, (y[hot_row] + y[hot_row + 1]) / 2)
    [outline] = figure.layout.shapes
    assert [outline.x0, outline.y0, outline.x1, outline.y1] == pytest.approx(box)
    width, height = figure.layout.width, figure.layout.height
    drawn_width = width - figure.layout.margin.l - figure.layout.margin.r
    drawn_height = height - figure.layout.margin.t - figure.layout.margin.b
    assert drawn_height / drawn_width == pytest.approx(rows / columns, rel=0.02)  # the page is not stretched

    mesh = plot_page_map(heatmap, image, "1").axes[0].collections[0]
    values = np.ma.filled(mesh.get_array(), np.nan).reshape(rows, columns)
    assert np.unravel_index(np.nanargmax(values), values.shape) == (patch // columns, patch % columns)


def test_values_match_a_hand_computation():
    page = pages_encoding("portrait")
    query = unit(7, 2)
    query[2] = page.vectors[-2]  # "count" copies a text token: its match is no patch
    query[5] = page.vectors[7]  # a buffer copies patch 7
    heatmap = page_heatmap(query_encoding(query, ["what", "bee", "count", "year"]), page)
    q, d = query.numpy().astype(np.float64), page.vectors.numpy().astype(np.float64)
    n_patches = 24
    cosine = np.array([[sum(q[i, k] * d[j, k] for k in range(DIM)) for j in range(len(d))] for i in range(7)])
    assert heatmap.similarity == pytest.approx(cosine[:, :n_patches], abs=1e-5)
    contributions = cosine.max(axis=1)
    assert heatmap.score == pytest.approx(contributions.sum(), abs=1e-5)
    best = heatmap.best_patches()
    assert best.contribution.to_numpy() == pytest.approx(contributions, abs=1e-5)
    assert best.patch.tolist() == cosine[:, :n_patches].argmax(axis=1).tolist()
    on_patch = cosine.argmax(axis=1) < n_patches
    assert best.adds.to_numpy() == pytest.approx(
        np.where(on_patch, cosine[:, :n_patches].max(axis=1), 0), abs=1e-5
    )
    assert best.matched[2] == "Describe" and best.adds[2] == 0 and best.contribution[2] == pytest.approx(1)
    # what each patch adds, summed, is what the patches add to the score
    assert heatmap.adds.sum() == pytest.approx(contributions[on_patch].sum(), abs=1e-5)
    whole = heatmap.whole()
    assert whole["sum"].to_numpy() == pytest.approx(cosine[:4, :n_patches].sum(axis=0), abs=1e-5)
    assert whole["max"].to_numpy() == pytest.approx(cosine[:4, :n_patches].max(axis=0), abs=1e-5)
    frame = heatmap.to_frame()
    assert len(frame) == 7 * n_patches
    row = frame[(frame.query_position == 1) & (frame.patch == 5)].iloc[0]
    assert row.cosine == pytest.approx(cosine[1, 5], abs=1e-5)
    assert row[["x0", "y0", "x1", "y1"]].tolist() == pytest.approx(page.regions[5].tolist())


def test_one_colour_range_per_query_so_a_flat_map_stays_flat():
    page, query = crafted("landscape", 3)
    vectors = query.vectors.clone()
    flat = torch.zeros(DIM)
    flat[-1] = 1.0  # a direction no patch has: cosine ~0 with every patch
    vectors[2] = torch.nn.functional.normalize(flat + 0.01 * unit(1, 5)[0], dim=0)
    heatmap = page_heatmap(query_encoding(vectors, ["what", "bee", "count", "year"]), page)
    low, high = heatmap.color_range
    assert (low, high) == (pytest.approx(min(0.0, heatmap.similarity.min())), pytest.approx(1.0, abs=1e-6))
    spread = np.ptp(heatmap.similarity[2])
    assert spread < 0.05 * (high - low)  # the crafted map is nearly constant
    for name in ["max", *map(str, range(7))]:
        assert heatmap.map_range(name) == (low, high)
    assert heatmap.map_range("sum") == pytest.approx((4 * low, 4 * high))  # 4 real tokens

    image = Image.new("RGB", (300, 200), "white")
    figure = page_figure(heatmap, image, "2")
    assert (figure.data[0].zmin, figure.data[0].zmax) == pytest.approx((low, high))  # not stretched
    grid = plot_page_heatmaps(heatmap, image)
    limits = {ax.get_title(): ax.collections[0].get_clim() for ax in grid.axes if ax.get_title()}
    assert limits.pop("sum over tokens") == pytest.approx((4 * low, 4 * high))
    assert all(clim == pytest.approx((low, high)) for clim in limits.values()), limits


def test_buffers_are_kept_apart_from_the_query_tokens():
    page, query = crafted("portrait", 9)
    vectors = query.vectors.clone()
    vectors[4] = page.vectors[20]  # buffer 1 copies patch 20; no real token comes close
    heatmap = page_heatmap(query_encoding(vectors, ["what", "bee", "count", "year"]), page)
    assert heatmap.query_labels == ("what", "bee", "count", "year", "buffer 1", "buffer 2", "buffer 3")
    assert heatmap.query_is_buffer.tolist() == [False] * 4 + [True] * 3
    assert list(heatmap.maps()) == ["sum", "max", "0", "1", "2", "3", "4", "5", "6"]
    # the buffer's exact match counts in the score but not in the whole-query maps of the real tokens
    assert heatmap.best_patches().adds[4] == pytest.approx(1.0, abs=1e-6)
    assert heatmap.maps()["max"][20] < 0.9
    assert heatmap.maps()["sum"] == pytest.approx(heatmap.similarity[:4].sum(axis=0))
    figure = plot_page_heatmaps(heatmap, Image.new("RGB", (200, 300), "white"))
    top, buffers = figure.subfigs
    assert [ax.get_title() for ax in buffers.axes if ax.get_title()] == ["buffer 1", "buffer 2", "buffer 3"]
    assert not any(ax.get_title().startswith("buffer") for ax in top.axes)


@pytest.mark.parametrize("shape", SHAPES)
def test_the_small_multiples_fit_a_notebook_output_area(shape):
    page = pages_encoding(shape)
    words = ["what", "is", "the", "bee", "count", "year"] * 3
    heatmap = page_heatmap(query_encoding(unit(len(words) + 10, 3), words, n_buffers=10), page)
    rows, columns = SHAPES[shape]
    image = Image.new("RGB", (100 * columns, 100 * rows), "white")
    width, height = png_size(figure_png(plot_page_heatmaps(heatmap, image)))
    assert width <= 993 and height <= 757, (width, height)
    assert (MAX_WIDTH_PX, MAX_HEIGHT_PX) <= (993, 757)


def test_overlapping_tiles_and_a_global_view_are_drawn_apart():
    tiles = grid_regions(2, 2)
    whole = torch.tensor([[0.0, 0.0, 1.0, 1.0]])  # a global view of one coarse patch
    regions = torch.cat([tiles, whole])
    page = Encoding(
        ids=("p",),
        vectors=unit(5, 4, dims=DIM - 8),
        token_ids=torch.full((5,), IMAGE),
        offsets=torch.tensor([0, 5]),
        vocab=VOCAB,
        regions=regions,
        global_view=torch.tensor([False] * 4 + [True]),
    )
    query = unit(4, 6)
    query[0] = page.vectors[4]
    heatmap = page_heatmap(query_encoding(query, ["bee"]), page)
    assert heatmap.best_patches().patch[0] == 4  # the global patch wins and counts in the score
    cells = heatmap.raster("0")
    assert cells.values.shape == (2, 2) and 4 not in cells.patch  # but the page map shows the tiles
    outline = page_figure(heatmap, Image.new("RGB", (80, 80)), "0", focus=0).layout.shapes[0]
    assert outline.line.dash == "dash"
    # where boxes overlap, a raster cell shows the greatest value
    both = raster(regions.numpy(), np.array([0.1, 0.2, 0.3, 0.4, 0.9]))
    assert both.values.tolist() == [[0.9, 0.9], [0.9, 0.9]] and both.patch.tolist() == [[4, 4], [4, 4]]


def test_a_text_encoding_has_no_page_to_draw():
    text = Encoding(
        ids=("d",),
        vectors=unit(3, 0),
        token_ids=torch.tensor([4, 5, 6]),
        offsets=torch.tensor([0, 3]),
        vocab=VOCAB,
    )
    with pytest.raises(ValueError, match="no page regions"):
        page_heatmap(query_encoding(unit(4, 1), ["bee"]), text)


def test_a_pooled_page_shows_which_patches_each_vector_merged():
    docs = pages_encoding("portrait", n_pages=3)
    _, query = crafted("portrait", 10)
    index = FlatIndex.from_encoding(docs, pool_factor=3)
    docno = docs.ids[0]
    heatmap = page_hit(index, query, docno)
    groups = index.pooling.groups(0)
    assert heatmap.n_patches == 24 and heatmap.pooled_vector is not None
    for patch in range(24):
        [group] = [g for g in groups if patch in g]
        assert sorted(heatmap.merged_patches(patch).tolist()) == sorted(p for p in group if p < 24)
        assert heatmap.patch_rows[patch] == groups.index(group)
    scored = index.search(query, k=3).set_index("docno").score
    assert heatmap.score == pytest.approx(float(scored[docno]), abs=1e-4)
    # merged patches share one vector: what it adds to the score counts once
    non_patch = [
        c for c, m in zip(heatmap.best_patches().contribution, heatmap.best_patches().matched) if m != "patch"
    ]
    assert heatmap.adds.sum() + sum(non_patch) == pytest.approx(heatmap.score, abs=1e-4)
    assert set(heatmap.best_patches().pooled_vector) <= set(heatmap.pooled_vector)


def test_a_compressed_page_shows_its_reconstruction_error_per_patch():
    from lirlab.index.plaid import PlaidIndex

    docs = pages_encoding("landscape", n_pages=40)
    _, query = crafted("landscape", 5)
    index = PlaidIndex.from_encoding(docs, nbits=2)
    docno = docs.ids[7]
    heatmap = page_hit(index, query, docno, exact=docs)
    stored = index.document(docno).vectors.float()
    exact = docs.item(docno).vectors.float()
    expected = (torch.nn.functional.normalize(stored, dim=1) * exact).sum(dim=1)[:24].numpy()
    assert heatmap.reconstruction_cosine == pytest.approx(expected, abs=1e-5)
    assert heatmap.reconstruction_cosine.min() < 0.999  # 2 bits do lose something
    assert "reconstruction_cosine" in heatmap.whole()
    flat = page_hit(FlatIndex.from_encoding(docs), query, docno, exact=docs)
    assert flat.reconstruction_cosine is None  # exact vectors: nothing to compare
    other = pages_encoding("portrait", n_pages=8)
    with pytest.raises(ValueError, match="give the encoding the index was built from"):
        page_hit(index, query, docno, exact=other)
    short = Encoding(
        ids=(docno,),
        vectors=docs.vectors[:10],
        token_ids=docs.token_ids[:10],
        offsets=torch.tensor([0, 10]),
        vocab=VOCAB,
        regions=docs.regions[:10],
    )
    with pytest.raises(ValueError, match="has 10 vectors, the index stores 27"):
        page_hit(index, query, docno, exact=short)


class CraftedPageEncoder:
    """Encodes queries word by word: "bee" as patch ``patch`` of the first page, other words as fixed random
    vectors, then 3 buffers; what the explorer needs of a page encoder."""

    name = "crafted"

    def __init__(self, pages: Encoding, patch: int):
        self.bee = pages.vectors[patch]

    def describe(self) -> dict:
        return {"name": self.name}

    def encode_queries(self, queries, progress: bool = False) -> Encoding:
        parts = []
        for i, query in enumerate(queries):
            text = getattr(query, "text", query)
            words = [w for w in text.lower().split() if w in VOCAB] or ["what"]
            vectors = torch.stack([self.bee if w == "bee" else unit(1, VOCAB.index(w))[0] for w in words])
            vectors = torch.cat([vectors, unit(3, 99)])
            encoded = query_encoding(vectors, words)
            parts.append(replace(encoded, ids=(getattr(query, "qid", str(i)),), texts=(text,)))
        return Encoding.concat(parts)


@pytest.fixture()
def page_explorer():
    from lirlab.widgets.search import SearchExplorer

    docs = pages_encoding("portrait", n_pages=4)
    encoder = CraftedPageEncoder(docs, patch=13)
    index = FlatIndex.from_encoding(docs, encoder=encoder)
    images = {docno: Image.new("RGB", (300, 450), "white") for docno in docs.ids}
    return SearchExplorer(index, k=3, pages=images), docs


def test_the_search_explorer_shows_a_page_index_as_thumbnails_and_heatmaps(page_explorer):
    from lirlab.widgets.pages import PageExplorer

    explorer, docs = page_explorer
    assert isinstance(explorer, PageExplorer)
    for css, element in {
        "lirlab-query": explorer.query,
        "lirlab-results": explorer.results,
        "lirlab-hit": explorer.hit,
        "lirlab-heatmap": explorer.heatmap,
        "lirlab-page-heatmap": explorer.heatmap,
        "lirlab-page-map": explorer.maps,
        "lirlab-page-buffers": explorer.buffers,
        "lirlab-page-best": explorer.best,
    }.items():
        assert css in element._dom_classes
    explorer.query.value = "what bee count"
    run = explorer.run
    assert run.docno.iloc[0] == docs.ids[0]  # the page whose patch "bee" copies
    thumbnails = explorer.results.children
    assert len(thumbnails) == 3 and all("lirlab-thumbnail" in t._dom_classes for t in thumbnails)
    assert [t.children[1].description for t in thumbnails][0] == f"1. {docs.ids[0]} · {run.score.iloc[0]:.3f}"
    image = thumbnails[0].children[0]
    assert image.layout.width == "80px" and image.layout.height == "120px"  # the page's aspect, not stretched
    [heat] = explorer.figure.data
    assert heat.type == "heatmap" and "adds" in heat.hovertemplate and "query token" in heat.hovertemplate
    assert len(explorer.figure.layout.images) == 1  # the page under the map
    [shown] = explorer.heatmap.outputs  # what reaches the browser: the whole figure, valid JSON
    sent = shown["data"]["application/vnd.plotly.v1+json"]
    assert sent["data"][0]["type"] == "heatmap" and json.dumps(sent, allow_nan=False)
    assert explorer.heatmap_data.score == pytest.approx(float(run.score.iloc[0]), abs=1e-4)
    assert [value for _, value in explorer.maps.options][:2] == ["sum", "max"]
    assert [label for label, _ in explorer.buffers.options] == ["buffer 1", "buffer 2", "buffer 3"]

    explorer.maps.value = "1"  # clicking the query token "bee"
    [outline] = explorer.figure.layout.shapes
    assert [outline.x0, outline.y0, outline.x1, outline.y1] == pytest.approx(docs.regions[13].tolist())
    assert explorer.buffers.value is None
    explorer.buffers.value = "3"  # a buffer: the token buttons let go
    assert explorer.maps.value is None and len(explorer.figure.layout.shapes) == 1
    explorer.hit.value = run.docno.iloc[1]  # another page keeps the map chosen
    assert explorer.shown == "3" and explorer.heatmap_data.docno == run.docno.iloc[1]
    assert "buffer 1" in explorer.best.value and "matched" in explorer.best.value


def test_the_page_explorer_says_what_is_missing_in_one_line(page_explorer):
    from lirlab.widgets.pages import PageExplorer

    explorer, docs = page_explorer
    with pytest.raises(ValueError, match="pass pages="):
        PageExplorer(explorer.index)
    explorer.query.value = "   "
    assert "Type a query" in explorer.message.value and not explorer.results.children
    missing = PageExplorer(explorer.index, pages={docs.ids[0]: Image.new("RGB", (30, 40))}, k=2)
    missing.query.value = "bee"
    missing.hit.value = missing.run.docno.iloc[1]
    assert "no page image for" in missing.message.value and missing.figure is None
