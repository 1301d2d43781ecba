"""PyTerrier transformers over lirlab indexes (``pip install 'lirlab[pyterrier]'``; no Java needed).

Three transformers, composable with PyTerrier's operators (``>>``, ``%``) and measured by
``pt.Experiment``:

* :func:`retriever` — any lirlab index as a retriever (``Q → R``): a ``qid, query`` frame in, the
  index's top ``k`` out (``qid, query, docno, score, rank``, ranks from 0 as PyTerrier counts them, the
  topics' other columns kept). A :class:`~lirlab.index.bm25.BM25Index` makes a Java-free BM25.
* :func:`reranker` — exact MaxSim over a given candidate run (``R → R``): document vectors from an
  index by ``docno``, or encoded on the fly from the run's ``text`` column; queries encoded by the
  index's (or the given) encoder. ``bm25 % 100 >> reranker(index)`` is the two-stage pipeline.
* :func:`explainer` — adds, per row, the MaxSim alignment at a glance (``R → R``): ``maxsim``, each
  query token's best document token and contribution (``query_tokens``, ``matched_tokens``,
  ``contributions``), and ``alignment``, the strongest matches as one line (``bees→bees 0.93; ...``).

:func:`topics` and :func:`qrels` turn a :class:`lirlab.data.Dataset` into PyTerrier's frames.

Examples
--------
>>> from lirlab.integrations.pyterrier import pyterrier_available
>>> isinstance(pyterrier_available(), bool)
True
>>> import pyterrier as pt  # doctest: +SKIP
>>> from ir_measures import nDCG
>>> from lirlab import data
>>> from lirlab.encoder import ColBERT  # doctest: +SKIP
>>> from lirlab.index.bm25 import BM25Index
>>> from lirlab.index.flat import FlatIndex  # doctest: +SKIP
>>> demo = data.load("demo")
>>> encoder = ColBERT.load("minilm")  # doctest: +SKIP
>>> flat = FlatIndex.build(demo, encoder)  # doctest: +SKIP
>>> bm25 = retriever(BM25Index.build(demo))  # doctest: +SKIP
>>> pt.Experiment([bm25, retriever(flat), bm25 % 50 >> reranker(flat)], topics(demo), qrels(demo),
...               eval_metrics=[nDCG @ 10], names=["BM25", "MaxSim", "BM25 >> MaxSim"])  # doctest: +SKIP
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from lirlab.analysis.alignment import token_labels
from lirlab.data import Dataset, Query
from lirlab.encoding import Encoding
from lirlab.index.base import K_PARAM, Index
from lirlab.maxsim import explain, maxsim_candidates

INSTALL_HINT = "PyTerrier is not installed: pip install 'lirlab[pyterrier]'"

#: Columns every result frame out of these transformers has, in order (PyTerrier's R).
RESULT_COLUMNS = ["qid", "query", "docno", "score", "rank"]

#: Matches shown per row in the ``alignment`` column of :func:`explainer`.
ALIGNMENT_MATCHES = 5


class PyTerrierNotInstalledError(ImportError):
    """PyTerrier is missing (the ``pyterrier`` extra)."""


def pyterrier_available() -> bool:
    """Whether PyTerrier can be imported."""
    try:
        import pyterrier  # noqa: F401
    except ImportError:
        return False
    return True


def _pt():
    try:
        import pyterrier as pt
    except ImportError:
        raise PyTerrierNotInstalledError(INSTALL_HINT) from None
    return pt


def topics(dataset: Dataset) -> pd.DataFrame:
    """PyTerrier topics (``qid, query``) of a dataset's queries.

    >>> from lirlab import data
    >>> topics(data.load("demo")).columns.tolist()
    ['qid', 'query']
    """
    return pd.DataFrame({"qid": [q.qid for q in dataset.queries], "query": [q.text for q in dataset.queries]})


def qrels(dataset: Dataset) -> pd.DataFrame:
    """PyTerrier qrels (``qid, docno, label``) of a dataset's judgments.

    >>> from lirlab import data
    >>> qrels(data.load("demo")).columns.tolist()
    ['qid', 'docno', 'label']
    """
    q = dataset.qrels
    return pd.DataFrame(
        {"qid": q.query_id.astype(str), "docno": q.doc_id.astype(str), "label": q.relevance.astype(int)}
    )


def _check_columns(frame, needed: Sequence[str], what: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{what} takes a DataFrame, got {type(frame).__name__}")
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{what} needs the column(s) {missing}; the frame has {list(map(str, frame.columns))}"
        )


def _with_ranks(frame: pd.DataFrame) -> pd.DataFrame:
    """Sorted by qid order of appearance then score (descending), ``rank`` from 0."""
    frame = frame.copy()
    order = {q: i for i, q in enumerate(dict.fromkeys(frame.qid))}
    frame["_q"] = frame.qid.map(order)
    frame = frame.sort_values(["_q", "score"], ascending=[True, False], kind="stable").drop(columns="_q")
    frame["rank"] = frame.groupby("qid", sort=False).cumcount().astype(int)
    return frame.reset_index(drop=True)


def _encode_queries(encoder, frame: pd.DataFrame) -> tuple[list[str], Encoding]:
    if encoder is None:
        raise ValueError("no encoder for the queries: pass encoder=..., or an index loaded with encoder=...")
    unique = frame.drop_duplicates("qid")
    records = [Query(str(q), t) for q, t in zip(unique.qid, unique["query"])]
    return [q.qid for q in records], encoder.encode_queries(records)


class _DocumentVectors:
    """Token vectors of a run's documents: from an index by docno, or encoded from the ``text`` column."""

    def __init__(self, index: Index | None, encoder, text_field: str, batch_size: int):
        if index is None and encoder is None:
            raise ValueError("pass index= (vectors by docno) or encoder= (encode the run's text column)")
        if index is not None and not isinstance(index, Index):
            raise ValueError(f"index must be a lirlab index, got {type(index).__name__}")
        self.index = index
        self.encoder = encoder if encoder is not None else getattr(index, "encoder", None)
        self.text_field = text_field
        self.batch_size = batch_size

    def of(self, frame: pd.DataFrame) -> Encoding:
        """The vectors of ``frame``'s rows, in row order."""
        docnos = [str(d) for d in frame.docno]
        if self.index is None:
            _check_columns(frame, [self.text_field], "encoding documents on the fly")
            unique = dict(zip(docnos, frame[self.text_field].fillna("").astype(str)))
            encoded = self.encoder.encode_documents(unique, batch_size=self.batch_size, progress=False)
            where = {d: i for i, d in enumerate(encoded.ids)}
            return encoded.select([where[d] for d in docnos])
        positions = []
        for docno in docnos:
            try:
                positions.append(self.index.position(docno))
            except KeyError:
                raise ValueError(
                    f"the run holds document {docno!r}, which the index does not: re-rank with an index of "
                    f"the same corpus, or with encoder= and a {self.text_field!r} column to encode on the fly"
                ) from None
        return self.index.documents(positions)


