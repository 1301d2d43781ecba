"""The :class:`PlaidIndex` class: the protocol's face over the package's parts (knobs, IVF, the
stages, build, updates, storage)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from lirlab import params
from lirlab.data import as_documents, check_unique
from lirlab.encoding import Encoding, offsets_from_lengths
from lirlab.index.base import Index, StageTimer
from lirlab.index.codec import ResidualCodec, check_layout
from lirlab.index.plaid import build as building
from lirlab.index.plaid import stages, storage, updates
from lirlab.index.plaid.compressed import CompressedDocs
from lirlab.index.plaid.ivf import IVF
from lirlab.index.plaid.knobs import (
    BUILD_PARAMS,
    CHUNK_DOCS,
    DEFAULT_CHUNK_DOCS,
    SEARCH_PARAMS,
    default_search_params,
)
from lirlab.index.plaid.stages import SCORE_BUDGET, STAGES, Pairs
from lirlab.index.plaid.updates import AddReport
from lirlab.index.pooling import Pooling
from lirlab.index.regions import regions_at


class PlaidIndex(Index):
    """Compressed late-interaction index with PLAID search.

    Build one with :meth:`build` (text + encoder, streamed chunk by chunk) or :meth:`from_encoding`
    (already encoded documents), reopen one with :meth:`load`.

    Parameters
    ----------
    codec : ResidualCodec
        Centroids and residual buckets.
    compressed : CompressedDocs
        Codes, packed residuals, token ids, document offsets and deletion flags.
    docnos : sequence of str
        Document ids by position.
    vocab : sequence of str
        Token strings by vocabulary id.
    mask_token_id : int
        Vocabulary id of ``[MASK]`` or -1.
    ivf : IVF, optional
        Inverted lists; rebuilt from the codes when omitted.
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
    FORMAT_VERSION = 2
    SEARCH_PARAMS = SEARCH_PARAMS
    BUILD_PARAMS = BUILD_PARAMS
    STAGES = STAGES

    def __init__(
        self,
        codec: ResidualCodec,
        compressed: CompressedDocs,
        docnos: Sequence[str],
        vocab: Sequence[str] = (),
        *,
        mask_token_id: int = -1,
        ivf: IVF | tuple[torch.Tensor, torch.Tensor] | None = None,
        encoder=None,
        model: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
        stats: dict[str, Any] | None = None,
        device: str | torch.device | None = None,
        query_batch: int = 32,
        pooling: Pooling | None = None,
    ):
        device = torch.device(device) if device is not None else codec.device
        if compressed.residuals.shape[1] != codec.packed_dim:
            raise ValueError(
                f"residuals must be [{compressed.n_tokens}, {codec.packed_dim}], "
                f"got {tuple(compressed.residuals.shape)}"
            )
        if compressed.n_docs != len(docnos):
            raise ValueError(f"doc_offsets describe {compressed.n_docs} documents, docnos name {len(docnos)}")
        super().__init__(docnos, encoder=encoder, model=model)
        self.codec = codec.to(device)
        self._device = device
        self.vocab = tuple(vocab)
        self.mask_token_id = int(mask_token_id)
        compressed = compressed.to(device)
        if ivf is None:
            ivf = IVF.build(compressed.codes, compressed.doc_offsets, codec.n_centroids)
        ivf = IVF(*ivf) if isinstance(ivf, tuple) else ivf
        if ivf.offsets.shape != (codec.n_centroids + 1,):
            raise ValueError(
                f"ivf offsets must have {codec.n_centroids + 1} entries, got {tuple(ivf.offsets.shape)}"
            )
        self.build_config = dict(config or {})
        self.stats = dict(stats or {})
        self.query_batch = query_batch
        self.replace_documents(compressed, ivf.to(device), self.docnos, pooling)

    def replace_documents(
        self, compressed: CompressedDocs, ivf: IVF, docnos: Sequence[str], pooling: Pooling | None = None
    ) -> None:
        """Swap in new documents (what :mod:`~lirlab.index.plaid.updates` does after computing them)."""
        self.compressed, self.ivf, self.pooling = compressed, ivf, pooling
        if tuple(docnos) != self.docnos:
            self.docnos, self._positions = tuple(docnos), None

    # ------------------------------------------------------------------ what the arrays say

    @property
    def codes(self) -> torch.Tensor:
        return self.compressed.codes

    @property
    def residuals(self) -> torch.Tensor:
        return self.compressed.residuals

    @property
    def token_ids(self) -> torch.Tensor:
        return self.compressed.token_ids

    @property
    def doc_offsets(self) -> torch.Tensor:
        return self.compressed.doc_offsets

    @property
    def doc_lengths(self) -> torch.Tensor:
        return self.compressed.doc_lengths

    @property
    def deleted(self) -> torch.Tensor:
        return self.compressed.deleted

    @property
    def ivf_positions(self) -> torch.Tensor:
        return self.ivf.positions

    @property
    def ivf_offsets(self) -> torch.Tensor:
        return self.ivf.offsets

    @property
    def n_deleted(self) -> int:
        return int(self.compressed.deleted.sum())

    @property
    def exact(self) -> bool:
        return False

    def config(self) -> dict[str, Any]:
        """The build settings saved with the index (knobs, k-means sample, centroid precision)."""
        return dict(self.build_config)

    @property
    def dim(self) -> int:
        return self.codec.dim

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def nbits(self) -> int:
        return self.codec.nbits

    @property
    def n_centroids(self) -> int:
        return self.codec.n_centroids

    @property
    def n_tokens(self) -> int:
        return self.compressed.n_tokens

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

    def size_on_disk_bytes(self) -> int:
        """Bytes of the arrays and id lists :meth:`save` writes (npy headers and metadata excluded)."""
        return storage.size_on_disk_bytes(self)

    def to(self, device: str | torch.device) -> PlaidIndex:
        device = torch.device(device)
        if self.device == device:
            return self
        return PlaidIndex(
            self.codec,
            self.compressed,
            self.docnos,
            self.vocab,
            mask_token_id=self.mask_token_id,
            ivf=self.ivf,
            encoder=self.encoder,
            model=self.model,
            config=self.build_config,
            stats=self.stats,
            device=device,
            query_batch=self.query_batch,
            pooling=self.pooling,
        )

    # ------------------------------------------------------------------ building

    @classmethod
    def build(
        cls,
        docs,
        encoder,
        *,
        chunk_docs: int = DEFAULT_CHUNK_DOCS,
        batch_size: int = 32,
        device: str | torch.device | None = None,
        progress: bool = True,
        timings: dict[str, float] | None = None,
        **build,
    ) -> PlaidIndex:
        """Encode ``docs`` chunk by chunk with ``encoder`` and compress them as they come
        (:func:`~lirlab.index.plaid.build.build_parts`).

        Parameters
        ----------
        docs :
            Anything :func:`lirlab.data.as_documents` accepts.
        encoder : lirlab.encoder.ColBERT
            Provides ``encode_documents(docs, batch_size=, progress=)`` and ``describe()``.
        chunk_docs : int
            Documents encoded at a time (:data:`~lirlab.index.plaid.knobs.CHUNK_DOCS`).
        batch_size : int
            Encoder batch size.
        device :
            Where k-means, compression and search run (default: CPU).
        progress : bool
            Show progress bars (encoding the sample, k-means, encoding and compressing the rest).
        timings : dict, optional
            Filled with the seconds of each build stage
            (:data:`~lirlab.index.plaid.build.BUILD_STAGES`: encoding, k-means, compression).
        **build
            :data:`BUILD_PARAMS` (``nbits``, ``n_centroids``, ``kmeans_sample``, ``kmeans_iterations``,
            ``seed``).
        """
        knobs = cls.resolve_build_knobs(build)
        chunk_docs = CHUNK_DOCS.validate(chunk_docs)
        records = as_documents(docs)

        def encode(positions: torch.Tensor) -> Encoding:
            chunk = [records[i] for i in positions.tolist()]
            encoded = encoder.encode_documents(chunk, batch_size=batch_size, progress=progress)
            if tuple(encoded.ids) != tuple(d.docno for d in chunk):
                raise RuntimeError("the encoder returned documents other than those it was given")
            return encoded

        built = building.build_parts(
            len(records),
            encode,
            knobs,
            chunk_docs=chunk_docs,
            device=device,
            progress=progress,
            timings=timings,
        )
        return cls._from_built(built, encoder=encoder, model=None, device=device)

    @classmethod
    def from_encoding(
        cls,
        docs: Encoding,
        *,
        encoder=None,
        model: dict[str, Any] | None = None,
        device: str | torch.device | None = None,
        progress: bool = False,
        chunk_docs: int = DEFAULT_CHUNK_DOCS,
        timings: dict[str, float] | None = None,
        centroids: torch.Tensor | None = None,
        **build,
    ) -> PlaidIndex:
        """Compress already encoded documents (as :meth:`build` does, minus the encoding); ``build`` holds
        :data:`BUILD_PARAMS` knobs, ``timings`` is filled as by :meth:`build`; ``centroids`` reuses the
        k-means of an index built from the same documents and k-means knobs (see
        :func:`~lirlab.index.plaid.build.build_parts`)."""
        knobs = cls.resolve_build_knobs(build)
        chunk_docs = CHUNK_DOCS.validate(chunk_docs)
        if not isinstance(docs, Encoding):
            raise ValueError(f"from_encoding needs an Encoding, got {type(docs).__name__}")
        check_unique(docs.ids, "document id")
        check_layout(docs.dim, knobs["nbits"])
        built = building.build_parts(
            len(docs),
            lambda positions: docs.select(positions.tolist()),
            knobs,
            chunk_docs=chunk_docs,
            device=device,
            progress=progress,
            timings=timings,
            centroids=centroids,
        )
        return cls._from_built(built, encoder=encoder, model=model, device=device)

    @classmethod
    def _from_built(cls, built: building.Built, *, encoder, model, device) -> PlaidIndex:
        return cls(
            built.codec,
            built.compressed,
            built.docnos,
            built.vocab,
            mask_token_id=built.mask_token_id,
            encoder=encoder,
            model=model,
            config=built.config,
            stats=built.stats,
            device=torch.device(device) if device is not None else torch.device("cpu"),
            pooling=built.pooling,
        )

    # ------------------------------------------------------------------ search and its stages

    def batch_size_for(self, queries: Encoding) -> int:
        query_len = int(queries.lengths.max()) if len(queries) else 0
        return max(1, min(self.query_batch, SCORE_BUDGET * 8 // max(1, self.n_centroids * max(query_len, 1))))

    def _search(
        self, queries: Encoding, k: int, settings: dict[str, Any], timer: StageTimer
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return stages.search(self.codec, self.compressed, self.ivf, queries, k, settings, timer)

    def candidates(self, queries: Encoding, n_probe: int = 1) -> list[torch.Tensor]:
        """Candidate generation alone (no widening): per query, the sorted positions of live documents
        in the IVF lists of each query token's ``n_probe`` best centroids."""
        n_probe = params.validate(SEARCH_PARAMS, {"n_probe": n_probe})["n_probe"]
        scores = stages.centroid_scoring(self.codec, queries)
        probes = torch.full(
            (len(queries),), min(n_probe, self.n_centroids), dtype=torch.long, device=self.device
        )
        keys = stages.probe(self.ivf, self.compressed, scores, probes)
        n_docs = max(len(self.docnos), 1)
        counts = torch.bincount(keys // n_docs, minlength=len(queries)).tolist()
        return [p.cpu() for p in torch.split(keys % n_docs, counts)]

    def _pairs(self, n_queries: int, positions: Sequence[int] | torch.Tensor) -> Pairs:
        positions = self.positions_or_live(positions).to(self.device)
        query_of = torch.arange(n_queries, device=self.device).repeat_interleave(positions.numel())
        return Pairs(query_of, positions.repeat(n_queries))

    def approximate_scores(
        self,
        queries: Encoding,
        positions: Sequence[int] | torch.Tensor,
        centroid_score_threshold: float | None = None,
    ) -> torch.Tensor:
        """Centroid-only MaxSim ``[n_queries, n_positions]``: the scores of centroid interaction, or of
        pruning given a threshold."""
        scores = stages.centroid_scoring(self.codec, queries)
        pairs = self._pairs(len(queries), positions)
        if centroid_score_threshold is None:
            out = stages.centroid_scores(self.compressed, scores, pairs)
        else:
            threshold = params.validate(SEARCH_PARAMS, {"centroid_score_threshold": centroid_score_threshold})
            out = stages.pruned_centroid_scores(
                self.compressed, scores, pairs, threshold["centroid_score_threshold"], self.ivf
            )
        return out.view(len(queries), -1).cpu()

    def exact_scores(self, queries: Encoding, positions: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """The scores of decompression + exact MaxSim ``[n_queries, n_positions]``."""
        scores = stages.centroid_scoring(self.codec, queries)
        pairs = self._pairs(len(queries), positions)
        return stages.exact_scores(self.codec, self.compressed, scores, pairs).view(len(queries), -1).cpu()

    def score_positions(self, queries: Encoding, positions: torch.Tensor) -> torch.Tensor:
        """PLAID's final scores (decompression + exact MaxSim) of the documents at ``positions``."""
        if not len(positions):
            return torch.zeros(len(queries), 0)
        return self.exact_scores(queries, positions.to(self.device))

    def documents(self, positions: Sequence[int] | torch.Tensor | None = None) -> Encoding:
        """Decompressed documents at ``positions`` (default: every live one), ``exact=False``."""
        positions = self.positions_or_live(positions)
        rows = self.compressed.rows(positions.to(self.device))
        return Encoding(
            ids=tuple(self.docnos[p] for p in positions.tolist()),
            vectors=self.compressed.decompress(self.codec, rows, SCORE_BUDGET).cpu(),
            token_ids=self.token_ids[rows].long().cpu(),
            offsets=offsets_from_lengths(self.doc_lengths[positions.to(self.device)].cpu()),
            vocab=self.vocab,
            mask_token_id=self.mask_token_id,
            exact=False,
            **regions_at(self.compressed.regions, self.compressed.global_view, rows),
        )

    def tokens(
        self, positions: Sequence[int] | torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
        """Token ids, lengths and vocabulary at ``positions``, read from the index without decompressing."""
        positions = self.positions_or_live(positions)
        rows = self.compressed.rows(positions.to(self.device))
        return (
            self.token_ids[rows].long().cpu(),
            self.doc_lengths[positions.to(self.device)].long().cpu(),
            self.vocab,
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
        """:func:`lirlab.index.plaid.updates.add`: compress new documents with the existing codec and
        append them; returns an :class:`AddReport` (warns :class:`DriftWarning` when they drift)."""
        return updates.add(
            self, docs, encoder, batch_size=batch_size, chunk_docs=chunk_docs, progress=progress
        )

    def delete(self, docnos: str | Iterable[str]) -> int:
        """:func:`lirlab.index.plaid.updates.delete`: searches skip them; returns how many."""
        return updates.delete(self, docnos)

    def compact(self) -> int:
        """:func:`lirlab.index.plaid.updates.compact`: remove deleted documents; returns how many."""
        return updates.compact(self)

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        """Write the index folder atomically (:func:`lirlab.index.plaid.storage.save`)."""
        storage.save(self, path, overwrite=overwrite)

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
        return storage.load(cls, path, encoder=encoder, device=device, mmap=mmap, verify=verify)
