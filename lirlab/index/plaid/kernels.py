"""The compute kernels under PLAID's stages, written for any engine that reads a residual-compressed
index (PLAID here; a WARP-style engine reads the same codec, codes, residuals and IVF).

Every kernel exists twice with one signature: a numba version (compiled for the machine it runs on,
cached on disk, nothing assumed beyond what LLVM finds on the CPU) and a pure-torch reference, the
previous implementation. The numba kernels whose work splits into independent parts (pairs, tokens,
ranges of query tokens, shares of the centroids' lists) spread it over torch's thread count
(:func:`parallel_threads`; one thread with ``LIRLAB_NUMBA_PARALLEL=0`` or inside :func:`use_parallel`);
every part is computed in the same order either way, so the results are the same bits. On 2 AMD Zen 3 cores, centroid MaxSim over 1,024 pairs
took 3.0 ms on two threads against 6.3 ms on one (4.4 against 6.5 ms right after a torch multiply,
whose OpenMP threads still spin). The numba versions run on CPU tensors when numba is installed
and not disabled (environment ``LIRLAB_NUMBA=0``, or :func:`use_numba`); otherwise, and always for CUDA
tensors, the torch references run. ``tests/test_plaid_kernels.py`` pins each against its reference.

Search takes the *fused route* (:func:`fused`; off with ``LIRLAB_PLAID_FUSED=0`` or :func:`use_fused`,
which leaves the previous implementation for comparison): the score table is computed in its own
layout, candidate selection is compiled, pruning walks the lists of kept centroids, and exact MaxSim
adds two halves (the centroid's score from the table, the residual's from a lookup table of the
query's dot products with every residual byte, summed by ``embedding_bag``) scaled by each token's
precomputed inverse norm, instead of rebuilding vectors.
The kernels of that route fall back to their torch references when it is off.

All kernels work on (query, document) *pairs*, so one call serves a batch of queries:

========================  ======================================================================
kernel                    computes
========================  ======================================================================
:func:`ivf_union`         sorted keys ``query * n_docs + position`` of the live documents in the
                          IVF lists of probed (query, centroid) pairs
:func:`centroid_maxsim`   MaxSim of each pair with every document token replaced by its centroid's
                          score (a lookup in the ``[nq * C + 1, q]`` score table)
:func:`pruned_centroid_maxsim`  the same over the tokens of kept centroids only; a pair with none
                          scores ``floor`` per query token
:func:`decompress_docs`   documents' vectors rebuilt from codes and packed residuals, packed
                          ``[tokens, dim]`` with their offsets (``normalize(centroid + residual)``)
:func:`segment_maxsim`    from token × query-token similarities ``[tokens, q]``, each document's
                          sum over query tokens of its best token
*the fused route*
:func:`table_best`        each centroid's best score against a query's real tokens, from the table
:func:`table_argmax`      each query token's best centroid (``n_probe`` 1), from the table
:func:`probed_lists`      the distinct probed (query, centroid) pairs of each token's best centroids
:func:`keep_best`         the ``keep`` best scores of every group (stable on ties)
:func:`listed_pruned_maxsim`  :func:`pruned_centroid_maxsim` read from exact IVF lists of the kept
                          centroids instead of every token
:func:`inverse_norms`     every token's ``1 / |centroid + residual|``
:func:`residual_rows`     documents' residual bytes as rows of the query's residual score table
:func:`residual_maxsim`   exact MaxSim from the centroid half (table), the residual half (the score
                          table's rows of :func:`residual_rows`, summed) and :func:`inverse_norms`
*building*
:func:`rescore_nearest`   the exact nearest centroid among those an int8 first pass could not rule
                          out (:func:`lirlab.index.kmeans.nearest_by_int8`; numba only)
========================  ======================================================================

Examples
--------
>>> import torch
>>> table = torch.tensor([[0.1, 0.2], [0.9, -0.3], [float("-inf"), float("-inf")]])  # 1 query, C = 2
>>> codes, offsets = torch.tensor([0, 1, 1]), torch.tensor([0, 2, 3])
>>> pairs = (torch.tensor([0, 0]), torch.tensor([0, 1]))
>>> [round(x, 4) for x in centroid_maxsim(codes, offsets, *pairs, table, 2).tolist()]
[1.1, 0.6]
>>> kept = torch.tensor([[False, True]])
>>> [round(x, 4) for x in pruned_centroid_maxsim(codes, offsets, *pairs, table, kept, -10.0).tolist()]
[0.6, 0.6]
>>> segment_maxsim(torch.tensor([[1.0, 0.0], [0.5, 2.0], [3.0, 3.0]]), torch.tensor([0, 2, 3])).tolist()
[3.0, 6.0]
"""

from __future__ import annotations

import functools
import os
import threading
from contextlib import contextmanager

import numpy as np
import torch

from lirlab.encoding import offsets_from_lengths, rows_of

try:  # numba is optional: every kernel has a torch reference
    import numba
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None

#: Whether the numba kernels run (numba importable and ``LIRLAB_NUMBA`` not ``0``); see :func:`use_numba`.
NUMBA = numba is not None and os.environ.get("LIRLAB_NUMBA", "1") != "0"


#: Whether the fused kernels serve search (``LIRLAB_PLAID_FUSED`` not ``0``); see :func:`use_fused`.
FUSED = os.environ.get("LIRLAB_PLAID_FUSED", "1") != "0"

