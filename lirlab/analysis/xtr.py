"""XTR against ColBERT: token-retrieval scoring, and how informative an index's centroid scores are.

XTR (Lee et al. 2023) trains each query token to retrieve its document's matching tokens from the
whole collection (:func:`lirlab.train.xtr_scores`, ``scoring="xtr"``), then scores with the retrieved
tokens only. A 2026 replicability study did not reproduce XTR's quality gain over ColBERT, but found
XTR training makes centroid scores more informative, so PLAID and WARP prune better. Two measurements
here put that to the test on models lirlab trains:

* :func:`xtr_token_retrieval` scores documents the way XTR does at inference, exactly (every token of
  the collection searched): each query token retrieves its ``k_prime`` most similar document tokens; a
  document scores, per query token, its best retrieved token, or the token's missing similarity (the
  ``k_prime``-th similarity, XTR's imputation) when none of its tokens was retrieved.
* :func:`centroid_informativeness` asks, per query, how well PLAID's centroid-only scores rank the
  candidates it generates: Spearman's correlation with their exact (decompressed) MaxSim, and how many
  of the exhaustive top 10 are among the candidates and among the ones kept for exact scoring.

:func:`compare_models` runs both, exhaustive MaxSim, and a PLAID and WARP sweep, for each of several
models on one collection (the study: a ColBERT-trained and an XTR-trained model from the same start).
:func:`warp_knob_sweep` and :func:`choose_warp_defaults` show where WARP's default knobs come from: a
sweep of ``nprobe`` and of ``t_prime`` as a share of the index's tokens over several collections, the
cheapest setting that keeps the exhaustive top 10 on the collections it is chosen on, checked on the
others.

Examples
--------
>>> import torch
>>> from lirlab.encoding import Encoding, offsets_from_lengths
>>> unit = torch.eye(2)
>>> docs = Encoding(ids=("a", "b"), vectors=torch.stack([unit[0], unit[1], 0.6 * unit[0] + 0.8 * unit[1]]),
...                 token_ids=torch.zeros(3, dtype=torch.long),
...                 offsets=offsets_from_lengths(torch.tensor([2, 1])), vocab=("tok",))
>>> queries = Encoding(ids=("q",), vectors=unit[:1], token_ids=torch.zeros(1, dtype=torch.long),
...                    offsets=offsets_from_lengths(torch.tensor([1])), vocab=("tok",))
>>> run = xtr_token_retrieval(docs, queries, k_primes=(1,), progress=False)
>>> run[["docno", "score", "k_prime"]].values.tolist()  # b's token was not retrieved: it gets a's 1.0
[['a', 1.0, 1], ['b', 1.0, 1]]
>>> xtr_token_retrieval(docs, queries, k_primes=(2,), progress=False).score.round(4).tolist()
[1.0, 0.6]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from lirlab.analysis.compression import spearman
from lirlab.analysis.sweeps import sweep
from lirlab.data import Dataset
from lirlab.encoding import Encoding
from lirlab.evaluate import evaluate
from lirlab.index.base import Index
from lirlab.index.flat import FlatIndex
from lirlab.index.plaid import PlaidIndex
from lirlab.index.warp import WarpIndex
from lirlab.params import Param
from lirlab.results import run_frame

#: Quality measures of :func:`compare_models`.
MEASURES = ("nDCG@10", "R@100")

#: The knob settings :func:`compare_models` sweeps by default: from PLAID's and WARP's cheapest useful
#: setting to near-exhaustive.
PLAID_GRID = {"n_probe": [1, 2, 4, 8], "ndocs": [256, 1024, 4096]}
WARP_GRID = {"nprobe": [4, 8, 16, 32, 64]}
#: WARP settings :func:`warp_knob_sweep` tries: ``nprobe``, and ``t_prime`` as a share of the tokens.
NPROBES = (4, 8, 16, 32, 64)
T_PRIME_SHARES = (0.0025, 0.005, 0.01, 0.02, 0.04)

#: Tokens each query token retrieves, as in XTR's inference (``k'``); the missing similarity of a
#: query token is its ``k_prime``-th best similarity.
K_PRIME = Param(
    "k_prime",
    int,
    1000,
    "Document tokens each query token retrieves from the whole collection (XTR's k').",
    low=1,
    quality="up",
    aliases="XTR k', WARP t_prime",
)

#: Document tokens scored against a query at once (bounds the similarity matrix's memory).
_TOKEN_CHUNK = 1 << 18


def _document_tokens(docs: Encoding | Index) -> Encoding:
    if isinstance(docs, Index):
        return docs.documents()
    if not isinstance(docs, Encoding):
        raise ValueError(f"docs must be an Encoding or an index, got {type(docs).__name__}")
    return docs


def _best_tokens(query: torch.Tensor, vectors: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each query token's ``k`` best similarities over ``vectors`` and their rows, best first."""
    values = torch.empty(query.shape[0], 0)
    rows = torch.empty(query.shape[0], 0, dtype=torch.long)
    for start in range(0, vectors.shape[0], _TOKEN_CHUNK):
        sims = query @ vectors[start : start + _TOKEN_CHUNK].T
        top = sims.topk(min(k, sims.shape[1]), dim=1)
        values = torch.cat([values, top.values], dim=1)
        rows = torch.cat([rows, top.indices + start], dim=1)
        if values.shape[1] > k:
            values, keep = values.topk(k, dim=1)
            rows = rows.gather(1, keep)
    order = values.argsort(dim=1, descending=True)
    return values.gather(1, order), rows.gather(1, order)


