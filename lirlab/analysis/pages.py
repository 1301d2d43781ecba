"""Patch heatmaps: where on a page each query token found its match, and what that added to the score.

A page encoded by a ColPali-family model is one vector per image patch (plus a few text and special
tokens), and :attr:`lirlab.encoding.Encoding.regions` says which box of the page each vector stands for,
``(x0, y0, x1, y1)`` as fractions of the page's width and height (NaN rows for vectors of no region).
A :class:`PageHeatmap` joins that geometry to the token alignment of :mod:`lirlab.analysis.alignment`
(the same :func:`lirlab.maxsim.explain`, so its score is the score the index reports): per query token
the cosine with every patch, the patch it matched best and what that patch adds to the score, and the
whole query's maps (sum and max over the real query tokens). The augmentation buffers (the pad tokens
ColPali-family processors append to every query, marked like ``[MASK]``) are kept apart: they take part
in the score, but are not words of the query.

One colour range per query: every cosine map of a query, the buffers' included, shares
:attr:`PageHeatmap.color_range`, so a near-constant map stays flat instead of being stretched to full
contrast (the sum map's range is that one times the number of real tokens).

Built from a search hit (:func:`page_hit`, with the index's stored vectors: a reconstruction for a
compressed index, pooled vectors for a pooled one) or from two encodings (:func:`page_heatmap`). Given
the page's exact encoding, a compressed index's heatmap also carries each patch's reconstruction cosine
(:attr:`PageHeatmap.reconstruction_cosine`) and a pooled index's the pooled vector each patch was merged
into (:attr:`PageHeatmap.pooled_vector`). :func:`raster` turns any per-patch values into the cells of
the page (boxes may overlap: tiles and a global image), which is what the figures draw.

Examples
--------
>>> import numpy as np, torch
>>> page = torch.eye(4)[:3]  # three patches, side by side
>>> boxes = np.array([[0, 0, 1 / 3, 1], [1 / 3, 0, 2 / 3, 1], [2 / 3, 0, 1, 1]], dtype=np.float32)
>>> query = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
>>> h = heatmap_from_vectors(query, page, boxes, ["cat", "<pad>"], query_is_buffer=[False, True])
>>> h.best_patches()[["query_label", "patch", "cosine", "adds"]].values.tolist()
[['cat', 1, 1.0, 1.0], ['buffer 1', 0, 0.0, 0.0]]
>>> h.whole()["sum"].tolist(), h.color_range
([0.0, 1.0, 0.0], (0.0, 1.0))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from lirlab.analysis.alignment import Alignment, _build, _markers
from lirlab.data import Query
from lirlab.encoding import Encoding
from lirlab.index.base import Index

#: Decimals box edges are rounded to before cells are cut (regions are float32 fractions).
EDGE_DECIMALS = 5
#: The whole-query maps, beside one map per query token.
WHOLE_MAPS = ("sum", "max")


def regions_of(encoding: Encoding, item: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``([tokens, 4] float32 boxes, [tokens] bool global view)`` of item ``item`` of a page encoding
    (NaN rows: no region).

    Raises
    ------
    ValueError
        The encoding carries no regions (a text encoding, or a kind that did not keep them).
    """
    if encoding.regions is None:
        raise ValueError(
            "these vectors carry no page regions: encode page images with a page model "
            "(and index them with a kind that keeps regions) to draw a patch heatmap"
        )
    regions = encoding.regions_of(item).float().cpu().numpy()
    global_view = (
        np.zeros(len(regions), dtype=bool)
        if encoding.global_view is None
        else encoding.global_view[encoding.span(item)].cpu().numpy()
    )
    return regions, global_view


def _patch_rows(regions: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.isfinite(regions).all(axis=1))


