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
import textwrap
from collections.abc import Mapping

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lirlab.analysis.alignment import Alignment, is_special_token
from lirlab.plots import MIN_FONT_PT, OUTPUT_AREA_PX, SCREEN_DPI

ELISION = "…"
#: Approximate width of one tick-label character (default 10 pt font), for the margins.
CHAR_INCHES = 0.085
MASK_COLOR = "#9e9e9e"
#: Colour of the stored-vs-exact cosine bars (the matplotlib and the interactive figures).
COSINE_COLOR = "#888888"
#: Range of the heatmap's row and column pitch, in inches: they close up to this to fit the output area.
ROW_INCHES, COLUMN_INCHES = (0.13, 0.24), (0.12, 0.3)


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


def _font_pt(pitch_inches: float) -> float:
    """Tick-label size for rows or columns ``pitch_inches`` apart: 10 pt when there is room, never below
    :data:`~lirlab.plots.MIN_FONT_PT`."""
    return float(np.clip(pitch_inches * 72 * 0.8, MIN_FONT_PT, 10.0))


def _default_title(alignment: Alignment) -> str:
    title = f"{alignment.docno or 'document'}: MaxSim {alignment.score:.3f}"
    if alignment.query:
        title += f"\nquery: {alignment.query}"
    return title


def _wrap(title: str, inches: float) -> str:
    width = max(12, int(inches / CHAR_INCHES))
    return "\n".join(textwrap.fill(line, width) or line for line in title.splitlines())


def plot_alignment(
    alignment: Alignment,
    *,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float = 1.0,
    title: str | None = None,
) -> Figure:
    """Heatmap of document tokens (rows) × query tokens (columns) with contributions and best matches.

    The figure fits :data:`~lirlab.plots.OUTPUT_AREA_PX` at :data:`~lirlab.plots.SCREEN_DPI`: rows and
    columns close up (labels down to :data:`~lirlab.plots.MIN_FONT_PT`) to fit it, and the query
    tokens are named right under their contribution bars. A document with more rows than fit at that
    size makes a taller figure: window it first (:func:`~lirlab.analysis.alignment.window` with
    ``max_rows``).

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
        Default: the document id, the MaxSim score and the query. Wrapped to the figure's width.

    Returns
    -------
    matplotlib.figure.Figure
        Axes: contribution bars, heatmap, colour bar and, with a reconstruction cosine, its bars.

    Raises
    ------
    ValueError
        The document has no tokens to draw.
    """
    return _draw(
        [alignment], [title if title is not None else _default_title(alignment)], None, cmap, vmin, vmax
    )


def plot_alignments(
    alignments: Mapping[str, Alignment],
    *,
    title: str | None = None,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float = 1.0,
) -> Figure:
    """Alignments of one document side by side on the same rows (before and after training, two models),
    with one colour scale and one contribution axis, so that they compare on one screen.

    Window them together first (:func:`~lirlab.analysis.alignment.window_together`). Fits
    :data:`~lirlab.plots.OUTPUT_AREA_PX` as :func:`plot_alignment` does; only the first panel names the
    document rows.

    Parameters
    ----------
    alignments : mapping of str to Alignment
        Panel name (its title, with the MaxSim score) to alignment, left to right.
    title : str, optional
        Above the panels; default: the query and the document id.
    cmap, vmin, vmax :
        As for :func:`plot_alignment`, shared by the panels.

    Returns
    -------
    matplotlib.figure.Figure
        Axes: per panel its contribution bars and heatmap (and reconstruction bars), then the colour bar.

    Raises
    ------
    ValueError
        No alignment, an empty document, or alignments of different document rows.

    Examples
    --------
    >>> import torch
    >>> from lirlab.analysis.alignment import align_vectors
    >>> doc = torch.eye(8)
    >>> before, after = align_vectors(torch.eye(8), doc), align_vectors(torch.eye(8).flip(0), doc)
    >>> figure = plot_alignments({"before": before, "after": after})
    >>> [axes.get_title(loc="left") for axes in figure.axes[0:4:2]]
    ['before: MaxSim 8.000', 'after: MaxSim 8.000']
    """
    panels = list(alignments.values())
    if not panels:
        raise ValueError("plot_alignments needs at least one alignment")
    first = panels[0]
    if any(a.doc_tokens != first.doc_tokens for a in panels[1:]):
        raise ValueError("side-by-side alignments must have the same document rows: window them together")
    if title is None:
        title = f"{first.docno or 'document'}" + (f" · query: {first.query}" if first.query else "")
    titles = [f"{name}: MaxSim {a.score:.3f}" for name, a in alignments.items()]
    return _draw(panels, titles, title, cmap, vmin, vmax)


