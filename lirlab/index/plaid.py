"""ColBERTv2-compressed index searched with PLAID's four stages.

Every document token vector is stored as the code of its nearest centroid plus its residual quantized
to ``nbits`` per dimension (:class:`~lirlab.index.codec.ResidualCodec`). An inverted file (IVF) lists,
for every centroid, the documents holding at least one token assigned to it.

Search (Santhanam et al., *PLAID*, 2022) narrows the corpus in four stages:

1. **candidate generation**: score every query token against every centroid, take each token's
   ``n_probe`` best centroids and the union of their IVF lists;
2. **pruned centroid interaction**: score candidates by MaxSim with every document token replaced by
   its centroid's score, skipping tokens whose centroid scores below ``centroid_score_threshold``
   against every query token (as colbert-ai does; a document left with no token scores
   :data:`PRUNED_FLOOR` per query token); keep the best ``ndocs``;
3. **centroid interaction**: the same without pruning; keep the best ``ndocs // 4``;
4. **decompression**: rebuild the survivors' vectors from codes and residuals, score exact MaxSim and
   return the best ``k``.

Stages 2 to 4 run on (query, document) pairs laid out as padded index tensors over the packed,
document-ordered codes, so there is no Python loop per candidate: pairs are sorted by document length
and processed in chunks bounded by :data:`SCORE_BUDGET` scores; stage 2 gathers only the tokens of
unpruned centroids; stage 4 decompresses each document once per query batch.

A search never returns fewer than ``k`` documents while the index holds ``k`` live ones: stage 3 keeps
at least ``k``, stage 2 at least as many as stage 3, and a query whose probed lists hold fewer than
``k`` documents has its ``n_probe`` doubled until they do (up to every centroid; documents without
tokens, which no list holds, are then added as candidates scoring 0).

Examples
--------
>>> import torch, tempfile
>>> from lirlab.encoding import Encoding, offsets_from_lengths
>>> g = torch.Generator().manual_seed(0)
>>> docs = Encoding(
...     ids=tuple(f"d{i}" for i in range(40)),
...     vectors=torch.nn.functional.normalize(torch.randn(400, 16, generator=g), dim=1),
...     token_ids=torch.zeros(400, dtype=torch.long),
...     offsets=offsets_from_lengths(torch.full((40,), 10)),
...     vocab=("tok",),
... )
>>> index = PlaidIndex.from_encoding(docs, nbits=2, n_centroids=16)
>>> index
PlaidIndex(40 documents, 400 tokens, 16 centroids, nbits=2, 5 bytes/vector)
>>> run = index.search(docs.select([7]), k=3)
>>> run.docno.tolist()[0], len(run)
('d7', 3)
>>> folder = tempfile.mkdtemp() + "/plaid"
>>> index.save(folder)
>>> PlaidIndex.load(folder).search(docs.select([7]), k=3).docno.tolist() == run.docno.tolist()
True
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lirlab import params
from lirlab.data import as_documents, check_unique
from lirlab.encoding import Encoding, offsets_from_lengths, rows_of
from lirlab.index.base import Index, StageTimer
from lirlab.index.codec import NBITS_CHOICES, ResidualCodec, check_layout
from lirlab.index.kmeans import spherical_kmeans
from lirlab.maxsim import pad_packed
from lirlab.params import Param
from lirlab.storage import ArtifactError, ArtifactWriter, read_artifact

#: Upper bound on scores (or gathered elements) materialized at once in stages 2 to 4.
SCORE_BUDGET = 1 << 22

#: Documents encoded and compressed at a time by :meth:`PlaidIndex.build` and :meth:`PlaidIndex.add`.
DEFAULT_CHUNK_DOCS = 4096

#: Cap on the default k-means sample, in documents (its vectors are held until the codec is trained).
MAX_DEFAULT_SAMPLE_DOCS = 1 << 15

#: Share of sample vectors held out of k-means to fit the residual buckets (at most 50,000 vectors).
HELDOUT_SHARE = 0.05

#: Build-time nearest-centroid cosine quantile below which an added vector counts as drifted.
DRIFT_QUANTILE = 0.05

#: :meth:`PlaidIndex.add` warns when more than this share of new vectors drifted.
DRIFT_WARNING_LEVEL = 0.2

#: Bins of the nearest-centroid cosine histogram kept at build time (resolution 2 / bins).
_COSINE_BINS = 2000

#: Stage-2 score per query token of a document whose every token was pruned (colbert-ai uses the same).
PRUNED_FLOOR = -9999.0

#: The stage names timed by :meth:`PlaidIndex.search_encoded`, in order.
STAGES = (
    "centroid_scoring",
    "candidate_generation",
    "pruning",
    "centroid_interaction",
    "decompression",
    "exact_maxsim",
)

SEARCH_PARAMS: dict[str, Param] = {
    "n_probe": Param(
        "n_probe",
        int,
        None,
        "Centroids probed per query token in candidate generation (default from k: 1, 2 or 4).",
        low=1,
        latency="up",
        quality="up",
        aliases="Stanford ncells, fast-plaid n_ivf_probe, WARP nprobe",
    ),
    "centroid_score_threshold": Param(
        "centroid_score_threshold",
        float,
        None,
        "Document tokens whose centroid scores below this against every query token are skipped in stage 2 "
        "(default from k: 0.5, 0.45 or 0.4).",
        low=-1.0,
        high=1.0,
        latency="down",
        quality="down",
        aliases="Stanford centroid_score_threshold",
    ),
    "ndocs": Param(
        "ndocs",
        int,
        None,
        "Candidates kept after stage 2; a quarter of them (at least k) are decompressed "
        "(default from k: 256, 1024 or max(4k, 4096)).",
        low=1,
        latency="up",
        memory="up",
        quality="up",
        aliases="Stanford ndocs, fast-plaid n_full_scores (≈ ndocs/4)",
    ),
}

BUILD_PARAMS: dict[str, Param] = {
    "nbits": Param(
        "nbits",
        int,
        2,
        "Bits per dimension of each residual.",
        choices=NBITS_CHOICES,
        latency="up",
        memory="up",
        quality="up",
        aliases="Stanford nbits, fast-plaid nbits",
    ),
    "n_centroids": Param(
        "n_centroids",
        int,
        None,
        "Number of k-means centroids (default 2^floor(log2(16·sqrt(tokens))), at most the sample's vectors).",
        low=1,
        latency="up",
        memory="up",
        quality="up",
        aliases="Stanford num_partitions",
    ),
    "kmeans_iterations": Param(
        "kmeans_iterations",
        int,
        4,
        "Spherical k-means rounds.",
        low=1,
        quality="up",
        aliases="Stanford kmeans_niters, fast-plaid kmeans_niters",
    ),
    "kmeans_sample": Param(
        "kmeans_sample",
        int,
        None,
        "Documents encoded first to train k-means and the codec "
        f"(default min(n, 16·sqrt(120·n), {MAX_DEFAULT_SAMPLE_DOCS})).",
        low=1,
        memory="up",
        quality="up",
        aliases="Stanford sampled pids",
    ),
    "seed": Param("seed", int, 0, "Seeds the k-means sample, held-out split and initialization."),
}


def default_search_params(k: int) -> dict[str, Any]:
    """ColBERTv2's search defaults for ``k`` results.

    >>> default_search_params(10), default_search_params(1000)["ndocs"]
    ({'n_probe': 1, 'centroid_score_threshold': 0.5, 'ndocs': 256}, 4096)
    """
    if k <= 10:
        return {"n_probe": 1, "centroid_score_threshold": 0.5, "ndocs": 256}
    if k <= 100:
        return {"n_probe": 2, "centroid_score_threshold": 0.45, "ndocs": 1024}
    return {"n_probe": 4, "centroid_score_threshold": 0.4, "ndocs": max(k * 4, 4096)}


def resolve_search_params(k: int, **knobs) -> dict[str, Any]:
    """Validate ``knobs`` against :data:`SEARCH_PARAMS` and fill the unset ones from ``k``.

    >>> resolve_search_params(10, n_probe=8)
    {'n_probe': 8, 'centroid_score_threshold': 0.5, 'ndocs': 256}
    >>> resolve_search_params(10, nprobe=8)
    Traceback (most recent call last):
    ...
    ValueError: unknown setting 'nprobe'; known: n_probe, centroid_score_threshold, ndocs
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive whole number, got {k!r}")
    values = params.validate(SEARCH_PARAMS, knobs)
    defaults = default_search_params(k)
    return {name: defaults[name] if value is None else value for name, value in values.items()}


