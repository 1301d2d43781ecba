"""Figures and HTML views of a token :class:`~lirlab.analysis.alignment.Alignment`.

:func:`plot_alignment` draws the document × query similarity heatmap with every query token's best
document token marked, each query token's MaxSim contribution as a bar above its column and, when known,
how well every stored document vector reconstructs the exact one. :func:`highlight_html` shows the
document as text, each token coloured by the query token it serves. Both only draw: make the alignment
readable first with :func:`~lirlab.analysis.alignment.merge_word_pieces` and
:func:`~lirlab.analysis.alignment.window`.

Examples
--------
>>> import torch
>>> from lirlab.analysis.alignment import align_vectors
>>> a = align_vectors(torch.eye(2), torch.tensor([[1.0, 0.0], [0.6, 0.8]]), ["cal", "##dera"], ["[CLS]", "x"])
>>> fig = plot_alignment(a)
>>> [t.get_text() for t in fig.axes[1].get_yticklabels()]
['[CLS]', 'x']
>>> "background" in highlight_html(a)
True
"""

from __future__ import annotations

import colorsys
import html

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from lirlab.analysis.alignment import Alignment, is_special_token

ELISION = "…"
#: Approximate width of one tick-label character (default 10 pt font), for the margins.
CHAR_INCHES = 0.085
MASK_COLOR = "#9e9e9e"


#: The hand-picked colours used first: tab10 without its grey (grey is for ``[MASK]``), then Dark2.
BASE_PALETTE = tuple(
    [to_hex(c) for c in colormaps["tab10"].colors if to_hex(c) != "#7f7f7f"]
    + [to_hex(c) for c in colormaps["Dark2"].colors]
)


def palette(n: int) -> list[str]:
    """``n`` distinct colours (hex), none of them the ``[MASK]`` grey.

    Up to ``len(BASE_PALETTE)`` (17) the hand-picked ones; beyond, ``n`` hues spread evenly around the
    colour wheel, alternating between two lightness levels so that neighbours stay apart.

    >>> len(set(palette(32))), MASK_COLOR in palette(32)
    (32, False)
    >>> palette(2)
    ['#1f77b4', '#ff7f0e']
    """
    if n <= len(BASE_PALETTE):
        return list(BASE_PALETTE[:n])
    colors: list[str] = []
    for i in range(n):
        lightness = 0.38 if i % 2 else 0.52
        red, green, blue = colorsys.hls_to_rgb(i / n, lightness, 0.75)
        colors.append(to_hex((red, green, blue)))
    return colors


def query_colors(alignment: Alignment) -> list[str]:
    """One colour per query token (hex), shared by the heatmap and the text view; ``[MASK]`` tokens grey.

    No two of the other query tokens share a colour, however many there are (see :func:`palette`).

    >>> import torch
    >>> from lirlab.analysis.alignment import align_vectors
    >>> query_colors(align_vectors(torch.eye(3), torch.eye(3), ["a", "[MASK]", "b"]))
    ['#1f77b4', '#9e9e9e', '#ff7f0e']
    """
    is_mask = np.asarray(alignment.query_is_mask, dtype=bool)
    colors = palette(int((~is_mask).sum()))
    ranks = np.cumsum(~is_mask) - 1
    return [MASK_COLOR if mask else colors[r] for mask, r in zip(is_mask, ranks)]


def _doc_tick_labels(alignment: Alignment) -> list[str]:
    elided = alignment.elided_before
    labels = [f"{ELISION} {label}" if elided[i] else label for i, label in enumerate(alignment.doc_labels)]
    if labels and elided[-1]:
        labels[-1] = f"{labels[-1]} {ELISION}"
    return labels


