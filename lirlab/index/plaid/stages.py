"""PLAID search, one function per timed stage, in pipeline order.

The names below are the stage names everywhere: :data:`STAGES`, the timer keys of
``PlaidIndex.search_encoded(timings=...)``, the columns of latency sweeps.

1. :func:`centroid_scoring`: every query token against every centroid (``[nq, q, C]``).
2. :func:`candidate_generation`: each query token's ``n_probe`` best centroids and the union of their
   IVF lists, widened (``n_probe`` doubled) for a query whose lists hold fewer than ``k`` documents.
3. :func:`pruning`: MaxSim of each candidate with every document token replaced by its centroid's
   score, skipping tokens whose centroid scores below ``centroid_score_threshold`` against every query
   token (as colbert-ai does; a document left with no token scores :data:`PRUNED_FLOOR` per query
   token); keeps the best ``ndocs``.
4. :func:`centroid_interaction`: the same without skipping; keeps the best ``ndocs // 4`` (at least k).
5. :func:`decompression`: rebuilds the survivors' vectors from codes and residuals, each distinct
   document once per query batch.
6. :func:`exact_maxsim`: exact MaxSim against the rebuilt vectors
   (:func:`lirlab.maxsim.maxsim_pairs`); keeps the best ``k``.

(The PLAID paper counts four stages: its stage 1 is 1 + 2 here, its stage 4 is 5 + 6.)

Stages 3 to 6 run on (query, document) pairs laid out as padded index tensors over the packed,
document-ordered codes, so there is no Python loop per candidate: pairs are sorted by document length
and processed in chunks bounded by :data:`SCORE_BUDGET` scores; :func:`pruning` gathers only the tokens
of unpruned centroids.

Examples
--------
>>> STAGES[0], STAGES[-1], len(STAGES)
('centroid_scoring', 'exact_maxsim', 6)
>>> keep_best(torch.tensor([0, 0, 0, 1, 1]), torch.tensor([1.0, 3.0, 2.0, 0.0, 5.0]), 2, 2).tolist()
[1, 2, 4, 3]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from lirlab.encoding import Encoding, offsets_from_lengths, rows_of
from lirlab.index.base import StageTimer
from lirlab.index.codec import ResidualCodec
from lirlab.index.plaid import kernels
from lirlab.index.plaid.compressed import CompressedDocs
from lirlab.index.plaid.ivf import IVF
from lirlab.maxsim import maxsim_pairs, pad_packed

#: The stage names, in pipeline order (one function of this module each).
STAGES = (
    "centroid_scoring",
    "candidate_generation",
    "pruning",
    "centroid_interaction",
    "decompression",
    "exact_maxsim",
)

#: Upper bound on scores (or gathered elements) materialized at once in stages 3 to 6.
SCORE_BUDGET = 1 << 22

#: Pruning score per query token of a document whose every token was pruned (colbert-ai uses the same).
PRUNED_FLOOR = -9999.0


@dataclass(frozen=True)
class QueryScores:
    """What :func:`centroid_scoring` computes once per query batch.

    Attributes
    ----------
    padded : torch.Tensor
        ``[nq, q, dim]`` float32 queries, zero rows after each query's last token.
    mask : torch.Tensor
        ``[nq, q]`` bool, real query tokens.
    scores : torch.Tensor
        ``[nq, q, C]`` query token × centroid scores (0 for padding tokens).
    table : torch.Tensor
        ``[nq * C + 1, q]``: row ``query * C + centroid`` holds that centroid's score for each query
        token; the last row is ``-inf``, indexed by padding document tokens.
    """

    padded: torch.Tensor
    mask: torch.Tensor
    scores: torch.Tensor
    table: torch.Tensor

    @property
    def n_queries(self) -> int:
        return int(self.scores.shape[0])

    @property
    def n_centroids(self) -> int:
        return int(self.scores.shape[2])

    def best_per_centroid(self) -> torch.Tensor:
        """``[nq, C]`` each centroid's best score against a query's real tokens."""
        if self.scores.shape[1] == 0:
            return torch.full(
                (self.scores.shape[0], self.scores.shape[2]), float("-inf"), device=self.scores.device
            )
        return self.scores.masked_fill(~self.mask.unsqueeze(2), float("-inf")).amax(dim=1)


@dataclass(frozen=True)
class Pairs:
    """(query, document) pairs still in the running: query indices and document positions."""

    query_of: torch.Tensor
    positions: torch.Tensor

    def select(self, chosen: torch.Tensor) -> Pairs:
        return Pairs(self.query_of[chosen], self.positions[chosen])


def keep_best(groups: torch.Tensor, scores: torch.Tensor, keep: int, n_groups: int) -> torch.Tensor:
    """Indices of the ``keep`` best scores of every group, ordered by group then score (best first).

    Ties keep their input order.
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


