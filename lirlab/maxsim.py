"""Exact MaxSim scoring.

``score(q, d) = sum_i max_j <q_i, d_j>`` over the query's token vectors ``q_i`` and the document's
token vectors ``d_j`` (all L2-normalized, so the dot product is the cosine).

Two kernels, the same arithmetic:

* :class:`LengthGroupedDocs` for exhaustive search. Documents are stored packed but ordered by length,
  so every run of equal-length documents is a dense ``[n, L, dim]`` block: one matrix multiply and one
  ``amax`` per block, no padding, bounded memory (blocks are cut at ``chunk_tokens``).
* :func:`maxsim_pairs` for (query, candidate) pairs (PLAID's last stage, re-ranking): pad, mask, reduce.

Zero query vectors contribute exactly 0, so queries of different lengths are zero-padded to a batch.

Examples
--------
>>> import torch
>>> q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
>>> d = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
>>> round(float(maxsim_pair(q, d)), 4)
1.8
>>> ex = explain(q, d)
>>> ex.best_doc_token.tolist(), [round(c, 2) for c in ex.contributions.tolist()]
([0, 1], [1.0, 0.8])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from lirlab.encoding import Encoding, offsets_from_lengths
from lirlab.int8_products import RIGHT_LEVELS, as_uint8, check_route, int8_max_over_rows, int8_route


def maxsim_pair(query: torch.Tensor, doc: torch.Tensor) -> torch.Tensor:
    """MaxSim of one query ``[q, dim]`` against one document ``[d, dim]`` (0 for an empty document)."""
    if doc.shape[0] == 0:
        return torch.zeros((), dtype=torch.float32, device=query.device)
    return (query.float() @ doc.float().T).amax(dim=1).sum()


def pad_queries(queries: Encoding) -> torch.Tensor:
    """``[n_queries, max_len, dim]`` with zero rows after each query's last token (exact for MaxSim)."""
    return pad_packed(queries.vectors, queries.lengths)[0]


