"""How query augmentation's ``[MASK]`` tokens weigh the terms of a query.

ColBERT pads every query with ``[MASK]`` up to ``query_maxlen``. In checkpoints trained that way each
``[MASK]`` output vector lies close to one of the real query tokens, so its MaxSim contribution acts as
extra weight on that term (Giacalone & Zanibbi, "Beneath the [MASK]", ECIR 2024). Encoders never trained
with the padding are hurt by it. This module measures both, with any checkpoint:

* :func:`mask_weighting` — for one query against one document, or averaged over its top hits: the
  document token each ``[MASK]`` matched, the query token each ``[MASK]`` vector lies nearest to, and
  every query term's *effective weight* (its own MaxSim contribution plus those of the ``[MASK]``
  tokens assigned to it) beside its IDF in the corpus; :func:`weigh_masks` does the same on encodings;
* :func:`query_maxlen_curve` — retrieval quality as ``query_maxlen`` and ``attend_to_mask_tokens`` vary,
  with and without the ``[MASK]`` contributions (:func:`drop_masks` removes them);
* :func:`term_statistics` — document frequencies of token ids over an encoding or an index.

Notes
-----
IDF follows the BM25 form, ``idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))``, with ``N`` the number
of (live) documents and ``df(t)`` the number of documents whose stored token ids hold ``t`` at least once.
It is positive for every token and highest for tokens no document holds. Stored document token ids are
those left after the skiplist, so punctuation dropped from documents counts as absent, and markers such as
``[CLS]`` that every document holds get the lowest IDF.

A ``[MASK]`` is assigned to the non-``[MASK]`` query token whose vector has the highest cosine with its
own (special tokens such as ``[CLS]`` included unless ``assign_to_special=False``). Since a query token's
MaxSim contribution does not depend on the other query tokens, the effective weights of all
non-``[MASK]`` tokens sum to the MaxSim score, and dropping the ``[MASK]`` rows from the query leaves
exactly the sum of the tokens' own contributions.

Examples
--------
A query ``[CLS] cat dog [MASK]`` whose ``[MASK]`` vector sits next to ``dog``, against one document:

>>> import torch
>>> vocab = ("[CLS]", "[MASK]", "cat", "dog", "[D]")
>>> unit = lambda rows: torch.nn.functional.normalize(torch.tensor(rows), dim=1)
>>> query = Encoding(("q",), unit([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0.3, 1]]),
...                  torch.tensor([0, 2, 3, 1]), torch.tensor([0, 4]), vocab, kind="query", mask_token_id=1)
>>> docs = Encoding(("d1", "d2"), unit([[1.0, 0, 0], [0, 0, 1], [1.0, 0, 0], [0, 1, 0]]),
...                 torch.tensor([4, 3, 4, 2]), torch.tensor([0, 2, 4]), vocab)
>>> weighting = weigh_masks(query, docs.item("d1"), term_statistics(docs), special_token_ids={0})
>>> weighting.assignments[["position", "term_token"]].values.tolist()
[[3, 'dog']]
>>> weighting.terms[["token", "own", "mask_share", "effective_weight"]].round(3).values.tolist()
[['[CLS]', 1.0, 0.0, 1.0], ['cat', 0.0, 0.0, 0.0], ['dog', 1.0, 0.958, 1.958]]
>>> round(weighting.score, 3), round(float(weighting.documents.score_without_masks[0]), 3)
(2.958, 2.0)
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from tqdm.auto import tqdm

from lirlab.analysis.alignment import token_labels
from lirlab.data import Dataset, Query, as_queries
from lirlab.encoding import Encoding, offsets_from_lengths
from lirlab.evaluate import evaluate, parse_measures
from lirlab.index.base import K_PARAM, Index
from lirlab.index.flat import FlatIndex
from lirlab.maxsim import explain
from lirlab.params import Param

#: One ``query_maxlen`` of the curve (0: no [MASK] padding).
QUERY_MAXLEN = Param(
    "query_maxlen", int, 32, "Query length padded to with [MASK] (0: none).", low=0, high=4096
)

#: Hits averaged over when :func:`mask_weighting` is given no document.
TOP_K = Param("top_k", int, 10, "Hits averaged over when no document is given.", low=1, high=1000)

DEFAULT_QUERY_MAXLENS = (0, 8, 16, 32, 48, 64)
"""``query_maxlen`` settings of the curve: 0 is no augmentation (queries only cut at the model's limit)."""

#: How a curve's queries meet the length: ``"fixed"`` pads shorter ones with ``[MASK]`` and cuts longer
#: ones there (ColBERT); ``"min"`` pads shorter ones and keeps longer ones whole, up to the model's
#: position limit (Sentence Transformers 6's ``"min"``, lirlab's ``query_minlen``).
PADDINGS = ("fixed", "min")


# ---------------------------------------------------------------------------------------- term statistics


@dataclass(frozen=True)
class TermStatistics:
    """Document frequencies of token ids in a corpus.

    Attributes
    ----------
    n_docs : int
        Documents counted (deleted ones of an index excluded).
    document_frequency : torch.Tensor
        ``[vocab_size]`` int64: in how many documents each token id occurs at least once.
    """

    n_docs: int
    document_frequency: torch.Tensor

    def idf(self, token_ids) -> torch.Tensor:
        """``ln(1 + (N - df + 0.5) / (df + 0.5))`` of each token id, as float64.

        >>> stats = TermStatistics(4, torch.tensor([4, 1, 0]))
        >>> [round(v, 3) for v in stats.idf([0, 1, 2]).tolist()]
        [0.105, 1.204, 2.303]
        """
        token_ids = torch.as_tensor(token_ids, dtype=torch.long)
        size = self.document_frequency.shape[0]
        if token_ids.numel() and (int(token_ids.min()) < 0 or int(token_ids.max()) >= size):
            raise ValueError(f"token ids must lie in 0..{size - 1}, the statistics' vocabulary")
        df = self.document_frequency[token_ids].double()
        return torch.log1p((self.n_docs - df + 0.5) / (df + 0.5))


def term_statistics(source: Encoding | Index) -> TermStatistics:
    """Count, for every token id, the documents that hold it.

    Parameters
    ----------
    source : Encoding or Index
        Encoded documents, or an index of any kind whose stored token ids are read (its live documents
        only).

    Examples
    --------
    >>> docs = Encoding(("a", "b", "c"), torch.zeros(6, 2), torch.tensor([0, 1, 1, 0, 2, 0]),
    ...                 torch.tensor([0, 3, 5, 6]), ("[D]", "sun", "moon"))
    >>> stats = term_statistics(docs)
    >>> stats.n_docs, stats.document_frequency.tolist()
    (3, [3, 1, 1])
    """
    if isinstance(source, Index):
        token_ids, lengths, vocab = source.tokens()
    elif isinstance(source, Encoding):
        if source.kind == "query":
            raise ValueError("term statistics come from documents; this Encoding holds queries")
        token_ids, lengths, vocab = source.token_ids, source.lengths, source.vocab
    else:
        raise ValueError(
            f"term statistics need documents (an Encoding or an index), got {type(source).__name__}"
        )
    token_ids = token_ids.cpu().long()
    lengths = lengths.cpu().long()
    size = max(len(vocab), int(token_ids.max()) + 1 if token_ids.numel() else 1)
    doc_of_row = torch.repeat_interleave(torch.arange(lengths.shape[0]), lengths)
    n_docs = lengths.shape[0]
    pairs = torch.unique(doc_of_row * size + token_ids)
    return TermStatistics(int(n_docs), torch.bincount(pairs % size, minlength=size))


# ------------------------------------------------------------------------------------------ ablation


def drop_masks(queries: Encoding) -> Encoding:
    """The same queries without their ``[MASK]`` rows: MaxSim then counts only the real tokens.

    Examples
    --------
    >>> q = Encoding(("q",), torch.eye(3), torch.tensor([5, 6, 9]), torch.tensor([0, 3]),
    ...              tuple(f"t{i}" for i in range(10)), kind="query", mask_token_id=9)
    >>> drop_masks(q).tokens(0)
    ['t5', 't6']
    """
    keep = queries.token_ids != queries.mask_token_id
    item_of_row = torch.repeat_interleave(torch.arange(len(queries)), queries.lengths.cpu())
    lengths = torch.bincount(item_of_row[keep.cpu()], minlength=len(queries))
    return Encoding(
        ids=queries.ids,
        vectors=queries.vectors[keep],
        token_ids=queries.token_ids[keep],
        offsets=offsets_from_lengths(lengths),
        vocab=queries.vocab,
        truncated=queries.truncated,
        kind=queries.kind,
        mask_token_id=queries.mask_token_id,
    )


# ------------------------------------------------------------------------------ documents and queries


def as_index(index_or_docs, encoder=None, progress: bool = True) -> Index:
    """A searchable index from an index, encoded documents, or texts (encoded here with ``encoder``).

    An index of any kind is used as is; an :class:`~lirlab.encoding.Encoding` of documents becomes a
    :class:`~lirlab.index.flat.FlatIndex`; anything
    :func:`lirlab.data.as_documents` accepts (a Dataset, a list or mapping of texts) is encoded first.

    Raises
    ------
    ValueError
        No encoder for texts, an Encoding of queries, or documents of another dimension than the encoder's.
    """
    if isinstance(index_or_docs, Index):
        index = index_or_docs
    elif isinstance(index_or_docs, Encoding):
        if index_or_docs.kind == "query":
            raise ValueError("expected documents; this Encoding holds queries")
        index = FlatIndex(index_or_docs, encoder=encoder)
    else:
        if encoder is None:
            raise ValueError("an encoder is needed to encode the documents")
        index = FlatIndex.build(index_or_docs, encoder, progress=progress)
    if encoder is not None and index.dim != encoder.dim:
        raise ValueError(
            f"the documents have {index.dim}-dimensional vectors, the encoder gives {encoder.dim}"
        )
    return index


def _query_encoding(encoder, query) -> Encoding:
    if isinstance(query, Encoding):
        if len(query) != 1:
            raise ValueError(f"pass one query, got an Encoding of {len(query)}")
        return query
    if not isinstance(query, str | Query):
        raise ValueError(f"query must be a text, a Query or a one-query Encoding, got {type(query).__name__}")
    if encoder is None:
        raise ValueError("an encoder is needed to encode the query text")
    return encoder.encode_queries(as_queries([query] if isinstance(query, Query) else query))


def special_token_ids(encoder) -> frozenset[int]:
    """Ids of the tokenizer's special tokens and the encoder's markers, ``[MASK]`` excluded."""
    ids = set(encoder.tokenizer.all_special_ids) | {encoder.query_marker_id, encoder.doc_marker_id}
    return frozenset(int(i) for i in ids if i is not None and i != encoder.mask_token_id)


# ---------------------------------------------------------------------------------------- one query


@dataclass(frozen=True, eq=False)
class MaskWeighting:
    """How one query's ``[MASK]`` tokens weigh its terms, against one or more documents.

    Contributions are MaxSim contributions (a query token's highest cosine with any document token),
    averaged over the documents analysed.

    Attributes
    ----------
    query : str
        The query text (or its id, for a query given encoded).
    tokens : tuple of str
        Every query token as encoded, ``[MASK]`` padding included; positions index into it.
    labels : tuple of str
        The same tokens as every view shows them (:func:`~lirlab.analysis.alignment.token_labels`: as
        written when the query text is known, word pieces as ``·piece``).
    documents : pandas.DataFrame
        One row per document analysed: ``docno, rank, score, score_without_masks``.
    terms : pandas.DataFrame
        One row per non-``[MASK]`` query token: ``position, token, label, token_id, special,
        document_frequency, idf, own, mask_share, effective_weight, n_masks``, where
        ``effective_weight = own + mask_share``; over all rows it sums to :attr:`score`.
    assignments : pandas.DataFrame
        One row per ``[MASK]``: ``position, term_position, term_token, term_label, cosine`` — the query token its
        vector is nearest to, and how near.
    cosines : pandas.DataFrame
        Every ``[MASK]``-to-candidate cosine: ``mask_position, term_position, term_token, term_label, cosine``.
    matches : pandas.DataFrame
        One row per (document, query position): ``docno, rank, position, token, label, is_mask,
        term_position, doc_position, doc_token, doc_label, contribution``; ``term_position`` is the token whose
        weight the contribution adds to (itself, or a ``[MASK]``'s assigned token).
    """

    query: str
    tokens: tuple[str, ...]
    documents: pd.DataFrame
    terms: pd.DataFrame
    assignments: pd.DataFrame
    cosines: pd.DataFrame
    matches: pd.DataFrame
    labels: tuple[str, ...] = ()

    def __post_init__(self):
        if not self.labels:
            object.__setattr__(self, "labels", token_labels(self.tokens))
        if len(self.labels) != len(self.tokens):
            raise ValueError(f"{len(self.labels)} labels for {len(self.tokens)} query tokens")

    @property
    def score(self) -> float:
        """MaxSim score, averaged over the documents analysed."""
        return float(self.documents.score.mean())

    @property
    def score_without_masks(self) -> float:
        """The same with the ``[MASK]`` rows dropped from the query."""
        return float(self.documents.score_without_masks.mean())

    @property
    def n_masks(self) -> int:
        return len(self.assignments)


def weigh_masks(
    query: Encoding,
    docs: Encoding,
    statistics: TermStatistics,
    *,
    special_token_ids: Collection[int] = (),
    assign_to_special: bool = True,
    query_text: str | None = None,
    labels: Sequence[str] | None = None,
) -> MaskWeighting:
    """Weigh the terms of one encoded query against encoded documents (see the module notes).

    Parameters
    ----------
    query : Encoding
        One query, ``[MASK]`` padding included.
    docs : Encoding
        The documents to average over, best first (their order gives ``rank``).
    statistics : TermStatistics
        Document frequencies for the IDF column, usually of the whole corpus.
    special_token_ids : collection of int
        Ids flagged ``special`` in :attr:`MaskWeighting.terms` (``[CLS]``, markers, ``[SEP]``).
    assign_to_special : bool
        Whether a ``[MASK]`` may be assigned to a special token; if not, only to the others.
    query_text : str, optional
        Shown in figures; default the query's text when it carries one, else its id.
    labels : sequence of str, optional
        How the query tokens are shown (default: :func:`~lirlab.analysis.alignment.token_labels` of the
        vocabulary strings; :func:`mask_weighting` passes them as written).
    """
    if len(query) != 1:
        raise ValueError(f"pass one query, got an Encoding of {len(query)}")
    if len(docs) == 0:
        raise ValueError("no documents to weigh the query against")
    if query.dim != docs.dim:
        raise ValueError(f"the query has {query.dim}-dimensional vectors, the documents {docs.dim}")
    vectors = query.vectors_of(0).float().cpu()
    token_ids = query.token_ids_of(0).cpu()
    tokens = query.tokens(0)
    is_mask = token_ids == query.mask_token_id
    labels = tuple(labels) if labels is not None else token_labels(tokens, is_mask=is_mask.tolist())
    if len(labels) != len(tokens):
        raise ValueError(f"{len(labels)} labels for {len(tokens)} query tokens")
    special_ids = set(special_token_ids)
    special = torch.tensor([t in special_ids for t in token_ids.tolist()], dtype=torch.bool)
    real = (~is_mask).nonzero().flatten()
    masks = is_mask.nonzero().flatten()
    candidates = real if assign_to_special else real[~special[real]]
    if len(masks) and not len(candidates):
        raise ValueError("the query has no non-special token to assign its [MASK]s to")

    unit = torch.nn.functional.normalize(vectors, dim=1)
    cosines = unit[masks] @ unit[candidates].T
    term_position = torch.arange(len(tokens))
    nearest_cosine = torch.zeros(len(masks))
    if len(masks):
        nearest_cosine, nearest = cosines.max(dim=1)
        term_position[masks] = candidates[nearest]

    explanations = [explain(vectors, docs, doc_index=i) for i in range(len(docs))]
    contributions = torch.stack([e.contributions for e in explanations])  # [docs, query tokens]
    mean_contribution = contributions.mean(dim=0).double()
    mask_share = torch.zeros(len(tokens), dtype=torch.float64).index_add_(
        0, term_position[masks], mean_contribution[masks]
    )
    n_masks = torch.bincount(term_position[masks], minlength=len(tokens))

    real_ids = token_ids[real]
    terms = pd.DataFrame(
        {
            "position": real.tolist(),
            "token": [tokens[p] for p in real.tolist()],
            "label": [labels[p] for p in real.tolist()],
            "token_id": real_ids.tolist(),
            "special": special[real].tolist(),
            "document_frequency": statistics.document_frequency[real_ids].tolist(),
            "idf": statistics.idf(real_ids).tolist(),
            "own": mean_contribution[real].tolist(),
            "mask_share": mask_share[real].tolist(),
            "effective_weight": (mean_contribution[real] + mask_share[real]).tolist(),
            "n_masks": n_masks[real].tolist(),
        }
    )
    assignments = pd.DataFrame(
        {
            "position": masks.tolist(),
            "term_position": term_position[masks].tolist(),
            "term_token": [tokens[p] for p in term_position[masks].tolist()],
            "term_label": [labels[p] for p in term_position[masks].tolist()],
            "cosine": nearest_cosine.tolist(),
        }
    )
    cosine_table = pd.DataFrame(
        {
            "mask_position": masks.repeat_interleave(len(candidates)).tolist(),
            "term_position": candidates.repeat(len(masks)).tolist(),
            "term_token": [tokens[p] for p in candidates.tolist()] * len(masks),
            "term_label": [labels[p] for p in candidates.tolist()] * len(masks),
            "cosine": cosines.flatten().tolist(),
        }
    )
    documents = pd.DataFrame(
        {
            "docno": list(docs.ids),
            "rank": range(1, len(docs) + 1),
            "score": [e.score for e in explanations],
            "score_without_masks": contributions[:, ~is_mask].sum(dim=1).tolist(),
        }
    )
    match_rows = []
    for rank, (docno, explanation) in enumerate(zip(docs.ids, explanations), 1):
        doc_tokens = explanation.doc_tokens or []
        doc_labels = token_labels(doc_tokens)
        for position, (best, contribution) in enumerate(
            zip(explanation.best_doc_token.tolist(), explanation.contributions.tolist())
        ):
            match_rows.append(
                (
                    docno,
                    rank,
                    position,
                    tokens[position],
                    labels[position],
                    bool(is_mask[position]),
                    int(term_position[position]),
                    best,
                    doc_tokens[best] if best >= 0 else "",
                    doc_labels[best] if best >= 0 else "",
                    contribution,
                )
            )
    matches = pd.DataFrame(
        match_rows,
        columns=[
            "docno",
            "rank",
            "position",
            "token",
            "label",
            "is_mask",
            "term_position",
            "doc_position",
            "doc_token",
            "doc_label",
            "contribution",
        ],
    )
    return MaskWeighting(
        query=query_text if query_text is not None else (query.texts[0] if query.texts else query.ids[0]),
        tokens=tuple(tokens),
        labels=labels,
        documents=documents,
        terms=terms,
        assignments=assignments,
        cosines=cosine_table,
        matches=matches,
    )


def mask_weighting(
    encoder,
    query,
    index_or_docs,
    docno: str | None = None,
    top_k: int = 10,
    statistics: TermStatistics | None = None,
    assign_to_special: bool = True,
) -> MaskWeighting:
    """Weigh a query's terms, ``[MASK]`` contributions included, against one document or its top hits.

    Parameters
    ----------
    encoder : lirlab.encoder.ColBERT
        Encodes the query (with its own ``query_maxlen`` and ``attend_to_mask_tokens``; see
        :meth:`~lirlab.encoder.ColBERT.with_config`) and tells which tokens are special.
    query : str, Query or Encoding
        The query text, or one query already encoded.
    index_or_docs :
        An index of any kind (its :meth:`~lirlab.index.base.Index.documents`: decompressed for a
        compressed one), encoded documents, or texts (see :func:`as_index`). Reuse an index across calls to encode the corpus once.
    docno : str, optional
        Analyse this document; by default the query's ``top_k`` hits as the index finds them (exact
        MaxSim for a flat index, PLAID's search for a PLAID one...), and every contribution is their mean.
    top_k : int
        How many hits to average over when no ``docno`` is given.
    statistics : TermStatistics, optional
        Document frequencies for IDF; by default counted over the index's documents.
    assign_to_special : bool
        Whether a ``[MASK]`` may be assigned to ``[CLS]``, the marker or ``[SEP]``.

    Raises
    ------
    ValueError
        Empty query, unknown ``docno``, ``top_k`` not a positive whole number, documents of another
        dimension than the encoder's.

    Examples
    --------
    >>> encoder = ColBERT.load("minilm", query_maxlen=16, query_augmentation=True)  # doctest: +SKIP
    >>> weighting = mask_weighting(encoder, "how does a caldera form", {"v": "A caldera forms when ..."})  # doctest: +SKIP
    >>> weighting.terms[["token", "own", "mask_share", "idf"]]  # doctest: +SKIP
    """
    top_k = TOP_K.validate(top_k)
    index = as_index(index_or_docs, encoder)
    encoded = _query_encoding(encoder, query)
    if docno is not None:
        try:
            position = index.position(docno)
        except KeyError:
            raise ValueError(f"unknown docno {docno!r}: not in the index") from None
        if not index.is_live(position):
            raise ValueError(f"docno {docno!r} was deleted from the index")
        positions = [position]
    else:
        positions = index.search_encoded(encoded, k=top_k)[0][0].tolist()
    text = query.text if isinstance(query, Query) else query if isinstance(query, str) else None
    text = text if text is not None else (encoded.texts[0] if encoded.texts else None)
    config = getattr(encoder, "config", None)
    labels = token_labels(
        encoded.tokens(0),
        text=text,
        tokenizer=getattr(encoder, "tokenizer", None),
        is_mask=encoded.mask_positions(0).tolist(),
        query_marker=getattr(config, "query_marker", None),
        doc_marker=getattr(config, "doc_marker", None),
    )
    return weigh_masks(
        encoded,
        index.documents(positions),
        statistics if statistics is not None else term_statistics(index),
        special_token_ids=special_token_ids(encoder) if encoder is not None else (),
        assign_to_special=assign_to_special,
        query_text=text,
        labels=labels,
    )


# ---------------------------------------------------------------------------------------- query sets


def _query_maxlens(values: Sequence[int], what: str) -> tuple[int, ...]:
    values = tuple(values)
    for value in values:
        QUERY_MAXLEN.validate(value)
    if len(set(values)) != len(values):
        raise ValueError(f"{what} repeats a value: {list(values)}")
    return values


def query_maxlen_curve(
    encoder,
    dataset: Dataset,
    docs=None,
    query_maxlens: Sequence[int] = DEFAULT_QUERY_MAXLENS,
    attend: Sequence[bool] = (False, True),
    ablate_at: Sequence[int] = (32,),
    measures: Sequence[str] = ("nDCG@10",),
    k: int = 100,
    progress: bool = True,
    padding: Sequence[str] = ("fixed",),
) -> pd.DataFrame:
    """Retrieval quality as query augmentation changes: one row per setting.

    The documents are encoded once; the queries are encoded again for every ``query_maxlen`` ×
    ``attend_to_mask_tokens`` setting with the same weights (:meth:`~lirlab.encoder.ColBERT.with_config`)
    and searched exhaustively. ``query_maxlen`` > 0 pads with ``[MASK]`` to that length (and, as in
    ColBERT, cuts longer queries there: see ``truncated_queries``); 0 means no padding. At each
    ``ablate_at`` length, a second row scores the same encoded queries with their ``[MASK]`` rows dropped.
    With ``"min"`` in ``padding``, every length > 0 also gets rows whose queries are padded to it but
    never cut (:data:`PADDINGS`).

    Parameters
    ----------
    encoder : lirlab.encoder.ColBERT
        The checkpoint; its own augmentation settings are overridden per row.
    dataset : Dataset
        Queries and qrels; its documents too when ``docs`` is None.
    docs : Index, Encoding or documents, optional
        The corpus already indexed or encoded with ``encoder`` (see :func:`as_index`).
    query_maxlens : sequence of int
        Lengths to try, 0 for none.
    attend : sequence of bool
        ``attend_to_mask_tokens`` values to try.
    ablate_at : sequence of int
        Lengths (among ``query_maxlens``, > 0) that also get the mask-dropped row.
    measures : sequence of str
        ir_measures names, one column each.
    k : int
        Results per query (at most the corpus size).
    progress : bool
        Show a progress bar over the settings.
    padding : sequence of str
        Strategies of :data:`PADDINGS` to draw a curve for.

    Returns
    -------
    pandas.DataFrame
        ``query_maxlen, padding, attend_to_mask_tokens, masks_used, mean_masks, truncated_queries`` and
        one column per measure (``padding`` is ``"fixed"`` on the ``query_maxlen`` 0 and ablation
        rows). ``masks_used`` is False for ``query_maxlen`` 0 and for the ablation rows;
        ``mean_masks`` is the mean number of ``[MASK]`` positions per encoded query.

    Examples
    --------
    >>> curve = query_maxlen_curve(encoder, data.load("demo"))  # doctest: +SKIP
    >>> curve.pivot_table("nDCG@10", "query_maxlen", ["attend_to_mask_tokens", "masks_used"])  # doctest: +SKIP
    """
    if not isinstance(dataset, Dataset):
        raise ValueError(
            f"dataset must be a lirlab Dataset (queries and qrels), got {type(dataset).__name__}"
        )
    if not dataset.queries:
        raise ValueError(f"dataset {dataset.name!r} has no queries")
    query_maxlens = _query_maxlens(query_maxlens, "query_maxlens")
    ablate_at = _query_maxlens(ablate_at, "ablate_at")
    if not query_maxlens:
        raise ValueError("query_maxlens is empty")
    for length in ablate_at:
        if length == 0 or length not in query_maxlens:
            raise ValueError(
                f"ablate_at {length} must be one of the padded query_maxlens {[m for m in query_maxlens if m]}"
            )
    padding = tuple(padding)
    if not padding or any(p not in PADDINGS for p in padding) or len(set(padding)) != len(padding):
        raise ValueError(f"padding must hold distinct values of {PADDINGS}, got {list(padding)}")
    attend = tuple(attend)
    if not attend or any(not isinstance(a, bool) for a in attend):
        raise ValueError(f"attend must hold True and/or False, got {list(attend)}")
    k = K_PARAM.validate(k)
    measure_names = [str(m) for m in parse_measures(list(measures))]
    index = as_index(dataset if docs is None else docs, encoder, progress=progress)
    k = min(k, len(index))

    def row(encoded: Encoding, query_maxlen: int, how: str, attend_to_masks: bool, masks_used: bool) -> dict:
        quality = evaluate(index.search(encoded, k=k), dataset, measure_names).set_index("measure")["value"]
        return {
            "query_maxlen": query_maxlen,
            "padding": how,
            "attend_to_mask_tokens": attend_to_masks,
            "masks_used": masks_used,
            "mean_masks": float((encoded.token_ids == encoded.mask_token_id).sum()) / len(encoded),
            "truncated_queries": int(sum(encoded.truncated)),
            **{name: float(quality[name]) for name in measure_names},
        }

    rows = []
    settings = [
        (length, how, a)
        for length in query_maxlens
        for how in (padding if length else ("fixed",))
        for a in attend
    ]
    for length, how, attend_to_masks in tqdm(
        settings, desc="query_maxlen curve", unit="setting", disable=not progress
    ):
        lengths = (
            {"query_maxlen": encoder.position_limit, "query_minlen": length}
            if how == "min"
            else {"query_maxlen": length}
        )
        variant = encoder.with_config(
            **lengths, query_augmentation=length > 0, attend_to_mask_tokens=attend_to_masks
        )
        encoded = variant.encode_queries(dataset.queries)
        rows.append(row(encoded, length, how, attend_to_masks, masks_used=length > 0))
        if length in ablate_at and how == "fixed":
            rows.append(row(drop_masks(encoded), length, how, attend_to_masks, masks_used=False))
    return pd.DataFrame(rows)


def padding_gap(
    encoder,
    dataset: Dataset,
    docs=None,
    padding_to: int = 32,
    measures: Sequence[str] = ("nDCG@10",),
    k: int = 100,
) -> dict[str, float]:
    """Quality of one checkpoint's queries padded with ``[MASK]`` to ``padding_to`` and unpadded, and
    the gap between them: ``{"<measure> pad<padding_to>", "<measure> nopad", "<measure> gap"}`` (gap =
    padded - unpadded; positive where padding helps). Applied to a training run's snapshots, it gives
    the gap against training time.

    Examples
    --------
    >>> padding_gap(encoder, data.load("demo"))  # doctest: +SKIP
    {'nDCG@10 pad32': 0.41, 'nDCG@10 nopad': 0.52, 'nDCG@10 gap': -0.11}
    """
    padding_to = QUERY_MAXLEN.validate(padding_to)
    k = K_PARAM.validate(k)
    names = [str(m) for m in parse_measures(list(measures))]
    index = as_index(dataset if docs is None else docs, encoder, progress=False)
    rows: dict[str, float] = {}
    for label, overrides in (
        (f"pad{padding_to}", {"query_maxlen": padding_to, "query_augmentation": True}),
        ("nopad", {"query_maxlen": 0}),
    ):
        run = index.search(
            encoder.with_config(**overrides).encode_queries(dataset.queries), k=min(k, len(index))
        )
        quality = evaluate(run, dataset, names).set_index("measure")["value"]
        rows.update({f"{m} {label}": float(quality[m]) for m in names})
    rows.update({f"{m} gap": rows[f"{m} pad{padding_to}"] - rows[f"{m} nopad"] for m in names})
    return rows