@dataclass(frozen=True, eq=False)
class PageHeatmap:
    """One query against one page, patch by patch. Arrays are read-only.

    Attributes
    ----------
    alignment : Alignment
        The token alignment over every vector the page is stored as (patches, text and special tokens),
        from which the score and each query token's contribution come.
    regions : numpy.ndarray
        ``[n_patches, 4]`` float32 ``(x0, y0, x1, y1)`` of each patch, fractions of the page's size.
    patch_rows : numpy.ndarray
        ``[n_patches]`` int64 row of ``alignment`` (stored vector) each patch's cosines come from; for a
        pooled index several patches share the pooled vector they were merged into.
    query_is_buffer : numpy.ndarray
        ``[n_query]`` bool, the augmentation buffers.
    reconstruction_cosine : numpy.ndarray or None
        ``[n_patches]`` cosine of each stored (reconstructed) patch vector with the exact one; None unless
        the exact page was given for a compressed index.
    pooled_vector : numpy.ndarray or None
        ``[n_patches]`` the pooled vector each patch was merged into; None for an unpooled page.
    global_view : numpy.ndarray or None
        ``[n_patches]`` bool, the patches of a downscaled copy of the whole page (ColModernVBert's global
        image beside its tiles); None when there are none. Their boxes overlap the tiles', so the maps
        over the page (:meth:`page_patches`) leave them out; they still count in the score and in
        :meth:`best_patches`.
    """

    alignment: Alignment
    regions: np.ndarray
    patch_rows: np.ndarray
    query_is_buffer: np.ndarray
    reconstruction_cosine: np.ndarray | None = None
    pooled_vector: np.ndarray | None = None
    global_view: np.ndarray | None = None

    def __post_init__(self):
        n_patches = len(self.patch_rows)
        if self.regions.shape != (n_patches, 4):
            raise ValueError(f"regions has shape {self.regions.shape}, expected ({n_patches}, 4)")
        if n_patches == 0:
            raise ValueError("the page has no patch vectors (no row with a region): nothing to draw")
        for name in ("reconstruction_cosine", "pooled_vector", "global_view"):
            array = getattr(self, name)
            if array is not None and array.shape != (n_patches,):
                raise ValueError(f"{name} has shape {array.shape}, expected ({n_patches},)")
        arrays = (self.regions, self.patch_rows, self.query_is_buffer, self.reconstruction_cosine)
        for array in (*arrays, self.pooled_vector, self.global_view):
            if array is not None:
                array.setflags(write=False)

    # -- what the query and page are ----------------------------------------------------------------

    @property
    def score(self) -> float:
        """The MaxSim score (buffers included, as the model scores)."""
        return self.alignment.score

    @property
    def docno(self) -> str | None:
        return self.alignment.docno

    @property
    def query(self) -> str | None:
        return self.alignment.query

    @property
    def query_labels(self) -> tuple[str, ...]:
        """Query token labels; the buffers read ``buffer 1``, ``buffer 2``..."""
        buffer_number = np.cumsum(self.query_is_buffer)
        return tuple(
            f"buffer {int(buffer_number[i])}" if self.query_is_buffer[i] else label
            for i, label in enumerate(self.alignment.query_labels)
        )

    @property
    def n_patches(self) -> int:
        return len(self.patch_rows)

    def page_patches(self) -> np.ndarray:
        """The patches a map over the page draws: all of them, but a global view's."""
        if self.global_view is None:
            return np.arange(self.n_patches)
        return np.flatnonzero(~self.global_view)

    # -- the maps -----------------------------------------------------------------------------------

    @property
    def similarity(self) -> np.ndarray:
        """``[n_query, n_patches]`` cosine of each query token with each patch (with the stored vector
        that stands for the patch)."""
        return self.alignment.similarity[:, self.patch_rows]

    @property
    def adds(self) -> np.ndarray:
        """``[n_query, n_patches]`` what each patch adds to the score through each query token: its
        cosine where it holds the token's MaxSim match, 0 elsewhere (rows sum to the contributions made
        through patches)."""
        best_row = self.alignment.best_doc_token
        is_best = self.patch_rows[None, :] == best_row[:, None]
        if self.pooled_vector is not None:  # patches merged into one vector share it: it adds once
            first = np.zeros(self.n_patches, dtype=bool)
            first[np.unique(self.patch_rows, return_index=True)[1]] = True
            is_best &= first[None, :]
        return np.where(is_best, self.similarity, 0.0).astype(np.float32)

    @property
    def color_range(self) -> tuple[float, float]:
        """``(low, high)`` cosine shared by every map of this query: ``low`` is the least cosine (never
        above 0), ``high`` the greatest (never below 0), buffers included."""
        similarity = self.similarity
        return float(min(0.0, similarity.min())), float(max(0.0, similarity.max()))

    def map_range(self, name: str) -> tuple[float, float]:
        """The colour range of map ``name``: :attr:`color_range`, times the number of real query tokens
        for ``"sum"``."""
        low, high = self.color_range
        if name == "sum":
            n_real = int((~self.query_is_buffer).sum())
            return low * n_real, high * n_real
        return low, high

    def maps(self) -> dict[str, np.ndarray]:
        """Every map by name, ``[n_patches]`` each: ``"sum"`` and ``"max"`` over the real query tokens, then
        one per query token under its position as a string (``"0"``, ``"1"``...), buffers last."""
        similarity = self.similarity
        real = similarity[~self.query_is_buffer]
        if len(real) == 0:
            real = np.zeros((1, self.n_patches), dtype=np.float32)
        out = {"sum": real.sum(axis=0), "max": real.max(axis=0)}
        order = [*np.flatnonzero(~self.query_is_buffer), *np.flatnonzero(self.query_is_buffer)]
        out.update({str(int(q)): similarity[q] for q in order})
        return out

    def cells(self, values: np.ndarray) -> Raster:
        """Per-patch ``values`` ``[n_patches]`` cut into the cells of the page (:func:`raster`) over
        :meth:`page_patches`; ``Raster.patch`` numbers patches as this heatmap does."""
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (self.n_patches,):
            raise ValueError(
                f"values must have one entry per patch ({self.n_patches}), got shape {values.shape}"
            )
        drawn = self.page_patches()
        cells = raster(self.regions[drawn], values[drawn])
        patch = np.where(cells.patch >= 0, drawn[cells.patch], -1)
        return Raster(cells.x_edges, cells.y_edges, cells.values, patch)

    def raster(self, name: str) -> Raster:
        """Map ``name`` (see :meth:`maps`) cut into the cells of the page (:meth:`cells`)."""
        return self.cells(self.maps()[name])

    # -- tidy data ----------------------------------------------------------------------------------

    def _patch_columns(self) -> dict[str, np.ndarray]:
        columns = {
            "patch": np.arange(self.n_patches),
            "x0": self.regions[:, 0],
            "y0": self.regions[:, 1],
            "x1": self.regions[:, 2],
            "y1": self.regions[:, 3],
        }
        if self.reconstruction_cosine is not None:
            columns["reconstruction_cosine"] = self.reconstruction_cosine
        if self.pooled_vector is not None:
            columns["pooled_vector"] = self.pooled_vector
        if self.global_view is not None:
            columns["global_view"] = self.global_view
        return columns

    def to_frame(self) -> pd.DataFrame:
        """One row per (query token, patch), query-major: ``query_position, query_label, is_buffer,
        patch, x0, y0, x1, y1, cosine, is_best, adds`` and, when known, ``reconstruction_cosine`` and
        ``pooled_vector``."""
        n_query, n_patches = self.similarity.shape
        query_rows = np.repeat(np.arange(n_query), n_patches)
        patches = pd.DataFrame(self._patch_columns())
        frame = pd.DataFrame(
            {
                "query_position": query_rows,
                "query_label": np.asarray(self.query_labels, dtype=object)[query_rows],
                "is_buffer": self.query_is_buffer[query_rows],
            }
        )
        frame = pd.concat([frame, pd.concat([patches] * n_query, ignore_index=True)], axis=1)
        adds = self.adds.reshape(-1)
        frame["cosine"] = self.similarity.reshape(-1)
        frame["is_best"] = adds != 0
        frame["adds"] = adds
        return frame

    def whole(self) -> pd.DataFrame:
        """One row per patch: its box, ``sum`` and ``max`` of its cosines over the real query tokens, the
        real ``token`` it matches most (its label) and, when known, ``reconstruction_cosine`` and
        ``pooled_vector``."""
        frame = pd.DataFrame(self._patch_columns())
        maps = self.maps()
        frame["sum"], frame["max"] = maps["sum"], maps["max"]
        real = np.flatnonzero(~self.query_is_buffer)
        labels = np.asarray(self.query_labels, dtype=object)
        frame["token"] = labels[real[self.similarity[real].argmax(axis=0)]] if len(real) else ""
        return frame

    def best_patches(self) -> pd.DataFrame:
        """One row per query token: ``query_position, query_label, is_buffer``, its best ``patch`` and
        that patch's box ``x0, y0, x1, y1``, the ``cosine`` there, what the patch ``adds`` to the score
        (the cosine when the token's MaxSim match is that patch, 0 when a text or special token of the
        page matched better), the token's whole ``contribution``, and ``matched``: ``"patch"`` or the
        label of the non-patch vector it matched."""
        similarity = self.similarity
        best_patch = similarity.argmax(axis=1)
        cosine = similarity[np.arange(len(best_patch)), best_patch]
        best_row = self.alignment.best_doc_token
        on_patch = self.patch_rows[best_patch] == best_row
        doc_labels = self.alignment.doc_labels
        frame = pd.DataFrame(
            {
                "query_position": np.arange(len(best_patch)),
                "query_label": self.query_labels,
                "is_buffer": self.query_is_buffer,
                "patch": best_patch,
                "x0": self.regions[best_patch, 0],
                "y0": self.regions[best_patch, 1],
                "x1": self.regions[best_patch, 2],
                "y1": self.regions[best_patch, 3],
                "cosine": cosine,
                "adds": np.where(on_patch, cosine, 0.0).astype(np.float32),
                "contribution": self.alignment.contributions,
                "matched": ["patch" if hit else doc_labels[r] for hit, r in zip(on_patch, best_row)],
            }
        )
        if self.pooled_vector is not None:
            frame["pooled_vector"] = self.pooled_vector[best_patch]
        return frame

    def merged_patches(self, patch: int) -> np.ndarray:
        """The patches stored as one vector with ``patch`` (itself alone on an unpooled page)."""
        if self.pooled_vector is None:
            return np.array([patch])
        return np.flatnonzero(self.pooled_vector == self.pooled_vector[patch])