def plot_alignment(
    alignment: Alignment,
    *,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float = 1.0,
    title: str | None = None,
) -> Figure:
    """Heatmap of document tokens (rows) × query tokens (columns) with contributions and best matches.

    Parameters
    ----------
    alignment : Alignment
        What to draw (one row per document token or merged word; elided stretches are marked ``…``
        and by a dashed line).
    cmap : str
        Matplotlib colormap of the similarity.
    vmin, vmax : float
        Colour scale limits; ``vmin`` defaults to ``min(0, lowest similarity)``.
    title : str, optional
        Default: the document id, the MaxSim score and the query.

    Returns
    -------
    matplotlib.figure.Figure
        Axes: contribution bars, heatmap, colour bar and, with a reconstruction cosine, its bars.

    Raises
    ------
    ValueError
        The document has no tokens to draw.
    """
    n_query, n_doc = alignment.similarity.shape
    if n_doc == 0:
        raise ValueError("nothing to draw: the document has no tokens")
    with_cosine = alignment.reconstruction_cosine is not None
    colors = query_colors(alignment)
    doc_labels = _doc_tick_labels(alignment)
    # Fixed margins sized from the longest labels: as readable as a layout engine, several times faster.
    left = 0.5 + CHAR_INCHES * max(len(label) for label in doc_labels)
    bottom = 1.15 + CHAR_INCHES * max(len(label) for label in alignment.query_labels)
    heat_width, heat_height = max(1.5, 0.3 * n_query), max(1.5, 0.24 * n_doc)
    cosine_width = 1.5 if with_cosine else 0.0
    bar_height, top = 1.1, 0.7
    if title is None:
        title = f"{alignment.docno or 'document'}: MaxSim {alignment.score:.3f}"
        if alignment.query:
            title += f"\nquery: {alignment.query}"
    title_width = CHAR_INCHES * max(len(line) for line in title.splitlines() or [""])
    width = left + max(heat_width + (0.2 + cosine_width if with_cosine else 0.0), title_width) + 0.3
    height = bottom + heat_height + 0.2 + bar_height + top
    figure = Figure(figsize=(width, height))

    def box(x: float, y: float, w: float, h: float) -> list[float]:
        return [x / width, y / height, w / width, h / height]

    bars = figure.add_axes(box(left, bottom + heat_height + 0.2, heat_width, bar_height))
    heat = figure.add_axes(box(left, bottom, heat_width, heat_height), sharex=bars)

    low = float(np.nanmin(alignment.similarity))
    image = heat.imshow(
        alignment.similarity.T,
        aspect="auto",
        cmap=cmap,
        vmin=min(0.0, low) if vmin is None else vmin,
        vmax=vmax,
        interpolation="nearest",
    )
    columns = np.arange(n_query)
    matched = alignment.best_doc_token >= 0
    heat.scatter(
        columns[matched],
        alignment.best_doc_token[matched],
        marker="s",
        s=60,
        facecolors="none",
        edgecolors=[c for c, m in zip(colors, matched) if m],
        linewidths=2.0,
    )
    heat.set_xticks(columns, alignment.query_labels, rotation=90)
    heat.set_yticks(np.arange(n_doc), doc_labels)
    heat.set_xlabel("query token")
    heat.set_ylabel("document token")
    for row in np.flatnonzero(alignment.elided_before[1:-1]) + 1:
        heat.axhline(row - 0.5, color="white", linestyle="--", linewidth=1.0)
    colorbar_axes = figure.add_axes(box(left, 0.45, min(heat_width, 3.0), 0.15))
    figure.colorbar(image, cax=colorbar_axes, orientation="horizontal", label="cosine similarity")

    bars.bar(columns, alignment.contributions, color=colors)
    bars.set_ylabel("MaxSim\ncontribution")
    bars.tick_params(labelbottom=False)
    bars.axhline(0.0, color="black", linewidth=0.5)
    bars.set_title(title, fontsize=10, loc="left")

    if with_cosine:
        cosine_axes = figure.add_axes(
            box(left + heat_width + 0.2, bottom, cosine_width, heat_height), sharey=heat
        )
        cosine = alignment.reconstruction_cosine
        cosine_axes.barh(np.arange(n_doc), cosine, color="#888888")
        cosine_axes.set_xlim(max(-1.0, float(cosine.min()) - 0.02), 1.0)
        cosine_axes.set_xlabel("cos(stored, exact)")
        cosine_axes.tick_params(labelleft=False)
        cosine_axes.set_title(f"mean {float(cosine.mean()):.3f}", fontsize=9)
    return figure