def xtr_token_retrieval(
    docs: Encoding | Index,
    queries: Encoding,
    k_primes: Sequence[int] = (K_PRIME.default,),
    k: int = 100,
    progress: bool = True,
) -> pd.DataFrame:
    """XTR's inference scoring, exact: a run (``qid, query, docno, score, rank``) per ``k_prime``.

    Parameters
    ----------
    docs : Encoding or Index
        The collection's token vectors (an index gives its ``documents()``: a compressed index's
        reconstruction).
    queries : Encoding
        Encoded queries (their ``[MASK]`` padding included, as the encoder gives them).
    k_primes : sequence of int
        Tokens each query token retrieves (:data:`K_PRIME`), one run each.
    k : int
        Documents kept per query.

    Returns
    -------
    DataFrame
        The runs one after another, with a ``k_prime`` column. The ``query`` column holds the qid
        (the texts are not part of an Encoding).
    """
    k_primes = sorted({K_PRIME.validate(value) for value in k_primes})
    collection = _document_tokens(docs)
    n_docs = len(collection)
    doc_of = torch.repeat_interleave(torch.arange(n_docs), collection.lengths)
    vectors = collection.vectors.float()
    largest = min(k_primes[-1], vectors.shape[0])
    hits: dict[int, list] = {value: [] for value in k_primes}
    for i in tqdm(range(len(queries)), desc="XTR scoring", unit="query", disable=not progress):
        query = queries.vectors_of(i).float()
        values, rows = _best_tokens(query, vectors, largest)
        for value in k_primes:
            kept = min(value, values.shape[1])
            best = torch.full((query.shape[0], n_docs), float("-inf"))
            best.scatter_reduce_(1, doc_of[rows[:, :kept]], values[:, :kept], "amax")
            missing = values[:, kept - 1 : kept]
            scores = torch.where(torch.isfinite(best), best, missing).sum(dim=0)
            top = scores.topk(min(k, n_docs))
            hits[value].append((top.indices, top.values))
    runs = []
    for value in k_primes:
        run = run_frame(queries.ids, queries.ids, hits[value], collection.ids)
        runs.append(run.assign(k_prime=value))
    return pd.concat(runs, ignore_index=True)