def pad_packed(vectors: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Packed ``[total, dim]`` rows → ``([n, max_len, dim]`` zero-padded, ``[n, max_len]`` bool mask)."""
    lengths = lengths.to(device=vectors.device, dtype=torch.long)
    n = lengths.shape[0]
    max_len = int(lengths.max()) if n else 0
    mask = torch.arange(max_len, device=vectors.device).unsqueeze(0) < lengths.unsqueeze(1)
    padded = vectors.new_zeros(n, max_len, vectors.shape[1])
    padded[mask] = vectors
    return padded, mask


def maxsim_pairs(
    queries: torch.Tensor,
    docs: torch.Tensor,
    doc_mask: torch.Tensor,
    query_of: torch.Tensor,
    doc_of: torch.Tensor,
) -> torch.Tensor:
    """MaxSim of (query, document) pairs: ``[n_pairs]`` scores, pair ``i`` being query ``query_of[i]``
    of the zero-padded ``queries`` ``[nq, q, dim]`` against document ``doc_of[i]`` of the padded ``docs``
    ``[nd, L, dim]`` (``doc_mask`` ``[nd, L]`` marks real tokens).

    The kernel of PLAID's last stage and of re-ranking: one batched multiply of the pairs' matrices.
    Padding positions of ``docs`` never win the max; a document with no tokens scores 0.

    >>> q = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    >>> d = torch.tensor([[[0.6, 0.8], [1.0, 0.0]], [[0.0, 1.0], [9.0, 9.0]]])
    >>> mask = torch.tensor([[True, True], [True, False]])
    >>> maxsim_pairs(q, d, mask, torch.tensor([0, 0]), torch.tensor([0, 1])).tolist()
    [1.0, 0.0]
    """
    if query_of.numel() == 0 or docs.shape[1] == 0:
        return torch.zeros(query_of.numel(), device=queries.device)
    sims = torch.bmm(docs[doc_of], queries[query_of].transpose(1, 2).to(docs.dtype))  # [pairs, L, q]
    best = sims.masked_fill_(~doc_mask[doc_of].unsqueeze(2), float("-inf")).amax(dim=1)
    return best.masked_fill_(best == float("-inf"), 0.0).float().sum(dim=1)


def maxsim_candidates(
    query: torch.Tensor, vectors: torch.Tensor, lengths: torch.Tensor, batch_docs: int = 512
) -> torch.Tensor:
    """MaxSim of one query ``[q, dim]`` against packed candidate documents; returns ``[n_docs]``."""
    scores = []
    offsets = offsets_from_lengths(lengths).tolist()
    queries = query.unsqueeze(0)
    for start in range(0, lengths.shape[0], batch_docs):
        stop = min(start + batch_docs, lengths.shape[0])
        docs, mask = pad_packed(vectors[offsets[start] : offsets[stop]], lengths[start:stop])
        doc_of = torch.arange(stop - start, device=docs.device)
        scores.append(maxsim_pairs(queries, docs, mask, torch.zeros_like(doc_of), doc_of))
    return torch.cat(scores) if scores else torch.zeros(0, device=query.device)


FIRST_PASSES = ("auto", "int8", "int8-torch", "int8-onnxruntime", "none")
FP32_UNIT_ROUNDOFF = 2.0**-24
INT8_LEVELS = 127
AUTO_FIRST_PASS_MIN_TOKENS = 1 << 16
QUERY_ROWS_AT_ONCE = 256  # 8 queries of 32 tokens: 8 MiB of similarities per 8,192-row block
RESCORE_ALL_ABOVE = 1 / 8  # of the documents: past this, scoring them all in blocks is faster
RESCORE_DOCS_AT_ONCE = 256  # 256 documents of 180 tokens: 23 MiB of gathered fp32 rows at 128 dims
#: Rows per int8 block, in units of ``chunk_tokens``: ONNX Runtime's calls cost about 30 us each, and
#: 16,384-row blocks were measured 7% faster than 8,192 on a 2-core AMD Zen 3.
INT8_BLOCK_FACTOR = {"torch": 1, "onnxruntime": 2}


def first_pass_route(first_pass: str, device: torch.device, dtype: torch.dtype, n_rows: int) -> str | None:
    """The int8 route (:data:`lirlab.int8_products.ROUTES`) a ``first_pass`` setting takes, or ``None``.

    ``"int8"`` takes this CPU's fastest route (torch's where neither is fast); ``"int8-<route>"`` forces
    one; ``"auto"`` takes the fastest route for float32 vectors of at least 65,536 rows on a CPU that
    has one (:func:`~lirlab.int8_products.int8_route`), and none otherwise.
    """
    if first_pass not in FIRST_PASSES:
        raise ValueError(f"first_pass must be one of {', '.join(FIRST_PASSES)}, got {first_pass!r}")
    if first_pass == "none":
        return None
    if first_pass != "auto" and device.type != "cpu":
        raise ValueError(
            f"first_pass={first_pass!r} runs on the CPU only; on {device.type} use 'auto' or 'none'"
        )
    if first_pass == "auto":
        wanted = device.type == "cpu" and dtype == torch.float32 and n_rows >= AUTO_FIRST_PASS_MIN_TOKENS
        return int8_route() if wanted else None
    route = first_pass.removeprefix("int8-") if first_pass != "int8" else int8_route() or "torch"
    check_route(route)
    return route


def _gamma(n: int, unit_roundoff: float) -> float:
    """Relative error bound of ``n`` rounded additions (Higham's gamma_n)."""
    return n * unit_roundoff / (1 - n * unit_roundoff)


def quantize_rows(
    vectors: torch.Tensor, groups: torch.Tensor, n_groups: int, levels: int = INT8_LEVELS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 rounding with one step per group of rows: ``(int8 rows, step per group)``.

    ``vectors ~ int8 * step[groups]`` with values within ``±levels``; a group of zeros (or with no
    rows) gets step 1.

    >>> q, step = quantize_rows(torch.tensor([[0.5, -0.25], [0.1, 0.0], [0.0, 0.0]]), torch.tensor([0, 0, 1]), 2)
    >>> q.tolist(), [round(x, 6) for x in step.tolist()]
    ([[127, -64], [25, 0], [0, 0]], [0.003937, 1.0])
    """
    peak = torch.zeros(n_groups, device=vectors.device).scatter_reduce_(
        0, groups, vectors.abs().amax(dim=1).float(), "amax"
    )
    step = torch.where(peak > 0, peak / levels, torch.ones_like(peak))
    quantized = torch.round(vectors.float() / step[groups, None]).clamp_(-levels, levels)
    return quantized.to(torch.int8), step


class LengthGroupedDocs:
    """Documents laid out for exhaustive MaxSim.

    Documents are ordered by length and padded to a multiple of ``bucket`` tokens by repeating their
    last vector, which never changes a maximum; every run of equal padded length is cut into dense
    ``[n, L, dim]`` blocks of at most ``chunk_tokens`` rows, so one query costs one multiply and one
    ``amax`` per block and the block's similarities stay in cache.

    Top-k search (:meth:`top_k`) can run an int8 first pass over every document with a proven bound
    on its error, then score in fp32 only the documents whose bound can still reach the top k: the
    results are those of fp32 MaxSim (same documents, scores to float tolerance). Documents are
    rounded to int8 with one step per document, query tokens with one step each (``d~``/``q~`` the
    roundings); int8 products summed in int32 are exact, so ``a_id = max_j q~_i.d~_j`` carries input
    rounding only, and per query token ``i`` and document ``d``::

        |max_j q_i.d_j - a_id| <= |q~_i| E_d + e_i N_d + e_i E_d

    with ``e_i = |q_i - q~_i|``, ``E_d = max_j |d_j - d~_j|`` and ``N_d = max_j |d~_j|`` (Cauchy-Schwarz
    on ``q.d - q~.d~ = q~.(d - d~) + (q - q~).d~ + (q - q~).(d - d~)``); fp32 rounding of the reference
    scores (gamma_dim, gamma_qlen) and of the bound itself are added. The int8 copy is a quarter of the
    fp32 vectors' memory, and its pass reads a quarter of the bytes.

    Parameters
    ----------
    vectors : torch.Tensor
        Packed ``[total_tokens, dim]`` token vectors in document order.
    lengths : torch.Tensor
        ``[n_docs]`` token counts.
    chunk_tokens : int
        Upper bound on the document rows multiplied at once (8192 rows, a 1 MiB block of similarities
        for a 32-token query, measured fastest on a 2-core CPU).
    device, dtype :
        Where and in which precision the vectors are kept (fp16/bf16 halve memory on GPU).
    bucket : int
        Padded lengths are multiples of this (fewer, larger blocks against at most ``bucket - 1``
        repeated rows per document).
    first_pass : {"auto", "int8", "int8-torch", "int8-onnxruntime", "none"}
        Whether to keep an int8 copy of the vectors for :meth:`top_k`'s first pass, and which int8
        route multiplies it (:func:`first_pass_route`): ``"auto"`` on CPUs with a route faster than
        float32, for fp32 vectors of at least 65,536 tokens; ``"int8"`` always, by this CPU's fastest
        route; ``"int8-torch"`` or ``"int8-onnxruntime"`` by that route; ``"none"`` never. The route
        taken is :attr:`int8_route`.
    """

    def __init__(
        self,
        vectors: torch.Tensor,
        lengths: torch.Tensor,
        chunk_tokens: int = 8192,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        bucket: int = 8,
        first_pass: str = "auto",
    ):
        device = torch.device(device) if device is not None else vectors.device
        route = first_pass_route(first_pass, device, dtype or vectors.dtype, int(vectors.shape[0]))
        lengths = lengths.to(torch.long).cpu()
        self.n_docs = int(lengths.shape[0])
        self.dim = int(vectors.shape[1])
        order = torch.argsort(lengths, stable=True)
        sorted_lengths = lengths[order]
        padded = (sorted_lengths + bucket - 1) // bucket * bucket
        first_rows = offsets_from_lengths(lengths)[order]
        within = torch.arange(int(padded.sum())) - torch.repeat_interleave(
            offsets_from_lengths(padded)[:-1], padded
        )
        last = torch.repeat_interleave(sorted_lengths - 1, padded)
        rows = torch.repeat_interleave(first_rows, padded) + torch.minimum(within, last)
        self.vectors = (
            vectors[rows.to(vectors.device)].to(device=device, dtype=dtype or vectors.dtype).contiguous()
        )
        self.order = order.to(device)
        self.blocks = _blocks(padded.tolist(), chunk_tokens)
        self.block_of_doc = torch.full((self.n_docs,), -1, dtype=torch.long, device=self.device)
        for b, (first_doc, n, _, _) in enumerate(self.blocks):
            self.block_of_doc[first_doc : first_doc + n] = b
        self.block_table = torch.tensor(self.blocks, dtype=torch.long, device=self.device).view(-1, 4)
        self.quantized = None
        self.int8_route = route
        if route is not None:
            self.int8_blocks = _blocks(padded.tolist(), chunk_tokens * INT8_BLOCK_FACTOR[route])
            self._keep_int8_copy(padded.to(self.device))

    def _keep_int8_copy(self, padded: torch.Tensor, rows_at_once: int = 1 << 16) -> None:
        doc_of_row = torch.repeat_interleave(torch.arange(self.n_docs, device=self.device), padded)
        self.quantized, self.doc_step = quantize_rows(self.vectors, doc_of_row, self.n_docs)
        self.rounding_error = torch.zeros(self.n_docs, device=self.device)
        self.rounded_norm = torch.zeros(self.n_docs, device=self.device)
        for start in range(0, self.vectors.shape[0], rows_at_once):
            docs = doc_of_row[start : start + rows_at_once]
            rounded = self.quantized[start : start + rows_at_once].float() * self.doc_step[docs, None]
            error = torch.linalg.vector_norm(
                self.vectors[start : start + rows_at_once].float() - rounded, dim=1
            )
            self.rounding_error.scatter_reduce_(0, docs, error, "amax")
            self.rounded_norm.scatter_reduce_(0, docs, torch.linalg.vector_norm(rounded, dim=1), "amax")
        if self.int8_route == "onnxruntime":
            self.quantized = as_uint8(self.quantized)

    @property
    def device(self) -> torch.device:
        return self.vectors.device

    def _token_maxima(self, queries: torch.Tensor) -> torch.Tensor:
        """``[n_docs, rows of queries]`` fp32: each query row's best product in each (sorted) document.

        Query rows are taken ``QUERY_ROWS_AT_ONCE`` at a time, so a block's similarities stay in cache
        for a batch of queries too."""
        rows = queries.shape[0]
        maxima = torch.zeros(self.n_docs, rows, device=self.device)
        for group in range(0, rows, QUERY_ROWS_AT_ONCE):
            transposed = queries[group : group + QUERY_ROWS_AT_ONCE].T.contiguous()
            width = transposed.shape[1]
            for first_doc, n, length, first_row in self.blocks:
                block = self.vectors[first_row : first_row + n * length] @ transposed
                torch.amax(
                    block.float().view(n, length, width),
                    dim=1,
                    out=maxima[first_doc : first_doc + n, group : group + width],
                )
        return maxima

    def _int8_token_maxima(self, queries: torch.Tensor) -> torch.Tensor:
        """:meth:`_token_maxima` of int8 queries against the int8 copy: exact int32 products."""
        rows = queries.shape[0]
        maxima = torch.zeros(self.n_docs, rows, device=self.device, dtype=torch.int32)
        for group in range(0, rows, QUERY_ROWS_AT_ONCE):
            transposed = queries[group : group + QUERY_ROWS_AT_ONCE].T.contiguous()
            width = transposed.shape[1]
            for first_doc, n, length, first_row in self.int8_blocks:
                int8_max_over_rows(
                    self.quantized[first_row : first_row + n * length],
                    transposed,
                    n,
                    length,
                    self.int8_route,
                    out=maxima[first_doc : first_doc + n, group : group + width],
                )
        return maxima

    def _unsort(self, sorted_scores: torch.Tensor) -> torch.Tensor:
        scores = torch.empty_like(sorted_scores)
        scores[:, self.order] = sorted_scores
        return scores

    def _check_dim(self, queries: torch.Tensor) -> None:
        if queries.shape[2] != self.dim:
            raise ValueError(f"query vectors have dim {queries.shape[2]}, documents have dim {self.dim}")

    def score(self, queries: torch.Tensor) -> torch.Tensor:
        """Exact MaxSim of padded queries ``[nq, q, dim]`` against every document: ``[nq, n_docs]``.

        Scores come back in the original document order, in fp32.
        """
        self._check_dim(queries)
        nq, qlen, dim = queries.shape
        flat_queries = queries.to(device=self.device, dtype=self.vectors.dtype).reshape(nq * qlen, dim)
        maxima = self._token_maxima(flat_queries)
        return self._unsort(maxima.view(self.n_docs, nq, qlen).sum(dim=2).T.contiguous())

    def top_k(
        self, queries: torch.Tensor, k: int, lap: Callable[[str], None] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """The ``k`` best documents of each padded query ``[nq, q, dim]``: ``(scores, positions, info)``.

        Equal to ``score(queries).topk(k)``. With an int8 copy (``first_pass``), documents the bound
        rules out are never scored in fp32; ``info["rescored"]`` counts those that were, per query.
        ``lap`` is called with each stage's name as it ends: ``"bound_pass"`` (int8 scores and their
        bounds; skipped without an int8 copy), ``"exact_maxsim"`` and ``"top_k"``.
        """
        self._check_dim(queries)
        lap = lap or (lambda stage: None)
        k = min(k, self.n_docs)
        if self.quantized is None or k == self.n_docs:
            scores = self.score(queries)
            lap("exact_maxsim")
            top_scores, positions = scores.topk(k, dim=1)
            lap("top_k")
            return top_scores, positions, {"rescored": [self.n_docs] * queries.shape[0]}
        lower, upper = self.bounds(queries)
        lap("bound_pass")
        # The k documents the int8 pass ranks highest, scored exactly first: the k-th best true score is
        # at least their lowest, which sits about one bound width above the k-th best lower bound, so
        # about a third as many documents remain to rescore on SciFact.
        likely = (lower + upper).topk(k, dim=1).indices
        probed = [self.score_sorted(queries[i], likely[i]) for i in range(queries.shape[0])]
        kth_lower = lower.topk(k, dim=1).values[:, -1]
        upper.scatter_(1, likely, float("-inf"))
        candidates, exact = [], []
        for i, scores in enumerate(probed):
            threshold = torch.maximum(kth_lower[i], scores.min())
            docs = torch.nonzero(upper[i] >= threshold).squeeze(1)
            if docs.numel() > RESCORE_ALL_ABOVE * self.n_docs:
                candidates.append(torch.arange(self.n_docs, device=self.device))
                exact.append(self.score(queries[i : i + 1])[0, self.order])
            else:
                candidates.append(torch.cat([likely[i], docs]))
                exact.append(torch.cat([scores, self.score_sorted(queries[i], docs)]))
        lap("exact_maxsim")
        best = [scores.topk(k) for scores in exact]
        top_scores = torch.stack([scores for scores, _ in best])
        positions = torch.stack([self.order[docs[at]] for docs, (_, at) in zip(candidates, best)])
        lap("top_k")
        return top_scores, positions, {"rescored": [int(docs.numel()) for docs in candidates]}

    def bounds(self, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Lower and upper bounds ``[nq, n_docs]`` (sorted order) on fp32 MaxSim, from the int8 pass."""
        nq, qlen, dim = queries.shape
        exact = queries.to(device=self.device, dtype=torch.float32).reshape(nq * qlen, dim)
        quantized, step = quantize_rows(
            exact, torch.arange(nq * qlen, device=self.device), nq * qlen, RIGHT_LEVELS[self.int8_route]
        )
        products = self._int8_token_maxima(quantized)
        maxima = (products.float() * self.doc_step[:, None] * step[None, :]).view(self.n_docs, nq, qlen)
        approx = maxima.sum(dim=2).T
        magnitude = maxima.abs().sum(dim=2).T
        rounded = quantized.float() * step[:, None]
        query_norm = torch.linalg.vector_norm(rounded, dim=1).view(nq, qlen).sum(dim=1, keepdim=True)
        query_error = torch.linalg.vector_norm(exact - rounded, dim=1).view(nq, qlen).sum(dim=1, keepdim=True)
        doc_error, doc_norm = self.rounding_error.unsqueeze(0), self.rounded_norm.unsqueeze(0)
        bound = (
            doc_error * query_norm
            + doc_norm * query_error
            + doc_error * query_error
            + _gamma(dim, FP32_UNIT_ROUNDOFF) * (doc_norm + doc_error) * (query_norm + query_error)
            + _gamma(qlen + 2, FP32_UNIT_ROUNDOFF) * magnitude
        )
        bound = bound * (1 + 1e-4) + 1e-6 * qlen  # the bound's own fp32 arithmetic
        return approx - bound, approx + bound

    def score_sorted(self, query: torch.Tensor, sorted_docs: torch.Tensor) -> torch.Tensor:
        """fp32 MaxSim of one query ``[q, dim]`` against documents given by their sorted index.

        The documents' rows are gathered into ``[n, longest, dim]``, each shorter one repeating its last
        row (which never changes a maximum), ``RESCORE_DOCS_AT_ONCE`` documents at a time: one multiply
        for a few hundred candidates instead of one per block they fall in."""
        rows = query.to(device=self.device, dtype=self.vectors.dtype)
        scores = torch.zeros(sorted_docs.shape[0], device=self.device)
        blocks = self.block_of_doc[sorted_docs]
        scored = torch.nonzero(blocks >= 0).squeeze(1)  # empty documents score 0
        table = self.block_table[blocks[scored]]
        first_doc, length, first_row = table[:, 0], table[:, 2], table[:, 3]
        starts = first_row + (sorted_docs[scored] - first_doc) * length
        for first in range(0, scored.shape[0], RESCORE_DOCS_AT_ONCE):
            at = torch.arange(first, min(first + RESCORE_DOCS_AT_ONCE, scored.shape[0]), device=self.device)
            longest = int(length[at].max())
            steps = torch.minimum(
                torch.arange(longest, device=self.device).unsqueeze(0), (length[at] - 1).unsqueeze(1)
            )
            gathered = self.vectors[(starts[at].unsqueeze(1) + steps).reshape(-1)]
            sims = (gathered @ rows.T).float().view(at.shape[0], longest, rows.shape[0])
            scores[scored[at]] = sims.amax(dim=1).sum(dim=1)
        return scores


def _blocks(padded_lengths: list[int], chunk_tokens: int) -> list[tuple[int, int, int, int]]:
    """``(first doc, n docs, padded length, first row)`` of each dense block: runs of equal padded
    length (in sorted order), cut at ``chunk_tokens`` rows; documents of no tokens get no block."""
    blocks = []
    row, i, n_docs = 0, 0, len(padded_lengths)
    while i < n_docs:
        length = padded_lengths[i]
        j = i
        while j < n_docs and padded_lengths[j] == length:
            j += 1
        if length > 0:
            per_block = max(1, chunk_tokens // length)
            for start in range(i, j, per_block):
                n = min(per_block, j - start)
                blocks.append((start, n, length, row))
                row += n * length
        i = j
    return blocks


@dataclass(frozen=True)
class Explanation:
    """Why a document scored what it scored.

    Attributes
    ----------
    similarity : torch.Tensor
        ``[query_tokens, doc_tokens]`` cosine similarities.
    best_doc_token : torch.Tensor
        ``[query_tokens]`` index of the document token each query token matched.
    contributions : torch.Tensor
        ``[query_tokens]`` each query token's max similarity; they sum to ``score``.
    score : float
        The MaxSim score.
    query_tokens, doc_tokens : list of str
        Token strings, when the vectors came from an :class:`Encoding`.
    """

    similarity: torch.Tensor
    best_doc_token: torch.Tensor
    contributions: torch.Tensor
    score: float
    query_tokens: list[str] | None = None
    doc_tokens: list[str] | None = None


def explain(
    query: torch.Tensor | Encoding,
    doc: torch.Tensor | Encoding,
    query_index: int = 0,
    doc_index: int = 0,
) -> Explanation:
    """The full similarity matrix of a query and a document, each query token's best match and share.

    ``query`` and ``doc`` are token-vector matrices, or encodings with the item picked by index.
    """
    query_tokens = doc_tokens = None
    if isinstance(query, Encoding):
        query_tokens = query.tokens(query_index)
        query = query.vectors_of(query_index)
    if isinstance(doc, Encoding):
        doc_tokens = doc.tokens(doc_index)
        doc = doc.vectors_of(doc_index)
    similarity = query.float().cpu() @ doc.float().cpu().T
    if similarity.shape[1] == 0:
        contributions = torch.zeros(similarity.shape[0])
        best = torch.full((similarity.shape[0],), -1, dtype=torch.long)
    else:
        contributions, best = similarity.max(dim=1)
    return Explanation(similarity, best, contributions, float(contributions.sum()), query_tokens, doc_tokens)