# ---------------------------------------------------------------------------------------------- builders


def _with_regions(
    alignment: Alignment,
    regions: np.ndarray,
    global_view: np.ndarray | None = None,
    query_is_buffer: Sequence[bool] | None = None,
    reconstruction_cosine: np.ndarray | None = None,
) -> PageHeatmap:
    regions = np.asarray(regions, dtype=np.float32)
    if regions.ndim != 2 or regions.shape[1] != 4:
        raise ValueError(f"regions must be [tokens, 4] boxes, got shape {regions.shape}")
    if len(regions) != len(alignment.doc_tokens):
        raise ValueError(f"{len(regions)} regions for {len(alignment.doc_tokens)} page vectors")
    rows = _patch_rows(regions)
    is_buffer = alignment.query_is_mask if query_is_buffer is None else query_is_buffer
    return PageHeatmap(
        alignment=alignment,
        regions=regions[rows],
        patch_rows=rows.astype(np.int64),
        query_is_buffer=np.asarray(is_buffer, dtype=bool).copy(),
        reconstruction_cosine=None if reconstruction_cosine is None else reconstruction_cosine[rows],
        global_view=None if global_view is None or not global_view.any() else global_view[rows].copy(),
    )


def heatmap_from_vectors(
    query_vectors: torch.Tensor,
    page_vectors: torch.Tensor,
    regions: np.ndarray,
    query_tokens: Sequence[str] | None = None,
    query_is_buffer: Sequence[bool] | None = None,
) -> PageHeatmap:
    """A heatmap of bare vectors: a query ``[q, dim]`` against a page ``[n, dim]`` with its ``[n, 4]``
    regions (NaN rows: vectors of no region). ``query_is_buffer`` marks the augmentation buffers
    (default: none)."""
    query_vectors, page_vectors = torch.as_tensor(query_vectors), torch.as_tensor(page_vectors)
    n_query = len(query_vectors)
    query_tokens = list(query_tokens) if query_tokens is not None else [f"#{i}" for i in range(n_query)]
    if len(query_tokens) != n_query:
        raise ValueError(f"{len(query_tokens)} query tokens for {n_query} query vectors")
    is_buffer = [False] * n_query if query_is_buffer is None else list(query_is_buffer)
    alignment = _build(
        query_vectors,
        page_vectors,
        query_tokens,
        [f"#{j}" for j in range(len(page_vectors))],
        is_buffer,
        _markers(),
    )
    return _with_regions(alignment, regions, query_is_buffer=is_buffer)