@functools.cache
def _classes() -> dict[str, type]:
    """The transformer classes, defined once PyTerrier is importable."""
    pt = _pt()

    class LirlabRetriever(pt.Transformer):
        """A lirlab index as a PyTerrier retriever (``Q → R``)."""

        def __init__(self, index: Index, k: int = 10, **knobs):
            if not isinstance(index, Index):
                raise ValueError(f"retriever() takes a lirlab index, got {type(index).__name__}")
            self.index = index
            self.k = K_PARAM.validate(k)
            index.resolve_knobs(self.k, knobs)
            self.knobs = knobs

        def __repr__(self) -> str:
            knobs = "".join(f", {n}={v!r}" for n, v in self.knobs.items())
            return f"lirlab.retriever({self.index.KIND}, k={self.k}{knobs})"

        def fuse_rank_cutoff(self, k: int):
            """``retriever % k``: fetch only ``k`` (PyTerrier asks this before adding a cutoff)."""
            return LirlabRetriever(self.index, min(int(k), self.k), **self.knobs) if k < self.k else self

        def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
            _check_columns(inp, ["qid", "query"], "a lirlab retriever")
            if not len(inp):
                return pd.DataFrame(columns=[*inp.columns, "docno", "score", "rank"])
            topics = inp.drop_duplicates("qid")
            run = self.index.search(topics[["qid", "query"]].astype({"qid": str}), k=self.k, **self.knobs)
            run = run.drop(columns=["query"])
            extra = topics.assign(qid=topics.qid.astype(str))
            out = extra.merge(run, on="qid", how="inner")
            out = _with_ranks(out)
            return out[[*[c for c in inp.columns if c != "docno"], "docno", "score", "rank"]]

    class MaxSimReranker(pt.Transformer):
        """Exact MaxSim over the candidates of a run (``R → R``)."""

        def __init__(self, index=None, encoder=None, text_field: str = "text", batch_size: int = 32):
            self.vectors = _DocumentVectors(index, encoder, text_field, batch_size)

        def __repr__(self) -> str:
            source = self.vectors.index.KIND if self.vectors.index is not None else "text"
            return f"lirlab.reranker({source})"

        def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
            _check_columns(inp, ["qid", "query", "docno"], "the MaxSim re-ranker")
            if not len(inp):
                return inp.assign(score=pd.Series(dtype=float), rank=pd.Series(dtype=int))
            frame = inp.reset_index(drop=True).copy()
            frame["qid"] = frame.qid.astype(str)
            qids, queries = _encode_queries(self.vectors.encoder, frame)
            scores = np.zeros(len(frame), dtype=np.float64)
            for qi, qid in enumerate(qids):
                rows = np.flatnonzero((frame.qid == qid).to_numpy())
                docs = self.vectors.of(frame.iloc[rows])
                query = queries.vectors_of(qi).to(docs.vectors.device)
                scores[rows] = maxsim_candidates(query, docs.vectors, docs.lengths).cpu().double().numpy()
            frame["score"] = scores
            return _with_ranks(frame)

    class MaxSimExplainer(pt.Transformer):
        """Adds each row's MaxSim alignment (``R → R``), the run's order and scores unchanged."""

        def __init__(
            self,
            index=None,
            encoder=None,
            text_field: str = "text",
            batch_size: int = 32,
            matches: int = ALIGNMENT_MATCHES,
        ):
            self.vectors = _DocumentVectors(index, encoder, text_field, batch_size)
            self.matches = int(matches)

        def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
            _check_columns(inp, ["qid", "query", "docno"], "the MaxSim explainer")
            frame = inp.reset_index(drop=True).copy()
            columns: dict[str, list[Any]] = {
                "maxsim": [],
                "query_tokens": [],
                "matched_tokens": [],
                "contributions": [],
                "alignment": [],
            }
            if len(frame):
                frame["qid"] = frame.qid.astype(str)
                qids, queries = _encode_queries(self.vectors.encoder, frame)
                where = {q: i for i, q in enumerate(qids)}
                docs = self.vectors.of(frame)
                tokenizer = getattr(self.vectors.encoder, "tokenizer", None)
                texts = frame.text.tolist() if "text" in frame.columns else None
                for row, qid in enumerate(frame.qid):
                    ex = explain(queries, docs, query_index=where[qid], doc_index=row)
                    query = frame["query"].iloc[row]
                    query_labels = token_labels(
                        ex.query_tokens, text=query if isinstance(query, str) else None, tokenizer=tokenizer
                    )
                    doc_labels = token_labels(
                        ex.doc_tokens,
                        text=texts[row] if texts is not None and isinstance(texts[row], str) else None,
                        tokenizer=tokenizer,
                    )
                    matched = [doc_labels[j] if j >= 0 else "" for j in ex.best_doc_token.tolist()]
                    contributions = [round(float(c), 4) for c in ex.contributions]
                    top = torch.argsort(ex.contributions, descending=True, stable=True)[: self.matches]
                    columns["maxsim"].append(ex.score)
                    columns["query_tokens"].append(query_labels)
                    columns["matched_tokens"].append(matched)
                    columns["contributions"].append(contributions)
                    columns["alignment"].append(
                        "; ".join(
                            f"{query_labels[i]}→{matched[i]} {contributions[i]:.2f}" for i in top.tolist()
                        )
                    )
            for name, values in columns.items():
                frame[name] = pd.Series(
                    values, index=frame.index, dtype=float if name == "maxsim" else object
                )
            return frame

    return {"retriever": LirlabRetriever, "reranker": MaxSimReranker, "explainer": MaxSimExplainer}


