"""BM25 (via `bm25s <https://github.com/xhluca/bm25s>`_) as an index kind, alone and as the first stage of
BM25 → exact MaxSim re-ranking.

Two kinds under the retriever protocol (:mod:`lirlab.index.base`):

* :class:`BM25Index` (``"bm25"``): lexical BM25 over the documents' texts. bm25s precomputes every
  (term, document) score into a sparse matrix, so ``k1``, ``b`` and the variant are *build* knobs.
  Built from texts alone (:meth:`BM25Index.build` with ``encoder=None``), it holds no token vectors;
  built from an :class:`~lirlab.encoding.Encoding` that carries the documents' texts (or with an
  encoder), it also keeps the encoded vectors, so :meth:`~BM25Index.documents` and explanations work.
* :class:`BM25RerankIndex` (``"bm25_rerank"``): the two-stage pipeline most teams ship — BM25's top
  ``depth`` candidates, re-scored by exact MaxSim over the stored token vectors (stages ``"bm25"``,
  ``"maxsim_rerank"``).

An :class:`~lirlab.encoding.Encoding` has no texts unless they were attached, so a sweep over these
kinds needs documents (and queries) encoded with their texts::

    docs = dataclasses.replace(encoder.encode_documents(dataset.docs),
                               texts=tuple(d.full_text for d in dataset.docs))

Persistence: bm25s's own ``save`` writes a folder of ``.npy`` arrays (the CSC score matrix: ``data``,
``indices``, ``indptr``, plus a non-occurrence array for BM25L/BM25+) and JSON (vocabulary, parameters),
no pickle. We write the same arrays and JSON into a lirlab artifact folder (checksummed, replaced
atomically), beside the token vectors in the flat index's layout when the index holds them.

Examples
--------
>>> texts = ["bees make honey in summer", "what bees eat in winter", "winter tyres for cars"]
>>> index = BM25Index.from_texts(["d1", "d2", "d3"], texts)
>>> index.search(["bees in winter"], k=2)[["docno", "rank"]].values.tolist()
[['d2', 1], ['d3', 2]]
>>> index.documents()
Traceback (most recent call last):
...
ValueError: this bm25 index holds no token vectors (built from text without an encoder); build it with encoder=... or from an Encoding with texts to get documents()
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lirlab.data import Query, as_documents, as_queries
from lirlab.encoding import Encoding, rows_of
from lirlab.index.base import Index, StageTimer
from lirlab.index.knobs import bm25_rerank as bm25_rerank_knobs
from lirlab.index.knobs.bm25 import BUILD_PARAMS as BM25_PARAMS
from lirlab.index.knobs.bm25 import SEARCH_PARAMS as BM25_SEARCH_PARAMS
from lirlab.index.regions import load_regions, save_regions
from lirlab.maxsim import maxsim_candidates
from lirlab.storage import ArtifactError, ArtifactWriter, check_offsets, read_artifact

#: Free parameter of the BM25L/BM25+ variants (bm25s's default); not swept.
BM25_DELTA = 0.5

#: The vector files of an artifact, in :class:`~lirlab.index.flat.FlatIndex`'s layout.
_VECTOR_FILES = ("vectors", "token_ids", "offsets", "truncated")


def _stem_function(name: str):
    if name == "none":
        return None
    try:
        import Stemmer
    except ImportError:
        raise ImportError(
            f"stemmer={name!r} needs PyStemmer: pip install 'lirlab[bm25]' (or pass stemmer='none')"
        ) from None
    return Stemmer.Stemmer(name).stemWords


def _bm25s():
    try:
        import bm25s
    except ImportError:
        raise ImportError("BM25 needs bm25s: pip install 'lirlab[bm25]'") from None
    return bm25s


def _check_texts(texts, what: str) -> tuple[str, ...]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise ValueError(f"{what} must be a list of strings, got {type(texts).__name__}")
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise ValueError(f"{what}[{bad}] must be a string, got {type(texts[bad]).__name__}")
    return tuple(texts)


def _check_words(words: list[list[str]], stopwords: str) -> None:
    """Refuse a corpus BM25 cannot index (bm25s fails on it deep inside with "max() arg is an empty
    sequence"): no documents, or no document with a word left after stop words and stemming."""
    if not words:
        raise ValueError("BM25 got no documents to index; pass at least one document with text")
    if not any(words):
        raise ValueError(
            f"BM25 has nothing to index: none of the {len(words)} documents has a word left after "
            f"lower-casing and removing stop words (stopwords={stopwords!r}); give them text, or pass "
            "stopwords='none' if they are made of stop words"
        )


class BM25:
    """A bm25s retriever with the tokenization it was built with; scores every document for a text.

    Parameters
    ----------
    texts : sequence of str
        One text per document, in position order.
    **settings
        The :data:`BM25_PARAMS` by name: ``k1``, ``b``, ``variant``, ``stopwords``, ``stemmer``.
    progress : bool
        Show bm25s's progress bars while tokenizing and indexing.

    Examples
    --------
    >>> bm25 = BM25(["cat run", "dog", "cat cat dog"], stopwords="none", stemmer="none")
    >>> [round(float(s), 4) for s in bm25.scores("cat")]
    [0.2136, 0.0, 0.2575]
    """

    def __init__(self, texts: Sequence[str] | None = None, *, progress: bool = False, **settings):
        self.settings = {
            name: p.validate(settings[name]) if name in settings else p.default
            for name, p in BM25_PARAMS.items()
        }
        unknown = sorted(set(settings) - set(BM25_PARAMS))
        if unknown:
            raise ValueError(f"unknown BM25 setting {unknown[0]!r}; known: {', '.join(BM25_PARAMS)}")
        self._stem = _stem_function(self.settings["stemmer"])
        self.retriever = None
        self.n_docs = 0
        if texts is not None:
            texts = _check_texts(texts, "texts")
            bm25s = _bm25s()
            self.retriever = bm25s.BM25(
                k1=self.settings["k1"],
                b=self.settings["b"],
                method=self.settings["variant"],
                delta=BM25_DELTA,
            )
            words = self.tokenize(texts, progress)
            _check_words(words, self.settings["stopwords"])
            self.retriever.index(words, show_progress=progress)
            self.n_docs = len(texts)

    def tokenize(self, texts: Sequence[str], progress: bool = False) -> list[list[str]]:
        """Words of each text as the index sees them (lower-cased, stop words out, stemmed)."""
        stopwords = None if self.settings["stopwords"] == "none" else self.settings["stopwords"]
        return _bm25s().tokenize(
            list(texts), stopwords=stopwords, stemmer=self._stem, return_ids=False, show_progress=progress
        )

    def scores(self, text: str) -> torch.Tensor:
        """BM25 score of every document for ``text`` (0 where no query word occurs), ``[n_docs]``."""
        tokens = self.retriever.get_tokens_ids(self.tokenize([text])[0])
        if not tokens:
            return torch.zeros(self.n_docs)
        return torch.from_numpy(np.asarray(self.retriever.get_scores_from_ids(tokens), dtype=np.float32))

    def top(self, text: str, depth: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(positions, scores)`` of the ``min(depth, n_docs)`` best documents, best first (ties by
        position)."""
        scores = self.scores(text)
        order = torch.sort(scores, descending=True, stable=True).indices[: min(depth, self.n_docs)]
        return order, scores[order]

    def size_bytes(self) -> int:
        return sum(int(self.retriever.scores[n].nbytes) for n in ("data", "indices", "indptr"))

    # -- persistence (bm25s's own files, carried as artifact entries)

    def write(self, writer: ArtifactWriter) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            self.retriever.save(tmp, show_progress=False)
            for file in sorted(Path(tmp).iterdir()):
                name = "bm25s." + file.name.removesuffix(".npy").removesuffix(".json")
                if file.suffix == ".npy":
                    writer.save_array(name, np.load(file, allow_pickle=False))
                elif file.suffix == ".json":
                    import json

                    writer.save_json(name, json.loads(file.read_text(encoding="utf-8")))
        writer.metadata.setdefault("config", {})["bm25"] = dict(self.settings)
        writer.metadata["config"]["bm25s_version"] = getattr(_bm25s(), "__version__", "?")

    @classmethod
    def read(cls, art) -> BM25:
        import json

        settings = art.metadata.get("config", {}).get("bm25")
        if not isinstance(settings, dict):
            raise ArtifactError(f"{art.path}: metadata.json records no BM25 settings; the folder is damaged")
        bm25 = cls(None, **settings)
        files = [f for f in art.metadata.get("files", {}) if f.startswith("bm25s.")]
        with tempfile.TemporaryDirectory() as tmp:
            for file in files:
                stem = file.removeprefix("bm25s.")
                if file.endswith(".npy"):
                    np.save(Path(tmp, stem), art.array(file.removesuffix(".npy")), allow_pickle=False)
                elif file.endswith(".json"):
                    Path(tmp, stem).write_text(
                        json.dumps(art.json(file.removesuffix(".json"))), encoding="utf-8"
                    )
            bm25.retriever = _bm25s().BM25.load(tmp, show_progress=False)
        bm25.n_docs = int(bm25.retriever.scores["num_docs"])
        bm25._check_scores(art.path)
        return bm25

    def _check_scores(self, folder: Path) -> None:
        """Refuse a score matrix whose structure is damaged (column offsets, document ids), which bm25s
        would otherwise read out of bounds at search time."""
        scores = self.retriever.scores
        data, indices, indptr = (np.asarray(scores[name]) for name in ("data", "indices", "indptr"))
        file = folder / "bm25s.indptr.csc.index.npy"
        if indices.shape != data.shape or data.ndim != 1:
            raise ArtifactError(
                f"{file.parent}: bm25s data and indices differ in shape, the folder is damaged"
            )
        check_offsets(indptr, int(data.size), file)
        if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= self.n_docs):
            raise ArtifactError(
                f"{folder / 'bm25s.indices.csc.index.npy'}: document ids outside 0..{self.n_docs - 1}"
            )


def _text_queries(records: Sequence[Query], dim: int) -> Encoding:
    """Queries as an Encoding with texts and no tokens (all a BM25 search needs)."""
    n = len(records)
    return Encoding(
        ids=tuple(q.qid for q in records),
        vectors=torch.zeros(0, dim),
        token_ids=torch.zeros(0, dtype=torch.long),
        offsets=torch.zeros(n + 1, dtype=torch.long),
        vocab=(),
        kind="query",
        texts=tuple(q.text for q in records),
    )


def _query_texts(queries: Encoding, kind: str) -> tuple[str, ...]:
    if len(queries) and not queries.texts:
        raise ValueError(
            f"a {kind} search needs the query texts, and these encoded queries carry none: search with "
            "text, or attach them (dataclasses.replace(encoded, texts=tuple(texts)))"
        )
    return queries.texts


def _texts_of(docs: Encoding, kind: str) -> tuple[str, ...]:
    if not isinstance(docs, Encoding):
        raise ValueError(f"a {kind} index needs an Encoding of documents, got {type(docs).__name__}")
    if len(docs) and not docs.texts:
        raise ValueError(
            f"a {kind} index needs the documents' texts, and this Encoding carries none: attach them "
            "(dataclasses.replace(encoded, texts=tuple(d.full_text for d in docs))) or use "
            f"{'BM25Index' if kind == 'bm25' else 'BM25RerankIndex'}.build(docs, encoder)"
        )
    if docs.regions is not None and len(docs) and not any(t.strip() for t in docs.texts):
        raise ValueError(
            f"a {kind} index reads the pages' text layer (Page.full_text), and none of these pages has one "
            "(an images-only set such as ViDoRe's): use another kind, or give the corpus a text layer"
        )
    return docs.texts


def _write_vectors(writer: ArtifactWriter, docs: Encoding) -> None:
    writer.save_array("vectors", docs.vectors.float().cpu().numpy())
    writer.save_array("token_ids", docs.token_ids.cpu().numpy().astype(np.int32))
    writer.save_array("offsets", docs.offsets.cpu().numpy().astype(np.int64))
    writer.save_array("truncated", np.asarray(docs.truncated, dtype=bool))
    writer.save_json("vocab", list(docs.vocab))
    save_regions(writer, docs.regions, docs.global_view)


def _read_vectors(art, docnos: tuple[str, ...]) -> Encoding:
    """The token vectors :func:`_write_vectors` wrote, their structure checked whether or not the files
    were hashed: a damaged folder is an :class:`~lirlab.storage.ArtifactError` here, never an error deep
    inside a search."""
    vectors = art.checked_array("vectors", "f", 2)
    rows = int(vectors.shape[0])
    token_ids = art.checked_array("token_ids", "iu", 1, (rows,))
    offsets = art.checked_array("offsets", "iu", 1, (len(docnos) + 1,))
    check_offsets(offsets, rows, art.path / "offsets.npy")
    truncated = art.checked_array("truncated", "bui", 1, (len(docnos),))
    vocab = art.strings("vocab")
    if vocab and token_ids.size and (int(token_ids.min()) < 0 or int(token_ids.max()) >= len(vocab)):
        raise ArtifactError(
            f"{art.path / 'token_ids.npy'}: token ids outside the {len(vocab)}-entry vocab.json"
        )
    mask_token_id = art.metadata.get("config", {}).get("mask_token_id", -1)
    if not isinstance(mask_token_id, int) or isinstance(mask_token_id, bool):
        raise ArtifactError(f"{art.path / 'metadata.json'}: config.mask_token_id must be a whole number")
    regions, global_view = load_regions(art, rows)
    return Encoding(
        ids=docnos,
        vectors=torch.from_numpy(vectors),
        token_ids=torch.from_numpy(token_ids.astype(np.int64)),
        offsets=torch.from_numpy(offsets.astype(np.int64)),
        vocab=tuple(vocab),
        truncated=tuple(bool(t) for t in truncated),
        mask_token_id=mask_token_id,
        regions=regions,
        global_view=global_view,
    )


def _encode(docs, encoder, batch_size: int, progress: bool) -> tuple[list, Encoding | None]:
    from dataclasses import replace

    records = as_documents(docs)
    if encoder is None:
        return records, None
    encoded = encoder.encode_documents(records, batch_size=batch_size, progress=progress)
    return records, replace(encoded, texts=tuple(d.full_text for d in records))


class BM25Index(Index):
    """Lexical BM25 over the documents' texts.

    Parameters
    ----------
    docnos : sequence of str
        Document ids in position order.
    bm25 : BM25
        The scorer built over the same documents, in the same order.
    vectors : Encoding, optional
        The documents' encoded token vectors, for :meth:`documents` (BM25 search does not use them).
    encoder, model :
        As for every index kind; a BM25 search itself never encodes.
    """

    KIND = "bm25"
    TYPE = "lirlab.bm25"
    FORMAT_VERSION = 1
    SEARCH_PARAMS = BM25_SEARCH_PARAMS
    BUILD_PARAMS = BM25_PARAMS
    STAGES = ("bm25",)

    def __init__(
        self,
        docnos: Sequence[str],
        bm25: BM25,
        vectors: Encoding | None = None,
        encoder=None,
        model: dict[str, Any] | None = None,
    ):
        super().__init__(docnos, encoder=encoder, model=model)
        if bm25.n_docs != len(self.docnos):
            raise ValueError(f"the BM25 scorer holds {bm25.n_docs} documents, got {len(self.docnos)} ids")
        if vectors is not None and tuple(vectors.ids) != self.docnos:
            raise ValueError("the token vectors must belong to the same documents, in the same order")
        self.bm25 = bm25
        self.vectors = vectors
        for name, value in bm25.settings.items():
            setattr(self, name, value)

    # -- building

    @classmethod
    def from_texts(
        cls,
        docnos: Sequence[str],
        texts: Sequence[str],
        *,
        vectors=None,
        encoder=None,
        progress=False,
        **build,
    ):
        """Index ``texts`` (one per id of ``docnos``); ``build`` holds :data:`BM25_PARAMS`."""
        build = cls.resolve_build_knobs(build)
        texts = _check_texts(texts, "texts")
        if len(texts) != len(docnos):
            raise ValueError(f"got {len(texts)} texts for {len(docnos)} document ids")
        return cls._make(docnos, BM25(texts, progress=progress, **build), vectors, encoder, None)

    @classmethod
    def _make(cls, docnos, bm25, vectors, encoder, model):
        return cls(docnos, bm25, vectors=vectors, encoder=encoder, model=model)

    @classmethod
    def build(cls, docs, encoder=None, *, batch_size: int = 32, progress: bool = True, device=None, **build):
        """Index ``docs`` (anything :func:`lirlab.data.as_documents` takes) by their title and text;
        with an ``encoder``, also encode them so :meth:`documents` returns their vectors."""
        cls.resolve_build_knobs(build)
        records, encoded = _encode(docs, encoder, batch_size, progress)
        if encoded is not None:
            _texts_of(encoded, cls.KIND)  # page images: refused when no page has a text layer
        return cls.from_texts(
            [d.docno for d in records],
            [d.full_text for d in records],
            vectors=encoded,
            encoder=encoder,
            progress=progress,
            **build,
        )

    @classmethod
    def from_encoding(cls, docs: Encoding, *, encoder=None, model=None, device=None, progress=False, **build):
        """Index the texts an Encoding carries (``Encoding.texts``), keeping its vectors."""
        build = cls.resolve_build_knobs(build)
        texts = _texts_of(docs, cls.KIND)
        return cls._make(docs.ids, BM25(texts, progress=progress, **build), docs, encoder, model)

    # -- the protocol

    @property
    def dim(self) -> int:
        return self.vectors.dim if self.vectors is not None else 0

    def documents(self, positions=None) -> Encoding:
        if self.vectors is None:
            raise ValueError(
                "this bm25 index holds no token vectors (built from text without an encoder); build it "
                "with encoder=... or from an Encoding with texts to get documents()"
            )
        return self.vectors.select(self.positions_or_live(positions).tolist())

    def n_vectors(self) -> int:
        return int(self.vectors.vectors.shape[0]) if self.vectors is not None else 0

    def size_bytes(self) -> int:
        return self.bm25.size_bytes()

    def config(self) -> dict[str, Any]:
        return dict(self.bm25.settings)

    def to(self, device) -> BM25Index:
        return self  # BM25 scores on the CPU

    def encode_queries(self, queries) -> tuple[list[Query], Encoding]:
        if isinstance(queries, Encoding):
            return super().encode_queries(queries)
        records = as_queries(queries)
        return records, _text_queries(records, self.dim)

    def score_positions(self, queries: Encoding, positions: torch.Tensor) -> torch.Tensor:
        """BM25 scores of the documents at ``positions`` for each query's text."""
        texts = _query_texts(queries, self.KIND)
        return torch.stack([self.bm25.scores(text)[positions] for text in texts])

    def _search(self, queries: Encoding, k: int, knobs: dict, timer: StageTimer):
        texts = _query_texts(queries, self.KIND)
        timer.start()
        hits = [self.bm25.top(text, k) for text in texts]
        timer.lap("bm25")
        return hits

    # -- persistence

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        """Write the index folder atomically: bm25s's arrays and JSON, and the token vectors if held."""
        with ArtifactWriter(path, self.TYPE, self.FORMAT_VERSION, overwrite=overwrite) as w:
            self.bm25.write(w)
            w.save_json("docnos", list(self.docnos))
            if self.vectors is not None:
                _write_vectors(w, self.vectors)
            w.metadata["config"].update(
                dim=self.dim,
                vectors=self.vectors is not None,
                mask_token_id=self.vectors.mask_token_id if self.vectors is not None else -1,
            )
            w.metadata.update(
                model=self.model,
                counts={"documents": len(self), "tokens": self.n_vectors()},
                describe=self.describe(),
            )

    @classmethod
    def load(cls, path, encoder=None, device=None, verify: bool = True):
        """Open a folder written by :meth:`save`; errors name the missing or damaged file."""
        art = read_artifact(path, cls.TYPE, cls.FORMAT_VERSION, verify=verify)
        docnos = tuple(art.strings("docnos"))
        vectors = _read_vectors(art, docnos) if art.metadata.get("config", {}).get("vectors") else None
        bm25 = BM25.read(art)
        if bm25.n_docs != len(docnos):
            raise ArtifactError(
                f"{art.path}: the BM25 scores hold {bm25.n_docs} documents, docnos.json names {len(docnos)}"
            )
        index = cls._make(docnos, bm25, vectors, encoder, art.metadata.get("model", {}))
        return index.to(device) if device is not None else index


class BM25RerankIndex(BM25Index):
    """BM25's top ``depth`` documents re-ranked by exact MaxSim over their stored token vectors.

    The candidates' vectors are the encoded ones (no compression), so the only approximation is which
    documents BM25 lets through: at ``depth`` equal to the corpus size the ranking is exhaustive MaxSim.

    Examples
    --------
    >>> import torch
    >>> from dataclasses import replace
    >>> from lirlab.encoding import offsets_from_lengths
    >>> docs = Encoding(ids=("a", "b", "c"), vectors=torch.eye(3), token_ids=torch.tensor([0, 1, 2]),
    ...                 offsets=offsets_from_lengths(torch.tensor([1, 1, 1])), vocab=("x", "y", "z"),
    ...                 texts=("red apple", "green apple", "blue sky"))
    >>> index = BM25RerankIndex.from_encoding(docs, stemmer="none")
    >>> query = replace(docs.select([1]), kind="query", texts=("apple",))
    >>> hits = index.search_encoded(query, k=2, depth=2)
    >>> [index.docnos[int(p)] for p in hits[0][0]], hits[0][1].tolist()
    (['b', 'a'], [1.0, 0.0])
    """

    KIND = "bm25_rerank"
    TYPE = "lirlab.bm25_rerank"
    FORMAT_VERSION = 1
    SEARCH_PARAMS = bm25_rerank_knobs.SEARCH_PARAMS
    STAGES = ("bm25", "maxsim_rerank")
    #: A filtered search ranks by exact MaxSim, as the re-ranking stage does (not by BM25).
    score_positions = Index.score_positions

    def __init__(self, docnos, bm25: BM25, vectors: Encoding | None = None, encoder=None, model=None):
        if vectors is None:
            raise ValueError(
                "a bm25_rerank index needs the documents' token vectors: build it with an encoder "
                "(BM25RerankIndex.build(docs, encoder)) or from an Encoding with texts"
            )
        super().__init__(docnos, bm25, vectors=vectors, encoder=encoder, model=model)

    @classmethod
    def build(cls, docs, encoder=None, *, batch_size: int = 32, progress: bool = True, device=None, **build):
        """Encode ``docs`` with ``encoder`` and index their texts with BM25."""
        if encoder is None:
            raise ValueError(
                "a bm25_rerank index needs an encoder to encode the documents: build(docs, encoder)"
            )
        index = super().build(docs, encoder, batch_size=batch_size, progress=progress, **build)
        return index.to(device) if device is not None else index

    @property
    def device(self) -> torch.device:
        return self.vectors.vectors.device

    def to(self, device) -> BM25RerankIndex:
        if torch.device(device) == self.device:
            return self
        return BM25RerankIndex(
            self.docnos, self.bm25, vectors=self.vectors.to(device), encoder=self.encoder, model=self.model
        )

    def size_bytes(self) -> int:
        vectors = self.vectors
        return self.bm25.size_bytes() + int(vectors.vectors.numel()) * 4 + int(vectors.token_ids.numel()) * 4

    def encode_queries(self, queries) -> tuple[list[Query], Encoding]:
        return Index.encode_queries(self, queries)  # MaxSim needs the query vectors (and keeps the texts)

    def _search(self, queries: Encoding, k: int, knobs: dict, timer: StageTimer):
        texts = _query_texts(queries, self.KIND)
        depth = max(int(knobs["depth"]), k)
        docs = self.vectors
        timer.start()
        candidates = [self.bm25.top(text, depth)[0] for text in texts]
        timer.lap("bm25")
        hits = []
        for i, positions in enumerate(candidates):
            positions = positions.to(docs.offsets.device)
            rows = rows_of(docs.offsets, positions)
            scores = maxsim_candidates(
                queries.vectors_of(i).to(docs.vectors.device), docs.vectors[rows], docs.lengths[positions]
            )
            order = torch.sort(scores, descending=True, stable=True).indices[:k]
            hits.append((positions[order].cpu(), scores[order].cpu()))
        timer.lap("maxsim_rerank")
        return hits