def page_heatmap(queries: Encoding, pages: Encoding, query: int = 0, page: int = 0) -> PageHeatmap:
    """The heatmap of query ``query`` of ``queries`` against page ``page`` of ``pages`` (an encoding with
    regions), buffers taken from the query's ``mask_token_id``."""
    alignment = _build(
        queries.vectors_of(query).float().cpu(),
        pages.vectors_of(page).float().cpu(),
        queries.tokens(query),
        pages.tokens(page),
        queries.mask_positions(query).tolist(),
        _markers(),
        query=queries.texts[query] if queries.texts else queries.ids[query],
        docno=pages.ids[page],
    )
    return _with_regions(alignment, *regions_of(pages, page))


def _live_position(index: Index, docno: str) -> int:
    if not isinstance(docno, str):
        raise ValueError(f"docno must be a string, got {type(docno).__name__}")
    try:
        position = index.position(docno)
    except KeyError:
        raise ValueError(f"unknown docno {docno!r}: the index holds no such page") from None
    if not index.is_live(position):
        raise ValueError(f"page {docno!r} was deleted from the index")
    return position


def _encoded_query(index: Index, query: str | Encoding, encoder) -> Encoding:
    """One encoded query, keeping its text (encoded with ``encoder`` or the index's when given text)."""
    if isinstance(query, Encoding):
        if len(query) != 1:
            raise ValueError(f"pass one encoded query, got {len(query)}")
        return query
    if not isinstance(query, str) or not query.strip():
        raise ValueError("the query is empty: type a question or a few words")
    encoder = encoder if encoder is not None else index.encoder
    if encoder is None:
        raise ValueError("a text query needs an encoder: pass encoder=... or load the index with one")
    return replace(encoder.encode_queries([Query(query, query)]), texts=(query,))


