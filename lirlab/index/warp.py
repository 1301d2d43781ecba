"""A WARP engine over PLAID's index files (Scheerer et al., SIGIR 2025, arXiv 2501.17788).

WARP searches the same centroids, codes and residuals a :class:`~lirlab.index.plaid.PlaidIndex` holds;
nothing is trained or compressed again. At construction it lays the token rows out by centroid (a
stable sort of the codes: every centroid's tokens, with the document each belongs to and the norm of
its reconstruction), which is what its search reads. A search is three stages:

1. **WARP_SELECT** (``warp_select``): score each query token against every centroid, keep its
   ``bound`` best, and probe the first ``nprobe`` of them. Walking down the ``bound`` list, the score of
   the centroid at which the clusters seen so far reach ``t_prime`` tokens is the token's *missing
   similarity*: the score imputed (XTR-style) for a document none of whose tokens were probed.
2. **implicit decompression** (``implicit_decompression``): the score of query token ``q`` against a
   document token stored as centroid ``c`` plus packed residual buckets ``r`` is
   ``(q·c + q·r) / |c + r|``; ``q·c`` is the centroid score already computed, and ``q·r`` is a sum of
   ``dim·nbits/8`` look-ups in a per-query-token table (``[bytes, 256]``: what each byte value adds at
   each byte position), so no vector is ever rebuilt. ``|c + r|`` is computed once at construction
   (PLAID's decompression normalizes, and so the two engines score the same vectors).
3. **two-stage reduction** (``two_stage_reduction``): per query token and document, the best of its
   probed tokens; then per document the sum over query tokens, the missing similarity standing in for
   the tokens it lacks. Documents reached by no probe follow the ranked candidates (scored with every
   token missing) only when fewer than ``k`` were reached; a document with no tokens scores 0.

With ``nprobe`` at the number of centroids every token is scored and the result is exact MaxSim over
PLAID's decompressed vectors.

Examples
--------
>>> import torch
>>> from lirlab.encoding import Encoding, offsets_from_lengths
>>> from lirlab.index.plaid import PlaidIndex
>>> g = torch.Generator().manual_seed(0)
>>> docs = Encoding(ids=tuple(f"d{i}" for i in range(30)),
...                 vectors=torch.nn.functional.normalize(torch.randn(300, 16, generator=g), dim=1),
...                 token_ids=torch.zeros(300, dtype=torch.long),
...                 offsets=offsets_from_lengths(torch.full((30,), 10)), vocab=("tok",))
>>> plaid = PlaidIndex.from_encoding(docs, nbits=2, n_centroids=8)
>>> warp = WarpIndex.from_plaid(plaid)
>>> run = warp.search(docs.select([4]), k=3, nprobe=8)
>>> run.docno.tolist()[0], len(run)
('d4', 3)
>>> warp.search(docs.select([4]), k=3, nprobe=0)
Traceback (most recent call last):
...
ValueError: nprobe must be >= 1, got 0
"""

from __future__ import annotations

import os
from typing import Any

import torch

from lirlab.encoding import Encoding, offsets_from_lengths
from lirlab.index.base import Index, StageTimer
from lirlab.index.knobs.warp import BUILD_PARAMS, MIN_T_PRIME, SEARCH_PARAMS, T_PRIME_SHARE
from lirlab.index.plaid import PlaidIndex, kernels
from lirlab.index.plaid import storage as plaid_storage
from lirlab.maxsim import pad_packed

#: Token rows whose reconstruction norms are computed at once at construction.
_NORM_CHUNK = 1 << 16

STAGES = ("warp_select", "implicit_decompression", "two_stage_reduction")

try:  # numba is optional: the torch path computes the same scores
    import numba

    prange = numba.prange
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba, prange = None, range

#: Whether the compiled kernel runs on CPU indexes (numba importable and ``LIRLAB_NUMBA`` not ``0``).
NUMBA = numba is not None and os.environ.get("LIRLAB_NUMBA", "1") != "0"


def use_numba(device) -> bool:
    """Whether a search on ``device`` runs the compiled kernel (CPU, numba available and enabled)."""
    return NUMBA and torch.device(device).type == "cpu"