def length_chunks(
    docs: CompressedDocs, positions: torch.Tensor, per_token: int
) -> list[tuple[torch.Tensor, int]]:
    """Split ``positions`` (pairs' or distinct documents) into chunks of similar length, longest first.

    Each chunk is ``(indices into positions, padded length)`` with ``len * length * per_token`` at most
    :data:`SCORE_BUDGET` (at least one entry), so padding wastes little and buffers stay bounded.
    Documents without tokens are left out (they score 0).
    """
    lengths = docs.doc_lengths[positions]
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


# ---------------------------------------------------------------------- 1. centroid_scoring


def centroid_scoring(codec: ResidualCodec, queries: Encoding) -> QueryScores:
    """Stage 1: query token × centroid scores of a query batch, and the lookup table of stages 3 and 4."""
    if queries.dim != codec.dim:
        raise ValueError(f"query vectors have dim {queries.dim}, the index has dim {codec.dim}")
    padded, mask = pad_packed(queries.vectors.to(device=codec.device, dtype=torch.float32), queries.lengths)
    scores = (padded @ codec.centroids.T).masked_fill(~mask.unsqueeze(2), 0.0)
    n_queries, query_len, n_centroids = scores.shape
    table = scores.new_empty(n_queries * n_centroids + 1, query_len)
    table[:-1] = scores.transpose(1, 2).reshape(n_queries * n_centroids, query_len)
    table[-1] = float("-inf")
    return QueryScores(padded, mask, scores, table)


# ---------------------------------------------------------------------- 2. candidate_generation


def probe(ivf: IVF, docs: CompressedDocs, scores: QueryScores, n_probe: torch.Tensor) -> torch.Tensor:
    """Sorted keys ``query * n_docs + position`` of live documents in the IVF lists of each query
    token's ``n_probe[query]`` best centroids (``scores`` may be a subset of the batch's queries)."""
    n_queries, _, n_centroids = scores.scores.shape
    device = docs.device
    n_docs = docs.n_docs
    width = int(n_probe.max()) if n_probe.numel() else 0
    if n_docs == 0 or width == 0 or scores.scores.shape[1] == 0:
        return torch.zeros(0, dtype=torch.long, device=device)
    top = scores.scores.topk(width, dim=2).indices  # [nq, q, width]
    valid = scores.mask.unsqueeze(2) & (
        torch.arange(width, device=device).view(1, 1, -1) < n_probe.view(-1, 1, 1)
    )
    query_of = torch.arange(n_queries, device=device).view(-1, 1, 1).expand_as(top)[valid]
    probed = torch.unique(query_of * n_centroids + top[valid])
    return kernels.ivf_union(
        ivf.positions, ivf.offsets, probed // n_centroids, probed % n_centroids, docs.deleted
    )


def _subset(scores: QueryScores, which: torch.Tensor) -> QueryScores:
    return QueryScores(scores.padded[which], scores.mask[which], scores.scores[which], scores.table)


