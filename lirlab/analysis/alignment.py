"""Token alignment: which document token every query token matched, and what it added to the score.

An :class:`Alignment` holds, for one (query, document) pair, the full cosine similarity matrix, each query
token's best document token and its contribution (its row maximum; the contributions sum to the MaxSim
score), readable token labels and, optionally, how far every stored (compressed) document vector is from
the exact one. It is built from raw text (:func:`align_texts`), from a hit in an index (:func:`align_hit`)
or from bare vectors (:func:`align_vectors`), and made readable by :func:`merge_word_pieces` (document
word pieces become words) and :func:`window` (long documents keep only the matched tokens and a few
neighbours).

Labels: the query and document markers (``[unused0]``/``[unused1]`` in Stanford checkpoints, ``[Q]``/``[D]``
prefixes in PyLate ones) read ``[Q]``/``[D]``; query augmentation tokens read ``[MASK]``; a word piece that
continues the previous token reads ``·piece`` (WordPiece ``##piece``, or a SentencePiece/BPE piece without
its word-start mark ``▁``/``Ġ``); other special tokens (``[CLS]``, ``[SEP]``, ``<s>``...) are kept as they are.

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


def _encode_query(encoder, query: str | Encoding) -> tuple[Encoding, str]:
    if isinstance(query, Encoding):
        if len(query) != 1:
            raise ValueError(f"pass one encoded query, got {len(query)}")
        return query, query.ids[0]
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
    return _build(
        queries.vectors_of(0),
        docs.vectors_of(0),
        queries.tokens(0),
        docs.tokens(0),
        queries.mask_positions(0).tolist(),
        _markers(encoder.config.query_marker, encoder.config.doc_marker),
        query=query_text,
        docno=record.docno if isinstance(document, Document) else None,
    )


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
    return stored.vectors.float().cpu(), stored.token_ids.long().cpu(), stored.vocab


def align_hit(
    index,
    query: str | Encoding,
    docno: str,
    encoder=None,
    document_text: str | None = None,
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
        The text the document was indexed from (title included, as the encoder saw it).

    Raises
    ------
    ValueError
        Unknown or deleted ``docno``, empty query, no encoder, or ``document_text`` that does not
        encode to the token ids the index stores.

    Examples
    --------
    >>> run = index.search("how does a caldera form", k=3)  # doctest: +SKIP
    >>> align_hit(index, "how does a caldera form", run.docno[0]).score  # doctest: +SKIP
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
    return _build(
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
    return replace(
        alignment,
        doc_tokens=tuple(doc_tokens),
        doc_labels=tuple(doc_labels),
        similarity=similarity.astype(np.float32),
        best_doc_token=best,
        doc_spans=spans.reshape(-1, 2),
        reconstruction_cosine=cosine,
    )


def merge_word_pieces(alignment: Alignment) -> Alignment:
    """Join document word pieces into words.

    A piece that continues a word (WordPiece ``##x``; in SentencePiece/BPE vocabularies, a piece without
    the word-start mark) joins the row before it, unless that row is a special token or tokens were
    left out between them (:func:`window`). The rule for a merged word:

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
    groups: list[list[int]] = []
    for row, token in enumerate(alignment.doc_tokens):
        joins = (
            groups
            and _is_continuation(token, style)
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
        else "".join(_word_text(alignment.doc_tokens[r], style) for r in g)
        for g in groups
    ]
    return _select_rows(alignment, groups, doc_tokens, doc_labels)


def window(alignment: Alignment, context: int = 2) -> Alignment:
    """Keep only the document rows some query token matched, plus ``context`` rows on each side.

    Left-out stretches show in :attr:`Alignment.elided_before`; every matched row is kept, so
    contributions and score are unchanged. Merge word pieces first to count the context in words.

    Parameters
    ----------
    alignment : Alignment
    context : int
        Neighbours kept on each side of a matched row (0 keeps the matched rows alone).

    Examples
    --------
    >>> import torch
    >>> doc = torch.nn.functional.normalize(torch.tensor([[1.0, float(i)] for i in range(10)]), dim=1)
    >>> w = window(align_vectors(torch.tensor([[1.0, 0.0]]), doc), context=1)
    >>> w.doc_labels, w.elided_before.tolist()
    (('#0', '#1'), [False, False, True])
    """
    context = CONTEXT.validate(context)
    matched = np.unique(alignment.best_doc_token[alignment.best_doc_token >= 0])
    n_doc = len(alignment.doc_tokens)
    keep = np.zeros(n_doc, dtype=bool)
    for row in matched:
        keep[max(0, row - context) : row + context + 1] = True
    rows = np.flatnonzero(keep).tolist()
    return _select_rows(
        alignment,
        [[r] for r in rows],
        [alignment.doc_tokens[r] for r in rows],
        [alignment.doc_labels[r] for r in rows],
    )


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

    For an index that stores a reconstruction (``EXACT`` false) and a known ``document_text``, the
    alignment carries the per-token reconstruction cosine; word pieces are merged when ``merge``; a
    document longer than ``long_document`` rows is windowed to ``context`` rows around its matches.
    """
    note = ""
    alignment = None
    if document_text is not None and not index.EXACT:
        try:
            alignment = align_hit(index, query, docno, encoder=encoder, document_text=document_text)
        except ValueError as error:
            note = f"no reconstruction view: {error}"
    if alignment is None:
        alignment = align_hit(index, query, docno, encoder=encoder)
    if merge:
        alignment = merge_word_pieces(alignment)
    if len(alignment.doc_tokens) > long_document:
        alignment = window(alignment, context=context)
    return alignment, note