#: Whether the parallel numba kernels use torch's thread count (``LIRLAB_NUMBA_PARALLEL`` not ``0``);
#: see :func:`use_parallel`.
PARALLEL = os.environ.get("LIRLAB_NUMBA_PARALLEL", "1") != "0"

#: Serializes parallel launches where numba's threading layer cannot take two at once (workqueue).
_LAUNCH_LOCK = threading.Lock()


def numba_available() -> bool:
    return numba is not None


def enabled(device: torch.device | str = "cpu") -> bool:
    """Whether the numba kernels serve tensors on ``device``."""
    return NUMBA and torch.device(device).type == "cpu"


@contextmanager
def use_numba(on: bool):
    """Run the numba kernels (``True``) or the torch references (``False``) inside the block.

    >>> with use_numba(False):
    ...     enabled("cpu")
    False
    """
    if on and numba is None:
        raise ValueError("numba is not installed: pip install numba (the torch kernels run without it)")
    with _switched("NUMBA", on):
        yield


def fused(device: torch.device | str = "cpu") -> bool:
    """Whether search takes the fused route on ``device`` (numba kernels on, :data:`FUSED` on): the
    score table in one pass in the kernels' layout, pruning over the IVF lists of kept centroids, exact
    scores as table score + one multiply of decoded residuals, compiled selection. Off, search runs the
    previous implementation (the staged numba kernels and torch between them)."""
    return FUSED and enabled(device)


@contextmanager
def use_fused(on: bool):
    """Take the fused route (``True``) or the previous implementation (``False``) inside the block.

    >>> with use_fused(False):
    ...     fused("cpu")
    False
    """
    with _switched("FUSED", on):
        yield


@contextmanager
def use_parallel(on: bool):
    """Spread the parallel numba kernels over torch's threads (``True``) or run them on one thread
    (``False``) inside the block.

    >>> with use_parallel(False):
    ...     parallel_threads()
    1
    """
    with _switched("PARALLEL", on):
        yield


def parallel_threads() -> int:
    """Threads the parallel numba kernels run on: torch's thread count (at most numba's own limit),
    one when :data:`PARALLEL` is off."""
    if not PARALLEL or numba is None:
        return 1
    return max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))


@functools.lru_cache(maxsize=1)
def _launches_are_thread_safe() -> bool:
    """Whether numba's threading layer takes parallel launches from several Python threads at once
    (tbb and OpenMP do; workqueue, numba's fallback where neither is found, aborts the process)."""
    _nb_touch_threads(np.zeros(2))
    return numba.threading_layer() != "workqueue"


def launch(kernel, *args):
    """``kernel(*args)`` on :func:`parallel_threads` threads, one launch at a time where the threading
    layer needs it."""
    numba.set_num_threads(parallel_threads())
    if _launches_are_thread_safe():
        return kernel(*args)
    with _LAUNCH_LOCK:
        return kernel(*args)


@contextmanager
def _switched(flag: str, on: bool):
    """Set the module switch ``flag`` inside the block, restoring it after."""
    before = globals()[flag]
    globals()[flag] = on
    try:
        yield
    finally:
        globals()[flag] = before