def candidate_generation(
    ivf: IVF, docs: CompressedDocs, scores: QueryScores, n_probe: int, need: int
) -> Pairs:
    """Stage 2: (query, position) pairs of the probed lists, at least ``need`` per query.

    A query whose lists hold fewer than ``need`` live documents has its ``n_probe`` doubled until they
    do (up to every centroid; documents without tokens, which no list holds, are then added).
    """
    n_queries, n_centroids = scores.n_queries, scores.n_centroids
    device = docs.device
    n_docs = max(docs.n_docs, 1)
    probes = torch.full((n_queries,), min(n_probe, n_centroids), dtype=torch.long, device=device)
    keys = probe(ivf, docs, scores, probes)
    counts = torch.bincount(keys // n_docs, minlength=n_queries)
    short = (counts < need) & (probes < n_centroids)
    while bool(short.any()):
        which = short.nonzero().flatten()
        probes[which] = (probes[which] * 2).clamp(max=n_centroids)
        wider = probe(ivf, docs, _subset(scores, which), probes[which])
        wider = which[wider // n_docs] * n_docs + wider % n_docs
        keys = torch.cat([keys[~short[keys // n_docs]], wider]).sort().values
        counts = torch.bincount(keys // n_docs, minlength=n_queries)
        short = (counts < need) & (probes < n_centroids)
    lacking = (counts < need).nonzero().flatten()
    if lacking.numel():  # every centroid probed: add the live documents no list holds (no tokens)
        live = (~docs.deleted).nonzero().flatten()
        extra = (lacking.view(-1, 1) * n_docs + live.view(1, -1)).flatten()
        keys = torch.unique(torch.cat([keys, extra]))
    return Pairs(keys // n_docs, keys % n_docs)


# ---------------------------------------------------------------------- 3. pruning


def pruned_centroid_scores(
    docs: CompressedDocs, scores: QueryScores, pairs: Pairs, threshold: float
) -> torch.Tensor:
    """Centroid-only MaxSim of each pair over the tokens whose centroid scores at least ``threshold``
    against some query token; a pair with no such token scores :data:`PRUNED_FLOOR` per query token
    (:func:`~lirlab.index.plaid.kernels.pruned_centroid_maxsim`: only kept tokens are read)."""
    kept = scores.best_per_centroid() >= threshold
    return kernels.pruned_centroid_maxsim(
        docs.codes, docs.doc_offsets, pairs.query_of, pairs.positions, scores.table, kept, PRUNED_FLOOR
    )


def pruning(docs: CompressedDocs, scores: QueryScores, pairs: Pairs, threshold: float, keep: int) -> Pairs:
    """Stage 3: the ``keep`` best pairs of each query by :func:`pruned_centroid_scores`."""
    approx = pruned_centroid_scores(docs, scores, pairs, threshold)
    return pairs.select(keep_best(pairs.query_of, approx, keep, scores.n_queries))


# ---------------------------------------------------------------------- 4. centroid_interaction


def centroid_scores(docs: CompressedDocs, scores: QueryScores, pairs: Pairs) -> torch.Tensor:
    """Centroid-only MaxSim of each pair: every document token replaced by its centroid's scores
    (:func:`~lirlab.index.plaid.kernels.centroid_maxsim`)."""
    return kernels.centroid_maxsim(
        docs.codes, docs.doc_offsets, pairs.query_of, pairs.positions, scores.table, scores.n_centroids
    )


def centroid_interaction(docs: CompressedDocs, scores: QueryScores, pairs: Pairs, keep: int) -> Pairs:
    """Stage 4: the ``keep`` best pairs of each query by :func:`centroid_scores`."""
    approx = centroid_scores(docs, scores, pairs)
    return pairs.select(keep_best(pairs.query_of, approx, keep, scores.n_queries))


# ---------------------------------------------------------------------- 5. decompression


@dataclass(frozen=True)
class Decompressed:
    """Rebuilt vectors of some documents: packed ``[tokens, dim]`` with ``offsets`` (numba kernels), or
    padded ``[n, width, dim]`` with their ``[n, width]`` ``mask`` (torch kernels)."""

    vectors: torch.Tensor
    mask: torch.Tensor | None = None
    offsets: torch.Tensor | None = None


def decompression(codec: ResidualCodec, docs: CompressedDocs, positions: torch.Tensor) -> Decompressed:
    """Stage 5: the vectors of the documents at ``positions`` rebuilt from codes and residuals
    (:func:`~lirlab.index.plaid.kernels.decompress_docs`)."""
    if kernels.enabled(docs.device):
        vectors, offsets = kernels.decompress_docs(
            docs.codes, docs.residuals, docs.doc_offsets, positions, codec.centroids, codec.decode_table
        )
        return Decompressed(vectors, offsets=offsets)
    rows, mask = docs.padded_rows(positions)
    padded = torch.zeros(*mask.shape, codec.dim, device=docs.device)
    flat = rows[mask]
    padded[mask] = codec.decompress(docs.codes.index_select(0, flat), docs.residuals.index_select(0, flat))
    return Decompressed(padded, mask=mask)


def exact_maxsim(
    queries: torch.Tensor,
    decompressed: Decompressed,
    query_of: torch.Tensor,
    doc_of: torch.Tensor,
    width: int,
) -> torch.Tensor:
    """Stage 6: exact MaxSim of pairs ``(queries[query_of[i]], decompressed[doc_of[i]])``.

    Packed vectors: one matrix multiply per query against its documents' tokens, then
    :func:`~lirlab.index.plaid.kernels.segment_maxsim`. Padded vectors:
    :func:`lirlab.maxsim.maxsim_pairs` in parts of at most :data:`SCORE_BUDGET` similarities.
    """
    if decompressed.offsets is not None:
        vectors, offsets = decompressed.vectors, decompressed.offsets
        out = torch.zeros(query_of.numel())
        distinct_queries = torch.unique(query_of)
        if distinct_queries.numel() == 1:  # one query: one multiply over every decompressed document
            per_doc = kernels.segment_maxsim(vectors @ queries[int(distinct_queries[0])].T, offsets)
            return per_doc[doc_of]
        for query in distinct_queries.tolist():
            chosen = (query_of == query).nonzero().flatten()
            slots = doc_of[chosen]
            rows = rows_of(offsets, slots)
            sims = vectors.index_select(0, rows) @ queries[query].T
            out[chosen] = kernels.segment_maxsim(
                sims, offsets_from_lengths(offsets[slots + 1] - offsets[slots])
            )
        return out
    per_pair = max(queries.shape[1], decompressed.vectors.shape[2])
    parts = [
        maxsim_pairs(queries, decompressed.vectors, decompressed.mask, query_of[part], doc_of[part])
        for part in torch.arange(query_of.numel(), device=query_of.device).split(
            max(1, SCORE_BUDGET // (width * per_pair))
        )
    ]
    return torch.cat(parts) if parts else torch.zeros(0, device=queries.device)


def exact_scores(
    codec: ResidualCodec,
    docs: CompressedDocs,
    queries: torch.Tensor,
    pairs: Pairs,
    timer: StageTimer | None = None,
) -> torch.Tensor:
    """Stages 5 and 6 over ``pairs``: padded queries ``[nq, q, dim]`` against rebuilt documents.

    Each distinct document is decompressed once, however many queries kept it; documents are
    decompressed in chunks of similar length (``timer`` laps each stage per chunk).
    """
    timer = timer or StageTimer(STAGES, False, docs.device)
    out = torch.zeros(pairs.positions.numel(), device=docs.device)
    if pairs.positions.numel() == 0:
        return out
    distinct, pair_doc = torch.unique(pairs.positions, return_inverse=True)
    for doc_chunk, width in length_chunks(docs, distinct, codec.dim):
        decompressed = decompression(codec, docs, distinct[doc_chunk])
        timer.lap("decompression")
        slot = torch.full((distinct.numel(),), -1, dtype=torch.long, device=docs.device)
        slot[doc_chunk] = torch.arange(doc_chunk.numel(), device=docs.device)
        chosen = (slot[pair_doc] >= 0).nonzero().flatten()
        out[chosen] = exact_maxsim(
            queries, decompressed, pairs.query_of[chosen], slot[pair_doc[chosen]], width
        )
        timer.lap("exact_maxsim")
    return out


# ---------------------------------------------------------------------- the pipeline


def search(
    codec: ResidualCodec,
    docs: CompressedDocs,
    ivf: IVF,
    queries: Encoding,
    k: int,
    settings: dict[str, Any],
    timer: StageTimer,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The six stages over one query batch: per query, ``(positions, scores)`` best first."""
    n_queries = len(queries)
    n_live = docs.n_docs - int(docs.deleted.sum())
    keep_final = min(k, n_live)
    keep_exact = max(settings["ndocs"] // 4, k)
    keep_pruned = max(settings["ndocs"], keep_exact)
    timer.start()
    scores = centroid_scoring(codec, queries)
    timer.lap("centroid_scoring")
    pairs = candidate_generation(ivf, docs, scores, settings["n_probe"], keep_final)
    timer.lap("candidate_generation")
    pairs = pruning(docs, scores, pairs, settings["centroid_score_threshold"], keep_pruned)
    timer.lap("pruning")
    pairs = centroid_interaction(docs, scores, pairs, keep_exact)
    timer.lap("centroid_interaction")
    exact = exact_scores(codec, docs, scores.padded, pairs, timer)  # laps decompression and exact_maxsim
    chosen = keep_best(pairs.query_of, exact, k, n_queries)
    counts = torch.bincount(pairs.query_of[chosen], minlength=n_queries).tolist()
    hits = list(
        zip(
            torch.split(pairs.positions[chosen].cpu(), counts),
            torch.split(exact[chosen].cpu(), counts),
            strict=True,
        )
    )
    timer.lap("exact_maxsim")
    return hits
