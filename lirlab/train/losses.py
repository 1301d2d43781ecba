"""Training losses over late-interaction scores.

* :func:`maxsim_scores` — differentiable MaxSim of padded query vectors against padded document vectors;
* :func:`xtr_scores` — XTR's training score (Lee et al. 2023): each query token retrieves its
  ``k_train`` best document tokens over the whole batch, and a document is scored by the tokens it had
  retrieved only, divided by how many query tokens retrieved any of its tokens;
* :func:`contrastive_loss` — cross-entropy of each query's positive among candidates (its own hard
  negatives and, with in-batch negatives, every other document of the batch), at a temperature, with
  documents known to be relevant to a query (other than its target) left out of its softmax;
* :func:`distillation_loss` — KL divergence from a teacher's score distribution over each query's own
  candidates to the student's (ColBERTv2's distillation), at a temperature.

Examples
--------
Two queries, three candidates; query 0's positive is candidate 0, query 1's is candidate 2:

>>> import torch
>>> scores = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
>>> round(float(contrastive_loss(scores, torch.tensor([0, 2]))), 4)
0.5508
>>> teacher = torch.tensor([[1.0, 1.0], [3.0, 0.0]])
>>> round(float(distillation_loss(torch.tensor([[1.0, 1.0], [0.0, 0.0]]), teacher)), 4)
0.2511
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def maxsim_scores(
    queries: torch.Tensor, query_mask: torch.Tensor, docs: torch.Tensor, doc_mask: torch.Tensor
) -> torch.Tensor:
    """MaxSim of every query against every document: ``[n_queries, n_docs]``, differentiable.

    Parameters
    ----------
    queries : torch.Tensor
        ``[n_queries, query_len, dim]`` token vectors.
    query_mask : torch.Tensor
        ``[n_queries, query_len]`` bool: which query positions are scored (``[MASK]`` padding included).
    docs : torch.Tensor
        ``[n_docs, doc_len, dim]`` token vectors.
    doc_mask : torch.Tensor
        ``[n_docs, doc_len]`` bool: which document positions take part (padding and skiplist excluded).

    Examples
    --------
    >>> q = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    >>> d = torch.tensor([[[1.0, 0.0], [0.6, 0.8]], [[0.0, 1.0], [9.0, 9.0]]])
    >>> maxsim_scores(q, torch.tensor([[True, True]]), d, torch.tensor([[True, True], [True, False]]))
    tensor([[1.8000, 1.0000]])
    """
    sim = torch.einsum("aqd,bkd->abqk", queries, docs)
    sim = sim.masked_fill(~doc_mask[None, :, None, :], float("-inf"))
    best = sim.max(dim=-1).values
    best = best.masked_fill(~query_mask[:, None, :], 0.0)
    return best.sum(dim=-1)


def xtr_scores(
    queries: torch.Tensor,
    query_mask: torch.Tensor,
    docs: torch.Tensor,
    doc_mask: torch.Tensor,
    k_train: int,
) -> torch.Tensor:
    """XTR's in-batch token-retrieval scores of every query against every document: ``[n_queries, n_docs]``.

    Each query token ``i`` retrieves the ``k_train`` document tokens most similar to it among every
    document's tokens (``A_ij = 1`` for those). A document's score is
    ``sum_i max_j A_ij q_i·d_j / Z``, ``Z`` the number of query tokens that retrieved at least one of its
    tokens (eq. 5 of the paper; 1 when none did, which leaves the score 0). The max runs over the
    document's retrieved tokens only, and a query token that retrieved none of them counts 0 (XTR's
    imputation while training), so the gradient only reaches retrieved tokens: this is what teaches the model
    to put a document's matching tokens at the top of each query token's list, which token-retrieval
    engines (WARP, XTR's own) then rely on.

    Parameters
    ----------
    queries, query_mask, docs, doc_mask
        As for :func:`maxsim_scores`.
    k_train : int
        Document tokens each query token retrieves over all ``n_docs`` documents (all of them when they
        are fewer).

    Examples
    --------
    Query token 0 retrieves document 0's first token (0.9) and document 1's token (0.8); query token 1
    retrieves document 0's second token (0.7) and document 1's (0.6). With ``k_train=2`` both documents
    have both query tokens: ``(0.9 + 0.7) / 2`` and ``(0.8 + 0.6) / 2``. With ``k_train=1`` document 1
    has none: 0.

    >>> q = torch.eye(2)[None]
    >>> d = torch.tensor([[[0.9, 0.1], [0.1, 0.7]], [[0.8, 0.6], [0.0, 0.0]]])
    >>> dm = torch.tensor([[True, True], [True, False]])
    >>> xtr_scores(q, torch.tensor([[True, True]]), d, dm, k_train=2)
    tensor([[0.8000, 0.7000]])
    >>> xtr_scores(q, torch.tensor([[True, True]]), d, dm, k_train=1)
    tensor([[0.8000, 0.0000]])
    """
    n_queries, query_len = query_mask.shape
    n_docs, doc_len = doc_mask.shape
    sim = torch.einsum("aqd,bkd->aqbk", queries, docs).masked_fill(~doc_mask[None, None], float("-inf"))
    flat = sim.reshape(n_queries, query_len, n_docs * doc_len)
    top = flat.topk(min(k_train, flat.shape[-1]), dim=-1).indices
    retrieved = torch.zeros_like(flat, dtype=torch.bool).scatter_(-1, top, True)
    retrieved = (retrieved & doc_mask.reshape(1, 1, -1) & query_mask[:, :, None]).view_as(sim)
    hits = retrieved.any(dim=-1)
    best = sim.masked_fill(~retrieved, float("-inf")).max(dim=-1).values.masked_fill(~hits, 0.0)
    return best.sum(dim=1) / hits.sum(dim=1).clamp(min=1)


def contrastive_loss(
    scores: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 1.0,
    exclude: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean cross-entropy of each query's target candidate: ``-log softmax(scores / T)[target]``.

    Parameters
    ----------
    scores : torch.Tensor
        ``[n_queries, n_candidates]`` MaxSim scores.
    targets : torch.Tensor
        ``[n_queries]`` column of each query's positive.
    temperature : float
        Scores are divided by it before the softmax.
    exclude : torch.Tensor, optional
        ``[n_queries, n_candidates]`` bool: candidates left out of a query's softmax (documents judged
        relevant to it that are another query's positive). A query's own target is never excluded.

    Examples
    --------
    >>> s = torch.tensor([[1.0, 1.0, 0.0]])
    >>> round(float(contrastive_loss(s, torch.tensor([0]), exclude=torch.tensor([[False, True, False]]))), 4)
    0.3133
    """
    logits = scores.float() / temperature
    if exclude is not None:
        keep_target = F.one_hot(targets, logits.shape[1]).bool()
        logits = logits.masked_fill(exclude & ~keep_target, float("-inf"))
    return F.cross_entropy(logits, targets)


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``KL(softmax(teacher / T) || softmax(student / T))``, summed over candidates, averaged over queries.

    Parameters
    ----------
    student, teacher : torch.Tensor
        ``[n_queries, n_candidates]``: the model's and the teacher's scores of the same candidates.
    temperature : float
        Both score sets are divided by it.
    """
    target = F.log_softmax(teacher.float() / temperature, dim=-1)
    predicted = F.log_softmax(student.float() / temperature, dim=-1)
    return F.kl_div(predicted, target, reduction="batchmean", log_target=True)
