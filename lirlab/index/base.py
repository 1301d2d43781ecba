"""The retriever protocol: what every index kind offers, so that nothing above ``lirlab/index/`` asks
which kind it holds.

An index kind subclasses :class:`Index` and declares, as class attributes, its ``KIND`` (the short name
sweeps and figures use), its artifact ``TYPE``, its search knobs (``SEARCH_PARAMS``) and build knobs
(``BUILD_PARAMS``) as :class:`~lirlab.params.Param` declarations, the ``STAGES`` its search is timed in,
and whether :meth:`Index.documents` returns the exact vectors (:attr:`Index.exact`) or a reconstruction. It then
implements five methods: ``dim``, :meth:`Index.documents`, :meth:`Index.to`, ``_search`` (the stages,
timed with the :class:`StageTimer` it is given) and ``save``/``load``; :meth:`Index.from_encoding`
builds it from encoded documents. Everything else — validating ``k`` and the knobs, turning hits into
the run DataFrame, stage timings, ids and positions, the encoder check — is shared here.

Examples
--------
A complete index kind in a few lines: exact MaxSim, one stage.

>>> import torch
>>> from lirlab.encoding import Encoding
>>> from lirlab.maxsim import maxsim_pair
>>> class Tiny(Index):
...     KIND, TYPE, STAGES = "tiny", "example.tiny", ("scoring",)
...     def __init__(self, docs):
...         super().__init__(docs.ids)
...         self.docs = docs
...     @property
...     def dim(self):
...         return self.docs.dim
...     def documents(self, positions=None):
...         return self.docs.select(self.positions_or_live(positions).tolist())
...     def to(self, device):
...         return self
...     def _search(self, queries, k, knobs, timer):
...         timer.start()
...         scores = torch.stack([torch.stack([maxsim_pair(queries.vectors_of(q), self.docs.vectors_of(d))
...                                            for d in range(len(self))]) for q in range(len(queries))])
...         top = scores.topk(min(k, len(self)), dim=1)
...         timer.lap("scoring")
...         return list(zip(top.indices, top.values))
>>> docs = Encoding(ids=("a", "b"), vectors=torch.eye(2), token_ids=torch.tensor([0, 1]),
...                 offsets=torch.tensor([0, 1, 2]), vocab=("x", "y"))
>>> index = Tiny(docs)
>>> index.search(docs.select([1]), k=2)[["docno", "rank"]].values.tolist()
[['b', 1], ['a', 2]]
>>> index.position("b"), index.live_positions().tolist(), index.documents([1]).ids
(1, [0, 1], ('b',))
>>> index.search(docs.select([1]), k=2, n_probe=2)
Traceback (most recent call last):
...
lirlab.index.base.UnknownKnobError: a tiny index takes no search knobs, got 'n_probe'
>>> sorted(index.search_timed(docs.select([1]), k=1)[1])
['scoring']
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar

import pandas as pd
import torch

from lirlab import params
from lirlab.data import Query, as_queries
from lirlab.encoding import Encoding
from lirlab.index import registry
from lirlab.index.registry import kind_class as index_kind  # noqa: F401  (here for existing callers)
from lirlab.index.registry import load_index as load_index
from lirlab.params import Param
from lirlab.results import run_frame

#: ``k``, declared once for every index kind.
K_PARAM = Param("k", int, 10, "Results per query.", low=1, high=2**31 - 1, aliases="PyTerrier num_results")

#: Cosine between the probe vectors an index was built with and those of the encoder searching it below
#: which :class:`EncoderMismatchWarning` is raised.
FINGERPRINT_MIN_COSINE = 0.99

#: Text the encoder fingerprint is computed from (a query, so it is short and cheap).
FINGERPRINT_TEXT = "lirlab encoder fingerprint: what do bees eat in winter"


class FewerResultsWarning(UserWarning):
    """A search returned fewer than ``k`` results for some queries."""


class EncoderMismatchWarning(UserWarning):
    """The encoder searching an index is not the one that built it (same dimension, other vectors)."""


class UnknownKnobError(ValueError):
    """A search or build knob that the index kind does not take."""


class StageTimer:
    """Adds wall-clock seconds per named stage; synchronizes CUDA before each clock read.

    >>> timer = StageTimer(("a", "b"))
    >>> timer.start(); timer.lap("a"); timer.lap("b")
    >>> sorted(timer.totals), all(v >= 0 for v in timer.totals.values())
    (['a', 'b'], True)
    >>> StageTimer(("a",)).lap("c")
    Traceback (most recent call last):
    ...
    KeyError: "stage 'c' is not one of a"
    """

    def __init__(self, stages: Sequence[str], enabled: bool = True, device: str | torch.device = "cpu"):
        self.enabled = enabled
        self.cuda = torch.device(device).type == "cuda"
        self.totals = dict.fromkeys(stages, 0.0)
        self.last = 0.0

    def _now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def start(self) -> None:
        if self.enabled:
            self.last = self._now()

    def lap(self, stage: str) -> None:
        if stage not in self.totals:
            raise KeyError(f"stage {stage!r} is not one of {', '.join(self.totals)}")
        if self.enabled:
            now = self._now()
            self.totals[stage] += now - self.last
            self.last = now


def encoder_fingerprint(encoder) -> list[list[float]] | None:
    """Vectors of a fixed probe query under ``encoder``: compared by cosine, so hardware noise is harmless.

    Cached on the encoder object (it does not change after loading); ``None`` for an object that cannot
    encode queries.
    """
    if not callable(getattr(encoder, "encode_queries", None)):
        return None
    cached = getattr(encoder, "_lirlab_fingerprint", None)
    if cached is None:
        vectors = encoder.encode_queries([FINGERPRINT_TEXT]).vectors.float().cpu()
        cached = [[round(float(x), 5) for x in row] for row in vectors[:8]]
        try:
            encoder._lirlab_fingerprint = cached
        except AttributeError:
            pass
    return cached


def describe_encoder(encoder) -> dict[str, Any]:
    """What an index records about the encoder that built it: its settings and its fingerprint."""
    if encoder is None:
        return {}
    fingerprint = encoder_fingerprint(encoder)
    return {**encoder.describe(), **({"fingerprint": fingerprint} if fingerprint else {})}


def fingerprints_match(stored: Sequence[Sequence[float]], current: Sequence[Sequence[float]]) -> bool:
    """Whether two fingerprints come from the same encoder (row-wise cosine at least
    :data:`FINGERPRINT_MIN_COSINE`).

    >>> fingerprints_match([[1.0, 0.0]], [[0.999, 0.01]]), fingerprints_match([[1.0, 0.0]], [[0.0, 1.0]])
    (True, False)
    """
    if len(stored) != len(current) or any(len(a) != len(b) for a, b in zip(stored, current)):
        return False
    a, b = torch.tensor(stored, dtype=torch.float64), torch.tensor(current, dtype=torch.float64)
    cosines = torch.nn.functional.cosine_similarity(a, b, dim=1)
    return bool((cosines >= FINGERPRINT_MIN_COSINE).all())


def knob_names(declared: Mapping[str, Param]) -> str:
    return ", ".join(declared) if declared else "none"


class Index:
    """What every index kind offers; subclasses declare their knobs and stages and implement the search.

    Attributes
    ----------
    KIND : str
        Short name of the kind (``"flat"``, ``"plaid"``...): the ``method`` column of sweeps.
    TYPE : str
        Artifact type written in ``metadata.json``; :func:`load_index` opens a folder by it.
    SEARCH_PARAMS, BUILD_PARAMS : dict of str to Param
        The knobs :meth:`search_encoded` and :meth:`from_encoding` take (``k`` aside).
    STAGES : tuple of str
        Names of the timed stages of a search, in pipeline order.
    exact : bool
        Whether :meth:`documents` returns the vectors as encoded (``False``: a reconstruction).
    docnos : tuple of str
        Document ids by internal position.
    encoder : lirlab.encoder.ColBERT or None
        Encodes text queries; pass ``encoder=`` when loading an index to search with text.
    model : dict
        Description of the encoder that built the index (:func:`describe_encoder`).
    last_timings : dict or None
        Seconds per stage of the last search run with ``record_timings=True`` (or ``timings=``).
    """

    KIND: ClassVar[str] = "index"
    TYPE: ClassVar[str] = ""
    FORMAT_VERSION: ClassVar[int] = 1
    SEARCH_PARAMS: ClassVar[dict[str, Param]] = {}
    BUILD_PARAMS: ClassVar[dict[str, Param]] = {}
    STAGES: ClassVar[tuple[str, ...]] = ("search",)

    #: Which original tokens each stored vector stands for (a :class:`~lirlab.index.pooling.Pooling`),
    #: or None when the index keeps one vector per token.
    pooling = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        registry.note_defined(cls)  # so a kind defined at run time loads by its type, unregistered

    def __init__(self, docnos: Sequence[str], encoder=None, model: dict[str, Any] | None = None):
        self.docnos = tuple(docnos)
        self.encoder = encoder
        self.model = dict(model) if model is not None else describe_encoder(encoder)
        self.last_timings: dict[str, float] | None = None
        self._positions: dict[str, int] | None = None
        self._encoder_checked: Any = None

    # ------------------------------------------------------------------ what callers ask

    @property
    def dim(self) -> int:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def __len__(self) -> int:
        return len(self.docnos)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} documents, dim={self.dim})"

    def position(self, docno: str) -> int:
        """Internal position of ``docno``; ``KeyError`` naming it when the index does not hold it."""
        if self._positions is None:
            self._positions = {d: i for i, d in enumerate(self.docnos)}
        try:
            return self._positions[docno]
        except (KeyError, TypeError):
            raise KeyError(f"the index holds no document {docno!r}") from None

    def live_positions(self) -> torch.Tensor:
        """Positions of the documents a search can return (all, unless the kind supports deletion)."""
        return torch.arange(len(self))

    def is_live(self, position: int) -> bool:
        return 0 <= position < len(self)

    def positions_or_live(self, positions: Sequence[int] | torch.Tensor | None) -> torch.Tensor:
        """``positions`` checked to lie inside the index, or every live position when ``None``."""
        if positions is None:
            return self.live_positions()
        positions = torch.as_tensor(positions, dtype=torch.long).flatten()
        if positions.numel() and (int(positions.min()) < 0 or int(positions.max()) >= len(self)):
            raise ValueError(f"document positions must lie in 0..{len(self) - 1}")
        return positions

    def documents(self, positions: Sequence[int] | torch.Tensor | None = None) -> Encoding:
        """The token vectors of the documents at ``positions`` (default: every live one).

        ``Encoding.exact`` says whether they are the encoded vectors or a reconstruction (a compressed
        index rebuilds them from its codes).
        """
        raise NotImplementedError

    def tokens(
        self, positions: Sequence[int] | torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
        """``(token ids, lengths, vocab)`` of the documents at ``positions`` (default: every live one),
        without their vectors (a compressed index need not decompress anything)."""
        docs = self.documents(positions)
        return docs.token_ids, docs.lengths, docs.vocab

    def pooled_tokens(self, position: int) -> list[list[str]] | None:
        """For each vector stored for the document at ``position``, the original tokens it stands for
        (token pooling merged them), or None when the index keeps one vector per token."""
        return None if self.pooling is None else self.pooling.group_tokens(position)

    def document(self, docno: str) -> Encoding:
        """:meth:`documents` of one document, by id."""
        return self.documents([self.position(docno)])

    def to(self, device: str | torch.device) -> Index:
        """The same index searched on ``device`` (``self`` when already there)."""
        raise NotImplementedError

    def size_bytes(self) -> int:
        """Bytes of the arrays the index keeps for search (what its folder costs, metadata aside)."""
        return 0

    def n_vectors(self) -> int:
        """Token vectors the index stores."""
        return int(self.documents().vectors.shape[0])

    @property
    def exact(self) -> bool:
        """Whether :meth:`documents` returns the vectors as encoded (``False``: a reconstruction, as a
        compressed or pooled index gives); a property, since it can depend on how the index was built."""
        return True

    def config(self) -> dict[str, Any]:
        """How the index was built: its build knobs and what they resolved to, JSON-able (what a kind
        overrides; callers read :meth:`settings`)."""
        return {}

    def settings(self) -> dict[str, Any]:
        """How the index was built (its build knobs and what they resolved to), JSON-able: a copy of
        :meth:`config`."""
        return dict(self.config())

    def describe(self) -> dict[str, Any]:
        """The self-describing part of the artifact: kind, type, counts, settings, model."""
        vectors = self.n_vectors()
        size = self.size_bytes()
        return {
            "kind": self.KIND,
            "type": self.TYPE,
            "documents": len(self),
            "live_documents": int(self.live_positions().numel()),
            "vectors": vectors,
            "dim": self.dim,
            "exact": self.exact,
            "size_bytes": size,
            "bytes_per_vector": size / vectors if vectors else 0.0,
            "config": self.settings(),
            "model": {k: v for k, v in self.model.items() if k != "fingerprint"},
        }

    # ------------------------------------------------------------------ knobs

    @classmethod
    def default_knobs(cls, k: int) -> dict[str, Any]:
        """Values of the knobs whose declared default is ``None`` ("derived from ``k``")."""
        return {}

    @classmethod
    def resolve_knobs(cls, k: int, knobs: Mapping[str, Any]) -> dict[str, Any]:
        """``k`` and ``knobs`` checked against the declarations, unset knobs filled in.

        Raises
        ------
        UnknownKnobError
            Naming the kind and the knobs it takes.
        """
        k = K_PARAM.validate(k)
        unknown = sorted(set(knobs) - set(cls.SEARCH_PARAMS))
        if unknown:
            takes = f"takes {knob_names(cls.SEARCH_PARAMS)}" if cls.SEARCH_PARAMS else "takes no search knobs"
            raise UnknownKnobError(f"a {cls.KIND} index {takes}, got {unknown[0]!r}")
        values = params.validate(cls.SEARCH_PARAMS, knobs)
        defaults = cls.default_knobs(k)
        return {name: defaults.get(name) if value is None else value for name, value in values.items()}

    @classmethod
    def resolve_build_knobs(cls, knobs: Mapping[str, Any]) -> dict[str, Any]:
        """Build knobs checked against :attr:`BUILD_PARAMS` (unset ones keep their declared default)."""
        unknown = sorted(set(knobs) - set(cls.BUILD_PARAMS))
        if unknown:
            takes = f"takes {knob_names(cls.BUILD_PARAMS)}" if cls.BUILD_PARAMS else "takes no build knobs"
            raise UnknownKnobError(f"building a {cls.KIND} index {takes}, got {unknown[0]!r}")
        return params.validate(cls.BUILD_PARAMS, knobs)

    # ------------------------------------------------------------------ building and persistence

    @classmethod
    def build(
        cls, docs, encoder, *, batch_size: int = 32, progress: bool = True, device=None, **build
    ) -> Index:
        """Encode ``docs`` (anything :func:`lirlab.data.as_documents` takes) and build the index."""
        from lirlab.data import as_documents

        cls.resolve_build_knobs(build)
        encoded = encoder.encode_documents(as_documents(docs), batch_size=batch_size, progress=progress)
        return cls.from_encoding(encoded, encoder=encoder, device=device, progress=progress, **build)

    @classmethod
    def from_encoding(
        cls, docs: Encoding, *, encoder=None, model=None, device=None, progress: bool = False, **build
    ) -> Index:
        """Build the index from encoded documents; ``build`` holds :attr:`BUILD_PARAMS` knobs."""
        raise NotImplementedError(f"a {cls.KIND} index cannot be built from an Encoding")

    def save(self, path, overwrite: bool = False) -> None:
        raise NotImplementedError(f"a {self.KIND} index cannot be saved")

    @classmethod
    def load(cls, path, encoder=None, device=None, verify: bool = True) -> Index:
        raise NotImplementedError(f"a {cls.KIND} index cannot be loaded")

    # ------------------------------------------------------------------ search

    def _search(
        self, queries: Encoding, k: int, knobs: dict[str, Any], timer: StageTimer
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per query, ``(document positions, scores)`` best first; laps ``timer`` at each stage."""
        raise NotImplementedError

    #: Queries searched together by :meth:`search_encoded` (a kind may search a batch at once).
    query_batch: int = 32

    def search_encoded(
        self,
        queries: Encoding,
        k: int = 10,
        *,
        subset=None,
        timings: dict | list | None = None,
        record_timings: bool = False,
        progress: bool = False,
        **knobs,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per query, ``(document positions, scores)`` best first.

        Parameters
        ----------
        queries : Encoding
            Encoded queries of this index's dimension.
        k : int
            Results per query; fewer only when the index holds fewer live documents.
        subset : collection of docnos, mapping of qid to docnos, or callable, optional
            Search only these documents: one collection for every query, one per query id, or a
            predicate over document ids. Every document of a query's subset is scored by
            :meth:`score_positions` (the kind's own scores, exactly: no knob applies), so this is meant
            for the small sets a filter leaves; fewer than ``k`` results when the subset is smaller.
        timings : dict or list, optional
            Receives seconds per stage (:attr:`STAGES`): a dict is added to in place, a list gets one
            dict appended. With ``record_timings=True`` they are also left in :attr:`last_timings`.
        progress : bool
            Show a progress bar over query batches.
        **knobs
            The kind's :attr:`SEARCH_PARAMS`; unset ones follow :meth:`default_knobs`.
        """
        from tqdm.auto import tqdm

        settings = self.resolve_knobs(k, knobs)
        if not isinstance(queries, Encoding):
            raise ValueError(f"queries must be an encoded Encoding, got {type(queries).__name__}")
        if len(queries) and queries.dim != self.dim:
            raise ValueError(f"query vectors have dim {queries.dim}, the index has dim {self.dim}")
        if subset is not None:
            allowed = self.subset_positions(subset, queries.ids)
            hits = []
            for i, positions in enumerate(allowed):
                scores = self.score_positions(queries.select([i]), positions).flatten().cpu()
                order = torch.sort(scores, descending=True, stable=True).indices[:k]
                hits.append((positions[order], scores[order]))
            return hits
        timer = StageTimer(self.STAGES, timings is not None or record_timings, self.device)
        batch = max(1, self.batch_size_for(queries))
        hits: list[tuple[torch.Tensor, torch.Tensor]] = []
        for start in tqdm(range(0, len(queries), batch), desc="search", unit="batch", disable=not progress):
            chunk = (
                queries
                if batch >= len(queries)
                else queries.select(range(start, min(start + batch, len(queries))))
            )
            hits.extend(self._search(chunk, k, settings, timer))
        if timer.enabled:
            self.last_timings = dict(timer.totals)
            if isinstance(timings, dict):
                for stage, seconds in timer.totals.items():
                    timings[stage] = timings.get(stage, 0.0) + seconds
            elif isinstance(timings, list):
                timings.append(dict(timer.totals))
        return hits

    def subset_positions(self, subset, qids: Sequence[str]) -> list[torch.Tensor]:
        """Per query id, the live positions ``subset`` allows (see :meth:`search_encoded`).

        >>> import torch
        >>> from lirlab.encoding import Encoding
        >>> from lirlab.index.flat import FlatIndex
        >>> docs = Encoding(ids=("a", "b", "c"), vectors=torch.eye(3), token_ids=torch.zeros(3, dtype=torch.long),
        ...                 offsets=torch.tensor([0, 1, 2, 3]), vocab=("t",))
        >>> index = FlatIndex(docs)
        >>> [p.tolist() for p in index.subset_positions({"c", "a"}, ["q1"])]
        [[0, 2]]
        >>> [p.tolist() for p in index.subset_positions({"q1": ["b"], "q2": []}, ["q1", "q2"])]
        [[1], []]
        >>> index.subset_positions(["a", "zz"], ["q1"])
        Traceback (most recent call last):
        ...
        ValueError: subset names 1 document(s) the index does not hold, first: 'zz'
        """
        if isinstance(subset, (str, bytes)):
            raise ValueError(
                "subset must be a collection of document ids (or a mapping or a predicate), not one string"
            )
        live = self.live_positions()
        if callable(subset):
            picked = torch.tensor([int(p) for p in live.tolist() if subset(self.docnos[p])], dtype=torch.long)
            return [picked] * len(qids)
        if isinstance(subset, Mapping):
            missing = [q for q in qids if q not in subset]
            if missing:
                raise ValueError(
                    f"subset gives no documents for query {missing[0]!r}; give every query an entry "
                    "(an empty one for none)"
                )
            return [self._positions_of(subset[q]) for q in qids]
        return [self._positions_of(subset)] * len(qids)

    def _positions_of(self, docnos) -> torch.Tensor:
        if isinstance(docnos, (str, bytes)):
            raise ValueError("subset must be a collection of document ids, not one string")
        wanted = sorted(set(docnos), key=str)
        positions, unknown = [], []
        for docno in wanted:
            try:
                position = self.position(docno)
            except KeyError:
                unknown.append(docno)
                continue
            if self.is_live(position):
                positions.append(position)
        if unknown:
            raise ValueError(
                f"subset names {len(unknown)} document(s) the index does not hold, first: {unknown[0]!r}"
            )
        return torch.tensor(sorted(positions), dtype=torch.long)

    def score_positions(self, queries: Encoding, positions: torch.Tensor) -> torch.Tensor:
        """Scores ``[n_queries, n_positions]`` of the documents at ``positions``, as this kind scores a
        document it ranks: exact MaxSim over :meth:`documents` here (the encoded vectors, or a compressed
        kind's reconstruction); a kind that scores otherwise (BM25) says so by overriding this."""
        from lirlab.maxsim import maxsim_candidates

        if not len(positions):
            return torch.zeros(len(queries), 0)
        docs = self.documents(positions)
        return torch.stack(
            [
                maxsim_candidates(queries.vectors_of(i).float(), docs.vectors.float(), docs.lengths).cpu()
                for i in range(len(queries))
            ]
        )

    def batch_size_for(self, queries: Encoding) -> int:
        """Queries searched in one ``_search`` call (a kind bounds it by the memory a batch needs)."""
        return self.query_batch

    def search_timed(self, queries: Encoding, k: int = 10, **knobs) -> tuple[list, dict[str, float]]:
        """:meth:`search_encoded` and the seconds each stage took."""
        timings: dict[str, float] = {}
        hits = self.search_encoded(queries, k, timings=timings, **knobs)
        return hits, timings

    def encode_queries(self, queries) -> tuple[list[Query], Encoding]:
        """Query records and their encoding (an :class:`Encoding` is used as it is, its ids as texts
        unless it carries texts)."""
        if isinstance(queries, Encoding):
            texts = queries.texts or queries.ids
            return [Query(q, t) for q, t in zip(queries.ids, texts)], queries
        records = as_queries(queries)
        if self.encoder is None:
            raise ValueError("this index has no encoder: load it with encoder=... or pass encoded queries")
        self.check_encoder()
        encoded = self.encoder.encode_queries(records)
        return records, replace(encoded, texts=tuple(q.text for q in records))

    def check_encoder(self) -> None:
        """Warn once per encoder when it is not the one that built the index."""
        if self.encoder is None or self._encoder_checked is self.encoder:
            return
        self._encoder_checked = self.encoder
        stored = self.model.get("fingerprint")
        if not stored:
            return
        current = encoder_fingerprint(self.encoder)
        if current and not fingerprints_match(stored, current):
            warnings.warn(
                f"this index was built with {self.model.get('name')!r} but is searched with "
                f"{getattr(self.encoder, 'name', '?')!r}, whose vectors differ: scores will be meaningless; "
                "load the index with the encoder that built it",
                EncoderMismatchWarning,
                stacklevel=4,
            )

    def search(
        self,
        queries,
        k: int = 10,
        *,
        subset=None,
        timings=None,
        record_timings=False,
        progress=False,
        **knobs,
    ) -> pd.DataFrame:
        """Search text queries (or an :class:`Encoding`); returns ``qid, query, docno, score, rank``.

        Takes the keywords of :meth:`search_encoded` (``subset=`` filters the documents per query).
        When the index (or the subset) holds fewer than ``k`` documents, or a query reaches fewer,
        every available result is returned and a :class:`FewerResultsWarning` says so.
        """
        k = K_PARAM.validate(k)
        self.resolve_knobs(k, knobs)
        records, encoded = self.encode_queries(queries)
        hits = self.search_encoded(
            encoded,
            k=k,
            subset=subset,
            timings=timings,
            record_timings=record_timings,
            progress=progress,
            **knobs,
        )
        short = [q.qid for q, (positions, _) in zip(records, hits) if len(positions) < k]
        if short:
            held = (
                "the subset holds fewer"
                if subset is not None
                else f"index holds {int(self.live_positions().numel())} documents"
            )
            warnings.warn(
                f"{len(short)} of {len(records)} queries got fewer than k={k} results "
                f"({held}); first: {short[0]!r}",
                FewerResultsWarning,
                stacklevel=2,
            )
        return run_frame([q.qid for q in records], [q.text for q in records], hits, self.docnos)
