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

Stages 3 to 6 run on (query, document) pairs over the packed, document-ordered codes, with no Python
loop per candidate (:mod:`~lirlab.index.plaid.kernels`). On the fused route
(:func:`~lirlab.index.plaid.kernels.fused`, the default on CPU with numba) stage 1 writes the table in
its own layout, pruning walks the IVF lists of kept centroids, and stages 5 and 6 never rebuild a
vector: stage 5 turns the survivors' residual bytes into rows of a lookup table
(:func:`residual_decompression`), stage 6 sums the query's dot products with those bytes' residual
values (one table per query, ``embedding_bag``), adds the centroid scores of the table and scales by
each token's inverse norm (:func:`residual_maxsim`): the same MaxSim as rebuilding the vectors, to
float rounding. Off that route (CUDA, no numba, or
``kernels.use_fused(False)``: the previous implementation) pairs are processed in chunks bounded by
:data:`SCORE_BUDGET` scores and stages 5 and 6 are :func:`decompression` and :func:`exact_maxsim`.

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
    best : torch.Tensor, optional
        ``[nq, C]`` each centroid's best score against a query's real tokens, when computed with the
        table (the fused route); otherwise :meth:`best_per_centroid` computes it.
    """

    padded: torch.Tensor
    mask: torch.Tensor
    scores: torch.Tensor
    table: torch.Tensor
    best: torch.Tensor | None = None

    @property
    def n_queries(self) -> int:
        return int(self.scores.shape[0])

    @property
    def n_centroids(self) -> int:
        return int(self.scores.shape[2])

    @property
    def lengths(self) -> torch.Tensor:
        return self.mask.sum(dim=1)

    def best_per_centroid(self) -> torch.Tensor:
        """``[nq, C]`` each centroid's best score against a query's real tokens."""
        if self.best is not None:
            return self.best
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

    Ties keep their input order (:func:`~lirlab.index.plaid.kernels.keep_best`).
    """
    return kernels.keep_best(groups, scores, keep, n_groups)


def token_parts(docs: CompressedDocs, positions: torch.Tensor, limit: int) -> list[slice]:
    """``positions`` cut into consecutive parts of at most ``limit`` tokens (at least one document each)."""
    lengths = docs.doc_lengths[positions]
    if int(lengths.sum()) <= limit:
        return [slice(0, positions.numel())]
    ends = lengths.cumsum(0)
    parts, first = [], 0
    while first < positions.numel():
        before = int(ends[first - 1]) if first else 0
        stop = max(first + 1, int(torch.searchsorted(ends, before + limit, right=True)))
        parts.append(slice(first, stop))
        first = stop
    return parts


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
    vectors = queries.vectors.to(device=codec.device, dtype=torch.float32)
    if kernels.fused(codec.device) and len(queries) == 1:  # one query is its own padded batch
        padded, mask = vectors.unsqueeze(0), torch.ones(1, vectors.shape[0], dtype=torch.bool)
    else:
        padded, mask = pad_packed(vectors, queries.lengths)
    if kernels.fused(codec.device):  # the table in its own layout; padding rows are zero, so are their scores
        n_queries, query_len, n_centroids = padded.shape[0], padded.shape[1], codec.n_centroids
        table = padded.new_empty(n_queries * n_centroids + 1, query_len)
        for n in range(n_queries):
            torch.mm(codec.centroids, padded[n].T, out=table[n * n_centroids : (n + 1) * n_centroids])
        table[-1] = float("-inf")
        scores = table[:-1].view(n_queries, n_centroids, query_len).transpose(1, 2)
        best = kernels.table_best(table, queries.lengths, n_centroids)
        return QueryScores(padded, mask, scores, table, best)
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
    n_centroids = scores.n_centroids
    device = docs.device
    n_docs = docs.n_docs
    width = int(n_probe.max()) if n_probe.numel() else 0
    if n_docs == 0 or width == 0 or scores.scores.shape[1] == 0:
        return torch.zeros(0, dtype=torch.long, device=device)
    whole_batch = scores.table.shape[0] == scores.n_queries * n_centroids + 1  # not a _subset
    if width == 1 and whole_batch and kernels.fused(device):
        top = kernels.table_argmax(scores.table, n_centroids).unsqueeze(2)  # [nq, q, 1]
    else:
        top = scores.scores.topk(width, dim=2).indices  # [nq, q, width]
    query_of, probed = kernels.probed_lists(top, n_probe, scores.lengths, n_centroids)
    return kernels.ivf_union(ivf.positions, ivf.offsets, query_of, probed, docs.deleted)