def _np(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().contiguous().numpy()


# ====================================================================== torch references


def _torch_ivf_union(
    ivf_positions: torch.Tensor,
    ivf_offsets: torch.Tensor,
    query_of: torch.Tensor,
    centroids: torch.Tensor,
    deleted: torch.Tensor,
) -> torch.Tensor:
    n_docs = int(deleted.shape[0])
    docs = ivf_positions[rows_of(ivf_offsets, centroids)].long()
    lengths = ivf_offsets[centroids + 1] - ivf_offsets[centroids]
    keys = torch.unique(torch.repeat_interleave(query_of, lengths) * n_docs + docs)
    if bool(deleted.any()):
        keys = keys[~deleted[keys % n_docs]]
    return keys


def _padded_rows(doc_offsets: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    starts = doc_offsets[positions]
    lengths = doc_offsets[positions + 1] - starts
    width = int(lengths.max()) if lengths.numel() else 0
    steps = torch.arange(width, device=positions.device)
    mask = steps.unsqueeze(0) < lengths.unsqueeze(1)
    rows = (starts.unsqueeze(1) + steps.unsqueeze(0)).masked_fill(~mask, 0)
    return rows, mask


def _length_chunks(lengths: torch.Tensor, per_token: int, budget: int) -> list[torch.Tensor]:
    """Indices of non-empty entries in chunks of similar length, longest first, ``budget`` elements each."""
    order = torch.argsort(lengths, descending=True, stable=True)
    sorted_lengths = lengths[order].tolist()
    n_nonempty = int((lengths > 0).sum())
    chunks, start = [], 0
    while start < n_nonempty:
        width = sorted_lengths[start]
        stop = min(n_nonempty, start + max(1, budget // (width * max(per_token, 1))))
        chunks.append(order[start:stop])
        start = stop
    return chunks


#: Scores (or gathered elements) the torch references materialize at once.
TORCH_BUDGET = 1 << 22


def _pair_keys(codes, doc_offsets, query_of, positions, n_centroids, sentinel):
    rows, mask = _padded_rows(doc_offsets, positions)
    gathered = codes.index_select(0, rows.flatten()).view_as(rows).long()
    keys = (query_of.unsqueeze(1) * n_centroids + gathered).masked_fill_(~mask, sentinel)
    return keys, mask


def _torch_centroid_maxsim(codes, doc_offsets, query_of, positions, table, n_centroids):
    query_len, sentinel = table.shape[1], table.shape[0] - 1
    out = torch.zeros(positions.numel(), device=positions.device)
    lengths = doc_offsets[positions + 1] - doc_offsets[positions]
    for chosen in _length_chunks(lengths, query_len, TORCH_BUDGET):
        keys, _ = _pair_keys(codes, doc_offsets, query_of[chosen], positions[chosen], n_centroids, sentinel)
        best = table.index_select(0, keys.flatten()).view(*keys.shape, query_len).amax(dim=1)
        out[chosen] = best.masked_fill_(best == float("-inf"), 0.0).sum(dim=1)
    return out


def _torch_pruned_centroid_maxsim(codes, doc_offsets, query_of, positions, table, kept, floor):
    query_len, sentinel = table.shape[1], table.shape[0] - 1
    n_centroids = kept.shape[1]
    kept_flat = kept.flatten()
    out = torch.zeros(positions.numel(), device=positions.device)
    lengths = doc_offsets[positions + 1] - doc_offsets[positions]
    for chosen in _length_chunks(lengths, query_len, TORCH_BUDGET):
        keys, mask = _pair_keys(
            codes, doc_offsets, query_of[chosen], positions[chosen], n_centroids, sentinel
        )
        keep = kept_flat[keys.clamp(max=sentinel - 1)] & mask
        best = torch.full((keys.shape[0], query_len), floor, device=positions.device)
        pair, token = keep.nonzero(as_tuple=True)
        best.scatter_reduce_(
            0, pair.unsqueeze(1).expand(-1, query_len), table.index_select(0, keys[pair, token]), "amax"
        )
        out[chosen] = best.masked_fill_(best == float("-inf"), 0.0).sum(dim=1)
    return out


def _torch_decompress_docs(codes, residuals, doc_offsets, positions, centroids, decode_table):
    rows = rows_of(doc_offsets, positions)
    lengths = doc_offsets[positions + 1] - doc_offsets[positions]
    packed = residuals.index_select(0, rows)
    dim = centroids.shape[1]
    byte_rows = (packed.long() + torch.arange(packed.shape[1], device=packed.device) * 256).flatten()
    values = decode_table.index_select(0, byte_rows).view(packed.shape[0], dim)
    approx = centroids.index_select(0, codes.index_select(0, rows).long()) + values
    return torch.nn.functional.normalize(approx, dim=1), offsets_from_lengths(lengths.cpu()).to(
        positions.device
    )


def _torch_segment_maxsim(sims, offsets):
    lengths = offsets[1:] - offsets[:-1]
    n = int(lengths.shape[0])
    out = torch.zeros(n, device=sims.device)
    if sims.shape[0] == 0:
        return out
    segment = torch.repeat_interleave(torch.arange(n, device=sims.device), lengths)
    best = torch.full((n, sims.shape[1]), float("-inf"), device=sims.device)
    best.scatter_reduce_(0, segment.unsqueeze(1).expand_as(sims), sims.float(), "amax")
    nonempty = lengths > 0
    out[nonempty] = best[nonempty].sum(dim=1)
    return out


def _torch_table_best(table, lengths, n_centroids):
    query_len = table.shape[1]
    n_queries = (table.shape[0] - 1) // n_centroids
    if query_len == 0:
        return torch.full((n_queries, n_centroids), float("-inf"), device=table.device)
    real = torch.arange(query_len, device=table.device) < lengths.to(table.device).view(-1, 1, 1)
    return table[:-1].view(n_queries, n_centroids, query_len).masked_fill(~real, float("-inf")).amax(dim=2)


def _torch_table_argmax(table, n_centroids):
    n_queries = (table.shape[0] - 1) // n_centroids
    return table[:-1].view(n_queries, n_centroids, table.shape[1]).argmax(dim=1)


def _torch_probed_lists(top, n_probe, lengths, n_centroids):
    n_queries, query_len, width = top.shape
    device = top.device
    valid = (torch.arange(query_len, device=device).view(1, -1, 1) < lengths.view(-1, 1, 1)) & (
        torch.arange(width, device=device).view(1, 1, -1) < n_probe.view(-1, 1, 1)
    )
    query_of = torch.arange(n_queries, device=device).view(-1, 1, 1).expand_as(top)[valid]
    probed = torch.unique(query_of * n_centroids + top[valid])
    return probed // n_centroids, probed % n_centroids


def _torch_keep_best(groups, scores, keep, n_groups):
    if groups.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=groups.device)
    order = torch.argsort(scores, descending=True, stable=True)
    order = order[torch.argsort(groups[order], stable=True)]
    sorted_groups = groups[order]
    counts = torch.bincount(sorted_groups, minlength=n_groups)
    starts = counts.cumsum(0) - counts
    rank = torch.arange(order.numel(), device=groups.device) - starts[sorted_groups]
    return order[rank < keep]


def _torch_residual_rows(residuals, doc_offsets, positions):
    rows = rows_of(doc_offsets, positions)
    packed = residuals.index_select(0, rows)
    byte_rows = packed.int() + torch.arange(packed.shape[1], device=packed.device, dtype=torch.int32) * 256
    lengths = doc_offsets[positions + 1] - doc_offsets[positions]
    return byte_rows, offsets_from_lengths(lengths.cpu()).to(positions.device)


def _torch_residual_maxsim(codes, doc_offsets, positions, sims, offsets, table, base, norms):
    rows = rows_of(doc_offsets, positions)
    centroid_part = table.index_select(0, base + codes.index_select(0, rows).long())
    return _torch_segment_maxsim((centroid_part + sims) * norms.index_select(0, rows).unsqueeze(1), offsets)


# ====================================================================== numba kernels

if numba is not None:
    _jit = numba.njit(cache=True, nogil=True, fastmath=False, error_model="numpy")
    _parallel_jit = numba.njit(cache=True, nogil=True, parallel=True, fastmath=False, error_model="numpy")
    prange = numba.prange

    @_parallel_jit
    def _nb_touch_threads(x):  # pragma: no cover
        for i in prange(x.shape[0]):
            x[i] += 1.0

    @numba.njit(cache=True, nogil=True)
    def _query_token_range(part, parts, query_len):  # pragma: no cover
        width = (query_len + parts - 1) // parts
        return min(query_len, part * width), min(query_len, (part + 1) * width)

    @_jit
    def _nb_ivf_union(ivf_positions, ivf_offsets, query_of, centroids, deleted):  # pragma: no cover
        n_docs = deleted.shape[0]
        mark = np.zeros(n_docs, dtype=np.uint8)
        n_pairs = query_of.shape[0]
        # pairs come grouped by query (ascending): collect each query's documents in position order
        out = np.empty(0, dtype=np.int64)
        chunks = []
        start = 0
        while start < n_pairs:
            query = query_of[start]
            stop = start
            count = 0
            while stop < n_pairs and query_of[stop] == query:
                c = centroids[stop]
                for j in range(ivf_offsets[c], ivf_offsets[c + 1]):
                    p = ivf_positions[j]
                    if mark[p] == 0 and not deleted[p]:
                        mark[p] = 1
                        count += 1
                stop += 1
            keys = np.empty(count, dtype=np.int64)
            i = 0
            if count * 8 < n_docs:  # few documents: sort the marked ones instead of scanning
                s = start
                while s < stop:
                    c = centroids[s]
                    for j in range(ivf_offsets[c], ivf_offsets[c + 1]):
                        p = ivf_positions[j]
                        if mark[p] == 1:
                            mark[p] = 2
                            keys[i] = p
                            i += 1
                    s += 1
                keys.sort()
                for j in range(count):
                    mark[keys[j]] = 0
            else:
                for p in range(n_docs):
                    if mark[p]:
                        keys[i] = p
                        i += 1
                        mark[p] = 0
            keys += query * n_docs
            chunks.append(keys)
            start = stop
        total = 0
        for keys in chunks:
            total += keys.shape[0]
        out = np.empty(total, dtype=np.int64)
        i = 0
        for keys in chunks:
            out[i : i + keys.shape[0]] = keys
            i += keys.shape[0]
        return out

    @_parallel_jit
    def _nb_centroid_maxsim(codes, doc_offsets, query_of, positions, table, n_centroids):  # pragma: no cover
        query_len = table.shape[1]
        out = np.zeros(positions.shape[0], dtype=np.float32)
        for i in prange(positions.shape[0]):
            best = np.empty(query_len, dtype=np.float32)
            p = positions[i]
            start, stop = doc_offsets[p], doc_offsets[p + 1]
            if stop == start:
                continue
            base = query_of[i] * n_centroids
            for t in range(query_len):
                best[t] = -np.inf
            for r in range(start, stop):
                row = table[base + codes[r]]
                for t in range(query_len):
                    if row[t] > best[t]:
                        best[t] = row[t]
            total = np.float32(0.0)
            for t in range(query_len):
                if best[t] != -np.inf:
                    total += best[t]
            out[i] = total
        return out

    @_parallel_jit
    def _nb_pruned_centroid_maxsim(
        codes, doc_offsets, query_of, positions, table, kept, floor
    ):  # pragma: no cover
        query_len = table.shape[1]
        n_centroids = kept.shape[1]
        out = np.zeros(positions.shape[0], dtype=np.float32)
        for i in prange(positions.shape[0]):
            best = np.empty(query_len, dtype=np.float32)
            p = positions[i]
            start, stop = doc_offsets[p], doc_offsets[p + 1]
            if stop == start:
                continue
            query = query_of[i]
            keep = kept[query]
            base = query * n_centroids
            for t in range(query_len):
                best[t] = floor
            for r in range(start, stop):
                c = codes[r]
                if keep[c]:
                    row = table[base + c]
                    for t in range(query_len):
                        if row[t] > best[t]:
                            best[t] = row[t]
            total = np.float32(0.0)
            for t in range(query_len):
                total += best[t]
            out[i] = total
        return out

    @_parallel_jit
    def _nb_decompress_docs(
        codes, residuals, doc_offsets, positions, centroids, decode_table, out, offsets
    ):  # pragma: no cover
        dim = centroids.shape[1]
        packed_dim = residuals.shape[1]
        per_byte = decode_table.shape[1]
        for i in prange(positions.shape[0]):
            p = positions[i]
            row = offsets[i]
            for r in range(doc_offsets[p], doc_offsets[p + 1]):
                c = codes[r]
                v = out[row]
                for b in range(packed_dim):
                    values = decode_table[b * 256 + residuals[r, b]]
                    for j in range(per_byte):
                        d = b * per_byte + j
                        v[d] = centroids[c, d] + values[j]
                norm = np.float32(0.0)
                for d in range(dim):
                    norm += v[d] * v[d]
                scale = np.float32(1.0) / max(np.float32(np.sqrt(norm)), np.float32(1e-12))
                for d in range(dim):
                    v[d] *= scale
                row += 1

    @_parallel_jit
    def _nb_segment_maxsim(sims, offsets):  # pragma: no cover
        n = offsets.shape[0] - 1
        q = sims.shape[1]
        out = np.zeros(n, dtype=np.float32)
        for i in prange(n):
            best = np.empty(q, dtype=np.float32)
            start, stop = offsets[i], offsets[i + 1]
            if stop == start:
                continue
            for t in range(q):
                best[t] = sims[start, t]
            for r in range(start + 1, stop):
                for t in range(q):
                    if sims[r, t] > best[t]:
                        best[t] = sims[r, t]
            total = np.float32(0.0)
            for t in range(q):
                total += best[t]
            out[i] = total
        return out

    @_parallel_jit
    def _nb_table_best(table, lengths, n_centroids):  # pragma: no cover
        query_len = table.shape[1]
        n_queries = (table.shape[0] - 1) // n_centroids
        best = np.empty((n_queries, n_centroids), dtype=np.float32)
        for n in range(n_queries):
            length = min(lengths[n], query_len)
            for c in prange(n_centroids):
                row = table[n * n_centroids + c]
                m = -np.inf
                for t in range(length):
                    if row[t] > m:
                        m = row[t]
                best[n, c] = m
        return best

    @_parallel_jit
    def _nb_table_argmax(table, n_centroids, parts):  # pragma: no cover
        query_len = table.shape[1]
        n_queries = (table.shape[0] - 1) // n_centroids
        out = np.zeros((n_queries, query_len), dtype=np.int64)
        for n in range(n_queries):
            base = n * n_centroids
            for part in prange(parts):  # each thread its own range of query tokens
                low, high = _query_token_range(part, parts, query_len)
                best = np.empty(query_len, dtype=np.float32)
                for t in range(low, high):
                    best[t] = table[base, t]
                for c in range(1, n_centroids):
                    row = table[base + c]
                    for t in range(low, high):
                        if row[t] > best[t]:  # strictly: the first best centroid wins ties
                            best[t] = row[t]
                            out[n, t] = c
        return out

    @_jit
    def _nb_probed_lists(top, n_probe, lengths, n_centroids):  # pragma: no cover
        n_queries, query_len, width = top.shape
        mark = np.zeros(n_centroids, dtype=np.uint8)
        query_of = np.empty(n_queries * query_len * width, dtype=np.int64)
        probed = np.empty(n_queries * query_len * width, dtype=np.int64)
        count = 0
        for n in range(n_queries):
            first = count
            for t in range(min(lengths[n], query_len)):
                for j in range(min(n_probe[n], width)):
                    c = top[n, t, j]
                    if mark[c] == 0:
                        mark[c] = 1
                        probed[count] = c
                        count += 1
            probed[first:count].sort()
            for i in range(first, count):
                mark[probed[i]] = 0
                query_of[i] = n
        return query_of[:count].copy(), probed[:count].copy()

    @_jit
    def _nb_keep_best(groups, scores, keep, n_groups):  # pragma: no cover
        n = scores.shape[0]
        order = np.argsort(-scores, kind="mergesort")  # stable: ties keep their input order
        counts = np.zeros(n_groups + 1, dtype=np.int64)
        for i in range(n):
            counts[groups[i] + 1] += 1
        starts = np.cumsum(counts)
        fill = starts[:-1].copy()
        by_group = np.empty(n, dtype=np.int64)
        for i in order:
            g = groups[i]
            by_group[fill[g]] = i
            fill[g] += 1
        total = 0
        for g in range(n_groups):
            total += min(keep, starts[g + 1] - starts[g])
        out = np.empty(total, dtype=np.int64)
        i = 0
        for g in range(n_groups):
            take = min(keep, starts[g + 1] - starts[g])
            out[i : i + take] = by_group[starts[g] : starts[g] + take]
            i += take
        return out

    @_parallel_jit
    def _nb_residual_rows(residuals, doc_offsets, positions, out, offsets):  # pragma: no cover
        packed = residuals.shape[1]
        for i in prange(positions.shape[0]):
            p = positions[i]
            row = offsets[i]
            for r in range(doc_offsets[p], doc_offsets[p + 1]):
                res = residuals[r]
                v = out[row]
                for b in range(packed):
                    v[b] = b * 256 + res[b]
                row += 1

    @_parallel_jit
    def _nb_residual_maxsim(
        codes, doc_offsets, positions, sims, offsets, table, base, norms
    ):  # pragma: no cover
        query_len = table.shape[1]
        out = np.zeros(positions.shape[0], dtype=np.float32)
        for i in prange(positions.shape[0]):
            best = np.empty(query_len, dtype=np.float32)
            first, stop = offsets[i], offsets[i + 1]
            if stop == first:
                continue
            start = doc_offsets[positions[i]]
            for t in range(query_len):
                best[t] = -np.inf
            for k in range(stop - first):
                r = start + k
                row = table[base + codes[r]]  # q . centroid
                residual = sims[first + k]  # q . residual
                scale = norms[r]
                for t in range(query_len):
                    s = (row[t] + residual[t]) * scale
                    best[t] = s if s > best[t] else best[t]
            total = np.float32(0.0)
            for t in range(query_len):
                total += best[t]
            out[i] = total
        return out

    @_parallel_jit
    def _nb_listed_pruned_maxsim(
        ivf_positions, ivf_offsets, doc_offsets, query_of, positions, table, kept, floor, parts
    ):  # pragma: no cover
        n_docs = doc_offsets.shape[0] - 1
        query_len = table.shape[1]
        n_queries, n_centroids = kept.shape
        n_pairs = positions.shape[0]
        out = np.zeros(n_pairs, dtype=np.float32)
        # pairs by query (counting sort, stable)
        counts = np.zeros(n_queries + 1, dtype=np.int64)
        for i in range(n_pairs):
            counts[query_of[i] + 1] += 1
        starts = np.cumsum(counts)
        fill = starts[:-1].copy()
        by_query = np.empty(n_pairs, dtype=np.int64)
        for i in range(n_pairs):
            by_query[fill[query_of[i]]] = i
            fill[query_of[i]] += 1
        slot = np.full(n_docs, -1, dtype=np.int64)
        # one table of best scores per part: each part walks its own share of the kept centroids' lists
        bests = np.empty((parts, max(1, n_pairs), query_len), dtype=np.float32)
        for query in range(n_queries):
            first, stop = starts[query], starts[query + 1]
            if first == stop:
                continue
            n_slots = 0
            for k in range(first, stop):
                p = positions[by_query[k]]
                if slot[p] < 0:
                    slot[p] = n_slots
                    n_slots += 1
            keep = kept[query]
            base = query * n_centroids
            for part in prange(parts):
                best = bests[part]
                for s in range(n_slots):
                    for t in range(query_len):
                        best[s, t] = floor
                for c in range(part, n_centroids, parts):
                    if not keep[c]:
                        continue
                    row = table[base + c]
                    for j in range(ivf_offsets[c], ivf_offsets[c + 1]):
                        s = slot[ivf_positions[j]]
                        if s >= 0:
                            b = best[s]
                            for t in range(query_len):
                                b[t] = row[t] if row[t] > b[t] else b[t]
            for k in range(first, stop):
                i = by_query[k]
                p = positions[i]
                if doc_offsets[p + 1] > doc_offsets[p]:  # a document without tokens scores 0
                    s = slot[p]
                    total = np.float32(0.0)
                    for t in range(query_len):
                        m = bests[0, s, t]
                        for part in range(1, parts):  # a max: the same float whatever the split
                            m = bests[part, s, t] if bests[part, s, t] > m else m
                        total += m
                    out[i] = total
            for k in range(first, stop):
                slot[positions[by_query[k]]] = -1
        return out

    @_parallel_jit
    def _nb_inverse_norms(codes, residuals, centroids, decode_table, out):  # pragma: no cover
        packed = residuals.shape[1]
        per_byte = decode_table.shape[1]
        for r in prange(codes.shape[0]):
            c = codes[r]
            norm = np.float32(0.0)
            for b in range(packed):
                values = decode_table[b * 256 + residuals[r, b]]
                for j in range(per_byte):
                    x = centroids[c, b * per_byte + j] + values[j]
                    norm += x * x
            out[r] = np.float32(1.0) / max(np.float32(np.sqrt(norm)), np.float32(1e-12))

    @_parallel_jit
    def _nb_rescore_nearest(
        approx, window_best, thresholds, vectors, centroids, margins, codes, best, ambiguous
    ):  # pragma: no cover
        rows, n_windows = window_best.shape
        width = approx.shape[1] // n_windows
        dim = vectors.shape[1]
        for i in prange(rows):
            top = -np.inf
            second = -np.inf
            code = -1
            for w in range(n_windows):
                if window_best[i, w] < thresholds[i]:
                    continue
                for j in range(w * width, (w + 1) * width):
                    if approx[i, j] >= thresholds[i]:
                        s = np.float32(0.0)
                        for t in range(dim):
                            s += vectors[i, t] * centroids[j, t]
                        if s > top:  # strictly: the first of tied centroids wins
                            second = top
                            top = s
                            code = j
                        elif s > second:
                            second = s
            codes[i] = code
            best[i] = top
            ambiguous[i] = second >= top - margins[i]


# ====================================================================== the kernels


def ivf_union(
    ivf_positions: torch.Tensor,
    ivf_offsets: torch.Tensor,
    query_of: torch.Tensor,
    centroids: torch.Tensor,
    deleted: torch.Tensor,
) -> torch.Tensor:
    """Sorted keys ``query * n_docs + position`` of the live documents listed under the probed
    ``(query_of[i], centroids[i])`` pairs (sorted by query, distinct); ``n_docs = len(deleted)``."""
    if not enabled(ivf_positions.device):
        return _torch_ivf_union(ivf_positions, ivf_offsets, query_of, centroids, deleted)
    keys = _nb_ivf_union(_np(ivf_positions), _np(ivf_offsets), _np(query_of), _np(centroids), _np(deleted))
    return torch.from_numpy(keys)


def centroid_maxsim(
    codes: torch.Tensor,
    doc_offsets: torch.Tensor,
    query_of: torch.Tensor,
    positions: torch.Tensor,
    table: torch.Tensor,
    n_centroids: int,
) -> torch.Tensor:
    """``[n_pairs]`` MaxSim of pair ``(query_of[i], positions[i])`` with each document token replaced by
    its centroid's scores: row ``query * n_centroids + code`` of ``table`` (``[nq * C + 1, q]``, last
    row ``-inf``). A document without tokens scores 0."""
    if not enabled(codes.device):
        return _torch_centroid_maxsim(codes, doc_offsets, query_of, positions, table, n_centroids)
    out = launch(
        _nb_centroid_maxsim,
        _np(codes),
        _np(doc_offsets),
        _np(query_of),
        _np(positions),
        _np(table),
        n_centroids,
    )
    return torch.from_numpy(out)


def pruned_centroid_maxsim(
    codes: torch.Tensor,
    doc_offsets: torch.Tensor,
    query_of: torch.Tensor,
    positions: torch.Tensor,
    table: torch.Tensor,
    kept: torch.Tensor,
    floor: float,
) -> torch.Tensor:
    """:func:`centroid_maxsim` over the tokens whose centroid is ``kept[query]`` (``[nq, C]`` bool);
    each query token's best starts at ``floor``, so a pair with no kept token scores ``floor * q``."""
    if not enabled(codes.device):
        return _torch_pruned_centroid_maxsim(codes, doc_offsets, query_of, positions, table, kept, floor)
    out = launch(
        _nb_pruned_centroid_maxsim,
        _np(codes),
        _np(doc_offsets),
        _np(query_of),
        _np(positions),
        _np(table),
        _np(kept),
        np.float32(floor),
    )
    return torch.from_numpy(out)


def listed_pruned_maxsim(
    ivf_positions: torch.Tensor,
    ivf_offsets: torch.Tensor,
    doc_offsets: torch.Tensor,
    query_of: torch.Tensor,
    positions: torch.Tensor,
    table: torch.Tensor,
    kept: torch.Tensor,
    floor: float,
    codes: torch.Tensor,
) -> torch.Tensor:
    """:func:`pruned_centroid_maxsim` read from exact inverted lists instead of the tokens: a
    document's best score for a query token over its tokens of kept centroids is the best over the
    kept centroids whose list holds the document, so only the lists of kept centroids are walked
    (max is exact in any order: the same scores). ``codes`` serve the torch reference, which is
    :func:`pruned_centroid_maxsim` itself."""
    if not fused(codes.device):
        return _torch_pruned_centroid_maxsim(codes, doc_offsets, query_of, positions, table, kept, floor)
    out = launch(
        _nb_listed_pruned_maxsim,
        _np(ivf_positions),
        _np(ivf_offsets),
        _np(doc_offsets),
        _np(query_of.long()),
        _np(positions.long()),
        _np(table),
        _np(kept),
        np.float32(floor),
        parallel_threads(),
    )
    return torch.from_numpy(out)


def decompress_docs(
    codes: torch.Tensor,
    residuals: torch.Tensor,
    doc_offsets: torch.Tensor,
    positions: torch.Tensor,
    centroids: torch.Tensor,
    decode_table: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The vectors of the documents at ``positions``, packed ``[tokens, dim]`` float32, and their
    ``[n + 1]`` offsets: ``normalize(centroids[code] + residual values)``, the residual values read from
    ``decode_table[byte_position * 256 + byte]`` (:attr:`ResidualCodec.decode_table`)."""
    if not enabled(codes.device):
        return _torch_decompress_docs(codes, residuals, doc_offsets, positions, centroids, decode_table)
    positions_np, offsets_np = _np(positions.long()), _np(doc_offsets)
    offsets = _row_offsets(offsets_np, positions_np)
    out = np.empty((int(offsets[-1]), centroids.shape[1]), dtype=np.float32)
    launch(
        _nb_decompress_docs,
        _np(codes),
        _np(residuals),
        offsets_np,
        positions_np,
        _np(centroids),
        _np(decode_table),
        out,
        offsets,
    )
    return torch.from_numpy(out), torch.from_numpy(offsets)


def _row_offsets(doc_offsets: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``[n + 1]`` where the rows of the documents at ``positions`` start and end when packed."""
    offsets = np.zeros(positions.shape[0] + 1, dtype=np.int64)
    np.cumsum(doc_offsets[positions + 1] - doc_offsets[positions], out=offsets[1:])
    return offsets


def segment_maxsim(sims: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """``[n]`` for token × query-token similarities ``sims`` ``[tokens, q]`` cut into documents by
    ``offsets``: each document's sum over query tokens of its best token (0 for an empty document)."""
    if not enabled(sims.device):
        return _torch_segment_maxsim(sims, offsets)
    return torch.from_numpy(launch(_nb_segment_maxsim, _np(sims.float()), _np(offsets)))


def table_best(table: torch.Tensor, lengths: torch.Tensor, n_centroids: int) -> torch.Tensor:
    """``[nq, C]`` each centroid's best score against a query's first ``lengths[query]`` tokens
    (``-inf`` for a query without tokens), read from a score table ``[nq * C + 1, q]`` whose row
    ``query * C + centroid`` holds that centroid's score for every query token."""
    if not fused(table.device):
        return _torch_table_best(table, lengths, n_centroids)
    return torch.from_numpy(launch(_nb_table_best, _np(table), _np(lengths.long()), int(n_centroids)))


def table_argmax(table: torch.Tensor, n_centroids: int) -> torch.Tensor:
    """``[nq, q]`` each query token's best centroid (the first on ties) in a score table as for
    :func:`table_best`."""
    if not fused(table.device):
        return _torch_table_argmax(table, n_centroids)
    return torch.from_numpy(launch(_nb_table_argmax, _np(table), int(n_centroids), parallel_threads()))


def probed_lists(
    top: torch.Tensor, n_probe: torch.Tensor, lengths: torch.Tensor, n_centroids: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct probed ``(query, centroid)`` pairs, sorted, from each token's best centroids
    ``top`` ``[nq, q, width]``: the first ``n_probe[query]`` of the first ``lengths[query]`` tokens."""
    if not fused(top.device):
        return _torch_probed_lists(top, n_probe, lengths, n_centroids)
    query_of, probed = _nb_probed_lists(
        _np(top.long()), _np(n_probe.long()), _np(lengths.long()), n_centroids
    )
    return torch.from_numpy(query_of), torch.from_numpy(probed)


def keep_best(groups: torch.Tensor, scores: torch.Tensor, keep: int, n_groups: int) -> torch.Tensor:
    """Indices of the ``keep`` best scores of every group, ordered by group then score (best first);
    ties keep their input order."""
    if not fused(scores.device) or groups.numel() == 0:
        return _torch_keep_best(groups, scores, keep, n_groups)
    return torch.from_numpy(_nb_keep_best(_np(groups.long()), _np(scores.float()), int(keep), int(n_groups)))


def inverse_norms(
    codes: torch.Tensor, residuals: torch.Tensor, centroids: torch.Tensor, decode_table: torch.Tensor
) -> torch.Tensor:
    """``[n_tokens]`` float32 ``1 / |centroids[code] + residual values|`` (at most ``1e12``): what
    decompression divides each rebuilt vector by."""
    if not fused(codes.device):
        approx = centroids.index_select(0, codes.long()) + decode_table.index_select(
            0, (residuals.long() + torch.arange(residuals.shape[1], device=codes.device) * 256).flatten()
        ).view(codes.shape[0], -1)
        return 1.0 / approx.norm(dim=1).clamp_min(1e-12)
    out = np.empty(codes.shape[0], dtype=np.float32)
    launch(
        _nb_inverse_norms, _np(codes), _np(residuals), _np(centroids.float()), _np(decode_table.float()), out
    )
    return torch.from_numpy(out)


def residual_rows(
    residuals: torch.Tensor, doc_offsets: torch.Tensor, positions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The residuals of the documents at ``positions`` as rows of a residual score table, packed
    ``[tokens, packed_dim]`` int32 (byte ``b`` of a token becomes ``b * 256 + byte``: the row of
    :meth:`~lirlab.index.codec.ResidualCodec.residual_score_table` and of ``decode_table`` it selects),
    and their ``[n + 1]`` offsets."""
    if not fused(residuals.device):
        return _torch_residual_rows(residuals, doc_offsets, positions)
    positions_np, offsets_np = _np(positions.long()), _np(doc_offsets)
    offsets = _row_offsets(offsets_np, positions_np)
    out = np.empty((int(offsets[-1]), residuals.shape[1]), dtype=np.int32)
    launch(_nb_residual_rows, _np(residuals), offsets_np, positions_np, out, offsets)
    return torch.from_numpy(out), torch.from_numpy(offsets)


def residual_maxsim(
    codes: torch.Tensor,
    doc_offsets: torch.Tensor,
    positions: torch.Tensor,
    sims: torch.Tensor,
    offsets: torch.Tensor,
    table: torch.Tensor,
    base: int,
    norms: torch.Tensor,
) -> torch.Tensor:
    """``[n]`` exact MaxSim of one query against the documents at ``positions`` from the two halves of
    the dot product with ``normalize(centroid + residual)``: token ``r`` of a document scores
    ``(table[base + codes[r]] + sims[row]) * norms[r]``, where ``table`` rows hold the query's centroid
    scores (``base = query * C``), ``sims`` ``[rows, q]`` the residual parts (the documents' decoded
    residuals times the query, or their :func:`residual_rows` of the query's residual score table,
    summed), cut by ``offsets``, and ``norms`` each token's
    :func:`inverse_norms`. A document without tokens scores 0."""
    if not fused(codes.device):
        return _torch_residual_maxsim(codes, doc_offsets, positions, sims, offsets, table, base, norms)
    out = launch(
        _nb_residual_maxsim,
        _np(codes),
        _np(doc_offsets),
        _np(positions.long()),
        _np(sims.float()),
        _np(offsets),
        _np(table),
        int(base),
        _np(norms),
    )
    return torch.from_numpy(out)


def rescore_nearest(
    approx: torch.Tensor,
    window_best: torch.Tensor,
    thresholds: torch.Tensor,
    vectors: torch.Tensor,
    centroids: torch.Tensor,
    margins: torch.Tensor,
    codes: torch.Tensor,
    best: torch.Tensor,
) -> torch.Tensor:
    """Nearest centroids of ``vectors`` ``[r, dim]`` among those whose approximate score ``approx``
    ``[r, C]`` (int32) reaches the row's ``thresholds``, scored exactly in float32 (the first of
    tied centroids wins), into ``codes`` and ``best``; ``window_best`` ``[r, C / width]`` holds each
    window of columns' largest approximate score, so windows below the threshold are skipped. Returns
    ``[r]`` bool: rows whose runner-up scored within ``margins`` of the best, where another float32
    summation order could choose differently (numba only: :func:`lirlab.index.kmeans.nearest_by_int8`
    calls it when :func:`enabled`)."""
    ambiguous = np.zeros(vectors.shape[0], dtype=np.bool_)
    launch(
        _nb_rescore_nearest,
        _np(approx),
        _np(window_best),
        _np(thresholds),
        _np(vectors),
        _np(centroids),
        _np(margins),
        _np(codes),
        _np(best),
        ambiguous,
    )
    return torch.from_numpy(ambiguous)
