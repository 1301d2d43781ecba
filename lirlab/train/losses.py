"""Training losses over late-interaction scores.

* :func:`maxsim_scores` — differentiable MaxSim of padded query vectors against padded document vectors;
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