def _subset(scores: QueryScores, which: torch.Tensor) -> QueryScores:
    best = scores.best[which] if scores.best is not None else None
    return QueryScores(scores.padded[which], scores.mask[which], scores.scores[which], scores.table, best)


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
    docs: CompressedDocs, scores: QueryScores, pairs: Pairs, threshold: float, ivf: IVF | None = None
) -> torch.Tensor:
    """Centroid-only MaxSim of each pair over the tokens whose centroid scores at least ``threshold``
    against some query token; a pair with no such token scores :data:`PRUNED_FLOOR` per query token
    (:func:`~lirlab.index.plaid.kernels.pruned_centroid_maxsim`: only kept tokens are read; on the
    fused route with an exact ``ivf``, :func:`~lirlab.index.plaid.kernels.listed_pruned_maxsim`: only
    the kept centroids' lists are read)."""
    kept = scores.best_per_centroid() >= threshold
    if ivf is not None and ivf.exact and kernels.fused(docs.device):
        return kernels.listed_pruned_maxsim(
            ivf.positions,
            ivf.offsets,
            docs.doc_offsets,
            pairs.query_of,
            pairs.positions,
            scores.table,
            kept,
            PRUNED_FLOOR,
            docs.codes,
        )
    return kernels.pruned_centroid_maxsim(
        docs.codes, docs.doc_offsets, pairs.query_of, pairs.positions, scores.table, kept, PRUNED_FLOOR
    )