def _score_kernel(
    probed, centroid_scores, cluster_offsets, residuals, inverse_norms, token_doc, tables, best
):
    """Implicit decompression and the first reduction in one pass: for each query token ``i`` and each
    probed centroid ``c``, every token ``t`` of ``c`` scores ``(S[i, c] + sum_p T[i, p, r[t, p]]) / |c + r|``
    and ``best[i, doc(t)]`` keeps the largest."""
    n_tokens, n_probe = probed.shape
    packed = residuals.shape[1]
    for i in prange(n_tokens):  # each query token its own row of ``best``: no two threads share one
        for j in range(n_probe):
            c = probed[i, j]
            base = centroid_scores[i, c]
            for t in range(cluster_offsets[c], cluster_offsets[c + 1]):
                s = 0.0
                for p in range(packed):
                    s += tables[i, p, residuals[t, p]]
                s = (base + s) * inverse_norms[t]
                d = token_doc[t]
                if s > best[i, d]:
                    best[i, d] = s


_numba_score = numba.njit(cache=True, nogil=True, parallel=True)(_score_kernel) if numba is not None else None


class WarpIndex(Index):
    """WARP search over a PLAID index (see the module docstring).

    Parameters
    ----------
    plaid : lirlab.index.plaid.PlaidIndex
        The compressed index searched; shared, not copied.

    Raises
    ------
    ValueError
        ``plaid`` lacks the codec, codes, residuals or offsets WARP reads.
    """

    KIND = "warp"
    TYPE = "lirlab.warp"
    #: A WARP folder holds PLAID's files, in PLAID's format, under WARP's type.
    FORMAT_VERSION = PlaidIndex.FORMAT_VERSION
    SEARCH_PARAMS = SEARCH_PARAMS
    BUILD_PARAMS = BUILD_PARAMS
    STAGES = STAGES
    query_batch = 1

    def __init__(self, plaid):
        missing = [
            name
            for name in ("codec", "codes", "residuals", "doc_offsets", "token_ids")
            if getattr(plaid, name, None) is None
        ]
        if missing or not hasattr(getattr(plaid, "codec", None), "decode_table"):
            what = ", ".join(missing) or "a residual codec with a decode table"
            raise ValueError(
                f"WARP searches a PLAID index (codec, codes, residuals, doc_offsets, token_ids); "
                f"{type(plaid).__name__} lacks {what}: build one with PlaidIndex.from_encoding"
            )
        super().__init__(plaid.docnos, encoder=plaid.encoder, model=plaid.model)
        self.plaid = plaid
        codec = plaid.codec
        device = plaid.device
        codes = plaid.codes.to(device).long()
        n_tokens = int(codes.numel())
        order = torch.argsort(codes, stable=True)
        counts = torch.bincount(codes, minlength=codec.n_centroids)
        self.cluster_offsets = offsets_from_lengths(counts.cpu()).to(device)
        self.cluster_sizes = counts
        lengths = (plaid.doc_offsets[1:] - plaid.doc_offsets[:-1]).to(device)
        doc_of_row = torch.repeat_interleave(torch.arange(len(plaid.docnos), device=device), lengths)
        self.token_doc = doc_of_row[order].to(torch.int32)
        self.residuals = plaid.residuals.to(device).index_select(0, order)
        inverse = torch.empty(n_tokens, device=device)
        for start in range(0, n_tokens, _NORM_CHUNK):
            rows = order[start : start + _NORM_CHUNK]
            approx = codec.centroids.index_select(0, codes[rows]) + codec.residual_values(
                plaid.residuals[rows]
            )
            inverse[start : start + rows.numel()] = 1.0 / approx.norm(dim=1).clamp_min(1e-12)
        self.inverse_norms = inverse

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_plaid(cls, plaid) -> WarpIndex:
        """WARP over an existing PLAID index (its files, no second build)."""
        return cls(plaid)

    @classmethod
    def from_encoding(
        cls, docs: Encoding, *, encoder=None, model=None, device=None, progress: bool = False, **build
    ) -> WarpIndex:
        """Build a PLAID index from encoded documents (``build``: PLAID's build knobs), then WARP over it."""
        cls.resolve_build_knobs(build)  # so a wrong knob is refused in WARP's name, not PLAID's
        plaid = PlaidIndex.from_encoding(
            docs, encoder=encoder, model=model, device=device, progress=progress, **build
        )
        return cls(plaid)

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        """Write the PLAID files WARP searches (its layout by centroid is rebuilt on load), as a folder of
        type ``lirlab.warp``: it reloads as WARP."""
        plaid_storage.save(self.plaid, path, overwrite=overwrite, owner=self)

    @classmethod
    def load(cls, path, encoder=None, device=None, verify: bool = True) -> WarpIndex:
        """WARP over the folder at ``path`` that :meth:`save` wrote."""
        return cls(
            plaid_storage.load(
                PlaidIndex, path, encoder=encoder, device=device, verify=verify, artifact_type=cls.TYPE
            )
        )

    # ------------------------------------------------------------------ protocol

    @property
    def dim(self) -> int:
        return self.plaid.dim

    @property
    def device(self) -> torch.device:
        return self.plaid.device

    @property
    def nbits(self) -> int:
        return self.plaid.codec.nbits

    @property
    def n_centroids(self) -> int:
        return self.plaid.codec.n_centroids

    def live_positions(self) -> torch.Tensor:
        return self.plaid.live_positions()

    def is_live(self, position: int) -> bool:
        return self.plaid.is_live(position)

    def documents(self, positions=None) -> Encoding:
        return self.plaid.documents(positions)

    def n_vectors(self) -> int:
        return int(self.plaid.codes.shape[0])

    def size_bytes(self) -> int:
        """PLAID's arrays plus WARP's layout: residuals ordered by centroid, each token's document and
        inverse norm (40 bytes per token at dim 128, nbits 2)."""
        extra = self.residuals.numel() + 4 * (self.token_doc.numel() + self.inverse_norms.numel())
        return int(self.plaid.size_bytes() + extra)

    def to(self, device) -> WarpIndex:
        if torch.device(device) == self.device:
            return self
        return WarpIndex(self.plaid.to(device))

    def config(self) -> dict[str, Any]:
        return {"plaid": self.plaid.config()}

    @property
    def exact(self) -> bool:
        return False

    def default_t_prime(self) -> int:
        return max(MIN_T_PRIME, round(T_PRIME_SHARE * self.n_vectors()))

    def resolve_knobs(self, k, knobs):  # type: ignore[override]  (t_prime's default depends on the index)
        values = super().resolve_knobs(k, knobs)
        if values["t_prime"] is None:
            values["t_prime"] = self.default_t_prime()
        return values

    # ------------------------------------------------------------------ search

    def lookup_tables(self, query: torch.Tensor) -> torch.Tensor:
        """``[q, packed_dim, 256]``: what each residual byte value adds to ``q·r`` at each byte position."""
        codec = self.plaid.codec
        per_byte = 8 // codec.nbits
        table = codec.decode_table.view(codec.packed_dim, 256, per_byte)
        lanes = query.reshape(query.shape[0], codec.packed_dim, per_byte)
        return torch.einsum("pbk,qpk->qpb", table, lanes).contiguous()

    def warp_select(self, scores: torch.Tensor, nprobe: int, t_prime: int, bound: int):
        """Probed centroids ``[q, nprobe]`` and missing similarities ``[q]`` from centroid scores ``[q, C]``."""
        bound = min(max(bound, nprobe), scores.shape[1])
        top_scores, top = scores.topk(bound, dim=1)
        sizes = self.cluster_sizes[top].cumsum(dim=1)
        cut = torch.searchsorted(sizes, torch.full((scores.shape[0], 1), t_prime, device=sizes.device))
        missing = top_scores.gather(1, cut.clamp(max=bound - 1)).squeeze(1)
        return top[:, : min(nprobe, bound)], missing

    def score_query(self, query: torch.Tensor, nprobe: int, t_prime: int, bound: int, timer: StageTimer):
        """Scores ``[n_docs]`` of one query ``[q, dim]`` and which documents a probe reached."""
        n_docs = len(self.docnos)
        codec = self.plaid.codec
        query = query.to(device=self.device, dtype=torch.float32)
        n_tokens = query.shape[0]
        scores = query @ codec.centroids.T
        probed, missing = self.warp_select(scores, nprobe, t_prime, bound)
        timer.lap("warp_select")

        tables = self.lookup_tables(query)  # [q, P, 256]
        if use_numba(self.device):
            best = torch.full((n_tokens, n_docs), float("-inf"))
            kernels.launch(
                _numba_score,
                probed.contiguous().numpy(),
                scores.numpy(),
                self.cluster_offsets.numpy(),
                self.residuals.numpy(),
                self.inverse_norms.numpy(),
                self.token_doc.numpy(),
                tables.numpy(),
                best.numpy(),
            )
            timer.lap("implicit_decompression")  # fused with the first reduction (per token and document)
        else:
            best = self._torch_score(probed, scores, tables, n_docs)
            timer.lap("implicit_decompression")
        reached = (best > float("-inf")).any(dim=0)
        doc_scores = torch.where(best > float("-inf"), best, missing.unsqueeze(1)).sum(dim=0)
        doc_scores = doc_scores.masked_fill(self.plaid.doc_lengths.to(self.device) == 0, 0.0)
        return doc_scores, reached

    def _torch_score(self, probed, scores, tables, n_docs) -> torch.Tensor:
        """``[q, n_docs]`` best probed token score per query token and document (-inf: none probed)."""
        n_tokens = scores.shape[0]
        flat = probed.flatten()
        starts = self.cluster_offsets[flat]
        sizes = self.cluster_offsets[flat + 1] - starts
        total = int(sizes.sum())
        first = offsets_from_lengths(sizes)[:-1]
        rows = torch.repeat_interleave(starts - first, sizes) + torch.arange(total, device=self.device)
        pair = torch.repeat_interleave(torch.arange(flat.numel(), device=self.device), sizes)
        token_of = pair // probed.shape[1]
        packed = self.plaid.codec.packed_dim
        index = (
            self.residuals.index_select(0, rows).long() + torch.arange(packed, device=self.device) * 256
        ).add_((token_of * (packed * 256)).unsqueeze(1))
        residual_part = tables.view(-1).index_select(0, index.view(-1)).view(total, packed).sum(dim=1)
        centroid_part = scores.view(-1).index_select(0, token_of * scores.shape[1] + flat[pair])
        token_scores = (centroid_part + residual_part) * self.inverse_norms.index_select(0, rows)
        best = torch.full((n_tokens * n_docs,), float("-inf"), device=self.device)
        keys = token_of * n_docs + self.token_doc.index_select(0, rows).long()
        best.scatter_reduce_(0, keys, token_scores, "amax")
        return best.view(n_tokens, n_docs)

    def _search(self, queries: Encoding, k: int, knobs: dict, timer: StageTimer):
        padded, mask = pad_packed(queries.vectors.float(), queries.lengths)
        deleted = getattr(self.plaid, "deleted", None)
        hits = []
        for qi in range(len(queries)):
            timer.start()
            doc_scores, reached = self.score_query(
                padded[qi][mask[qi]], knobs["nprobe"], knobs["t_prime"], knobs["bound"], timer
            )
            live = ~deleted.to(self.device) if deleted is not None else torch.ones_like(reached)
            ranked = torch.where(reached & live, doc_scores, float("-inf"))
            n_reached = int((reached & live).sum())
            keep = min(k, int(live.sum()))
            top_scores, top = ranked.topk(min(keep, n_reached))
            if n_reached < keep:  # fill with unreached live documents (every token imputed), best first
                rest = (~reached & live).nonzero().flatten()
                extra = rest[
                    torch.argsort(doc_scores[rest], descending=True, stable=True)[: keep - n_reached]
                ]
                top, top_scores = torch.cat([top, extra]), torch.cat([top_scores, doc_scores[extra]])
            hits.append((top.cpu(), top_scores.cpu()))
            timer.lap("two_stage_reduction")
        return hits
