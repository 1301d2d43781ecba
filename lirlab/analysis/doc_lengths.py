"""Document length and MaxSim: do longer documents score higher whatever their relevance?

MaxSim adds, for every query token, its best similarity among the document's tokens. A longer document
offers each query token more candidates, so its maxima can only be as high or higher than those of a
shorter one drawn from the same distribution: the bias the question is about.
:func:`doc_length_scores` scores each query against the collection through the retriever protocol and
keeps, per query, its top ``k`` and every judged-relevant document (beside the document's scored length
in tokens); :func:`score_by_doc_length` bins them, :func:`length_score_correlation` gives the rank
correlation between score and length among the non-relevant (and relevant) documents, and
:func:`length_normalised_quality` ranks again with the scores normalised:

* ``MeanMaxSim``: Sentence Transformers 6's ``length_normalize=True`` (``util.similarity.mean_maxsim``)
  divides each score by the number of the QUERY's tokens. That number is the same for every document a
  query is scored against, so no ranking changes: it makes scores comparable across queries, not across
  documents. It is here to show exactly that (same quality, top 10 unchanged).
* ``MaxSim / doc_tokens^a``: each score divided by the document's scored token count to a small power
  ``a`` (:data:`DOC_LENGTH_ALPHAS`, fixed here before any run: 0.02, 0.05, 0.1; not tuned). Why this
  form: for tokens that do not match, the best of ``n`` similarities grows with ``log n`` (the maximum
  of more draws), and for small ``a``, ``n^-a = exp(-a ln n) ~ 1 - a ln n``, a penalty of the same
  shape that leaves every score's sign and the ranking of equally long documents alone; it is the
  multiplicative cousin of BM25's pivoted length normalisation with ``a`` as its one constant. Dividing
  by ``n`` itself is not used: only one document token per query token counts in MaxSim, so a "mean over
  the document's tokens" is not defined and ``a = 1`` would simply favour the shortest documents.

Examples
--------
>>> rows = doc_length_scores(encoder, data.load("demo"))  # doctest: +SKIP
>>> score_by_doc_length(rows)  # doctest: +SKIP
>>> length_normalised_quality(rows, data.load("demo"))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from lirlab.analysis.masks import as_index
from lirlab.data import Dataset
from lirlab.encoding import Encoding
from lirlab.evaluate import evaluate, top_overlap

#: Exponents of the document-length normalisation ``score / doc_tokens**a``, fixed before any run.
DOC_LENGTH_ALPHAS = (0.02, 0.05, 0.1)

#: Edges of the length bins of :func:`score_by_doc_length` (scored tokens; each bin is ``(low, high]``).
DOC_BINS = (0, 32, 64, 96, 128, 160, 192, 256, 512, 8192)

#: Measures of :func:`length_normalised_quality`.
MEASURES = ("nDCG@10", "R@100")

ROW_COLUMNS = ["qid", "docno", "doc_tokens", "query_tokens", "score", "relevant", "rank", "truncated"]


def doc_length_scores(
    encoder,
    dataset: Dataset,
    docs=None,
    k: int | None = 100,
    queries: Encoding | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Per query, its ``k`` best documents by MaxSim and every judged-relevant one, with their lengths.

    Every live document is ranked (``search_encoded`` with ``k`` = the collection), so a relevant
    document outside the top ``k`` still gets its true rank and score; use an exact index (a
    :class:`~lirlab.index.flat.FlatIndex`, or encoded documents) for MaxSim itself.

    Parameters
    ----------
    encoder : lirlab.encoder.ColBERT or None
        Encodes the queries (and the documents when ``docs`` holds texts); None with ``queries`` and an
        index or Encoding as ``docs``.
    dataset : Dataset
        Queries and qrels (its documents too when ``docs`` is None).
    docs : Index, Encoding or documents, optional
        The corpus already indexed or encoded with ``encoder``.
    k : int or None
        Top documents kept per query; None keeps every document (what
        :func:`length_score_correlation` needs to look past the top, and
        :func:`length_normalised_quality` to rank the whole collection again).
    queries : Encoding, optional
        ``dataset``'s queries already encoded (ids are qids).
    progress : bool
        Show progress bars (encoding, search).

    Returns
    -------
    pandas.DataFrame
        ``qid, docno, doc_tokens, query_tokens, score, relevant, rank, truncated``: one row per query and
        kept document, best first. ``doc_tokens`` counts the vectors the index scores for the document
        (markers included, punctuation the encoder skips excluded), ``query_tokens`` those of the query
        (``[MASK]`` padding included), ``relevant`` is a judgment above 0, ``rank`` the document's rank
        among all documents for the query (1 = best), ``truncated`` whether the encoder cut the document
        at ``doc_maxlen`` (its true length is longer).
    """
    index = as_index(dataset if docs is None else docs, encoder, progress=progress)
    if queries is None:
        if encoder is None:
            raise ValueError("an encoder is needed to encode the queries (or pass queries=)")
        queries = encoder.encode_queries(dataset.queries)
    live = index.live_positions()
    n_live = int(live.numel())
    if k is not None and k < 1:
        raise ValueError(f"k must be at least 1 (or None for every document), got {k}")
    lengths, cut = _lengths_and_cuts(index, live)
    judged = dataset.qrels[dataset.qrels.relevance > 0]
    relevant_of = judged.groupby(judged.query_id.astype(str)).doc_id.agg(lambda d: set(map(str, d)))
    docnos = np.asarray(index.docnos, dtype=object)
    hits = index.search_encoded(queries, k=n_live, progress=progress)
    query_lengths = queries.lengths.tolist()
    frames = []
    for qid, q_tokens, (positions, scores) in zip(queries.ids, query_lengths, hits):
        positions, scores = positions.cpu().numpy(), scores.float().cpu().numpy()
        relevant = np.isin(docnos[positions], list(relevant_of.get(str(qid), ())))
        ranks = np.arange(1, len(positions) + 1)
        keep = slice(None) if k is None else (ranks <= k) | relevant
        frames.append(
            pd.DataFrame(
                {
                    "qid": str(qid),
                    "docno": docnos[positions][keep],
                    "doc_tokens": lengths[positions][keep],
                    "query_tokens": int(q_tokens),
                    "score": scores[keep].astype(np.float64),
                    "relevant": relevant[keep],
                    "rank": ranks[keep],
                    "truncated": cut[positions][keep],
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=ROW_COLUMNS)
    return pd.concat(frames, ignore_index=True)[ROW_COLUMNS]


def _lengths_and_cuts(index, live: torch.Tensor, batch: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Scored token count and whether the encoder cut it, by internal position (a few documents'
    vectors at a time, through the protocol)."""
    lengths = np.zeros(len(index), dtype=np.int64)
    cut = np.zeros(len(index), dtype=bool)
    for start in range(0, int(live.numel()), batch):
        positions = live[start : start + batch]
        docs = index.documents(positions)
        lengths[positions.numpy()] = docs.lengths.cpu().numpy()
        cut[positions.numpy()] = np.asarray(docs.truncated, dtype=bool)
    return lengths, cut


def mean_maxsim(rows: pd.DataFrame) -> pd.Series:
    """MeanMaxSim of :func:`doc_length_scores` rows: each score over its query's token count (Sentence
    Transformers 6's ``length_normalize=True``).

    >>> mean_maxsim(pd.DataFrame({"score": [6.0, 3.0], "query_tokens": [4, 2]})).tolist()
    [1.5, 1.5]
    """
    return rows.score / rows.query_tokens.clip(lower=1)


def doc_length_normalised(rows: pd.DataFrame, alpha: float) -> pd.Series:
    """``score / doc_tokens**alpha`` of :func:`doc_length_scores` rows (an empty document counts as one
    token; see the module's text for why this form).

    >>> doc_length_normalised(pd.DataFrame({"score": [8.0, 8.0], "doc_tokens": [4, 16]}), 0.5).tolist()
    [4.0, 2.0]
    """
    return rows.score / rows.doc_tokens.clip(lower=1).astype(float) ** alpha


def score_by_doc_length(rows: pd.DataFrame, bins: Sequence[int] = DOC_BINS) -> pd.DataFrame:
    """Scores of relevant and non-relevant documents per document-length bin.

    Returns
    -------
    pandas.DataFrame
        ``length_bin, relevant, pairs, truncated, mean_score, mean_meanmaxsim, score_vs_query_mean,
        median_rank``: per bin of ``doc_tokens`` (``(low, high]``) and relevance, the (query, document)
        pairs in it, how many of them the encoder cut, their mean MaxSim score, mean MeanMaxSim, mean
        score minus their query's mean score over its rows (so that queries' different score levels
        cancel; over the whole collection when the rows were kept with ``k=None``) and median rank.
        Empty bins are left out.

    Examples
    --------
    >>> rows = pd.DataFrame({"qid": ["q"] * 3, "doc_tokens": [10, 50, 60], "query_tokens": 2,
    ...                      "score": [1.0, 2.0, 3.0], "relevant": [False, False, True],
    ...                      "rank": [3, 2, 1], "truncated": False})
    >>> score_by_doc_length(rows, bins=(0, 32, 64))[["length_bin", "relevant", "mean_score"]].values.tolist()
    [['(0, 32]', False, 1.0], ['(32, 64]', False, 2.0], ['(32, 64]', True, 3.0]]
    """
    binned = rows.assign(
        length_bin=pd.cut(rows.doc_tokens, list(bins)),
        meanmaxsim=mean_maxsim(rows),
        centered=rows.score - rows.groupby("qid").score.transform("mean"),
    )
    grouped = binned.groupby(["length_bin", "relevant"], observed=True, sort=True)
    out = pd.DataFrame(
        {
            "pairs": grouped.size(),
            "truncated": grouped.truncated.sum().astype(int),
            "mean_score": grouped.score.mean(),
            "mean_meanmaxsim": grouped.meanmaxsim.mean(),
            "score_vs_query_mean": grouped.centered.mean(),
            "median_rank": grouped["rank"].median(),
        }
    ).reset_index()
    out["length_bin"] = out.length_bin.astype(str)
    return out


def _spearman(scores: np.ndarray, lengths: np.ndarray) -> float:
    """Spearman's rho (average ranks for ties); NaN when either side is constant."""
    a = pd.Series(scores).rank().to_numpy()
    b = pd.Series(lengths).rank().to_numpy()
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def length_score_correlation(
    rows: pd.DataFrame, depths: Sequence[int | None] = (10, 100, None), min_docs: int = 3
) -> pd.DataFrame:
    """Spearman correlation between score and ``doc_tokens`` within each query, at several depths.

    Parameters
    ----------
    rows : pandas.DataFrame
        From :func:`doc_length_scores` (``k=None`` for the whole collection).
    depths : sequence of int or None
        Ranks considered (``rank <= depth``); None: every row.
    min_docs : int
        A query enters a correlation when it has at least this many documents of that relevance there.

    Returns
    -------
    pandas.DataFrame
        ``depth, relevant, pairs, queries, mean_spearman, median_spearman, positive_share,
        mean_doc_tokens``: per depth (``"all"`` for None) and relevance, the pairs at that depth, the
        queries with enough of them (and not all of one length or one score), the mean and median of
        their per-query correlations, the share of those that are positive, and the mean length of the
        documents. A positive correlation among non-relevant documents is the bias in question: longer
        documents score higher though none of them is relevant. (Among the top ``depth`` the rows are
        chosen by score, which weakens any correlation; the ``"all"`` rows see every document.)

    Examples
    --------
    >>> rows = pd.DataFrame({"qid": ["q"] * 4, "doc_tokens": [10, 20, 30, 40], "score": [1.0, 2.0, 4.0, 3.0],
    ...                      "relevant": False, "rank": [4, 3, 1, 2]})
    >>> table = length_score_correlation(rows, depths=(None,))
    >>> table[["depth", "relevant", "queries"]].values.tolist(), round(float(table.mean_spearman[0]), 6)
    ([['all', False, 1], ['all', True, 0]], 0.8)
    """
    out = []
    for depth in depths:
        at = rows if depth is None else rows[rows["rank"] <= depth]
        for relevant in (False, True):
            part = at[at.relevant == relevant]
            rhos = [
                _spearman(g.score.to_numpy(), g.doc_tokens.to_numpy())
                for _, g in part.groupby("qid", sort=False)
                if len(g) >= min_docs
            ]
            rhos = np.asarray([r for r in rhos if not np.isnan(r)])
            out.append(
                {
                    "depth": "all" if depth is None else str(depth),
                    "relevant": relevant,
                    "pairs": len(part),
                    "queries": len(rhos),
                    "mean_spearman": float(rhos.mean()) if len(rhos) else float("nan"),
                    "median_spearman": float(np.median(rhos)) if len(rhos) else float("nan"),
                    "positive_share": float((rhos > 0).mean()) if len(rhos) else float("nan"),
                    "mean_doc_tokens": float(part.doc_tokens.mean()) if len(part) else float("nan"),
                }
            )
    return pd.DataFrame(out)


def _candidates(rows: pd.DataFrame, depth: int | None) -> pd.DataFrame:
    """The rows ranked again: each query's ranks ``1..depth`` (every row for None), which must hold no
    gap, so that no document is there because it is relevant."""
    candidates = rows if depth is None else rows[rows["rank"] <= depth]
    counts = candidates.groupby("qid")["rank"].agg(["size", "max"])
    if (counts["size"] != counts["max"]).any():
        raise ValueError(
            "the rows hold relevant documents past their top k (ranks with gaps): ranking them again "
            "would use the judgments; pass depth at most the k they were kept with"
        )
    return candidates


def length_normalised_quality(
    rows: pd.DataFrame,
    qrels: Dataset | pd.DataFrame,
    alphas: Sequence[float] = DOC_LENGTH_ALPHAS,
    measures: Sequence[str] = MEASURES,
    depth: int | None = None,
) -> pd.DataFrame:
    """Quality of MaxSim, MeanMaxSim and MaxSim over ``doc_tokens**alpha``, each ranking the same rows.

    Parameters
    ----------
    rows : pandas.DataFrame
        From :func:`doc_length_scores`; with ``k=None`` every document is ranked again (exact), with a
        finite ``k`` pass ``depth`` at most ``k`` (the top ``depth`` by MaxSim are re-ranked; relevant
        documents below it are not candidates, which would use the judgments).
    qrels : Dataset or pandas.DataFrame
        The judgments.
    alphas : sequence of float
        Exponents of the document-length normalisation (see the module's text).
    measures : sequence of str
        ir_measures names.
    depth : int, optional
        Candidates per query (ranks ``1..depth`` by MaxSim); None: every row (then no query's rows may
        skip a rank).

    Returns
    -------
    pandas.DataFrame
        ``scoring, alpha, <measures>..., top10_overlap, top10_doc_tokens``: one row per scoring
        (``"MaxSim"``, ``"MeanMaxSim"``, ``"MaxSim / doc_tokens^a"``), ``alpha`` 0 for the first two;
        ``top10_overlap`` is the mean share of MaxSim's top 10 that the scoring's top 10 keeps,
        ``top10_doc_tokens`` the mean length of its top 10 documents.
    """
    candidates = _candidates(rows, depth)
    scorings = {("MaxSim", 0.0): candidates.score, ("MeanMaxSim", 0.0): mean_maxsim(candidates)}
    for alpha in alphas:
        scorings[f"MaxSim / doc_tokens^{alpha:g}", float(alpha)] = doc_length_normalised(candidates, alpha)
    reference = None
    out = []
    for (name, alpha), score in scorings.items():
        run = candidates[["qid", "docno", "doc_tokens"]].assign(score=score.to_numpy())
        run = run.sort_values(["qid", "score"], ascending=[True, False], kind="stable")
        run["rank"] = run.groupby("qid").cumcount() + 1
        reference = run if reference is None else reference
        quality = evaluate(run, qrels, list(measures)).set_index("measure")["value"]
        out.append(
            {"scoring": name, "alpha": alpha}
            | {m: float(quality[m]) for m in measures}
            | {
                "top10_overlap": top_overlap(run, reference, k=10),
                "top10_doc_tokens": float(run[run["rank"] <= 10].doc_tokens.mean()),
            }
        )
    return pd.DataFrame(out)
