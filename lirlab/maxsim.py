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

from dataclasses import dataclass

import torch

from lirlab.encoding import Encoding, offsets_from_lengths, rows_of


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


class LengthGroupedDocs:
    """Documents laid out for exhaustive MaxSim.

    Parameters
    ----------
    vectors : torch.Tensor
        Packed ``[total_tokens, dim]`` token vectors in document order.
    lengths : torch.Tensor
        ``[n_docs]`` token counts.
    chunk_tokens : int
        Upper bound on the document tokens multiplied at once. It bounds the similarity buffer; 4096
        keeps a block (2 MiB in fp32 at dim 128) in cache, measured fastest on a 2-core CPU.
    device, dtype :
        Where and in which precision the vectors are kept (fp16/bf16 halve memory on GPU).
    """

    def __init__(
        self,
        vectors: torch.Tensor,
        lengths: torch.Tensor,
        chunk_tokens: int = 4096,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ):
        device = torch.device(device) if device is not None else vectors.device
        lengths = lengths.to(torch.long).cpu()
        self.n_docs = int(lengths.shape[0])
        self.dim = int(vectors.shape[1])
        order = torch.argsort(lengths, stable=True)
        rows = rows_of(offsets_from_lengths(lengths), order)
        self.vectors = (
            vectors[rows.to(vectors.device)].to(device=device, dtype=dtype or vectors.dtype).contiguous()
        )
        self.order = order.to(device)
        self.blocks: list[tuple[int, int, int, int]] = []  # (first doc, n docs, length, first row)
        sorted_lengths = lengths[order].tolist()
        row, i = 0, 0
        while i < self.n_docs:
            length = sorted_lengths[i]
            j = i
            while j < self.n_docs and sorted_lengths[j] == length:
                j += 1
            per_block = max(1, chunk_tokens // max(length, 1))
            for start in range(i, j, per_block):
                n = min(per_block, j - start)
                self.blocks.append((start, n, length, row))
                row += n * length
            i = j

    @property
    def device(self) -> torch.device:
        return self.vectors.device

    def score(self, queries: torch.Tensor) -> torch.Tensor:
        """Exact MaxSim of padded queries ``[nq, q, dim]`` against every document: ``[nq, n_docs]``.

        Scores come back in the original document order, in fp32.
        """
        nq, qlen, dim = queries.shape
        if dim != self.dim:
            raise ValueError(f"query vectors have dim {dim}, documents have dim {self.dim}")
        flat_queries = queries.to(device=self.device, dtype=self.vectors.dtype).reshape(nq * qlen, dim)
        sorted_scores = torch.zeros(nq, self.n_docs, device=self.device)
        for first_doc, n, length, first_row in self.blocks:
            if length == 0:
                continue
            block = self.vectors[first_row : first_row + n * length]
            best = (flat_queries @ block.T).view(nq * qlen, n, length).amax(dim=2)
            sorted_scores[:, first_doc : first_doc + n] = best.view(nq, qlen, n).float().sum(dim=1)
        scores = torch.empty_like(sorted_scores)
        scores[:, self.order] = sorted_scores
        return scores


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
