"""Token alignment: which document token every query token matched, and what it added to the score.

An :class:`Alignment` holds, for one (query, document) pair, the full cosine similarity matrix, each query
token's best document token and its contribution (its row maximum; the contributions sum to the MaxSim
score), readable token labels and, optionally, how far every stored (compressed) document vector is from
the exact one. It is built from raw text (:func:`align_texts`), from a hit in an index (:func:`align_hit`)
or from bare vectors (:func:`align_vectors`), and made readable by :func:`merge_word_pieces` (document
word pieces become words) and :func:`window` (long documents keep only the matched tokens and a few
neighbours).

Labels, one convention in every view (heatmaps, bars, text, the [MASK] analysis): the query and document
markers (``[unused0]``/``[unused1]`` in Stanford checkpoints, ``[Q]``/``[D]`` prefixes in PyLate ones) read
``[Q]``/``[D]``; query augmentation tokens read ``[MASK]``; other special tokens (``[CLS]``, ``[SEP]``,
``<s>``...) are kept as they are. Every other token reads as the user wrote it: when the text is known
(:func:`align_texts`, :func:`with_texts`, and :func:`align_hit` given the texts) a token's label is the
characters of the text it was made from (the fast tokenizer's offsets: capitals, accents and punctuation
kept), and a merged word is the text of the whole word (the tokenizer's word ids). A word piece that
continues a word reads ``·piece`` (``·as`` in ``Calder ·as``), whatever the vocabulary writes
(WordPiece ``##as``, or a SentencePiece/BPE piece without its word-start mark ``▁``/``Ġ``). Without the
text, labels fall back to the vocabulary's strings under the same rule. Query tokens are never merged:
each is a separate term of the MaxSim sum.

Examples
--------
>>> import torch
>>> query = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
>>> doc = torch.tensor([[0.6, 0.8], [1.0, 0.0], [0.0, 1.0]])
>>> a = align_vectors(query, doc, ["[CLS]", "cal"], ["[unused1]", "cal", "##dera"])
>>> a.doc_labels, a.best_doc_token.tolist(), round(a.score, 2)
(('[D]', 'cal', '·dera'), [1, 2], 2.0)
>>> merge_word_pieces(a).doc_labels
('[D]', 'caldera')
>>> a.matches()[["query_label", "doc_label", "similarity"]].values.tolist()
[['[CLS]', 'cal', 1.0], ['cal', '·dera', 1.0]]
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from lirlab.data import Document, Query
from lirlab.encoding import Encoding
from lirlab.index.base import Index
from lirlab.maxsim import explain
from lirlab.params import Param

#: Rows kept around each matched document row by :func:`window`.
CONTEXT = Param("context", int, 2, "Document rows kept on each side of a matched row.", low=0, high=10_000)
MAX_ROWS = Param(
    "max_rows", int, None, "Most document rows a window keeps (None: no limit).", low=1, high=1_000_000
)

#: Marker tokens of the common checkpoint layouts and how they are shown.
DEFAULT_MARKERS = {"[unused0]": "[Q]", "[unused1]": "[D]", "[Q]": "[Q]", "[D]": "[D]"}

#: Query augmentation tokens across tokenizer families.
MASK_TOKENS = ("[MASK]", "<mask>")

#: Prefix of a word piece label that continues the previous token.
CONTINUATION = "·"

_WORD_START_MARKS = ("▁", "Ġ")


@dataclass(frozen=True, eq=False)
class Alignment:
    """How one document's tokens answer one query's tokens.

    Build it with :func:`align_texts`, :func:`align_hit` or :func:`align_vectors`; arrays are read-only.

    Attributes
    ----------
    query_tokens, doc_tokens : tuple of str
        Vocabulary strings (a merged word keeps its pieces, space-separated).
    query_labels, doc_labels : tuple of str
        Readable labels (see the module docstring).
    similarity : numpy.ndarray
        ``[n_query, n_doc]`` float32 cosine similarities.
    best_doc_token : numpy.ndarray
        ``[n_query]`` int64 row of ``doc_tokens`` each query token matched (-1 when the document has none).
    contributions : numpy.ndarray
        ``[n_query]`` float32, each query token's best similarity; they sum to ``score``.
    score : float
        The MaxSim score.
    query_is_mask : numpy.ndarray
        ``[n_query]`` bool, which query tokens are ``[MASK]`` augmentation.
    doc_spans : numpy.ndarray
        ``[n_doc, 2]`` int64 ``[start, stop)`` token positions of each row in the whole document encoding
        (one position per row until words are merged; gaps after :func:`window`).
    doc_length : int
        Tokens in the whole document encoding.
    reconstruction_cosine : numpy.ndarray or None
        ``[n_doc]`` cosine between each stored (decompressed) document vector and the vector encoded
        afresh from the text; None unless the document text was given to :func:`align_hit`.
    query : str or None
        The query text (or query id).
    docno : str or None
        The document id.
    query_text, doc_text : str or None
        The texts as encoded (the document's title included), when known (see :func:`with_texts`).
    query_chars, doc_chars : numpy.ndarray or None
        ``[n, 2]`` int64 ``[start, stop)`` characters of ``query_text``/``doc_text`` each row was made
        from (a merged word: the whole word); ``-1, -1`` for rows made from no characters (special
        tokens, ``[MASK]``). None without the text.
    query_words, doc_words : numpy.ndarray or None
        ``[n]`` int64 the tokenizer's word index of each row (-1 for special tokens); None without the text.
    """

    query_tokens: tuple[str, ...]
    doc_tokens: tuple[str, ...]
    query_labels: tuple[str, ...]
    doc_labels: tuple[str, ...]
    similarity: np.ndarray
    best_doc_token: np.ndarray
    contributions: np.ndarray
    score: float
    query_is_mask: np.ndarray
    doc_spans: np.ndarray
    doc_length: int
    reconstruction_cosine: np.ndarray | None = None
    query: str | None = None
    docno: str | None = None
    query_text: str | None = None
    doc_text: str | None = None
    query_chars: np.ndarray | None = None
    doc_chars: np.ndarray | None = None
    query_words: np.ndarray | None = None
    doc_words: np.ndarray | None = None

    def __post_init__(self):
        n_query, n_doc = len(self.query_tokens), len(self.doc_tokens)
        expected = {
            "query_labels": (len(self.query_labels), n_query),
            "doc_labels": (len(self.doc_labels), n_doc),
            "similarity": (self.similarity.shape, (n_query, n_doc)),
            "best_doc_token": (self.best_doc_token.shape, (n_query,)),
            "contributions": (self.contributions.shape, (n_query,)),
            "query_is_mask": (self.query_is_mask.shape, (n_query,)),
            "doc_spans": (self.doc_spans.shape, (n_doc, 2)),
        }
        if self.reconstruction_cosine is not None:
            expected["reconstruction_cosine"] = (self.reconstruction_cosine.shape, (n_doc,))
        for name, shape in (
            ("query_chars", (n_query, 2)),
            ("doc_chars", (n_doc, 2)),
            ("query_words", (n_query,)),
            ("doc_words", (n_doc,)),
        ):
            if getattr(self, name) is not None:
                expected[name] = (getattr(self, name).shape, shape)
        for name, (got, want) in expected.items():
            if got != want:
                raise ValueError(f"Alignment.{name} has shape {got}, expected {want}")
        for name in (
            "similarity",
            "best_doc_token",
            "contributions",
            "query_is_mask",
            "doc_spans",
            "reconstruction_cosine",
            "query_chars",
            "doc_chars",
            "query_words",
            "doc_words",
        ):
            array = getattr(self, name)
            if array is not None:
                array.setflags(write=False)

    @property
    def elided_before(self) -> np.ndarray:
        """``[n_doc + 1]`` bool: whether document tokens were left out before each row (last: after the last row)."""
        if len(self.doc_tokens) == 0:
            return np.array([self.doc_length > 0])
        previous_stop = np.concatenate([[0], self.doc_spans[:, 1]])
        next_start = np.concatenate([self.doc_spans[:, 0], [self.doc_length]])
        return next_start > previous_stop

    def to_frame(self) -> pd.DataFrame:
        """One row per (query token, document token) pair, query-major.

        Columns: ``query_position, query_token, query_label, is_mask, doc_position, doc_token, doc_label,
        doc_start, similarity, is_best, contribution`` and, when known, ``reconstruction_cosine``
        (``doc_position`` is the row of this alignment, ``doc_start`` the first token position in the
        whole document).
        """
        n_query, n_doc = self.similarity.shape
        query_rows = np.repeat(np.arange(n_query), n_doc)
        doc_rows = np.tile(np.arange(n_doc), n_query)
        frame = pd.DataFrame(
            {
                "query_position": query_rows,
                "query_token": np.asarray(self.query_tokens, dtype=object)[query_rows],
                "query_label": np.asarray(self.query_labels, dtype=object)[query_rows],
                "is_mask": self.query_is_mask[query_rows],
                "doc_position": doc_rows,
                "doc_token": np.asarray(self.doc_tokens, dtype=object)[doc_rows],
                "doc_label": np.asarray(self.doc_labels, dtype=object)[doc_rows],
                "doc_start": self.doc_spans[doc_rows, 0],
                "similarity": self.similarity.reshape(-1),
                "is_best": self.best_doc_token[query_rows] == doc_rows,
                "contribution": self.contributions[query_rows],
            }
        )
        if self.reconstruction_cosine is not None:
            frame["reconstruction_cosine"] = self.reconstruction_cosine[doc_rows]
        return frame

    def matches(self) -> pd.DataFrame:
        """One row per query token: the document token it matched and its share of the score.

        Columns: ``query_position, query_label, is_mask, doc_position, doc_label, similarity, share``
        (``doc_position`` -1 and ``doc_label`` empty when the document has no tokens).
        """
        best = self.best_doc_token
        labels = np.asarray(self.doc_labels + ("",), dtype=object)  # best == -1 picks the trailing ""
        return pd.DataFrame(
            {
                "query_position": np.arange(len(self.query_tokens)),
                "query_label": list(self.query_labels),
                "is_mask": self.query_is_mask,
                "doc_position": best,
                "doc_label": labels[best].tolist(),
                "similarity": self.contributions,
                "share": self.contributions / self.score if self.score else np.zeros_like(self.contributions),
            }
        )

    def word_contributions(self) -> pd.DataFrame:
        """One row per query word: its pieces merged where merging is exact, in the sum of the score.

        Query tokens stay separate columns everywhere else (each is a MaxSim term with its own best
        match); a word's contribution is the sum of its pieces' contributions, so the rows still add up
        to :attr:`score`. Words come from the tokenizer's word ids when the query text is known
        (:func:`with_texts`), else from the ``·`` pieces of the labels; special tokens and ``[MASK]``
        are rows of their own.

        Columns: ``word`` (as written), ``positions`` (its query token positions), ``labels``,
        ``is_mask``, ``contribution``, ``share``.

        >>> a = align_vectors(torch.eye(3), torch.eye(3), ["[CLS]", "calder", "##a"])
        >>> a.word_contributions()[["word", "positions", "contribution"]].values.tolist()
        [['[CLS]', [0], 1.0], ['caldera', [1, 2], 2.0]]
        """
        groups: list[list[int]] = []
        for i, label in enumerate(self.query_labels):
            if self.query_words is not None:
                joins = i > 0 and self.query_words[i] >= 0 and self.query_words[i] == self.query_words[i - 1]
            else:
                joins = i > 0 and label.startswith(CONTINUATION) and not self.query_is_mask[i]
            if joins and groups:
                groups[-1].append(i)
            else:
                groups.append([i])
        text, chars = self.query_text, self.query_chars
        rows = []
        for group in groups:
            if len(group) > 1 and text is not None and chars is not None:
                word = text[chars[group[0], 0] : chars[group[-1], 1]]
            else:
                word = "".join(self.query_labels[i].removeprefix(CONTINUATION) for i in group)
            contribution = float(self.contributions[group].sum())
            rows.append(
                {
                    "word": word,
                    "positions": group,
                    "labels": [self.query_labels[i] for i in group],
                    "is_mask": bool(self.query_is_mask[group[0]]),
                    "contribution": contribution,
                    "share": contribution / self.score if self.score else 0.0,
                }
            )
        return pd.DataFrame(rows, columns=["word", "positions", "labels", "is_mask", "contribution", "share"])


# ---------------------------------------------------------------------------------------------- labels


def is_special_token(token: str) -> bool:
    """Whether a vocabulary string is a special token: ``[...]`` or ``<...>`` (``[CLS]``, ``<s>``, ``[unused0]``).

    >>> is_special_token("[SEP]"), is_special_token("##s"), is_special_token("[")
    (True, False, False)
    """
    return len(token) > 2 and (
        (token[0] == "[" and token[-1] == "]") or (token[0] == "<" and token[-1] == ">")
    )


def _piece_style(tokens: Sequence[str]) -> str:
    """``"##"`` for WordPiece, else the word-start mark (``▁`` SentencePiece, ``Ġ`` byte BPE) in use."""
    if any(t.startswith("##") and len(t) > 2 for t in tokens):
        return "##"
    for mark in _WORD_START_MARKS:
        if any(t.startswith(mark) for t in tokens):
            return mark
    return "##"


def _is_continuation(token: str, style: str) -> bool:
    if is_special_token(token):
        return False
    if style == "##":
        return token.startswith("##") and len(token) > 2
    return not token.startswith(style)


def _word_text(token: str, style: str) -> str:
    """The characters a piece adds to its word."""
    if style == "##":
        return token[2:] if _is_continuation(token, style) else token
    return token[len(style) :] if token.startswith(style) else token


def _label(token: str, style: str, markers: Mapping[str, str], is_mask: bool) -> str:
    if is_mask or token in MASK_TOKENS:
        return "[MASK]"
    if token.strip() in markers:
        return markers[token.strip()]
    if is_special_token(token):
        return token
    if _is_continuation(token, style):
        return CONTINUATION + _word_text(token, style)
    return _word_text(token, style) or token


def _markers(query_marker: str | None = None, doc_marker: str | None = None) -> dict[str, str]:
    markers = dict(DEFAULT_MARKERS)
    for marker, label in ((query_marker, "[Q]"), (doc_marker, "[D]")):
        if marker and marker.strip():
            markers[marker.strip()] = label
    return markers


def _token_strings(token_ids: torch.Tensor, vocab: Sequence[str]) -> list[str]:
    """Vocabulary strings; ``#position`` where the id is unknown (colbert-ai indexes store none)."""
    return [vocab[t] if 0 <= t < len(vocab) else f"#{j}" for j, t in enumerate(token_ids.tolist())]


_SURROGATES = re.compile("[\ud800-\udfff]")


def token_chars(
    tokenizer, text: str, tokens: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Where each token of an encoded text comes from in that text, by the fast tokenizer's offsets.

    ``tokens`` are the vocabulary strings of one encoded item, as the encoder made them from ``text``:
    special tokens and ``[MASK]`` padding around the text's pieces, skiplist pieces (punctuation) dropped
    from documents, the end cut at the maximum length. Each other token is matched, in order, to the
    next piece of ``text`` with the same string.

    Parameters
    ----------
    tokenizer : transformers.PreTrainedTokenizerFast
        The encoder's tokenizer (``encoder.tokenizer``).
    text : str
        The text as encoded (a document's title and body joined, :attr:`lirlab.data.Document.full_text`).
    tokens : sequence of str
        Its tokens.

    Returns
    -------
    (chars, words, continues) or None
        ``[n, 2]`` int64 ``[start, stop)`` character spans (``-1, -1`` for special tokens), ``[n]`` int64
        word index (-1 for special tokens) and ``[n]`` bool whether a token continues the word of the
        piece before it; None when the tokenizer gives no offsets (a slow tokenizer) or ``text`` does not
        make these tokens.

    Examples
    --------
    >>> from lirlab.encoder import ColBERT
    >>> encoder = ColBERT.load("minilm")  # doctest: +SKIP
    >>> chars, words, continues = token_chars(encoder.tokenizer, "Calderas", ["[CLS]", "calder", "##as", "[SEP]"])  # doctest: +SKIP
    >>> chars.tolist(), words.tolist(), continues.tolist()  # doctest: +SKIP
    ([[-1, -1], [0, 6], [6, 8], [-1, -1]], [-1, 0, 0, -1], [False, False, True, False])
    """
    if tokenizer is None or not getattr(tokenizer, "is_fast", False) or not isinstance(text, str):
        return None
    text = _SURROGATES.sub("\ufffd", text)  # as the encoder cleaned it (same length)
    pieces = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    strings = tokenizer.convert_ids_to_tokens(pieces["input_ids"])
    offsets, word_ids = pieces["offset_mapping"], pieces.word_ids()
    n = len(tokens)
    chars = np.full((n, 2), -1, dtype=np.int64)
    words = np.full(n, -1, dtype=np.int64)
    continues = np.zeros(n, dtype=bool)
    next_piece = 0
    for row, token in enumerate(tokens):
        if token in MASK_TOKENS:
            continue
        if is_special_token(token) and not (next_piece < len(strings) and strings[next_piece] == token):
            continue  # markers, [CLS], [SEP]; a special the text itself made ([UNK]) keeps its characters
        piece = next_piece
        while piece < len(strings) and strings[piece] != token:
            piece += 1
        if piece == len(strings):
            return None
        chars[row] = offsets[piece]
        word = word_ids[piece]
        words[row] = -1 if word is None else word
        continues[row] = word is not None and piece > 0 and word_ids[piece - 1] == word
        next_piece = piece + 1
    return chars, words, continues


def _text_labels(
    labels: Sequence[str], text: str, chars: np.ndarray, continues: np.ndarray
) -> tuple[str, ...]:
    """Labels read from the text where a row has characters; others (special tokens) kept."""
    out = []
    for label, (start, stop), more in zip(labels, chars.tolist(), continues.tolist()):
        piece = text[start:stop] if start >= 0 else ""
        out.append((CONTINUATION + piece if more else piece) if piece else label)
    return tuple(out)


def token_labels(
    tokens: Sequence[str],
    *,
    text: str | None = None,
    tokenizer=None,
    is_mask: Sequence[bool] | None = None,
    query_marker: str | None = None,
    doc_marker: str | None = None,
) -> tuple[str, ...]:
    """Labels of one encoded item's tokens, by the convention every view shares (the module notes).

    Parameters
    ----------
    tokens : sequence of str
        Vocabulary strings of one query or document.
    text : str, optional
        The text they were encoded from: labels are then its characters, as written.
    tokenizer : transformers.PreTrainedTokenizerFast, optional
        The encoder's tokenizer (needed with ``text``).
    is_mask : sequence of bool, optional
        Which tokens are ``[MASK]`` augmentation (default: ``[MASK]``/``<mask>`` strings).
    query_marker, doc_marker : str, optional
        Marker tokens to read ``[Q]``/``[D]`` besides :data:`DEFAULT_MARKERS`.

    Examples
    --------
    >>> token_labels(["[CLS]", "[unused0]", "calder", "##a", "[MASK]"])
    ('[CLS]', '[Q]', 'calder', '·a', '[MASK]')
    """
    tokens = list(tokens)
    style = _piece_style(tokens)
    markers = _markers(query_marker, doc_marker)
    masks = [t in MASK_TOKENS for t in tokens] if is_mask is None else [bool(m) for m in is_mask]
    labels = tuple(_label(t, style, markers, m) for t, m in zip(tokens, masks))
    found = token_chars(tokenizer, text, tokens) if text is not None else None
    if found is None:
        return labels
    chars, _, continues = found
    return _text_labels(labels, text, chars, continues)


def with_texts(
    alignment: Alignment, tokenizer, query_text: str | None = None, doc_text: str | None = None
) -> Alignment:
    """The alignment labelled with the texts as the user wrote them (see the module notes on labels).

    Call it on an alignment of whole encodings, before :func:`merge_word_pieces` and :func:`window`
    (:func:`align_texts` and :func:`explain_hit` do). A text that does not make the alignment's tokens
    (another document, pooled vectors), or a tokenizer without offsets, leaves that side as it was.

    Parameters
    ----------
    alignment : Alignment
        One row per token.
    tokenizer : transformers.PreTrainedTokenizerFast
        The encoder's tokenizer.
    query_text, doc_text : str, optional
        The texts as encoded (the document's title included).

    Raises
    ------
    ValueError
        The alignment was merged or windowed already.
    """
    if alignment.doc_length != len(alignment.doc_tokens) or not np.array_equal(
        alignment.doc_spans[:, 0], np.arange(len(alignment.doc_tokens))
    ):
        raise ValueError("attach the texts before merging word pieces or windowing the alignment")
    changes = {}
    for side, text in (("query", query_text), ("doc", doc_text)):
        if text is None:
            continue
        found = token_chars(tokenizer, text, getattr(alignment, f"{side}_tokens"))
        if found is None:
            continue
        chars, words, continues = found
        changes[f"{side}_labels"] = _text_labels(getattr(alignment, f"{side}_labels"), text, chars, continues)
        changes.update({f"{side}_text": text, f"{side}_chars": chars, f"{side}_words": words})
    return replace(alignment, **changes) if changes else alignment


# ---------------------------------------------------------------------------------------------- building


def _build(
    query_vectors: torch.Tensor,
    doc_vectors: torch.Tensor,
    query_tokens: Sequence[str],
    doc_tokens: Sequence[str],
    query_is_mask: Sequence[bool],
    markers: Mapping[str, str],
    reconstruction_cosine: torch.Tensor | None = None,
    query: str | None = None,
    docno: str | None = None,
) -> Alignment:
    if query_vectors.ndim != 2 or doc_vectors.ndim != 2:
        raise ValueError("query and document vectors must be 2-d [tokens, dim] matrices")
    if query_vectors.shape[0] == 0:
        raise ValueError("the query has no token vectors")
    if doc_vectors.shape[0] and query_vectors.shape[1] != doc_vectors.shape[1]:
        raise ValueError(
            f"query vectors have dim {query_vectors.shape[1]}, document vectors have dim {doc_vectors.shape[1]}"
        )
    explanation = explain(query_vectors, doc_vectors)
    style = _piece_style([*query_tokens, *doc_tokens])
    query_is_mask = np.asarray(query_is_mask, dtype=bool)
    n_doc = len(doc_tokens)
    return Alignment(
        query_tokens=tuple(query_tokens),
        doc_tokens=tuple(doc_tokens),
        query_labels=tuple(_label(t, style, markers, m) for t, m in zip(query_tokens, query_is_mask)),
        doc_labels=tuple(_label(t, style, markers, False) for t in doc_tokens),
        similarity=explanation.similarity.numpy().astype(np.float32),
        best_doc_token=explanation.best_doc_token.numpy().astype(np.int64),
        contributions=explanation.contributions.numpy().astype(np.float32),
        score=explanation.score,
        query_is_mask=query_is_mask,
        doc_spans=np.stack([np.arange(n_doc), np.arange(1, n_doc + 1)], axis=1).astype(np.int64),
        doc_length=n_doc,
        reconstruction_cosine=None
        if reconstruction_cosine is None
        else reconstruction_cosine.numpy().astype(np.float32),
        query=query,
        docno=docno,
    )


def align_vectors(
    query_vectors: torch.Tensor,
    doc_vectors: torch.Tensor,
    query_tokens: Sequence[str] | None = None,
    doc_tokens: Sequence[str] | None = None,
    query_marker: str | None = None,
    doc_marker: str | None = None,
) -> Alignment:
    """Align bare token vectors (L2-normalized ``[tokens, dim]`` tensors) with optional token strings.

    Parameters
    ----------
    query_vectors, doc_vectors : torch.Tensor
        One row per token.
    query_tokens, doc_tokens : sequence of str, optional
        One string per row (default ``#0``, ``#1``...). ``[MASK]``/``<mask>`` query tokens count as
        augmentation.
    query_marker, doc_marker : str, optional
        Marker tokens to show as ``[Q]``/``[D]`` besides the usual ones (:data:`DEFAULT_MARKERS`).

    Examples
    --------
    >>> import torch
    >>> a = align_vectors(torch.eye(2), torch.tensor([[0.0, 1.0]]))
    >>> a.best_doc_token.tolist(), a.contributions.tolist(), a.doc_labels
    ([0, 0], [0.0, 1.0], ('#0',))
    """
    query_vectors, doc_vectors = torch.as_tensor(query_vectors), torch.as_tensor(doc_vectors)
    query_tokens = (
        list(query_tokens) if query_tokens is not None else [f"#{i}" for i in range(len(query_vectors))]
    )
    doc_tokens = list(doc_tokens) if doc_tokens is not None else [f"#{j}" for j in range(len(doc_vectors))]
    for what, tokens, vectors in (
        ("query", query_tokens, query_vectors),
        ("document", doc_tokens, doc_vectors),
    ):
        if len(tokens) != len(vectors):
            raise ValueError(f"{len(tokens)} {what} tokens for {len(vectors)} {what} vectors")
    return _build(
        query_vectors,
        doc_vectors,
        query_tokens,
        doc_tokens,
        [t in MASK_TOKENS for t in query_tokens],
        _markers(query_marker, doc_marker),
    )


def _check_query_text(query) -> str:
    if not isinstance(query, str):
        raise ValueError(f"the query must be a string, got {type(query).__name__}")
    if not query.strip():
        raise ValueError("the query is empty: type at least one word")
    return query


def _query_text(queries: Encoding) -> str | None:
    """The text of an encoded query, when it carries one."""
    return queries.texts[0] if queries.texts else None


def _encode_query(encoder, query: str | Encoding) -> tuple[Encoding, str]:
    if isinstance(query, Encoding):
        if len(query) != 1:
            raise ValueError(f"pass one encoded query, got {len(query)}")
        return query, _query_text(query) or query.ids[0]
    text = _check_query_text(query)
    return encoder.encode_queries([Query("query", text)]), text


def align_texts(encoder, query: str, document: str | Document) -> Alignment:
    """Encode a query and a document with ``encoder`` and align them exactly.

    Parameters
    ----------
    encoder : lirlab.encoder.ColBERT
        The model (its markers and ``[MASK]`` padding are labelled).
    query : str
        Query text (not empty).
    document : str or lirlab.data.Document
        Document text, or a record (title and text are encoded, its docno kept).

    Raises
    ------
    ValueError
        Empty or non-string query, non-string document.

    Examples
    --------
    >>> from lirlab.encoder import ColBERT
    >>> a = align_texts(ColBERT.load("minilm"), "volcano caldera", "A caldera forms when ...")  # doctest: +SKIP
    >>> a.matches()  # doctest: +SKIP
    """
    record = document if isinstance(document, Document) else Document("document", document)
    if not isinstance(record.text, str) or not isinstance(record.title, str):
        raise ValueError(f"the document must be a string, got {type(record.text).__name__}")
    queries, query_text = _encode_query(encoder, query)
    docs = encoder.encode_documents([record], progress=False)
    alignment = _build(
        queries.vectors_of(0),
        docs.vectors_of(0),
        queries.tokens(0),
        docs.tokens(0),
        queries.mask_positions(0).tolist(),
        _markers(encoder.config.query_marker, encoder.config.doc_marker),
        query=query_text,
        docno=record.docno if isinstance(document, Document) else None,
    )
    return with_texts(alignment, encoder.tokenizer, _query_text(queries), record.full_text)


def _stored_document(index: Index, docno: str) -> tuple[torch.Tensor, torch.Tensor, Sequence[str]]:
    """``(vectors, token ids, vocab)`` of a document as the index stores it (a reconstruction for a
    compressed index)."""
    if not isinstance(docno, str):
        raise ValueError(f"docno must be a string, got {type(docno).__name__}")
    if not isinstance(index, Index):
        raise ValueError(f"align_hit needs a lirlab index, got {type(index).__name__}")
    try:
        position = index.position(docno)
    except KeyError:
        raise ValueError(f"unknown docno {docno!r}: the index holds no such document") from None
    if not index.is_live(position):
        raise ValueError(f"document {docno!r} was deleted from the index")
    stored = index.documents([position])
    if stored.regions is not None:
        raise ValueError(
            f"document {docno!r} is a page image whose vectors are patches, not words: draw its heatmap over "
            "the page with lirlab.analysis.pages.page_hit(index, query, docno)"
        )
    return stored.vectors.float().cpu(), stored.token_ids.long().cpu(), stored.vocab


def align_hit(
    index,
    query: str | Encoding,
    docno: str,
    encoder=None,
    document_text: str | None = None,
    doc_text: str | None = None,
) -> Alignment:
    """Align a query with a document as the index stores it: the alignment behind a search hit.

    The vectors are what :meth:`~lirlab.index.base.Index.documents` returns: the encoded ones for an
    exact index, the reconstruction for a compressed one, so :attr:`Alignment.score` is the score the
    index reports for the hit. With ``document_text`` the document is also encoded afresh and
    :attr:`Alignment.reconstruction_cosine` holds, per document token, the cosine between the stored
    and the exact vector (≈1 for a flat index, below 1 for a compressed one).

    Parameters
    ----------
    index : lirlab.index.base.Index
        The index the hit came from, of any kind.
    query : str or Encoding
        Query text, or one already encoded query.
    docno : str
        The hit's document id.
    encoder : lirlab.encoder.ColBERT, optional
        Encodes the query and ``document_text`` (default: ``index.encoder``).
    document_text : str, optional
        The text the document was indexed from (title included, as the encoder saw it), encoded afresh
        for the reconstruction cosine; it also labels the tokens as written.
    doc_text : str, optional
        The same text, only to label the document's tokens as written (:func:`with_texts`), encoding
        nothing. A query given as text, or encoded with its text, labels the query tokens so.

    Raises
    ------
    ValueError
        Unknown or deleted ``docno``, a page image (see :func:`lirlab.analysis.pages.page_hit`), empty
        query, no encoder, or ``document_text`` that does not encode to the token ids the index stores.

    Examples
    --------
    >>> run = index.search("how does a caldera form", k=3)  # doctest: +SKIP
    >>> align_hit(index, "how does a caldera form", run.docno[0]).score  # doctest: +SKIP
    >>> texts = {d.docno: d.full_text for d in dataset.docs}  # doctest: +SKIP
    >>> align_hit(index, "how does a caldera form", run.docno[0], doc_text=texts[run.docno[0]]).doc_labels  # doctest: +SKIP
    """
    encoder = encoder if encoder is not None else getattr(index, "encoder", None)
    needs_encoder = not isinstance(query, Encoding) or document_text is not None
    if isinstance(query, str):
        _check_query_text(query)
    vectors, token_ids, vocab = _stored_document(index, docno)
    if needs_encoder and encoder is None:
        raise ValueError("align_hit needs an encoder for text: pass encoder=... or load the index with one")
    queries, query_text = _encode_query(encoder, query)
    if not vocab and encoder is not None:
        vocab = encoder.vocab
    doc_tokens = _token_strings(token_ids, vocab)
    groups = index.pooled_tokens(index.position(docno))
    if groups is not None:
        # each pooled vector is labelled with the tokens it stands for, in braces (pieces written as every
        # label writes them), so that word-piece merging leaves them alone: members need not be neighbours
        style = _piece_style([t for group in groups for t in group])
        doc_tokens = [
            "{" + " ".join(_label(t, style, {}, False) for t in group) + "}"
            if len(group) > 1 or _is_continuation(group[0], style)
            else group[0]
            for group in groups
        ]
        if document_text is not None:
            raise ValueError(
                f"document {docno!r} is pooled (pool_factor={index.pooling.pool_factor}): its vectors stand for "
                "groups of tokens, so there is no per-token reconstruction to compare; align it without document_text"
            )
    cosine = None
    if document_text is not None:
        if not isinstance(document_text, str):
            raise ValueError(f"document_text must be a string, got {type(document_text).__name__}")
        exact = encoder.encode_documents([Document(docno, document_text)], progress=False)
        exact_ids = exact.token_ids_of(0)
        unknown_ids = bool((token_ids < 0).all())
        if len(exact_ids) != len(token_ids) or not (unknown_ids or torch.equal(exact_ids, token_ids)):
            raise ValueError(
                f"document_text does not match document {docno!r}: it encodes to {len(exact_ids)} tokens, "
                f"the index stores {len(token_ids)} with other ids (give the text the index was built from, "
                "title included, and the same encoder)"
            )
        if unknown_ids:
            doc_tokens = exact.tokens(0)
        exact_vectors = torch.nn.functional.normalize(exact.vectors_of(0).float(), dim=1)
        cosine = (torch.nn.functional.normalize(vectors.float(), dim=1) * exact_vectors).sum(dim=1)
    model = getattr(index, "model", None) or {}
    config = encoder.config if encoder is not None else None
    alignment = _build(
        queries.vectors_of(0),
        vectors,
        queries.tokens(0),
        doc_tokens,
        queries.mask_positions(0).tolist(),
        _markers(
            config.query_marker if config else model.get("query_marker"),
            config.doc_marker if config else model.get("doc_marker"),
        ),
        reconstruction_cosine=cosine,
        query=query_text,
        docno=docno,
    )
    if encoder is None:
        return alignment
    text = document_text if document_text is not None else doc_text
    return with_texts(alignment, encoder.tokenizer, _query_text(queries), text)


# ---------------------------------------------------------------------------------------------- readability


def _select_rows(alignment: Alignment, groups: list[list[int]], doc_tokens, doc_labels) -> Alignment:
    """An alignment whose row ``g`` stands for the old rows ``groups[g]`` (similarity: max over them)."""
    similarity = (
        np.stack([alignment.similarity[:, g].max(axis=1) for g in groups], axis=1)
        if groups
        else (alignment.similarity[:, :0])
    )
    group_of = np.full(
        len(alignment.doc_tokens) + 1, -1, dtype=np.int64
    )  # best == -1 maps to the trailing -1
    for g, rows in enumerate(groups):
        group_of[rows] = g
    best = group_of[alignment.best_doc_token]
    spans = np.array(
        [[alignment.doc_spans[g[0], 0], alignment.doc_spans[g[-1], 1]] for g in groups], dtype=np.int64
    )
    cosine = alignment.reconstruction_cosine
    if cosine is not None:
        cosine = np.array([cosine[g].min() for g in groups], dtype=np.float32)
    chars, words = alignment.doc_chars, alignment.doc_words
    if chars is not None:
        chars = np.array([[chars[g[0], 0], chars[g[-1], 1]] for g in groups], dtype=np.int64).reshape(-1, 2)
        words = np.array([words[g[0]] for g in groups], dtype=np.int64)
    return replace(
        alignment,
        doc_tokens=tuple(doc_tokens),
        doc_labels=tuple(doc_labels),
        similarity=similarity.astype(np.float32),
        best_doc_token=best,
        doc_spans=spans.reshape(-1, 2),
        reconstruction_cosine=cosine,
        doc_chars=chars,
        doc_words=words,
    )


def merge_word_pieces(alignment: Alignment) -> Alignment:
    """Join document word pieces into words.

    A piece that continues a word joins the row before it, unless that row is a special token or tokens
    were left out between them (:func:`window`). With the text (:func:`with_texts`) a piece continues a
    word when the tokenizer gives it the same word index, and the merged label is the word as written;
    without it, a WordPiece ``##x`` (in SentencePiece/BPE vocabularies, a piece without the word-start
    mark) continues the row before. The rule for a merged word:

    * its similarity to a query token is the **maximum** over its pieces, so each query token's best
      word is the word holding its best piece, and contributions and score are unchanged;
    * its reconstruction cosine is the **minimum** over its pieces (the worst-kept piece).

    Query tokens are never merged: each one is a separate term of the MaxSim sum.

    Examples
    --------
    >>> import torch
    >>> a = align_vectors(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0], [0.8, 0.6], [1.0, 0.0]]),
    ...                   ["bees"], ["[CLS]", "bee", "##s"])
    >>> m = merge_word_pieces(a)
    >>> m.doc_labels, m.doc_tokens, m.similarity.round(2).tolist(), m.best_doc_token.tolist()
    (('[CLS]', 'bees'), ('[CLS]', 'bee ##s'), [[0.0, 1.0]], [1])
    """
    style = _piece_style(alignment.doc_tokens)
    words, chars, text = alignment.doc_words, alignment.doc_chars, alignment.doc_text
    groups: list[list[int]] = []
    for row, token in enumerate(alignment.doc_tokens):
        continues = (
            _is_continuation(token, style)
            if words is None
            else words[row] >= 0 and words[row] == words[row - 1] and chars[row, 0] >= chars[row - 1, 1]
        )
        joins = (
            groups
            and continues
            and not is_special_token(alignment.doc_tokens[row - 1])
            and alignment.doc_spans[row - 1, 1] == alignment.doc_spans[row, 0]
        )
        if joins:
            groups[-1].append(row)
        else:
            groups.append([row])
    doc_tokens = [" ".join(alignment.doc_tokens[r] for r in g) for g in groups]
    doc_labels = [
        alignment.doc_labels[g[0]]
        if len(g) == 1
        else text[chars[g[0], 0] : chars[g[-1], 1]]
        if words is not None
        else "".join(_word_text(alignment.doc_tokens[r], style) for r in g)
        for g in groups
    ]
    return _select_rows(alignment, groups, doc_tokens, doc_labels)


def window(alignment: Alignment, context: int = 2, max_rows: int | None = None) -> Alignment:
    """Keep only the document rows some query token matched, plus ``context`` rows on each side.

    Left-out stretches show in :attr:`Alignment.elided_before`. Without ``max_rows`` every matched row
    is kept, so contributions and score are unchanged. Merge word pieces first to count the context
    in words.

    Parameters
    ----------
    alignment : Alignment
    context : int
        Neighbours kept on each side of a matched row (0 keeps the matched rows alone).
    max_rows : int, optional
        Keep at most this many rows (what fits a screen): the matched rows that add the most to the
        score come first, then their neighbours, nearest first. Query tokens whose match is left out
        keep their contribution but have no marked row (``best_doc_token`` -1).

    Examples
    --------
    >>> import torch
    >>> doc = torch.nn.functional.normalize(torch.tensor([[1.0, float(i)] for i in range(10)]), dim=1)
    >>> w = window(align_vectors(torch.tensor([[1.0, 0.0]]), doc), context=1)
    >>> w.doc_labels, w.elided_before.tolist()
    (('#0', '#1'), [False, False, True])
    """
    return window_together([alignment], context=context, max_rows=max_rows)[0]


def window_together(
    alignments: Sequence[Alignment], context: int = 2, max_rows: int | None = None
) -> list[Alignment]:
    """:func:`window` several alignments of one document (before and after training, two models) on the
    same rows, so that they can be drawn side by side.

    A row is kept when any alignment matched it, or lies within ``context`` rows of such a row; with
    ``max_rows``, rows are ranked by the most any one alignment's query tokens add to its score there.

    Parameters
    ----------
    alignments : sequence of Alignment
        Alignments of the same document rows (same tokens, merged the same way).
    context, max_rows :
        As for :func:`window`.

    Raises
    ------
    ValueError
        No alignment, or alignments of different document rows.

    Examples
    --------
    >>> import torch
    >>> doc = torch.eye(4)
    >>> a, b = align_vectors(torch.eye(4)[[0]], doc), align_vectors(torch.eye(4)[[3]], doc)
    >>> [w.doc_labels for w in window_together([a, b], context=0)]
    [('#0', '#3'), ('#0', '#3')]
    """
    context = CONTEXT.validate(context)
    max_rows = MAX_ROWS.validate(max_rows)
    if not alignments:
        raise ValueError("window_together needs at least one alignment")
    first = alignments[0]
    for other in alignments[1:]:
        if other.doc_tokens != first.doc_tokens or not np.array_equal(other.doc_spans, first.doc_spans):
            raise ValueError(
                "alignments of different document rows cannot share a window: align the same document, "
                "merged the same way"
            )
    n_doc = len(first.doc_tokens)
    weight = np.zeros(n_doc)
    matched = np.zeros(n_doc, dtype=bool)
    for alignment in alignments:
        best = alignment.best_doc_token
        served = np.zeros(n_doc)
        np.add.at(served, best[best >= 0], alignment.contributions[best >= 0])
        weight = np.maximum(weight, served)
        matched[best[best >= 0]] = True
    rows = np.flatnonzero(matched)
    order = rows[np.argsort(-weight[rows], kind="stable")]
    budget = n_doc if max_rows is None else max_rows
    keep = np.zeros(n_doc, dtype=bool)
    keep[order[:budget]] = True
    kept = int(keep.sum())
    for distance in range(1, context + 1):
        for row in order:
            for neighbour in (row - distance, row + distance):
                if kept < budget and 0 <= neighbour < n_doc and not keep[neighbour]:
                    keep[neighbour] = True
                    kept += 1
    rows = np.flatnonzero(keep).tolist()
    return [
        _select_rows(
            alignment,
            [[r] for r in rows],
            [alignment.doc_tokens[r] for r in rows],
            [alignment.doc_labels[r] for r in rows],
        )
        for alignment in alignments
    ]


def search_text(index: Index, text: str, k: int = 10, encoder=None) -> tuple[pd.DataFrame, Encoding]:
    """Search one query text; returns the run and the encoded query (the text doubles as its id, so the
    run and later alignments carry it). Warnings of the search propagate to the caller."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("the query is empty: type a question or a few words")
    encoder = encoder if encoder is not None else index.encoder
    if encoder is None:
        raise ValueError("searching text needs an encoder: pass encoder=... or load the index with one")
    encoded = encoder.encode_queries([Query(text, text)])
    encoded = replace(encoded, texts=(text,))
    return index.search(encoded, k=k), encoded


def explain_hit(
    index: Index,
    query: Encoding,
    docno: str,
    encoder=None,
    document_text: str | None = None,
    merge: bool = True,
    long_document: int = 40,
    context: int = 2,
) -> tuple[Alignment, str]:
    """The alignment a viewer shows for one hit, and a note when part of it could not be had.

    With a known ``document_text`` the labels are the document as written (:func:`with_texts`) and, for
    an index that stores a reconstruction (``exact`` false), the alignment carries the per-token
    reconstruction cosine; word pieces are merged when ``merge``; a
    document longer than ``long_document`` rows is windowed to ``context`` rows around its matches,
    and to at most ``long_document`` rows (the rows that add most to the score first, see :func:`window`).
    """
    note = ""
    alignment = None
    if document_text is not None and not index.exact:
        try:
            alignment = align_hit(index, query, docno, encoder=encoder, document_text=document_text)
        except ValueError as error:
            note = f"no reconstruction view: {error}"
    if alignment is None:
        alignment = align_hit(index, query, docno, encoder=encoder, doc_text=document_text)
    if merge:
        alignment = merge_word_pieces(alignment)
    if len(alignment.doc_tokens) > long_document:
        alignment = window(alignment, context=context, max_rows=long_document)
    return alignment, note