def pruning(
    docs: CompressedDocs,
    scores: QueryScores,
    pairs: Pairs,
    threshold: float,
    keep: int,
    ivf: IVF | None = None,
) -> Pairs:
    """Stage 3: the ``keep`` best pairs of each query by :func:`pruned_centroid_scores`."""
    approx = pruned_centroid_scores(docs, scores, pairs, threshold, ivf)
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
    padded ``[n, width, dim]`` with their ``[n, width]`` ``mask`` (torch kernels); on the fused route,
    residual score table rows ``[tokens, packed_dim]`` with ``offsets`` (:func:`residual_decompression`)."""

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


def residual_decompression(
    codec: ResidualCodec, docs: CompressedDocs, positions: torch.Tensor
) -> Decompressed:
    """Stage 5 on the fused route: the residual bytes of the documents at ``positions`` as rows of a
    residual score table, packed (:func:`~lirlab.index.plaid.kernels.residual_rows`); nothing is
    decoded to floats: the centroid half of each vector is already scored (the table of stage 1), the
    residual half is read from the query's residual score table in :func:`residual_maxsim`, and the
    norm is known (:func:`inverse_norms`)."""
    rows, offsets = kernels.residual_rows(docs.residuals, docs.doc_offsets, positions)
    return Decompressed(rows, offsets=offsets)


def residual_maxsim(
    codec: ResidualCodec,
    docs: CompressedDocs,
    scores: QueryScores,
    query: int,
    positions: torch.Tensor,
    rows: torch.Tensor,
    offsets: torch.Tensor,
) -> torch.Tensor:
    """Stage 6 on the fused route: exact MaxSim of one query against the documents at ``positions``,
    whose residual bytes ``rows`` (from :func:`residual_decompression`) are cut by ``offsets``.

    The residual half of every token's score is a sum of rows of the query's
    :meth:`~lirlab.index.codec.ResidualCodec.residual_score_table`, one per residual byte
    (``embedding_bag``: a lookup and an add per byte instead of ``dim`` multiplies); the centroid
    half is read from the table of stage 1 (:func:`~lirlab.index.plaid.kernels.residual_maxsim`)."""
    query_vectors = scores.padded[query]
    if query_vectors.shape[0] == 0:
        return torch.zeros(positions.numel())
    lookup = codec.residual_score_table(query_vectors)
    sims = torch.nn.functional.embedding_bag(rows, lookup, mode="sum")
    return kernels.residual_maxsim(
        docs.codes,
        docs.doc_offsets,
        positions,
        sims,
        offsets,
        scores.table,
        query * scores.n_centroids,
        inverse_norms(codec, docs),
    )


def inverse_norms(codec: ResidualCodec, docs: CompressedDocs) -> torch.Tensor:
    """Every token's ``1 / |centroid + residual|`` (:func:`~lirlab.index.plaid.kernels.inverse_norms`),
    computed once per documents record and codec (4 bytes per token in memory, never saved)."""
    cached = docs.__dict__.get("_inverse_norms")
    if cached is None or cached[0] is not codec.centroids:
        norms = kernels.inverse_norms(docs.codes, docs.residuals, codec.centroids, codec.decode_table)
        cached = (codec.centroids, norms)
        object.__setattr__(docs, "_inverse_norms", cached)
    return cached[1]


def exact_scores(
    codec: ResidualCodec,
    docs: CompressedDocs,
    scores: QueryScores,
    pairs: Pairs,
    timer: StageTimer | None = None,
) -> torch.Tensor:
    """Stages 5 and 6 over ``pairs``: the exact MaxSim of each pair against its rebuilt document.

    On the fused route (:func:`~lirlab.index.plaid.kernels.fused`), :func:`residual_decompression` then
    :func:`residual_maxsim`, query after query, in parts of at most :data:`SCORE_BUDGET` residual bytes.
    Otherwise each distinct document is decompressed once, however many queries kept it, in chunks of
    similar length (:func:`decompression`, then :func:`exact_maxsim`). ``timer`` laps both stages.
    """
    timer = timer or StageTimer(STAGES, False, docs.device)
    out = torch.zeros(pairs.positions.numel(), device=docs.device)
    if pairs.positions.numel() == 0:
        return out
    if kernels.fused(docs.device):  # pairs by query, in parts of at most SCORE_BUDGET residual bytes
        order = torch.argsort(pairs.query_of, stable=True)
        for part in token_parts(docs, pairs.positions[order], SCORE_BUDGET // codec.packed_dim):
            chosen = order[part]
            survivors = residual_decompression(codec, docs, pairs.positions[chosen])
            timer.lap("decompression")
            queries, counts = torch.unique_consecutive(pairs.query_of[chosen], return_counts=True)
            first = 0
            for query, count in zip(queries.tolist(), counts.tolist(), strict=True):
                bounds = survivors.offsets[first : first + count + 1]
                out[chosen[first : first + count]] = residual_maxsim(
                    codec,
                    docs,
                    scores,
                    query,
                    pairs.positions[chosen[first : first + count]],
                    survivors.vectors[int(bounds[0]) : int(bounds[-1])],
                    bounds - bounds[0],
                )
                first += count
            timer.lap("exact_maxsim")
        return out
    distinct, pair_doc = torch.unique(pairs.positions, return_inverse=True)
    for doc_chunk, width in length_chunks(docs, distinct, codec.dim):
        decompressed = decompression(codec, docs, distinct[doc_chunk])
        timer.lap("decompression")
        slot = torch.full((distinct.numel(),), -1, dtype=torch.long, device=docs.device)
        slot[doc_chunk] = torch.arange(doc_chunk.numel(), device=docs.device)
        chosen = (slot[pair_doc] >= 0).nonzero().flatten()
        out[chosen] = exact_maxsim(
            scores.padded, decompressed, pairs.query_of[chosen], slot[pair_doc[chosen]], width
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
    pairs = pruning(docs, scores, pairs, settings["centroid_score_threshold"], keep_pruned, ivf)
    timer.lap("pruning")
    pairs = centroid_interaction(docs, scores, pairs, keep_exact)
    timer.lap("centroid_interaction")
    exact = exact_scores(codec, docs, scores, pairs, timer)  # laps decompression and exact_maxsim
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