class DriftWarning(UserWarning):
    """Added documents sit far from the index's centroids: rebuilding would compress them better."""


@dataclass(frozen=True)
class AddReport:
    """What :meth:`PlaidIndex.add` did.

    Attributes
    ----------
    n_documents, n_vectors : int
        Documents and token vectors added.
    drift : float
        Share of the new vectors whose cosine to their nearest centroid is below ``drift_threshold``.
    drift_threshold : float
        The build-time :data:`DRIFT_QUANTILE` quantile of nearest-centroid cosines (so about
        ``DRIFT_QUANTILE`` of in-distribution vectors fall below it).
    """

    n_documents: int
    n_vectors: int
    drift: float
    drift_threshold: float


@dataclass
class _Compressed:
    """Compressed documents in order: what survives of an encoded chunk."""

    codes: torch.Tensor
    residuals: torch.Tensor
    token_ids: torch.Tensor
    lengths: torch.Tensor
    cosines: torch.Tensor = field(repr=False)


def _segment_top(groups: torch.Tensor, scores: torch.Tensor, keep: int, n_groups: int) -> torch.Tensor:
    """Indices of the ``keep`` best scores of every group, ordered by group then score (best first).

    Ties keep their input order.

    >>> _segment_top(torch.tensor([0, 0, 0, 1, 1]), torch.tensor([1.0, 3.0, 2.0, 0.0, 5.0]), 2, 2).tolist()
    [1, 2, 4, 3]
    """
    if groups.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=groups.device)
    order = torch.argsort(scores, descending=True, stable=True)
    order = order[torch.argsort(groups[order], stable=True)]
    sorted_groups = groups[order]
    counts = torch.bincount(sorted_groups, minlength=n_groups)
    starts = counts.cumsum(0) - counts
    rank = torch.arange(order.numel(), device=groups.device) - starts[sorted_groups]
    return order[rank < keep]