def page_hit(
    index, query: str | Encoding, docno: str, encoder=None, exact: Encoding | None = None
) -> PageHeatmap:
    """The heatmap behind a search hit: the query against page ``docno`` as ``index`` stores it.

    For a pooled index every original patch is drawn with the pooled vector it was merged into
    (:attr:`PageHeatmap.pooled_vector`, from the index's pooling mapping).

    Parameters
    ----------
    index : lirlab.index.base.Index
        Any index kind over page vectors (its stored vectors keep their regions).
    query : str or Encoding
        The query text, or one encoded query.
    docno : str
        The page's id.
    encoder : optional
        Encodes a text query (default: ``index.encoder``).
    exact : Encoding, optional
        The pages as the encoder produced them (``docno`` among them): for an index that stores a
        reconstruction (PLAID, WARP), each patch's cosine with its exact vector
        (:attr:`PageHeatmap.reconstruction_cosine`); the page's regions when the index keeps none.

    Raises
    ------
    ValueError
        Unknown or deleted ``docno``, vectors with no regions, or an ``exact`` page that does not match
        what the index stores.
    """
    position = _live_position(index, docno)
    queries = _encoded_query(index, query, encoder)
    stored = index.documents([position])
    alignment = _build(
        queries.vectors_of(0).float().cpu(),
        stored.vectors_of(0).float().cpu(),
        queries.tokens(0),
        stored.tokens(0),
        queries.mask_positions(0).tolist(),
        _markers(),
        query=queries.texts[0] if queries.texts else queries.ids[0],
        docno=docno,
    )
    pooling = index.pooling
    if pooling is not None and pooling.original_regions is not None:
        groups = pooling.groups(position)
        pooled_of = np.empty(sum(len(g) for g in groups), dtype=np.int64)
        for vector, members in enumerate(groups):
            pooled_of[members] = vector
        start = int(pooling.original_offsets[position])
        regions = pooling.original_regions[start : start + len(pooled_of)].float().cpu().numpy()
        rows = _patch_rows(regions)
        return PageHeatmap(
            alignment=alignment,
            regions=regions[rows],
            patch_rows=pooled_of[rows],
            query_is_buffer=np.asarray(alignment.query_is_mask, dtype=bool).copy(),
            pooled_vector=pooled_of[rows],
        )
    cosine = None
    geometry = stored
    if exact is not None:
        if docno not in exact.ids:
            raise ValueError(
                f"the exact encoding holds no page {docno!r}: give the encoding the index was built from"
            )
        exact_page = exact.item(docno)
        exact_vectors = exact_page.vectors_of(0).float().cpu()
        stored_vectors = stored.vectors_of(0).float().cpu()
        if exact_vectors.shape != stored_vectors.shape:
            raise ValueError(
                f"the exact page {docno!r} has {len(exact_vectors)} vectors, the index stores "
                f"{len(stored_vectors)}: give the encoding the index was built from"
            )
        if not stored.exact:
            cosine = torch.nn.functional.cosine_similarity(exact_vectors, stored_vectors, dim=1).numpy()
        if stored.regions is None:  # a kind that stores codes, not geometry: the rows are the same
            geometry = exact_page
    return _with_regions(alignment, *regions_of(geometry), reconstruction_cosine=cosine)