def _chip(
    text: str,
    color: str | list[str],
    tooltip: str,
    positions: list[int] | None = None,
    chars: tuple[int, int] | None = None,
) -> str:
    """A coloured token. Several colours (a token that several query tokens match best) split the
    background into equal stripes and stack one underline per colour, in the order given; ``chars`` is
    written as ``data-chars="start stop"``, the characters of the text it shows."""
    colors = [color] if isinstance(color, str) else list(color)
    if len(colors) == 1:
        style = f"background:{colors[0]}33;border-bottom:3px solid {colors[0]};padding:0 2px"
    else:
        width = 100 / len(colors)
        stops = ",".join(f"{c}40 {i * width:.2f}% {(i + 1) * width:.2f}%" for i, c in enumerate(colors))
        underlines = ",".join(f"inset 0 -{3 * (i + 1)}px 0 {c}" for i, c in enumerate(colors))
        style = (
            f"background:linear-gradient(90deg,{stops});box-shadow:{underlines};"
            f"padding:0 2px {3 * len(colors)}px"
        )
    data = f'data-query-positions="{" ".join(map(str, positions))}" ' if positions else ""
    if chars is not None:
        data += f'data-chars="{chars[0]} {chars[1]}" '
    return (
        f'<span {data}style="{style};border-radius:3px" title="{html.escape(tooltip, quote=True)}">'
        f"{html.escape(text)}</span>"
    )


def _as_written(
    text: str, chars: np.ndarray, pieces: list[str | None], elided: np.ndarray | None = None
) -> str:
    """``text`` with each row's characters replaced by its HTML piece, the characters between rows
    (spaces, punctuation the skiplist dropped) kept as written. Rows without characters (special
    tokens; ``pieces`` entry None: left out) stand where they are, set off by spaces. ``elided[r]``:
    tokens were left out before row ``r`` (the last entry: after the last row)."""
    rows_with_text = np.flatnonzero(chars[:, 0] >= 0)
    last = int(rows_with_text[-1]) if len(rows_with_text) else -1
    elided = np.zeros(len(pieces) + 1, dtype=bool) if elided is None else elided
    out: list[str] = []
    position = 0

    def tail() -> None:
        rest = text[position:]
        if elided[-1] or any(c.isalnum() for c in rest):  # left out, or cut at the maximum length
            out.append(f' <span title="not shown: the rest of the text">{ELISION}</span>')
        else:
            out.append(html.escape(rest))

    for row, piece in enumerate(pieces):
        start, stop = (int(c) for c in chars[row])
        if elided[row]:
            out.append(f" {ELISION} ")
            if start >= 0:
                position = start
        if start < 0:
            if piece is not None:
                out.append(f" {piece} ")
        else:
            out.append(html.escape(text[position:start]))
            out.append(piece or "")
            position = stop
        if row == last:
            tail()
    if last < 0 and text:
        out.append(html.escape(text))
    return "".join(out)