def _build_ivf(
    codes: torch.Tensor, doc_offsets: torch.Tensor, n_centroids: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverted lists: (document positions int32 grouped by centroid, ascending; offsets int64)."""
    lengths = doc_offsets[1:] - doc_offsets[:-1]
    n_docs = int(lengths.shape[0])
    device = codes.device
    if n_docs == 0 or codes.numel() == 0:
        return torch.zeros(0, dtype=torch.int32, device=device), torch.zeros(
            n_centroids + 1, dtype=torch.long, device=device
        )
    doc_of_token = torch.repeat_interleave(torch.arange(n_docs, device=device), lengths.to(device))
    keys = torch.unique(codes.to(device).long() * n_docs + doc_of_token)
    counts = torch.bincount(keys // n_docs, minlength=n_centroids)
    return (keys % n_docs).to(torch.int32), offsets_from_lengths(counts.cpu()).to(device)


def _merge_ivf(
    positions: torch.Tensor, offsets: torch.Tensor, new_positions: torch.Tensor, new_offsets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Union of two IVFs over disjoint documents, each list kept ascending."""
    n_centroids = offsets.shape[0] - 1
    span = (
        int(
            max(
                positions.max().item() if positions.numel() else 0,
                new_positions.max().item() if new_positions.numel() else 0,
            )
        )
        + 1
    )
    centroid_ids = torch.arange(n_centroids, device=positions.device)
    old_keys = torch.repeat_interleave(centroid_ids, offsets[1:] - offsets[:-1]) * span + positions.long()
    new_keys = (
        torch.repeat_interleave(centroid_ids, new_offsets[1:] - new_offsets[:-1]) * span
        + new_positions.long()
    )
    keys = torch.cat([old_keys, new_keys]).sort().values
    counts = torch.bincount(keys // span, minlength=n_centroids)
    return (keys % span).to(torch.int32), offsets_from_lengths(counts.cpu()).to(positions.device)


def _cosine_histogram(cosines: torch.Tensor) -> torch.Tensor:
    return torch.histc(cosines.float().cpu().clamp(-1, 1), bins=_COSINE_BINS, min=-1.0, max=1.0).double()


def _histogram_quantile(histogram: torch.Tensor, q: float) -> float:
    """Lower edge of the bin holding the ``q`` quantile."""
    cumulative = histogram.cumsum(0)
    total = float(cumulative[-1])
    if total == 0:
        return -1.0
    bin_index = int(torch.searchsorted(cumulative, torch.tensor([q * total], dtype=cumulative.dtype)).item())
    return -1.0 + 2.0 * min(bin_index, _COSINE_BINS - 1) / _COSINE_BINS


def _compress(codec: ResidualCodec, encoded: Encoding) -> _Compressed:
    if encoded.dim != codec.dim:
        raise ValueError(f"document vectors have dim {encoded.dim}, the index has dim {codec.dim}")
    vectors = encoded.vectors.to(device=codec.device, dtype=torch.float32)
    codes, cosines = codec.assign(vectors)
    codes, residuals = codec.compress(vectors, codes)
    return _Compressed(
        codes.cpu(),
        residuals.cpu(),
        encoded.token_ids.to(torch.int32).cpu(),
        encoded.lengths.cpu(),
        cosines.cpu(),
    )


def _join(parts: Sequence[_Compressed], order: torch.Tensor | None = None) -> _Compressed:
    """Concatenate compressed parts, then (if given) put documents in ``order`` (indices into the join)."""
    joined = _Compressed(
        *(
            torch.cat([getattr(p, name) for p in parts])
            for name in ("codes", "residuals", "token_ids", "lengths", "cosines")
        )
    )
    if order is None:
        return joined
    rows = rows_of(offsets_from_lengths(joined.lengths), order)
    return _Compressed(
        joined.codes[rows],
        joined.residuals[rows],
        joined.token_ids[rows],
        joined.lengths[order],
        joined.cosines[rows],
    )


def _chunks(positions: torch.Tensor, size: int) -> list[torch.Tensor]:
    return [positions[i : i + size] for i in range(0, positions.numel(), size)]


def _tensor(array: np.ndarray) -> torch.Tensor:
    """A tensor sharing ``array``'s memory (memory-mapped arrays are read-only: the copy-free way)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(array)


class PlaidIndex(Index):
    """Compressed late-interaction index with PLAID search.

    Build one with :meth:`build` (text + encoder, streamed chunk by chunk) or :meth:`from_encoding`
    (already encoded documents), reopen one with :meth:`load`.

    Parameters
    ----------
    codec : ResidualCodec
        Centroids and residual buckets.
    codes : torch.Tensor
        ``[n_tokens]`` centroid code of every token, documents in position order (codec's code dtype).
    residuals : torch.Tensor
        ``[n_tokens, codec.packed_dim]`` uint8 packed residuals.
    token_ids : torch.Tensor
        ``[n_tokens]`` vocabulary ids.
    doc_offsets : torch.Tensor
        ``[n_docs + 1]`` int64; document ``i`` owns token rows ``doc_offsets[i]:doc_offsets[i+1]``.
    docnos : sequence of str
        Document ids by position.
    vocab : sequence of str
        Token strings by vocabulary id.
    mask_token_id : int
        Vocabulary id of ``[MASK]`` or -1.
    deleted : torch.Tensor, optional
        ``[n_docs]`` bool, documents removed by :meth:`delete`.
    ivf : (torch.Tensor, torch.Tensor), optional
        Inverted lists ``(positions, offsets)``; rebuilt from ``codes`` when omitted.
    encoder : lirlab.encoder.ColBERT, optional
        Encodes text queries in :meth:`search` and documents in :meth:`add`.
    model, config, stats : dict, optional
        Saved with the index: the encoder's description, build settings and build statistics.
    device : str or torch.device, optional
        Where search runs (default: the codec's device).
    query_batch : int
        Queries searched together.
    """

    KIND = "plaid"
    TYPE = "lirlab.plaid"
    FORMAT_VERSION = 1
    SEARCH_PARAMS = SEARCH_PARAMS
    BUILD_PARAMS = BUILD_PARAMS
    STAGES = STAGES
    EXACT = False

    def __init__(
        self,
        codec: ResidualCodec,
        codes: torch.Tensor,
        residuals: torch.Tensor,
        token_ids: torch.Tensor,
        doc_offsets: torch.Tensor,
        docnos: Sequence[str],
        vocab: Sequence[str] = (),
        *,
        mask_token_id: int = -1,
        deleted: torch.Tensor | None = None,
        ivf: tuple[torch.Tensor, torch.Tensor] | None = None,
        encoder=None,
        model: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
        stats: dict[str, Any] | None = None,
        device: str | torch.device | None = None,
        query_batch: int = 32,
    ):
        device = torch.device(device) if device is not None else codec.device
        n_tokens, n_docs = int(codes.shape[0]), len(docnos)
        if residuals.shape != (n_tokens, codec.packed_dim):
            raise ValueError(
                f"residuals must be [{n_tokens}, {codec.packed_dim}], got {tuple(residuals.shape)}"
            )
        if token_ids.shape != (n_tokens,):
            raise ValueError(f"token_ids must have {n_tokens} entries, got {tuple(token_ids.shape)}")
        if doc_offsets.shape != (n_docs + 1,) or int(doc_offsets[0]) != 0 or int(doc_offsets[-1]) != n_tokens:
            raise ValueError(f"doc_offsets must run from 0 to {n_tokens} in {n_docs + 1} entries")
        if deleted is not None and deleted.shape != (n_docs,):
            raise ValueError(f"deleted must have {n_docs} entries, got {tuple(deleted.shape)}")
        self.codec = codec.to(device)
        self._device = device
        self.codes = codes.to(device)
        self.residuals = residuals.to(device)
        self.token_ids = token_ids.to(device)
        self.doc_offsets = doc_offsets.to(device=device, dtype=torch.long)
        self.docnos = tuple(docnos)
        self.vocab = tuple(vocab)
        self.mask_token_id = int(mask_token_id)
        self.deleted = (deleted if deleted is not None else torch.zeros(n_docs, dtype=torch.bool)).to(device)
        if ivf is None:
            ivf = _build_ivf(self.codes, self.doc_offsets, codec.n_centroids)
        if ivf[1].shape != (codec.n_centroids + 1,):
            raise ValueError(
                f"ivf offsets must have {codec.n_centroids + 1} entries, got {tuple(ivf[1].shape)}"
            )
        self.ivf_positions = ivf[0].to(device)
        self.ivf_offsets = ivf[1].to(device=device, dtype=torch.long)
        super().__init__(docnos, encoder=encoder, model=model)
        self.config = dict(config or {})
        self.stats = dict(stats or {})
        self.query_batch = query_batch
        self._refresh()

    def _refresh(self) -> None:
        self.doc_lengths = self.doc_offsets[1:] - self.doc_offsets[:-1]
        self.n_deleted = int(self.deleted.sum())

    # ------------------------------------------------------------------ properties

    @property
    def dim(self) -> int:
        return self.codec.dim

    @property
    def device(self) -> torch.device:
        return self._device

    @classmethod
    def default_knobs(cls, k: int) -> dict[str, Any]:
        return default_search_params(k)

    def live_positions(self) -> torch.Tensor:
        return (~self.deleted).nonzero().flatten().cpu()

    def is_live(self, position: int) -> bool:
        return 0 <= position < len(self) and not bool(self.deleted[position])

    def n_vectors(self) -> int:
        return self.n_tokens

    def size_bytes(self) -> int:
        return self.size_on_disk_bytes()

    def to(self, device: str | torch.device) -> PlaidIndex:
        device = torch.device(device)
        if self.device == device:
            return self
        return PlaidIndex(
            self.codec,
            self.codes,
            self.residuals,
            self.token_ids,
            self.doc_offsets,
            self.docnos,
            self.vocab,
            mask_token_id=self.mask_token_id,
            deleted=self.deleted,
            ivf=(self.ivf_positions, self.ivf_offsets),
            encoder=self.encoder,
            model=self.model,
            config=self.config,
            stats=self.stats,
            device=device,
            query_batch=self.query_batch,
        )

    @property
    def nbits(self) -> int:
        return self.codec.nbits

    @property
    def n_centroids(self) -> int:
        return self.codec.n_centroids

    @property
    def n_tokens(self) -> int:
        return int(self.codes.shape[0])

    @property
    def n_live(self) -> int:
        """Documents not deleted."""
        return len(self.docnos) - self.n_deleted

    def __repr__(self) -> str:
        deleted = f" ({self.n_deleted} deleted)" if self.n_deleted else ""
        return (
            f"PlaidIndex({len(self.docnos)} documents{deleted}, {self.n_tokens} tokens, "
            f"{self.n_centroids} centroids, nbits={self.nbits}, {self.codec.bytes_per_vector} bytes/vector)"
        )

    # ------------------------------------------------------------------ building

    @classmethod
    def build(
        cls,
        docs,
        encoder,
        *,
        nbits: int = 2,
        n_centroids: int | None = None,
        kmeans_sample: int | None = None,
        kmeans_iterations: int = 4,
        seed: int = 0,
        chunk_docs: int = DEFAULT_CHUNK_DOCS,
        batch_size: int = 32,
        device: str | torch.device | None = None,
        progress: bool = True,
    ) -> PlaidIndex:
        """Encode ``docs`` chunk by chunk with ``encoder`` and compress them as they come.

        A seeded sample of ``kmeans_sample`` documents is encoded first (in chunks of ``chunk_docs``) and
        its vectors train k-means (95%) and the residual buckets (5% held out); then the sample and every
        further chunk are compressed, keeping only codes, packed residuals, token ids and lengths. Each
        document is encoded exactly once; peak memory is the model, the sample's vectors (or one
        chunk's, whichever is larger) and the compressed index.

        Parameters
        ----------
        docs :
            Anything :func:`lirlab.data.as_documents` accepts.
        encoder : lirlab.encoder.ColBERT
            Provides ``encode_documents(docs, batch_size=, progress=)`` and ``describe()``.
        nbits, n_centroids, kmeans_sample, kmeans_iterations, seed :
            See :data:`BUILD_PARAMS`.
        chunk_docs : int
            Documents encoded at a time.
        batch_size : int
            Encoder batch size.
        device :
            Where k-means, compression and search run (default: CPU).
        progress : bool
            Show progress bars (encoding the sample, k-means, encoding and compressing the rest).
        """
        records = as_documents(docs)

        def encode(positions: torch.Tensor) -> Encoding:
            chunk = [records[i] for i in positions.tolist()]
            encoded = encoder.encode_documents(chunk, batch_size=batch_size, progress=progress)
            if tuple(encoded.ids) != tuple(d.docno for d in chunk):
                raise RuntimeError("the encoder returned documents other than those it was given")
            return encoded

        return cls._build(
            len(records),
            encode,
            encoder=encoder,
            nbits=nbits,
            n_centroids=n_centroids,
            kmeans_sample=kmeans_sample,
            kmeans_iterations=kmeans_iterations,
            seed=seed,
            chunk_docs=chunk_docs,
            device=device,
            progress=progress,
        )

    @classmethod
    def from_encoding(
        cls,
        docs: Encoding,
        nbits: int = 2,
        *,
        n_centroids: int | None = None,
        kmeans_sample: int | None = None,
        kmeans_iterations: int = 4,
        seed: int = 0,
        chunk_docs: int = DEFAULT_CHUNK_DOCS,
        encoder=None,
        model: dict[str, Any] | None = None,
        device: str | torch.device | None = None,
        progress: bool = False,
    ) -> PlaidIndex:
        """Compress already encoded documents (same procedure as :meth:`build`, minus the encoding)."""
        if not isinstance(docs, Encoding):
            raise ValueError(f"from_encoding needs an Encoding, got {type(docs).__name__}")
        check_unique(docs.ids, "document id")
        check_layout(docs.dim, params.validate(BUILD_PARAMS, {"nbits": nbits})["nbits"])

        def encode(positions: torch.Tensor) -> Encoding:
            return docs.select(positions.tolist())

        return cls._build(
            len(docs),
            encode,
            encoder=encoder,
            model=model,
            nbits=nbits,
            n_centroids=n_centroids,
            kmeans_sample=kmeans_sample,
            kmeans_iterations=kmeans_iterations,
            seed=seed,
            chunk_docs=chunk_docs,
            device=device,
            progress=progress,
        )

    @classmethod
    def _build(
        cls,
        n_docs: int,
        encode: Callable[[torch.Tensor], Encoding],
        *,
        nbits: int,
        n_centroids: int | None,
        kmeans_sample: int | None,
        kmeans_iterations: int,
        seed: int,
        chunk_docs: int,
        device,
        progress: bool,
        encoder=None,
        model: dict[str, Any] | None = None,
    ) -> PlaidIndex:
        settings = params.validate(
            BUILD_PARAMS,
            {
                "nbits": nbits,
                "n_centroids": n_centroids,
                "kmeans_sample": kmeans_sample,
                "kmeans_iterations": kmeans_iterations,
                "seed": seed,
            },
        )
        if isinstance(chunk_docs, bool) or not isinstance(chunk_docs, int) or chunk_docs < 1:
            raise ValueError(f"chunk_docs must be a positive whole number, got {chunk_docs!r}")
        if n_docs == 0:
            raise ValueError("cannot build an index of 0 documents")
        device = torch.device(device) if device is not None else torch.device("cpu")
        generator = torch.Generator().manual_seed(seed)

        # 1. Encode the k-means sample (once; it is compressed below, not encoded again).
        n_sample = settings["kmeans_sample"] or min(
            n_docs, max(1, int(16 * math.sqrt(120 * n_docs))), MAX_DEFAULT_SAMPLE_DOCS
        )
        n_sample = min(n_sample, n_docs)
        in_sample = torch.zeros(n_docs, dtype=torch.bool)
        in_sample[torch.randperm(n_docs, generator=generator)[:n_sample]] = True
        sample_positions = in_sample.nonzero().flatten()
        sample_parts = [
            encode(chunk)
            for chunk in tqdm(
                _chunks(sample_positions, chunk_docs),
                desc="encode k-means sample",
                unit="chunk",
                disable=not progress,
            )
        ]
        sample = Encoding.concat(sample_parts)
        del sample_parts
        check_layout(sample.dim, settings["nbits"])

        # 2. Train k-means on 95% of the sample's vectors, the residual buckets on the rest.
        n_vectors = int(sample.vectors.shape[0])
        n_heldout = min(50_000, max(2, int(HELDOUT_SHARE * n_vectors)))
        if n_vectors - n_heldout < 1:
            raise ValueError(f"the k-means sample holds only {n_vectors} token vectors; need at least 3")
        permutation = torch.randperm(n_vectors, generator=generator)
        heldout_rows, train_rows = permutation[:n_heldout], permutation[n_heldout:]
        n_train = int(train_rows.numel())
        if settings["n_centroids"] is None:
            estimated_tokens = n_vectors / n_sample * n_docs
            n_centroids = min(2 ** int(math.floor(math.log2(16 * math.sqrt(estimated_tokens)))), n_train)
        else:
            n_centroids = settings["n_centroids"]
            if n_centroids > n_train:
                raise ValueError(
                    f"n_centroids={n_centroids} exceeds the {n_train} k-means training vectors; "
                    "lower it or raise kmeans_sample"
                )
        centroids = spherical_kmeans(
            sample.vectors[train_rows],
            n_centroids,
            iterations=settings["kmeans_iterations"],
            seed=seed,
            device=device,
            progress=progress,
        )
        codec = ResidualCodec.train(centroids, sample.vectors[heldout_rows], settings["nbits"], seed=seed)

        # 3. Compress the sample, then encode and compress the remaining documents chunk by chunk.
        parts = [_compress(codec, sample)]
        vocab, mask_token_id = sample.vocab, sample.mask_token_id
        docnos: list[str] = list(sample.ids)
        del sample
        rest = (~in_sample).nonzero().flatten()
        bar = tqdm(total=int(rest.numel()), desc="encode + compress", unit="doc", disable=not progress)
        for chunk in _chunks(rest, chunk_docs):
            encoded = encode(chunk)
            parts.append(_compress(codec, encoded))
            docnos.extend(encoded.ids)
            bar.update(int(chunk.numel()))
        bar.close()

        # 4. Put documents back in input order.
        order = torch.argsort(torch.cat([sample_positions, rest]))
        joined = _join(parts, order)
        docnos = [docnos[i] for i in order.tolist()]
        histogram = _cosine_histogram(joined.cosines)
        config = {
            "nbits": settings["nbits"],
            "dim": codec.dim,
            "n_centroids": n_centroids,
            "mask_token_id": mask_token_id,
            "kmeans": {
                "iterations": settings["kmeans_iterations"],
                "sample_documents": n_sample,
                "training_vectors": n_train,
                "heldout_vectors": n_heldout,
                "seed": seed,
            },
        }
        stats = {
            "drift_quantile": DRIFT_QUANTILE,
            "drift_threshold": _histogram_quantile(histogram, DRIFT_QUANTILE),
            "nearest_cosine_mean": float(joined.cosines.double().mean()) if joined.cosines.numel() else 0.0,
            "nearest_cosine_quantiles": {
                f"{q:g}": _histogram_quantile(histogram, q) for q in (0.01, 0.05, 0.5)
            },
            "adds": [],
        }
        return cls(
            codec,
            joined.codes,
            joined.residuals,
            joined.token_ids,
            offsets_from_lengths(joined.lengths),
            docnos,
            vocab,
            mask_token_id=mask_token_id,
            encoder=encoder,
            model=model,
            config=config,
            stats=stats,
            device=device,
        )

    # ------------------------------------------------------------------ stages

    def _padded_rows(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token row indices ``[n, max_len]`` of documents at ``positions`` (0 where padded) and the mask."""
        starts = self.doc_offsets[positions]
        lengths = self.doc_lengths[positions]
        width = int(lengths.max()) if lengths.numel() else 0
        steps = torch.arange(width, device=self.device)
        mask = steps.unsqueeze(0) < lengths.unsqueeze(1)
        rows = (starts.unsqueeze(1) + steps.unsqueeze(0)).masked_fill(~mask, 0)
        return rows, mask

    def _length_chunks(self, positions: torch.Tensor, per_token: int) -> list[tuple[torch.Tensor, int]]:
        """Split ``positions`` (pairs' or distinct documents) into chunks of similar length, longest first.

        Each chunk is ``(indices into positions, padded length)`` with ``len * length * per_token`` at most
        :data:`SCORE_BUDGET` (at least one entry), so padding wastes little and buffers stay bounded.
        Documents without tokens are left out (they score 0).
        """
        lengths = self.doc_lengths[positions]
        order = torch.argsort(lengths, descending=True, stable=True)
        sorted_lengths = lengths[order].tolist()
        n_nonempty = int((lengths > 0).sum())  # documents without tokens score 0: nothing to compute
        chunks, start = [], 0
        while start < n_nonempty:
            width = sorted_lengths[start]
            stop = min(n_nonempty, start + max(1, SCORE_BUDGET // (width * max(per_token, 1))))
            chunks.append((order[start:stop], width))
            start = stop
        return chunks

    def _probe(self, scores: torch.Tensor, query_mask: torch.Tensor, n_probe: torch.Tensor) -> torch.Tensor:
        """Stage 1: sorted keys ``query * n_docs + position`` of live candidates in the probed lists."""
        n_queries, _, n_centroids = scores.shape
        n_docs = len(self.docnos)
        width = int(n_probe.max()) if n_probe.numel() else 0
        if n_docs == 0 or width == 0 or scores.shape[1] == 0:
            return torch.zeros(0, dtype=torch.long, device=self.device)
        top = scores.topk(width, dim=2).indices  # [nq, q, width]
        valid = query_mask.unsqueeze(2) & (
            torch.arange(width, device=self.device).view(1, 1, -1) < n_probe.view(-1, 1, 1)
        )
        query_of = torch.arange(n_queries, device=self.device).view(-1, 1, 1).expand_as(top)[valid]
        probed = torch.unique(query_of * n_centroids + top[valid])
        query_of, centroid = probed // n_centroids, probed % n_centroids
        docs = self.ivf_positions[rows_of(self.ivf_offsets, centroid)].long()
        lengths = self.ivf_offsets[centroid + 1] - self.ivf_offsets[centroid]
        keys = torch.unique(torch.repeat_interleave(query_of, lengths) * n_docs + docs)
        if self.n_deleted:
            keys = keys[~self.deleted[keys % n_docs]]
        return keys

    def _candidates(
        self, scores: torch.Tensor, query_mask: torch.Tensor, n_probe: int, need: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage 1 with widening: (query index, position) pairs, at least ``need`` per query."""
        n_queries, _, n_centroids = scores.shape
        n_docs = max(len(self.docnos), 1)
        probes = torch.full((n_queries,), min(n_probe, n_centroids), dtype=torch.long, device=self.device)
        keys = self._probe(scores, query_mask, probes)
        counts = torch.bincount(keys // n_docs, minlength=n_queries)
        short = (counts < need) & (probes < n_centroids)
        while bool(short.any()):
            which = short.nonzero().flatten()
            probes[which] = (probes[which] * 2).clamp(max=n_centroids)
            wider = self._probe(scores[which], query_mask[which], probes[which])
            wider = which[wider // n_docs] * n_docs + wider % n_docs
            keys = torch.cat([keys[~short[keys // n_docs]], wider]).sort().values
            counts = torch.bincount(keys // n_docs, minlength=n_queries)
            short = (counts < need) & (probes < n_centroids)
        lacking = (counts < need).nonzero().flatten()
        if lacking.numel():  # every centroid probed: add the live documents no list holds (no tokens)
            live = (~self.deleted).nonzero().flatten()
            extra = (lacking.view(-1, 1) * n_docs + live.view(1, -1)).flatten()
            keys = torch.unique(torch.cat([keys, extra]))
        return keys // n_docs, keys % n_docs

    @staticmethod
    def _score_table(scores: torch.Tensor) -> torch.Tensor:
        """``[nq * C + 1, q]``: row ``query * C + centroid`` holds that centroid's score for each query
        token (zero for padding tokens); the last row is ``-inf``, indexed by padding document tokens."""
        n_queries, query_len, n_centroids = scores.shape
        table = scores.new_empty(n_queries * n_centroids + 1, query_len)
        table[:-1] = scores.transpose(1, 2).reshape(n_queries * n_centroids, query_len)
        table[-1] = float("-inf")
        return table

    def _centroid_scores(
        self,
        table: torch.Tensor,
        query_of: torch.Tensor,
        positions: torch.Tensor,
        kept_centroids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Stages 2 and 3: MaxSim with each document token replaced by its centroid's scores.

        ``table`` comes from :meth:`_score_table`. ``kept_centroids`` (``[n_queries, n_centroids]`` bool)
        skips the tokens of pruned centroids (stage 2): only tokens of kept centroids are gathered and
        max-reduced into their pair; a pair with no kept token scores :data:`PRUNED_FLOOR` per query token.
        """
        query_len = table.shape[1]
        sentinel = table.shape[0] - 1
        n_centroids = self.n_centroids
        out = torch.zeros(positions.numel(), device=self.device)
        for chosen, _ in self._length_chunks(positions, query_len):
            rows, mask = self._padded_rows(positions[chosen])
            codes = self.codes.index_select(0, rows.flatten()).view_as(rows).long()
            keys = (query_of[chosen].unsqueeze(1) * n_centroids + codes).masked_fill_(~mask, sentinel)
            if kept_centroids is None:
                best = table.index_select(0, keys.flatten()).view(*keys.shape, query_len).amax(dim=1)
            else:
                kept = kept_centroids.flatten()[keys.clamp(max=sentinel - 1)] & mask
                best = torch.full((keys.shape[0], query_len), PRUNED_FLOOR, device=self.device)
                pair, token = kept.nonzero(as_tuple=True)
                best.scatter_reduce_(
                    0,
                    pair.unsqueeze(1).expand(-1, query_len),
                    table.index_select(0, keys[pair, token]),
                    "amax",
                )
            out[chosen] = best.masked_fill_(best == float("-inf"), 0.0).sum(dim=1)
        return out

    def _exact_scores(
        self,
        queries: torch.Tensor,
        query_of: torch.Tensor,
        positions: torch.Tensor,
        timer: StageTimer | None = None,
    ) -> torch.Tensor:
        """Stage 4: exact MaxSim of padded queries ``[nq, q, dim]`` against decompressed documents.

        Each distinct document is decompressed once, however many queries of the batch kept it.
        """
        timer = timer or StageTimer(STAGES, False, self.device)
        out = torch.zeros(positions.numel(), device=self.device)
        if positions.numel() == 0:
            return out
        docs, pair_doc = torch.unique(positions, return_inverse=True)
        per_pair = max(queries.shape[1], self.dim)
        for doc_chunk, width in self._length_chunks(docs, self.dim):
            rows, mask = self._padded_rows(docs[doc_chunk])
            padded = torch.zeros(*mask.shape, self.dim, device=self.device)
            flat = rows[mask]
            padded[mask] = self.codec.decompress(
                self.codes.index_select(0, flat), self.residuals.index_select(0, flat)
            )
            timer.lap("decompression")
            slot = torch.full((docs.numel(),), -1, dtype=torch.long, device=self.device)
            slot[doc_chunk] = torch.arange(doc_chunk.numel(), device=self.device)
            pairs = (slot[pair_doc] >= 0).nonzero().flatten()
            for part in pairs.split(max(1, SCORE_BUDGET // (width * per_pair))):
                local = slot[pair_doc[part]]
                sims = torch.bmm(padded[local], queries[query_of[part]].transpose(1, 2))  # [p, len, q]
                best = sims.masked_fill_(~mask[local].unsqueeze(2), float("-inf")).amax(dim=1)
                out[part] = best.sum(dim=1)
            timer.lap("exact_maxsim")
        return out

    def _query_scores(self, queries: Encoding) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Padded queries ``[nq, q, dim]``, their mask, and query × centroid scores ``[nq, q, C]``."""
        if queries.dim != self.dim:
            raise ValueError(f"query vectors have dim {queries.dim}, the index has dim {self.dim}")
        padded, mask = pad_packed(
            queries.vectors.to(device=self.device, dtype=torch.float32), queries.lengths
        )
        scores = (padded @ self.codec.centroids.T).masked_fill(~mask.unsqueeze(2), 0.0)
        return padded, mask, scores

    @staticmethod
    def _best_per_centroid(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[nq, C]`` each centroid's best score against a query's (real) tokens."""
        if scores.shape[1] == 0:
            return torch.full((scores.shape[0], scores.shape[2]), float("-inf"), device=scores.device)
        return scores.masked_fill(~mask.unsqueeze(2), float("-inf")).amax(dim=1)

    # ------------------------------------------------------------------ stage-by-stage inspection

    def candidates(self, queries: Encoding, n_probe: int = 1) -> list[torch.Tensor]:
        """Stage 1 alone (no widening): per query, the sorted positions of live documents in the IVF
        lists of each query token's ``n_probe`` best centroids."""
        n_probe = params.validate(SEARCH_PARAMS, {"n_probe": n_probe})["n_probe"]
        _, mask, scores = self._query_scores(queries)
        probes = torch.full(
            (len(queries),), min(n_probe, self.n_centroids), dtype=torch.long, device=self.device
        )
        keys = self._probe(scores, mask, probes)
        n_docs = max(len(self.docnos), 1)
        counts = torch.bincount(keys // n_docs, minlength=len(queries)).tolist()
        return [p.cpu() for p in torch.split(keys % n_docs, counts)]

    def _pairs(
        self, n_queries: int, positions: Sequence[int] | torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        positions = torch.as_tensor(positions, dtype=torch.long).to(self.device).flatten()
        if positions.numel() and (int(positions.min()) < 0 or int(positions.max()) >= len(self.docnos)):
            raise ValueError(f"document positions must lie in 0..{len(self.docnos) - 1}")
        query_of = torch.arange(n_queries, device=self.device).repeat_interleave(positions.numel())
        return query_of, positions.repeat(n_queries)

    def approximate_scores(
        self,
        queries: Encoding,
        positions: Sequence[int] | torch.Tensor,
        centroid_score_threshold: float | None = None,
    ) -> torch.Tensor:
        """Centroid-only MaxSim ``[n_queries, n_positions]``: stage 3, or stage 2 given a threshold."""
        _, mask, scores = self._query_scores(queries)
        query_of, docs = self._pairs(len(queries), positions)
        kept = None
        if centroid_score_threshold is not None:
            threshold = params.validate(SEARCH_PARAMS, {"centroid_score_threshold": centroid_score_threshold})
            kept = self._best_per_centroid(scores, mask) >= threshold["centroid_score_threshold"]
        out = self._centroid_scores(self._score_table(scores), query_of, docs, kept)
        return out.view(len(queries), -1).cpu()

    def exact_scores(self, queries: Encoding, positions: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """Stage 4's scores ``[n_queries, n_positions]``: exact MaxSim against decompressed documents."""
        padded, _, _ = self._query_scores(queries)
        query_of, docs = self._pairs(len(queries), positions)
        return self._exact_scores(padded, query_of, docs).view(len(queries), -1).cpu()

    # ------------------------------------------------------------------ search

    def batch_size_for(self, queries: Encoding) -> int:
        query_len = int(queries.lengths.max()) if len(queries) else 0
        return max(1, min(self.query_batch, SCORE_BUDGET * 8 // max(1, self.n_centroids * max(query_len, 1))))

    def _search(
        self, queries: Encoding, k: int, settings: dict[str, Any], timer: StageTimer
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        n_queries = len(queries)
        keep_final = min(k, self.n_live)
        keep_exact = max(settings["ndocs"] // 4, k)
        keep_pruned = max(settings["ndocs"], keep_exact)
        timer.start()
        padded, mask, scores = self._query_scores(queries)
        table = self._score_table(scores)
        timer.lap("centroid_scoring")

        query_of, positions = self._candidates(scores, mask, settings["n_probe"], keep_final)
        timer.lap("candidate_generation")

        kept = self._best_per_centroid(scores, mask) >= settings["centroid_score_threshold"]
        approx = self._centroid_scores(table, query_of, positions, kept)
        chosen = _segment_top(query_of, approx, keep_pruned, n_queries)
        query_of, positions = query_of[chosen], positions[chosen]
        timer.lap("pruning")

        approx = self._centroid_scores(table, query_of, positions)
        chosen = _segment_top(query_of, approx, keep_exact, n_queries)
        query_of, positions = query_of[chosen], positions[chosen]
        timer.lap("centroid_interaction")

        exact = self._exact_scores(padded, query_of, positions, timer)
        chosen = _segment_top(query_of, exact, k, n_queries)
        counts = torch.bincount(query_of[chosen], minlength=n_queries).tolist()
        hits = list(
            zip(
                torch.split(positions[chosen].cpu(), counts),
                torch.split(exact[chosen].cpu(), counts),
                strict=True,
            )
        )
        timer.lap("exact_maxsim")
        return hits

    # ------------------------------------------------------------------ decompression

    def documents(self, positions: Sequence[int] | torch.Tensor | None = None) -> Encoding:
        """Decompressed documents at ``positions`` (default: every live one), ``exact=False``."""
        positions = self.positions_or_live(positions).tolist()
        rows = rows_of(self.doc_offsets, torch.tensor(positions, dtype=torch.long, device=self.device))
        vectors = (
            torch.cat(
                [
                    self.codec.decompress(self.codes[part], self.residuals[part])
                    for part in rows.split(max(1, SCORE_BUDGET // self.dim))
                ]
            )
            if rows.numel()
            else torch.zeros(0, self.dim)
        )
        return Encoding(
            ids=tuple(self.docnos[p] for p in positions),
            vectors=vectors.cpu(),
            token_ids=self.token_ids[rows].long().cpu(),
            offsets=offsets_from_lengths(self.doc_lengths[positions].cpu()),
            vocab=self.vocab,
            mask_token_id=self.mask_token_id,
            exact=False,
        )

    # ------------------------------------------------------------------ updates

    def add(
        self,
        docs,
        encoder=None,
        *,
        batch_size: int = 32,
        chunk_docs: int = DEFAULT_CHUNK_DOCS,
        progress: bool = False,
    ) -> AddReport:
        """Compress new documents with the existing centroids and codec and append them.

        Parameters
        ----------
        docs : Encoding or documents
            Encoded documents, or anything :func:`lirlab.data.as_documents` accepts (then encoded with
            ``encoder`` or the index's own encoder).

        Returns
        -------
        AddReport
            Counts and drift; a :class:`DriftWarning` is issued when drift exceeds
            :data:`DRIFT_WARNING_LEVEL` (the centroids no longer fit: consider rebuilding).

        Raises
        ------
        ValueError
            A docno is already live in the index (or repeated), or the vectors do not fit the index; the
            index is unchanged.
        """
        live = {self.docnos[i] for i in (~self.deleted).nonzero().flatten().tolist()}
        if isinstance(docs, Encoding):
            ids = docs.ids
        else:
            records = as_documents(docs)
            ids = tuple(d.docno for d in records)
        check_unique(ids, "document id")
        clashes = [d for d in ids if d in live]
        if clashes:
            raise ValueError(f"{len(clashes)} document id(s) already in the index, first: {clashes[0]!r}")
        if isinstance(docs, Encoding):
            self._check_vocab(docs)
            parts = [
                _compress(self.codec, docs.select(chunk.tolist()))
                for chunk in _chunks(torch.arange(len(docs)), chunk_docs)
            ]
        else:
            encoder = encoder or self.encoder
            if encoder is None:
                raise ValueError("add() needs encoded documents or an encoder (pass encoder=...)")
            parts = []
            for chunk in tqdm(
                _chunks(torch.arange(len(records)), chunk_docs),
                desc="encode + compress",
                unit="chunk",
                disable=not progress,
            ):
                encoded = encoder.encode_documents(
                    [records[i] for i in chunk.tolist()], batch_size=batch_size, progress=False
                )
                self._check_vocab(encoded)
                parts.append(_compress(self.codec, encoded))
        if not ids:
            return AddReport(0, 0, 0.0, float(self.stats.get("drift_threshold", -1.0)))
        new = _join(parts)
        threshold = float(self.stats.get("drift_threshold", -1.0))
        drift = float((new.cosines < threshold).float().mean()) if new.cosines.numel() else 0.0
        report = AddReport(len(ids), int(new.codes.numel()), drift, threshold)

        # Everything is computed: now mutate (nothing below can fail on valid inputs).
        n_old = len(self.docnos)
        new_offsets = offsets_from_lengths(new.lengths).to(self.device)
        new_ivf = _build_ivf(new.codes.to(self.device), new_offsets, self.n_centroids)
        ivf = _merge_ivf(self.ivf_positions, self.ivf_offsets, new_ivf[0] + n_old, new_ivf[1])
        self.codes = torch.cat([self.codes, new.codes.to(self.device)])
        self.residuals = torch.cat([self.residuals, new.residuals.to(self.device)])
        self.token_ids = torch.cat(
            [self.token_ids, new.token_ids.to(device=self.device, dtype=self.token_ids.dtype)]
        )
        self.doc_offsets = torch.cat([self.doc_offsets, self.doc_offsets[-1] + new_offsets[1:]])
        self.deleted = torch.cat([self.deleted, torch.zeros(len(ids), dtype=torch.bool, device=self.device)])
        self.docnos = self.docnos + tuple(ids)
        self.ivf_positions, self.ivf_offsets = ivf
        self.stats = {
            **self.stats,
            "adds": [
                *self.stats.get("adds", []),
                {"documents": report.n_documents, "vectors": report.n_vectors, "drift": report.drift},
            ],
        }
        self._refresh()
        if drift > DRIFT_WARNING_LEVEL:
            warnings.warn(
                f"{drift:.0%} of the added vectors lie farther from their centroid than {DRIFT_QUANTILE:.0%} "
                f"of the indexed ones (cosine < {threshold:.3f}); they compress and are found less well. "
                "Consider rebuilding the index.",
                DriftWarning,
                stacklevel=2,
            )
        return report

    def _check_vocab(self, encoded: Encoding) -> None:
        if self.vocab and encoded.vocab and encoded.vocab != self.vocab:
            raise ValueError("the new documents were encoded with another vocabulary than the index's")

    def delete(self, docnos: str | Iterable[str]) -> int:
        """Mark documents deleted: searches skip them; other documents keep their positions.

        Raises ``ValueError`` naming the ids that are not live in the index (nothing is deleted then).
        Returns the number of documents deleted. :meth:`compact` reclaims their space.
        """
        wanted = [docnos] if isinstance(docnos, str) else list(docnos)
        live = {self.docnos[i]: i for i in (~self.deleted).nonzero().flatten().tolist()}
        unknown = [d for d in wanted if d not in live]
        if unknown:
            raise ValueError(
                f"unknown or already deleted document id(s): {unknown[:10]!r}"
                + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
            )
        positions = torch.tensor(sorted({live[d] for d in wanted}), dtype=torch.long, device=self.device)
        deleted = self.deleted.clone()
        deleted[positions] = True
        self.deleted = deleted
        self._refresh()
        return int(positions.numel())

    def compact(self) -> int:
        """Physically remove deleted documents (positions of later documents shift) and rebuild the IVF.

        Returns the number of documents removed.
        """
        removed = self.n_deleted
        if removed == 0:
            return 0
        keep = (~self.deleted).nonzero().flatten()
        rows = rows_of(self.doc_offsets, keep)
        codes = self.codes[rows]
        offsets = offsets_from_lengths(self.doc_lengths[keep].cpu()).to(self.device)
        ivf = _build_ivf(codes, offsets, self.n_centroids)
        self.residuals = self.residuals[rows]
        self.token_ids = self.token_ids[rows]
        self.codes = codes
        self.doc_offsets = offsets
        self.docnos = tuple(self.docnos[i] for i in keep.tolist())
        self.deleted = torch.zeros(len(self.docnos), dtype=torch.bool, device=self.device)
        self.ivf_positions, self.ivf_offsets = ivf
        self._refresh()
        return removed

    # ------------------------------------------------------------------ persistence

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            "centroids": self.codec.centroids.float().cpu().numpy(),
            "bucket_cutoffs": self.codec.bucket_cutoffs.float().cpu().numpy(),
            "bucket_weights": self.codec.bucket_weights.float().cpu().numpy(),
            "codes": self.codes.to(self.codec.code_dtype).cpu().numpy(),
            "residuals": self.residuals.cpu().numpy(),
            "token_ids": self.token_ids.to(torch.int32).cpu().numpy(),
            "doc_offsets": self.doc_offsets.cpu().numpy(),
            "ivf_positions": self.ivf_positions.to(torch.int32).cpu().numpy(),
            "ivf_offsets": self.ivf_offsets.cpu().numpy(),
            "deleted": self.deleted.cpu().numpy(),
        }

    def size_on_disk_bytes(self) -> int:
        """Bytes of the arrays and id lists :meth:`save` writes (npy headers and metadata excluded)."""
        arrays = sum(a.nbytes for a in self._arrays().values())
        lists = sum(len(json.dumps(list(x), ensure_ascii=False).encode()) for x in (self.docnos, self.vocab))
        return int(arrays + lists)

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        """Write the index folder atomically: the old folder at ``path`` stays intact until the new one
        is complete."""
        with ArtifactWriter(path, self.TYPE, self.FORMAT_VERSION, **({"overwrite": True} if overwrite else {})) as w:
            for name, array in self._arrays().items():
                w.save_array(name, array)
            w.save_json("docnos", list(self.docnos))
            w.save_json("vocab", list(self.vocab))
            w.metadata.update(
                model=self.model,
                config={
                    **self.config,
                    "nbits": self.nbits,
                    "dim": self.dim,
                    "n_centroids": self.n_centroids,
                    "mask_token_id": self.mask_token_id,
                },
                counts={
                    "documents": len(self.docnos),
                    "live_documents": self.n_live,
                    "tokens": self.n_tokens,
                    "bytes_per_vector": self.codec.bytes_per_vector,
                },
                build=self.stats,
                describe=self.describe(),
            )

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        encoder=None,
        device: str | torch.device | None = None,
        mmap: bool = False,
        verify: bool = True,
    ) -> PlaidIndex:
        """Open an index folder written by :meth:`save`.

        With ``mmap=True`` (CPU only) codes, residuals and token ids stay on disk and are paged in as
        searches touch them. Missing, truncated, altered or inconsistent files raise
        :class:`~lirlab.storage.ArtifactError` naming the file.
        """
        art = read_artifact(path, cls.TYPE, cls.FORMAT_VERSION, verify=verify)
        folder = Path(path)
        meta = folder / "metadata.json"
        try:
            config = art.metadata["config"]
            nbits, dim, n_centroids = int(config["nbits"]), int(config["dim"]), int(config["n_centroids"])
            mask_token_id = int(config["mask_token_id"])
        except (KeyError, TypeError, ValueError) as e:
            raise ArtifactError(f"{meta}: config lacks a valid {e} entry") from None
        lazy = mmap and (device is None or torch.device(device).type == "cpu")

        def array(
            name: str, shape: tuple | None = None, kinds: str = "iu", big: bool = False
        ) -> torch.Tensor:
            values = art.array(name, mmap=lazy and big)
            if values.dtype.kind not in kinds or (shape is not None and values.shape != shape):
                raise ArtifactError(
                    f"{folder / (name + '.npy')}: {values.dtype}{list(values.shape)} does not fit the index "
                    f"(expected {'float' if kinds == 'f' else 'integer'} {list(shape) if shape else ''})"
                )
            return _tensor(values)

        docnos = art.json("docnos")
        vocab = art.json("vocab")
        if not isinstance(docnos, list) or not isinstance(vocab, list):
            raise ArtifactError(f"{folder / 'docnos.json'} and vocab.json must hold lists")
        n_docs = len(docnos)
        n_buckets = 1 << nbits
        centroids = array("centroids", (n_centroids, dim), "f")
        cutoffs = array("bucket_cutoffs", (dim, n_buckets - 1), "f")
        weights = array("bucket_weights", (dim, n_buckets), "f")
        try:
            codec = ResidualCodec(centroids.clone(), cutoffs.clone(), weights.clone(), nbits)
        except ValueError as e:
            raise ArtifactError(f"{meta}: config does not describe a valid codec ({e})") from None
        doc_offsets = array("doc_offsets", (n_docs + 1,))
        n_tokens = int(doc_offsets[-1])
        codes = array("codes", (n_tokens,), big=True)
        residuals = array("residuals", (n_tokens, codec.packed_dim), "u", big=True)
        token_ids = array("token_ids", (n_tokens,), big=True)
        ivf_offsets = array("ivf_offsets", (n_centroids + 1,))
        ivf_positions = array("ivf_positions", (int(ivf_offsets[-1]),))
        deleted = array("deleted", (n_docs,), "b")
        if n_docs and bool((doc_offsets[1:] < doc_offsets[:-1]).any()) or int(doc_offsets[0]) != 0:
            raise ArtifactError(f"{folder / 'doc_offsets.npy'}: offsets must start at 0 and never decrease")
        if bool((ivf_offsets[1:] < ivf_offsets[:-1]).any()) or int(ivf_offsets[0]) != 0:
            raise ArtifactError(f"{folder / 'ivf_offsets.npy'}: offsets must start at 0 and never decrease")
        if ivf_positions.numel() and (int(ivf_positions.min()) < 0 or int(ivf_positions.max()) >= n_docs):
            raise ArtifactError(f"{folder / 'ivf_positions.npy'}: positions outside 0..{n_docs - 1}")
        if n_tokens and int(codes.max()) >= n_centroids:
            raise ArtifactError(f"{folder / 'codes.npy'}: codes exceed the {n_centroids} centroids")
        try:
            return cls(
                codec,
                codes,
                residuals,
                token_ids,
                doc_offsets.clone(),
                docnos,
                vocab,
                mask_token_id=mask_token_id,
                deleted=deleted.clone(),
                ivf=(ivf_positions, ivf_offsets),
                encoder=encoder,
                model=art.metadata.get("model", {}),
                config=config,
                stats=art.metadata.get("build", {}),
                device=device,
            )
        except ValueError as e:
            raise ArtifactError(f"{folder}: inconsistent arrays ({e})") from None