def centroid_informativeness(
    plaid,
    queries: Encoding,
    reference: pd.DataFrame,
    n_probe: int | None = None,
    keep: int | None = None,
    top: int = 10,
    progress: bool = True,
) -> pd.DataFrame:
    """How well a PLAID index's centroid-only scores rank its candidates, per query.

    Parameters
    ----------
    plaid : PlaidIndex
        The index (its ``candidates``, ``approximate_scores`` and ``exact_scores``).
    queries : Encoding
        Encoded queries.
    reference : DataFrame
        The exhaustive run (exact MaxSim over the uncompressed vectors), whose top ``top`` per query
        are the documents a search should find.
    n_probe, keep : int, optional
        Centroids probed per query token, and candidates kept for exact scoring (default: the index's
        own defaults for ``k=top``: ``n_probe`` and ``ndocs // 4``).

    Returns
    -------
    DataFrame
        One row per query: ``qid``, ``candidates`` (documents generated), ``spearman`` (centroid-only
        against exact MaxSim over the candidates), ``recall_candidates`` and ``recall_kept`` (share of
        the reference top ``top`` among the candidates, and among the ``keep`` best of them by
        centroid-only score).
    """
    defaults = plaid.resolve_knobs(top, {})
    n_probe = defaults["n_probe"] if n_probe is None else n_probe
    keep = max(top, defaults["ndocs"] // 4) if keep is None else keep
    wanted = reference[reference["rank"] <= top].groupby("qid")["docno"].apply(set)
    rows = []
    for i in tqdm(range(len(queries)), desc="centroid scores", unit="query", disable=not progress):
        query = queries.select([i])
        qid = queries.ids[i]
        positions = plaid.candidates(query, n_probe=n_probe)[0]
        approximate = plaid.approximate_scores(query, positions)[0]
        exact = plaid.exact_scores(query, positions)[0]
        kept = positions[approximate.topk(min(keep, len(positions))).indices]
        target = wanted.get(qid, set())
        found = {plaid.docnos[p] for p in positions.tolist()}
        found_kept = {plaid.docnos[p] for p in kept.tolist()}
        rows.append(
            {
                "qid": qid,
                "candidates": len(positions),
                "spearman": spearman(approximate.tolist(), exact.tolist()),
                "recall_candidates": len(target & found) / len(target) if target else float("nan"),
                "recall_kept": len(target & found_kept) / len(target) if target else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def _quality(run: pd.DataFrame, dataset: Dataset) -> dict[str, float]:
    table = evaluate(run, dataset, MEASURES)
    return dict(zip(table.measure, table.value))


def compare_models(
    models: Mapping[str, Any],
    dataset: Dataset,
    docs: Mapping[str, Index] | None = None,
    k_primes: Sequence[int] = (K_PRIME.default,),
    plaid_grid: Mapping[str, Sequence] | None = None,
    warp_grid: Mapping[str, Sequence] | None = None,
    build: Mapping[str, Any] | None = None,
    n_timed: int | None = None,
    progress: bool = True,
) -> dict[str, pd.DataFrame]:
    """Each model's exhaustive and XTR-style quality, PLAID and WARP sweeps, and centroid informativeness.

    Parameters
    ----------
    models : mapping
        Name → encoder (e.g. ``{"colbert": ..., "xtr": ...}``).
    dataset : Dataset
        The collection, queries and judgments.
    docs : mapping, optional
        Name → the collection already encoded by that model (a :class:`~lirlab.index.flat.FlatIndex`),
        to skip encoding it.
    k_primes : sequence of int
        XTR's ``k'`` values for :func:`xtr_token_retrieval`.
    plaid_grid, warp_grid : mapping, optional
        Search knobs swept (default :data:`PLAID_GRID`, :data:`WARP_GRID`).
    build : mapping, optional
        PLAID build knobs (``nbits``, ``n_centroids``, ``seed``); WARP searches the same index.
    n_timed : int, optional
        Queries timed per setting (default all).

    Returns
    -------
    dict of DataFrame
        ``"quality"``: ``model, scoring, k_prime, nDCG@10, R@100`` (scoring ``maxsim`` is exhaustive
        MaxSim, ``xtr`` :func:`xtr_token_retrieval`); ``"sweeps"``: :func:`~lirlab.analysis.sweeps.sweep`'s
        rows with a ``model`` column (``exhaustive_recall@10`` against exact MaxSim over the uncompressed
        vectors); ``"centroids"``: :func:`centroid_informativeness`'s rows with a ``model`` column.
    """
    quality, sweeps, centroids = [], [], []
    for name, encoder in models.items():
        flat = (docs or {}).get(name)
        if flat is None:
            flat = FlatIndex.build(dataset, encoder, progress=progress)
        queries = encoder.encode_queries(dataset.queries)
        depth = min(100, len(flat))
        exhaustive = flat.search(queries, k=depth)
        quality.append({"model": name, "scoring": "maxsim", "k_prime": None, **_quality(exhaustive, dataset)})
        xtr = xtr_token_retrieval(flat, queries, k_primes, k=depth, progress=progress)
        for value, run in xtr.groupby("k_prime"):
            quality.append({"model": name, "scoring": "xtr", "k_prime": value, **_quality(run, dataset)})
        plaid = PlaidIndex.from_encoding(
            flat.documents(), encoder=encoder, progress=progress, **(build or {})
        )
        reference = exhaustive[exhaustive["rank"] <= 10]
        methods = [(plaid, plaid_grid or PLAID_GRID), (WarpIndex.from_plaid(plaid), warp_grid or WARP_GRID)]
        rows = sweep(
            plaid,
            queries,
            methods=methods,
            qrels=dataset,
            reference=reference,
            n_timed=n_timed,
            progress=progress,
        )
        sweeps.append(rows.assign(model=name))
        informativeness = centroid_informativeness(plaid, queries, exhaustive, progress=progress)
        centroids.append(informativeness.assign(model=name))
    return {
        "quality": pd.DataFrame(quality),
        "sweeps": pd.concat(sweeps, ignore_index=True),
        "centroids": pd.concat(centroids, ignore_index=True),
    }


def warp_knob_sweep(
    collections: Mapping[str, tuple[Index, Encoding, Dataset]],
    nprobes: Sequence[int] = NPROBES,
    t_prime_shares: Sequence[float] = T_PRIME_SHARES,
    reference_docs: Mapping[str, Encoding | Index] | None = None,
    n_timed: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """WARP at every ``nprobe`` and ``t_prime`` share on each collection: quality, latency, recall.

    Parameters
    ----------
    collections : mapping
        Name → ``(plaid, queries, dataset)``: a PLAID index of the collection (WARP searches its
        files), the encoded queries and the judgments.
    nprobes : sequence of int
        Centroids probed per query token.
    t_prime_shares : sequence of float
        ``t_prime`` as a share of the index's tokens (rounded to a whole number of tokens).
    reference_docs : mapping, optional
        Name → the uncompressed collection, for ``exhaustive_recall@10`` against exact MaxSim (default:
        PLAID's reconstruction, which isolates WARP's pruning from compression).

    Returns
    -------
    DataFrame
        :func:`~lirlab.analysis.sweeps.sweep`'s rows with ``collection``, ``n_centroids``, ``n_tokens``
        and ``t_prime_share`` (the share asked for) columns.
    """
    tables = []
    for name, (plaid, queries, dataset) in collections.items():
        warp = WarpIndex.from_plaid(plaid)
        n_tokens = warp.n_vectors()
        share_of = {}
        for share in sorted(t_prime_shares, reverse=True):  # two shares of one count: the smaller is named
            share_of[max(1, round(share * n_tokens))] = share
        t_primes = sorted(share_of)
        docs = (reference_docs or {}).get(name, plaid)
        reference = FlatIndex(_document_tokens(docs)).search(queries, k=10)
        rows = sweep(
            warp,
            queries,
            {"nprobe": list(nprobes), "t_prime": t_primes},
            qrels=dataset,
            reference=reference,
            n_timed=n_timed,
            progress=progress,
        )
        tables.append(
            rows.assign(
                collection=name,
                n_centroids=plaid.n_centroids,
                n_tokens=n_tokens,
                t_prime_share=rows["t_prime"].map(share_of),
            )
        )
    return pd.concat(tables, ignore_index=True)


def choose_warp_defaults(
    rows: pd.DataFrame, chosen_on: Sequence[str], min_recall: float = 0.95
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The cheapest ``nprobe`` and ``t_prime`` share keeping ``min_recall`` of the exhaustive top 10 on
    every collection of ``chosen_on``, and how that setting does on each collection.

    Parameters
    ----------
    rows : DataFrame
        :func:`warp_knob_sweep`'s rows.
    chosen_on : sequence of str
        Collections the setting is chosen on; the others check it.
    min_recall : float
        Least ``exhaustive_recall@10`` accepted on each of them.

    Returns
    -------
    (dict, DataFrame)
        ``{"nprobe", "t_prime_share"}`` (the one with the lowest mean ``p50_ms`` over ``chosen_on``,
        fewer probes on a tie), and the setting's row on every collection with a ``held_out`` column.

    Raises
    ------
    ValueError
        No setting reaches ``min_recall`` on every collection chosen on, or an unknown collection.

    Examples
    --------
    >>> rows = pd.DataFrame({"collection": ["a", "a", "b", "b"], "nprobe": [4, 8, 4, 8],
    ...     "t_prime_share": [0.01] * 4, "exhaustive_recall@10": [0.9, 0.97, 0.96, 0.99],
    ...     "p50_ms": [1.0, 2.0, 1.0, 2.0]})
    >>> chosen, check = choose_warp_defaults(rows, ["a"])
    >>> chosen, check[["collection", "held_out", "exhaustive_recall@10"]].values.tolist()
    ({'nprobe': 8, 't_prime_share': 0.01}, [['a', False, 0.97], ['b', True, 0.99]])
    """
    unknown = set(chosen_on) - set(rows["collection"])
    if unknown:
        raise ValueError(
            f"no rows for collection(s) {sorted(unknown)}; known: {sorted(set(rows['collection']))}"
        )
    fit = rows[rows["collection"].isin(chosen_on)]
    by_setting = fit.groupby(["nprobe", "t_prime_share"]).agg(
        recall=("exhaustive_recall@10", "min"), p50=("p50_ms", "mean")
    )
    good = by_setting[by_setting["recall"] >= min_recall].reset_index()
    if good.empty:
        best = float(by_setting["recall"].max())
        raise ValueError(
            f"no setting keeps {min_recall} of the exhaustive top 10 (best {best:.3f}); lower min_recall"
        )
    pick = good.sort_values(["p50", "nprobe", "t_prime_share"]).iloc[0]
    chosen = {"nprobe": int(pick["nprobe"]), "t_prime_share": float(pick["t_prime_share"])}
    check = rows[(rows["nprobe"] == chosen["nprobe"]) & (rows["t_prime_share"] == chosen["t_prime_share"])]
    check = check.assign(held_out=~check["collection"].isin(chosen_on)).reset_index(drop=True)
    return chosen, check