def highlight_html(alignment: Alignment, *, show_special: bool = True, focus: int | None = None) -> str:
    """The document as HTML text, each token coloured by the query token it serves.

    A document token serves the query tokens whose best match it is. It takes the colour of each of
    them (``[MASK]`` tokens only when no other query token picked it): one colour, or, for a token two
    or more query tokens match best, equal stripes and one underline per query token, strongest
    similarity first; ``data-query-positions`` lists their positions and the tooltip their
    similarities. A legend gives each query token's colour. Every token and tooltip is HTML-escaped.

    When the alignment carries the texts (:func:`~lirlab.analysis.alignment.with_texts`), the document
    and the legend's query are shown as written: each token over the characters it was made from
    (``data-chars="start stop"`` gives them), capitals, accents and the punctuation between tokens kept.

    Parameters
    ----------
    alignment : Alignment
    show_special : bool
        Show special tokens (``[CLS]``, ``[D]``, ``[SEP]``) in grey; they often absorb matches.
    focus : int, optional
        Position of one query token: only its match is coloured (outlined), the others' are dropped,
        and its legend entry is marked (what clicking a contribution bar in the explorer shows).

    Returns
    -------
    str
        A ``<div class="lirlab-alignment-text">`` fragment.

    Examples
    --------
    >>> import torch
    >>> from lirlab.analysis.alignment import align_vectors
    >>> a = align_vectors(torch.eye(2), torch.eye(2), ["bee", "hive"], ["<script>", "hive"])
    >>> "<script>" in highlight_html(a), "&lt;script&gt;" in highlight_html(a)
    (False, True)
    """
    colors = query_colors(alignment)
    if focus is not None and not 0 <= focus < len(colors):
        raise ValueError(f"focus must be a query token position in 0..{len(colors) - 1}, got {focus}")
    matches = alignment.matches()
    if focus is not None:
        matches = matches[matches.query_position == focus]
    served = (
        matches[matches.doc_position >= 0].sort_values("similarity", ascending=False).groupby("doc_position")
    )
    servers = {int(row): group for row, group in served}
    text, chars = alignment.doc_text, alignment.doc_chars
    as_written = text is not None and chars is not None
    pieces: list[str | None] = []
    for row, label in enumerate(alignment.doc_labels):
        span = (int(chars[row, 0]), int(chars[row, 1])) if as_written and chars[row, 0] >= 0 else None
        special = is_special_token(alignment.doc_tokens[row]) and span is None  # [UNK] made from text is text
        shown_text = text[span[0] : span[1]] if span is not None else label
        if row in servers:
            group = servers[row]
            lines = [
                f"query token {q.query_position} {q.query_label}: similarity {q.similarity:.3f}"
                for q in group[~group.is_mask].itertuples()
            ]
            masks = group[group.is_mask]
            if len(masks):
                lines.append(f"{len(masks)} [MASK] tokens: similarity up to {masks.similarity.max():.3f}")
            tooltip = "\n".join(lines)
            picked = [int(p) for p in group[~group.is_mask].query_position]
            shown = [colors[p] for p in picked] or [MASK_COLOR]
            chip = _chip(shown_text, shown, tooltip, picked or [focus] if focus is not None else picked, span)
            if focus is not None:
                chip = f'<span class="lirlab-focus" style="outline:2px solid {colors[focus]};border-radius:3px">{chip}</span>'
            pieces.append(chip)
        elif special and not show_special:
            pieces.append(None)
        elif special:
            pieces.append(f'<span style="color:#999;font-size:85%">{html.escape(label)}</span>')
        elif span is not None:
            pieces.append(f'<span data-chars="{span[0]} {span[1]}">{html.escape(shown_text)}</span>')
        else:
            pieces.append(html.escape(label))
    if as_written:
        body = _as_written(text, chars, pieces, alignment.elided_before)
    else:
        elided = alignment.elided_before
        parts = []
        for row, piece in enumerate(pieces):
            if elided[row]:
                parts.append(ELISION)
            if piece is not None:
                parts.append(piece)
        if elided[-1]:
            parts.append(ELISION)
        body = " ".join(parts)
    legend = _query_legend(alignment, colors, focus)
    n_masks = int(alignment.query_is_mask.sum())
    if n_masks:
        legend += " " + _chip(f"[MASK] × {n_masks}", MASK_COLOR, "query augmentation tokens")
    heading = html.escape(f"{alignment.docno or 'document'} · MaxSim {alignment.score:.3f}")
    return (
        '<div class="lirlab-alignment-text" style="line-height:1.9">'
        f"<div><b>{heading}</b></div>"
        f'<div style="margin-bottom:4px">query: {legend}</div>'
        f"<div>{body}</div></div>"
    )


def _query_legend(alignment: Alignment, colors: list[str], focus: int | None) -> str:
    """Each query token's colour: the query as written when its text is known, else one chip a token."""
    chips: list[str | None] = []
    text, chars = alignment.query_text, alignment.query_chars
    as_written = text is not None and chars is not None
    for i, label in enumerate(alignment.query_labels):
        if alignment.query_is_mask[i] and i != focus:
            chips.append(None)
            continue
        span = (int(chars[i, 0]), int(chars[i, 1])) if as_written and chars[i, 0] >= 0 else None
        shown = text[span[0] : span[1]] if span is not None else label
        chips.append(
            _chip(
                f"▶ {shown}" if i == focus else shown,
                colors[i],
                f"query token {i} {label}: contributes {alignment.contributions[i]:.3f}",
                chars=span,
            )
        )
    if as_written:
        return _as_written(text, chars, chips).strip()
    return " ".join(c for c in chips if c is not None)