def retriever(index: Index, k: int = 10, **knobs):
    """``index`` as a PyTerrier retriever (``Q → R``) returning its top ``k`` per query.

    Parameters
    ----------
    index : lirlab.index.base.Index
        Any kind; text queries are encoded by its encoder (a BM25 index needs none).
    k : int
        Results per query (``retriever % n`` fetches only ``n`` when ``n < k``).
    **knobs
        The kind's search knobs (``n_probe=4``, ``depth=100``...), checked now.
    """
    return _classes()["retriever"](index, k, **knobs)


def reranker(index: Index | None = None, encoder=None, text_field: str = "text", batch_size: int = 32):
    """Exact MaxSim re-ranker of a candidate run (``R → R``).

    Parameters
    ----------
    index : lirlab.index.base.Index, optional
        Where document vectors come from, by ``docno`` (its ``documents()``: exact for flat and the
        BM25 kinds, a reconstruction for compressed ones); its encoder encodes the queries.
    encoder : lirlab.encoder.ColBERT, optional
        Encodes the queries (default: the index's), and without ``index`` the run's ``text_field`` column.
    """
    return _classes()["reranker"](index, encoder, text_field, batch_size)


def explainer(
    index: Index | None = None,
    encoder=None,
    text_field: str = "text",
    batch_size: int = 32,
    matches: int = ALIGNMENT_MATCHES,
):
    """Adds the MaxSim alignment of every row (``R → R``): ``maxsim``, ``query_tokens``,
    ``matched_tokens``, ``contributions`` and the one-line ``alignment`` of the ``matches`` strongest.

    Vectors come as for :func:`reranker`.
    """
    return _classes()["explainer"](index, encoder, text_field, batch_size, matches)
