"""The compute kernels under PLAID's stages, written for any engine that reads a residual-compressed
index (PLAID here; a WARP-style engine reads the same codec, codes, residuals and IVF).

Every kernel exists twice with one signature: a numba version (compiled for the machine it runs on,
cached on disk, single-threaded, nothing assumed beyond what LLVM finds on the CPU) and a pure-torch
reference, the previous implementation. The numba versions run on CPU tensors when numba is installed
and not disabled (environment ``LIRLAB_NUMBA=0``, or :func:`use_numba`); otherwise, and always for CUDA
tensors, the torch references run. ``tests/test_plaid_kernels.py`` pins each against its reference.

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

import os
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
    global NUMBA
    before = NUMBA
    if on and numba is None:
        raise ValueError("numba is not installed: pip install numba (the torch kernels run without it)")
    NUMBA = on
    try:
        yield
    finally:
        NUMBA = before


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


# ====================================================================== numba kernels

if numba is not None:
    _jit = numba.njit(cache=True, nogil=True, fastmath=False, error_model="numpy")

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

    @_jit
    def _nb_centroid_maxsim(codes, doc_offsets, query_of, positions, table, n_centroids):  # pragma: no cover
        query_len = table.shape[1]
        out = np.zeros(positions.shape[0], dtype=np.float32)
        best = np.empty(query_len, dtype=np.float32)
        for i in range(positions.shape[0]):
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

    @_jit
    def _nb_pruned_centroid_maxsim(
        codes, doc_offsets, query_of, positions, table, kept, floor
    ):  # pragma: no cover
        query_len = table.shape[1]
        n_centroids = kept.shape[1]
        out = np.zeros(positions.shape[0], dtype=np.float32)
        best = np.empty(query_len, dtype=np.float32)
        for i in range(positions.shape[0]):
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

    @_jit
    def _nb_decompress_docs(
        codes, residuals, doc_offsets, positions, centroids, decode_table, out, offsets
    ):  # pragma: no cover
        dim = centroids.shape[1]
        packed_dim = residuals.shape[1]
        per_byte = decode_table.shape[1]
        row = 0
        offsets[0] = 0
        for i in range(positions.shape[0]):
            p = positions[i]
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
            offsets[i + 1] = row

    @_jit
    def _nb_segment_maxsim(sims, offsets):  # pragma: no cover
        n = offsets.shape[0] - 1
        q = sims.shape[1]
        out = np.zeros(n, dtype=np.float32)
        best = np.empty(q, dtype=np.float32)
        for i in range(n):
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
    out = _nb_centroid_maxsim(
        _np(codes), _np(doc_offsets), _np(query_of), _np(positions), _np(table), n_centroids
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
    out = _nb_pruned_centroid_maxsim(
        _np(codes), _np(doc_offsets), _np(query_of), _np(positions), _np(table), _np(kept), np.float32(floor)
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
    positions_np, offsets_np = _np(positions), _np(doc_offsets)
    n_rows = int((offsets_np[positions_np + 1] - offsets_np[positions_np]).sum())
    out = np.empty((n_rows, centroids.shape[1]), dtype=np.float32)
    offsets = np.empty(positions_np.shape[0] + 1, dtype=np.int64)
    _nb_decompress_docs(
        _np(codes), _np(residuals), offsets_np, positions_np, _np(centroids), _np(decode_table), out, offsets
    )
    return torch.from_numpy(out), torch.from_numpy(offsets)


def segment_maxsim(sims: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """``[n]`` for token × query-token similarities ``sims`` ``[tokens, q]`` cut into documents by
    ``offsets``: each document's sum over query tokens of its best token (0 for an empty document)."""
    if not enabled(sims.device):
        return _torch_segment_maxsim(sims, offsets)
    return torch.from_numpy(_nb_segment_maxsim(_np(sims.float()), _np(offsets)))