def _draw(
    alignments: list[Alignment],
    titles: list[str],
    suptitle: str | None,
    cmap: str,
    vmin: float | None,
    vmax: float,
) -> Figure:
    """Panels side by side, laid out in inches to fit the output area (see :func:`plot_alignment`)."""
    n_doc = alignments[0].similarity.shape[1]
    if n_doc == 0:
        raise ValueError("nothing to draw: the document has no tokens")
    max_width = (OUTPUT_AREA_PX[0] - 60) / SCREEN_DPI  # the rest: tight-bbox padding, labels at the edges
    max_height = (OUTPUT_AREA_PX[1] - 30) / SCREEN_DPI
    doc_labels = _doc_tick_labels(alignments[0])
    query_chars = max(len(label) for a in alignments for label in a.query_labels)
    with_cosine = [a.reconstruction_cosine is not None for a in alignments]
    cosine_width, panel_gap, right = 1.3, 0.35, 0.25
    bar_height = 0.9

    def rows_fit(title_lines: int) -> tuple[float, float]:
        """Row pitch and the height around the heatmap, for titles of ``title_lines`` lines."""
        top = 0.15 + 0.19 * title_lines
        labels = 0.15 + CHAR_INCHES * query_chars
        around = top + bar_height + labels + 0.85
        return float(np.clip((max_height - around) / n_doc, *ROW_INCHES)), around

    suptitle_lines = len(suptitle.splitlines()) if suptitle else 0
    row_pitch, _ = rows_fit(2 + suptitle_lines)
    row_font = _font_pt(row_pitch)
    left = 0.5 + CHAR_INCHES * row_font / 10 * max(len(label) for label in doc_labels)
    fixed = left + right + panel_gap * (len(alignments) - 1) + (cosine_width + 0.15) * sum(with_cosine)
    n_columns = sum(a.similarity.shape[0] for a in alignments)
    column_pitch = float(np.clip((max_width - fixed) / n_columns, *COLUMN_INCHES))
    column_font = _font_pt(column_pitch)
    heat_widths = [max(1.0, column_pitch * a.similarity.shape[0]) for a in alignments]
    panel_widths = [w + ((cosine_width + 0.15) if c else 0.0) for w, c in zip(heat_widths, with_cosine)]
    width = fixed - (cosine_width + 0.15) * sum(with_cosine) + sum(panel_widths)
    if len(alignments) == 1:  # room for the title, up to the output area
        title_inches = CHAR_INCHES * max(len(line) for line in titles[0].splitlines() or [""])
        width = min(max(width, left + title_inches + right), max(width, max_width))
        panel_widths = [width - left - right]
    titles = [_wrap(t, w) for t, w in zip(titles, panel_widths)]
    if suptitle:
        suptitle = _wrap(suptitle, width - left - right)
        suptitle_lines = len(suptitle.splitlines())
    title_lines = max(len(t.splitlines()) for t in titles) + suptitle_lines
    row_pitch, around = rows_fit(title_lines)
    heat_height = max(1.0, row_pitch * n_doc)
    height = around + heat_height
    bottom = 0.85
    figure = Figure(figsize=(width, height), dpi=SCREEN_DPI)

    def box(x: float, y: float, w: float, h: float) -> list[float]:
        return [x / width, y / height, w / width, h / height]

    low = min(float(np.nanmin(a.similarity)) for a in alignments)
    norm = {"vmin": min(0.0, low) if vmin is None else vmin, "vmax": vmax}
    labels_height = 0.15 + CHAR_INCHES * query_chars
    x = left
    first_bars = None
    for panel, (alignment, title, heat_width) in enumerate(zip(alignments, titles, heat_widths)):
        n_query = alignment.similarity.shape[0]
        colors = query_colors(alignment)
        bars = figure.add_axes(
            box(x, bottom + heat_height + labels_height, heat_width, bar_height), sharey=first_bars
        )
        first_bars = first_bars or bars
        heat = figure.add_axes(box(x, bottom, heat_width, heat_height), sharex=bars)
        image = heat.imshow(alignment.similarity.T, aspect="auto", cmap=cmap, interpolation="nearest", **norm)
        columns = np.arange(n_query)
        matched = alignment.best_doc_token >= 0
        heat.scatter(
            columns[matched],
            alignment.best_doc_token[matched],
            marker="s",
            s=(72 * min(row_pitch, column_pitch)) ** 2 * 0.7,
            facecolors="none",
            edgecolors=[c for c, m in zip(colors, matched) if m],
            linewidths=1.8,
        )
        heat.xaxis.tick_top()  # the query tokens' names right under their bars
        heat.set_xticks(columns, alignment.query_labels, rotation=90, fontsize=column_font)
        heat.set_yticks(np.arange(n_doc), doc_labels if panel == 0 else [], fontsize=row_font)
        if panel == 0:
            heat.set_ylabel("document token")
        for row in np.flatnonzero(alignment.elided_before[1:-1]) + 1:
            heat.axhline(row - 0.5, color="white", linestyle="--", linewidth=1.0)

        bars.bar(columns, alignment.contributions, color=colors)
        if panel == 0:
            bars.set_ylabel("MaxSim\ncontribution")
        else:
            bars.tick_params(labelleft=False)
        bars.tick_params(labelbottom=False)
        bars.axhline(0.0, color="black", linewidth=0.5)
        bars.set_title(title, fontsize=10, loc="left")
        x += heat_width
        if alignment.reconstruction_cosine is not None:
            cosine_axes = figure.add_axes(box(x + 0.15, bottom, cosine_width, heat_height), sharey=heat)
            cosine = alignment.reconstruction_cosine
            cosine_axes.barh(np.arange(n_doc), cosine, color=COSINE_COLOR)
            cosine_axes.set_xlim(max(-1.0, float(cosine.min()) - 0.02), 1.0)
            cosine_axes.set_xlabel("cos(stored, exact)", fontsize=9)
            cosine_axes.tick_params(labelleft=False, labelsize=MIN_FONT_PT)
            cosine_axes.set_title(f"mean {float(cosine.mean()):.3f}", fontsize=9)
            x += 0.15 + cosine_width
        x += panel_gap
    if suptitle:
        figure.text(left / width, 1 - 0.1 / height, suptitle, fontsize=10, va="top", ha="left")
    colorbar_axes = figure.add_axes(box(left, 0.42, min(heat_widths[0], 3.0), 0.12))
    figure.colorbar(image, cax=colorbar_axes, orientation="horizontal")
    colorbar_axes.xaxis.set_major_locator(MaxNLocator(5))
    colorbar_axes.tick_params(labelsize=MIN_FONT_PT + 1)
    colorbar_axes.set_xlabel("cosine similarity", fontsize=9)
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