# ---------------------------------------------------------------------------------------------- raster


@dataclass(frozen=True)
class Raster:
    """Per-patch values cut into the cells of the page that no box edge crosses.

    Attributes
    ----------
    x_edges, y_edges : numpy.ndarray
        ``[columns + 1]`` and ``[rows + 1]`` cell edges, fractions of the page's width and height.
    values : numpy.ndarray
        ``[rows, columns]`` the greatest value of the patches covering each cell (NaN: none).
    patch : numpy.ndarray
        ``[rows, columns]`` the patch that value comes from (-1: none).
    """

    x_edges: np.ndarray
    y_edges: np.ndarray
    values: np.ndarray
    patch: np.ndarray


def raster(regions: np.ndarray, values: np.ndarray) -> Raster:
    """Cut per-patch ``values`` ``[n_patches]`` into cells by the box edges of ``regions``
    ``[n_patches, 4]``; where boxes overlap (tiles and a global image) a cell shows the greatest value.

    >>> r = raster(np.array([[0, 0, 0.5, 1], [0.5, 0, 1, 1]]), np.array([0.2, 0.9]))
    >>> r.x_edges.tolist(), r.values.tolist(), r.patch.tolist()
    ([0.0, 0.5, 1.0], [[0.2, 0.9]], [[0, 1]])
    """
    regions = np.round(np.asarray(regions, dtype=np.float64), EDGE_DECIMALS)
    values = np.asarray(values, dtype=np.float64)
    x_edges = np.unique(regions[:, [0, 2]])
    y_edges = np.unique(regions[:, [1, 3]])
    cx = (x_edges[:-1] + x_edges[1:]) / 2
    cy = (y_edges[:-1] + y_edges[1:]) / 2
    inside_x = (regions[:, 0, None] <= cx[None, :]) & (cx[None, :] < regions[:, 2, None])  # [p, cols]
    inside_y = (regions[:, 1, None] <= cy[None, :]) & (cy[None, :] < regions[:, 3, None])  # [p, rows]
    covered = inside_y[:, :, None] & inside_x[:, None, :]  # [p, rows, cols]
    ranked = np.where(covered, values[:, None, None], -np.inf)
    patch = ranked.argmax(axis=0)
    any_patch = covered.any(axis=0)
    cell_values = np.where(any_patch, ranked.max(axis=0), np.nan)
    return Raster(x_edges, y_edges, cell_values, np.where(any_patch, patch, -1))
