"""What ColBERTv2's residual compression does to vectors, scores and rankings.

Every token vector ``v`` is stored as its nearest centroid ``c`` plus the residual ``v - c`` quantized
to ``nbits`` per dimension (:class:`~lirlab.index.codec.ResidualCodec`). The error has two sources,
which :data:`RECONSTRUCTIONS` tells apart:

* ``"quantized"``: what the index decodes, ``normalize(c + bucket weights)``;
* ``"centroid"``: the centroid alone (residual dropped), the error quantization starts from;
* ``"exact_residual"``: ``c + (v - c)``, the centroid with the unquantized residual, which gives ``v``
  back (cosine 1): the centroid costs nothing once the residual is exact, so every loss is the
  residual's quantization.

:func:`compressed_indexes` compresses the same vectors at several ``nbits`` with the same seed; k-means
does not depend on ``nbits``, so the indexes share their centroids and codes and differ only in how
residuals are quantized. The other functions compare those indexes with the original vectors:
cosines per token (:func:`cosine_distributions`), residuals against the codec's buckets
(:func:`residual_histogram`), MaxSim scores of each query's exact top-``k`` (:func:`score_errors`),
rankings (:func:`ranking_effects`), and all of it in one row per ``nbits``
(:func:`compression_table`).

Examples
--------
>>> import torch
>>> from lirlab.encoding import Encoding, offsets_from_lengths
>>> g = torch.Generator().manual_seed(0)
>>> docs = Encoding(
...     ids=tuple(f"d{i}" for i in range(40)),
...     vectors=torch.nn.functional.normalize(torch.randn(400, 16, generator=g), dim=1),
...     token_ids=torch.zeros(400, dtype=torch.long),
...     offsets=offsets_from_lengths(torch.full((40,), 10)),
...     vocab=("tok",),
... )
>>> indexes = compressed_indexes(docs, nbits=(1, 4), n_centroids=16)
>>> bool(torch.equal(indexes[1].codec.centroids, indexes[4].codec.centroids))
True
>>> summary = cosine_distributions(docs, indexes).summary
>>> summary.nbits.tolist(), bool(summary["mean"].is_monotonic_increasing)
([1, 4], True)
>>> exact = cosine_distributions(docs, indexes, reconstructions=["exact_residual"]).summary
>>> exact["min"].round(5).tolist()
[1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from lirlab.analysis.sweeps import check_queries
from lirlab.data import Dataset
from lirlab.encoding import Encoding, rows_of
from lirlab.evaluate import evaluate, judged, top_overlap
from lirlab.index.base import Index, index_kind
from lirlab.index.codec import unpack_buckets
from lirlab.index.flat import FlatIndex
from lirlab.params import Param

#: How a token vector is rebuilt from its code (see the module docstring).
RECONSTRUCTIONS = ("quantized", "centroid", "exact_residual")

#: Cosine quantiles reported by :func:`cosine_distributions`; column ``p1`` is the 0.01 quantile.
DEFAULT_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95)

#: Token vectors reconstructed at a time (bounds the memory of the reconstructions).
CHUNK_TOKENS = 1 << 16

#: Histogram bins, declared once for every histogram of this module.
BINS = Param("bins", int, 40, "Histogram bins.", low=1, high=10_000)

#: How the compressed rankings are made in :func:`ranking_effects`.
SEARCHES = ("exhaustive", "index")


def compressed_indexes(
    docs: Encoding,
    nbits: Sequence[int] = (1, 2, 4),
    *,
    n_centroids: int | None = None,
    kmeans_sample: int | None = None,
    kmeans_iterations: int = 4,
    seed: int = 0,
    progress: bool = False,
) -> dict[int, Index]:
    """The same encoded documents compressed at each ``nbits``, keyed by ``nbits``.

    Every index is a PLAID index built by ``from_encoding`` with the same seed and k-means settings;
    k-means does not depend on ``nbits``, so it runs once and all of them share centroids and codes,
    differing only in the residual quantization (on SciFact, k-means is about 70% of a build).
    """
    if not isinstance(docs, Encoding):
        raise ValueError(f"docs must be an Encoding, got {type(docs).__name__}")
    nbits = [nbits] if isinstance(nbits, int) else list(nbits)
    if not nbits:
        raise ValueError("give at least one nbits value")
    checked = [index_kind("plaid").BUILD_PARAMS["nbits"].validate(b) for b in nbits]
    if len(set(checked)) != len(checked):
        raise ValueError(f"nbits values repeat: {checked}")
    indexes: dict[int, Index] = {}
    for b in checked:
        indexes[b] = index_kind("plaid").from_encoding(
            docs,
            nbits=b,
            n_centroids=n_centroids,
            kmeans_sample=kmeans_sample,
            kmeans_iterations=kmeans_iterations,
            seed=seed,
            progress=progress,
            centroids=indexes[checked[0]].codec.centroids if indexes else None,
        )
    return indexes


def _index_list(indexes: Mapping[int, Index] | Sequence[Index] | Index) -> list[Index]:
    if isinstance(indexes, Index):
        return [indexes]
    values = list(indexes.values()) if isinstance(indexes, Mapping) else list(indexes)
    if not values:
        raise ValueError("no index to compare")
    for index in values:
        if not isinstance(index, Index) or getattr(index, "codec", None) is None:
            raise ValueError(
                f"compression analysis needs indexes with a residual codec (PLAID), got {type(index).__name__}"
            )
    return values


def _positions(index: Index) -> dict[str, int]:
    return {index.docnos[i]: i for i in index.live_positions().tolist()}


def _check_docs(docs: Encoding) -> None:
    if not isinstance(docs, Encoding):
        raise ValueError(f"docs must be the encoded documents (an Encoding), got {type(docs).__name__}")
    if len(docs) == 0:
        raise ValueError("no documents to compare")


def index_rows(docs: Encoding, index: Index) -> torch.Tensor:
    """The index's token rows holding ``docs``' tokens, in ``docs``' order.

    Raises ``ValueError`` naming a document the index lacks, or one whose tokens differ from the
    index's (the index was built from other vectors).
    """
    _check_docs(docs)
    live = _positions(index)
    missing = [d for d in docs.ids if d not in live]
    if missing:
        raise ValueError(f"document {missing[0]!r} is not in the index ({len(missing)} missing)")
    positions = torch.tensor([live[d] for d in docs.ids], dtype=torch.long)
    lengths = index.doc_lengths.cpu()[positions]
    if not torch.equal(lengths, docs.lengths.cpu()):
        first = int((lengths != docs.lengths.cpu()).nonzero()[0])
        raise ValueError(
            f"document {docs.ids[first]!r} has other tokens in the index: it was built from other vectors"
        )
    rows = rows_of(index.doc_offsets.cpu(), positions)
    token_differs = (index.token_ids.cpu()[rows].long() != docs.token_ids.cpu().long()).nonzero().flatten()
    if token_differs.numel():
        first = int(torch.searchsorted(docs.offsets.cpu(), token_differs[:1], right=True)) - 1
        raise ValueError(
            f"document {docs.ids[first]!r} has other tokens in the index: it was built from other vectors"
        )
    return rows


def _rebuild(index: Index, rows: torch.Tensor, originals: torch.Tensor, reconstruction: str) -> torch.Tensor:
    """Reconstructions (CPU float32) of the index's ``rows``, whose original vectors are ``originals``."""
    rows = rows.to(index.device)
    codec = index.codec
    if reconstruction == "quantized":
        return codec.decompress(index.codes[rows], index.residuals[rows]).cpu()
    centroids = codec.centroids[index.codes[rows].long()].float()
    if reconstruction == "centroid":
        return centroids.cpu()
    residual = originals.to(device=centroids.device, dtype=torch.float32) - centroids
    return torch.nn.functional.normalize(centroids + residual, dim=1).cpu()


def _chunked(docs: Encoding, index: Index, reconstruction: str):
    """Yield ``(originals, reconstructions)`` of ``docs``' tokens, :data:`CHUNK_TOKENS` rows at a time."""
    if reconstruction not in RECONSTRUCTIONS:
        raise ValueError(f"reconstruction must be one of {list(RECONSTRUCTIONS)}, got {reconstruction!r}")
    rows = index_rows(docs, index)
    for start in range(0, rows.numel(), CHUNK_TOKENS):
        originals = docs.vectors[start : start + CHUNK_TOKENS].float().cpu()
        yield originals, _rebuild(index, rows[start : start + CHUNK_TOKENS], originals, reconstruction)


def reconstruct(docs: Encoding, index: Index, reconstruction: str = "quantized") -> Encoding:
    """``docs`` with every token vector rebuilt from the index's codes (see :data:`RECONSTRUCTIONS`)."""
    parts = [rebuilt for _, rebuilt in _chunked(docs, index, reconstruction)]
    return Encoding(
        ids=docs.ids,
        vectors=torch.cat(parts) if parts else torch.zeros(0, docs.dim),
        token_ids=docs.token_ids,
        offsets=docs.offsets,
        vocab=docs.vocab,
        truncated=docs.truncated,
        kind=docs.kind,
        mask_token_id=docs.mask_token_id,
    )


def token_cosines(docs: Encoding, index: Index, reconstruction: str = "quantized") -> torch.Tensor:
    """Cosine between each original token vector of ``docs`` and its reconstruction: ``[n_tokens]``."""
    cosines = [
        torch.nn.functional.cosine_similarity(originals, rebuilt, dim=1)
        for originals, rebuilt in _chunked(docs, index, reconstruction)
    ]
    return torch.cat(cosines) if cosines else torch.zeros(0)


def _quantile_column(q: float) -> str:
    return f"p{q * 100:g}"


@dataclass(frozen=True)
class CosineDistribution:
    """Original-versus-reconstructed token cosines, per ``nbits`` and reconstruction.

    Attributes
    ----------
    summary : DataFrame
        ``nbits, reconstruction, vectors, mean, min``, then one column per quantile (``p1`` is the
        0.01 quantile, ``p50`` the median).
    histogram : DataFrame
        ``nbits, reconstruction, left, right, count, share``: the same bin edges for every row group.
    """

    summary: pd.DataFrame
    histogram: pd.DataFrame


def cosine_distributions(
    docs: Encoding,
    indexes: Mapping[int, Index] | Sequence[Index] | Index,
    reconstructions: Sequence[str] = ("quantized",),
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    bins: int = 40,
) -> CosineDistribution:
    """Quantiles and a histogram of the cosine between each token vector and its reconstruction.

    Histogram bins span from the lowest cosine seen (in any index and reconstruction) to 1.
    """
    _check_docs(docs)
    if isinstance(reconstructions, str):
        reconstructions = [reconstructions]
    bins = BINS.validate(bins)
    if any(not 0 <= q <= 1 for q in quantiles):
        raise ValueError(f"quantiles must lie in [0, 1], got {list(quantiles)}")
    cosines = {
        (index.nbits, reconstruction): token_cosines(docs, index, reconstruction).double().numpy()
        for index in _index_list(indexes)
        for reconstruction in reconstructions
    }
    summary = []
    for (nbits, reconstruction), values in cosines.items():
        row = {"nbits": nbits, "reconstruction": reconstruction, "vectors": len(values)}
        row["mean"] = float(values.mean()) if len(values) else float("nan")
        row["min"] = float(values.min()) if len(values) else float("nan")
        for q in quantiles:
            row[_quantile_column(q)] = float(np.quantile(values, q)) if len(values) else float("nan")
        summary.append(row)
    lowest = min((float(v.min()) for v in cosines.values() if len(v)), default=0.0)
    low = min(lowest, 1.0 - 1e-6)
    edges = np.linspace(low, 1.0, bins + 1)
    histogram = []
    for (nbits, reconstruction), values in cosines.items():
        counts, _ = np.histogram(np.clip(values, low, 1.0), bins=edges)
        for left, right, count in zip(edges[:-1], edges[1:], counts):
            histogram.append(
                {
                    "nbits": nbits,
                    "reconstruction": reconstruction,
                    "left": float(left),
                    "right": float(right),
                    "count": int(count),
                    "share": float(count / len(values)) if len(values) else 0.0,
                }
            )
    return CosineDistribution(pd.DataFrame(summary), pd.DataFrame(histogram))


@dataclass(frozen=True)
class ResidualHistogram:
    """Residuals ``v - c`` of token vectors against the codec's per-dimension buckets.

    Attributes
    ----------
    nbits : int
        The codec's bits per dimension.
    counts : DataFrame
        ``dim, left, right, count, share``: a histogram per dimension, or one pooled over every
        dimension with ``dim`` -1.
    buckets : DataFrame
        ``dim, bucket, lower, upper, weight, share``: each bucket's cutoffs (``-inf``/``inf`` at the
        ends), the value it decodes to, and the share of the residuals it holds (cutoffs sit at
        quantiles of held-out residuals, so shares near ``1 / 2**nbits`` mean the codec fits).
    """

    nbits: int
    counts: pd.DataFrame
    buckets: pd.DataFrame

    @property
    def pooled(self) -> bool:
        return bool((self.counts.dim == -1).all())


def residual_histogram(
    docs: Encoding,
    index: Index,
    dims: Sequence[int] | None = (0,),
    bins: int = 60,
    value_range: tuple[float, float] | None = None,
) -> ResidualHistogram:
    """Histograms of the exact residuals in dimensions ``dims`` (``None``: every dimension pooled)
    with the codec's cutoffs and bucket weights for those dimensions.

    ``value_range`` fixes the histogram's span (default: lowest to highest residual).
    """
    bins = BINS.validate(bins)
    dim_list = list(range(index.dim)) if dims is None else [dims] if isinstance(dims, int) else list(dims)
    bad = [d for d in dim_list if isinstance(d, bool) or not isinstance(d, int) or not 0 <= d < index.dim]
    if bad or not dim_list:
        raise ValueError(f"dims must be dimensions in 0..{index.dim - 1}, got {bad[0] if bad else 'none'}")
    rows = index_rows(docs, index)
    device_rows = rows.to(index.device)
    centroids = index.codec.centroids[index.codes[device_rows].long()].cpu()
    residuals = (docs.vectors.float().cpu() - centroids)[:, dim_list]
    if value_range is None:
        value_range = (float(residuals.min()), float(residuals.max())) if residuals.numel() else (-1.0, 1.0)
    low, high = map(float, value_range)
    if not low < high:
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range!r}")
    edges = np.linspace(low, high, bins + 1)
    groups = (
        [(-1, residuals.flatten())]
        if dims is None
        else [(d, residuals[:, i]) for i, d in enumerate(dim_list)]
    )
    counts = []
    for dim, values in groups:
        numbers, _ = np.histogram(values.double().numpy(), bins=edges)
        for left, right, count in zip(edges[:-1], edges[1:], numbers):
            counts.append(
                {
                    "dim": dim,
                    "left": float(left),
                    "right": float(right),
                    "count": int(count),
                    "share": float(count / len(values)) if len(values) else 0.0,
                }
            )
    stored = unpack_buckets(index.residuals[device_rows], index.nbits).long().cpu()[:, dim_list]
    n_buckets = 1 << index.nbits
    cutoffs = index.codec.bucket_cutoffs.float().cpu()
    weights = index.codec.bucket_weights.float().cpu()
    buckets = []
    for i, dim in enumerate(dim_list):
        held = torch.bincount(stored[:, i], minlength=n_buckets).double()
        bounds = [float("-inf"), *cutoffs[dim].tolist(), float("inf")]
        for bucket in range(n_buckets):
            buckets.append(
                {
                    "dim": dim,
                    "bucket": bucket,
                    "lower": bounds[bucket],
                    "upper": bounds[bucket + 1],
                    "weight": float(weights[dim, bucket]),
                    "share": float(held[bucket] / held.sum()) if held.sum() else 0.0,
                }
            )
    return ResidualHistogram(index.nbits, pd.DataFrame(counts), pd.DataFrame(buckets))


def score_errors(
    queries: Encoding,
    docs: Encoding,
    indexes: Mapping[int, Index] | Sequence[Index] | Index,
    k: int = 10,
    reference: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Exact against compressed MaxSim for each query's exact top-``k`` documents.

    Parameters
    ----------
    queries, docs : Encoding
        Encoded queries and the original (uncompressed) document vectors.
    reference : DataFrame, optional
        Exhaustive run over ``docs`` (computed when omitted); its top-``k`` documents are scored.

    Returns
    -------
    DataFrame
        ``nbits, qid, docno, exact_rank, exact, compressed, error`` with ``error = exact - compressed``:
        ``compressed`` is MaxSim against the index's decompressed vectors (PLAID's last stage).
    """
    _check_docs(docs)
    check_queries(queries)
    if reference is None:
        reference = FlatIndex(docs).search(queries, k=k)
    top = reference[reference["rank"] <= k]
    by_query = {qid: group for qid, group in top.groupby("qid", sort=False)}
    frames = []
    for index in _index_list(indexes):
        positions = _positions(index)
        missing = sorted(set(top.docno) - set(positions))
        if missing:
            raise ValueError(f"document {missing[0]!r} is not in the nbits={index.nbits} index")
        for i, qid in enumerate(queries.ids):
            group = by_query.get(qid)
            if group is None:
                continue
            wanted = [positions[d] for d in group.docno]
            compressed = index.exact_scores(queries.select([i]), wanted)[0].double().numpy()
            frames.append(
                pd.DataFrame(
                    {
                        "nbits": index.nbits,
                        "qid": qid,
                        "docno": group.docno.to_numpy(),
                        "exact_rank": group["rank"].to_numpy(),
                        "exact": group.score.to_numpy(dtype=np.float64),
                        "compressed": compressed,
                    }
                )
            )
    columns = ["nbits", "qid", "docno", "exact_rank", "exact", "compressed", "error"]
    if not frames:
        return pd.DataFrame(columns=columns)
    errors = pd.concat(frames, ignore_index=True)
    errors["error"] = errors.exact - errors.compressed
    return errors[columns]


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation: Pearson's correlation of the ranks (ties share their mean rank).

    NaN when either side is constant or has fewer than two values.

    >>> round(spearman([1, 2, 3, 4], [1, 3, 2, 4]), 6)
    0.8
    >>> round(spearman([1, 2, 3], [3, 2, 1]), 6)
    -1.0
    """
    a, b = pd.Series(x, dtype=float), pd.Series(y, dtype=float)
    if len(a) != len(b):
        raise ValueError(f"spearman needs two sequences of the same length, got {len(a)} and {len(b)}")
    if len(a) < 2:
        return float("nan")
    return float(a.rank().corr(b.rank()))


def spearman_by_query(errors: pd.DataFrame, x: str = "exact", y: str = "compressed") -> pd.DataFrame:
    """Per ``nbits`` and query, Spearman's correlation of two score columns of :func:`score_errors`.

    >>> errors = pd.DataFrame({"nbits": 2, "qid": ["a"] * 3 + ["b"] * 3,
    ...                        "exact": [3, 2, 1, 3, 2, 1], "compressed": [3, 2, 1, 1, 2, 3]})
    >>> spearman_by_query(errors).spearman.round(6).tolist()
    [1.0, -1.0]
    """
    missing = {"nbits", "qid", x, y} - set(errors.columns)
    if missing:
        raise ValueError(f"the table lacks column(s) {sorted(missing)}")
    rows = [
        {"nbits": nbits, "qid": qid, "spearman": spearman(group[x], group[y])}
        for (nbits, qid), group in errors.groupby(["nbits", "qid"], sort=False)
    ]
    return pd.DataFrame(rows, columns=["nbits", "qid", "spearman"])


def ranking_effects(
    queries: Encoding,
    docs: Encoding,
    indexes: Mapping[int, Index] | Sequence[Index] | Index,
    *,
    qrels: pd.DataFrame | Dataset | None = None,
    k: int = 10,
    measure: str = "nDCG@10",
    search: str = "exhaustive",
    reference: pd.DataFrame | None = None,
    errors: pd.DataFrame | None = None,
    **knobs,
) -> pd.DataFrame:
    """What compression does to rankings, one row per ``nbits``.

    Parameters
    ----------
    search : {"exhaustive", "index"}
        ``"exhaustive"`` ranks every document by MaxSim over its decompressed vectors (compression
        alone); ``"index"`` runs each compressed index's own search with ``knobs`` (compression plus
        pruning).
    reference, errors : DataFrame, optional
        The exhaustive run over ``docs`` and :func:`score_errors`' table, when already computed.

    Returns
    -------
    DataFrame
        ``nbits``, ``measure`` (when ``qrels`` are given) and ``<measure>_uncompressed`` (the same over
        the original vectors), ``top<k>_overlap`` (share of the uncompressed top-``k`` kept) and
        ``spearman`` (mean over queries of the rank correlation of exact and compressed scores of
        each query's exact top-``k``).
    """
    _check_docs(docs)
    if search not in SEARCHES:
        raise ValueError(f"search must be one of {list(SEARCHES)}, got {search!r}")
    check_queries(queries)
    if search == "exhaustive" and knobs:
        raise ValueError(f"search knobs ({', '.join(knobs)}) only apply to search='index'")
    if reference is None:
        reference = FlatIndex(docs).search(queries, k=k)
    if errors is None:
        errors = score_errors(queries, docs, indexes, k=k, reference=reference)
    correlations = spearman_by_query(errors).groupby("nbits").spearman.mean()
    judgments = judged(qrels, queries.ids)
    uncompressed = (
        None if judgments is None else float(evaluate(reference, judgments, [measure]).value.iloc[0])
    )
    rows = []
    for index in _index_list(indexes):
        if search == "exhaustive":
            run = FlatIndex(reconstruct(docs, index)).search(queries, k=k)
        else:
            run = index.search(queries, k=k, **knobs)
        row = {"nbits": index.nbits}
        if judgments is not None:
            row[measure] = float(evaluate(run, judgments, [measure]).value.iloc[0])
            row[f"{measure}_uncompressed"] = uncompressed
        row[f"top{k}_overlap"] = top_overlap(run, reference, k)
        row["spearman"] = float(correlations.get(index.nbits, float("nan")))
        rows.append(row)
    return pd.DataFrame(rows)


def compression_table(
    queries: Encoding,
    docs: Encoding,
    indexes: Mapping[int, Index] | Sequence[Index] | Index,
    *,
    qrels: pd.DataFrame | Dataset | None = None,
    k: int = 10,
    measure: str = "nDCG@10",
    search: str = "exhaustive",
    errors: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per ``nbits``: storage, vector error, score error and ranking effects together.

    Columns: ``nbits, n_centroids, bytes_per_vector``, the cosine summary of
    :func:`cosine_distributions` (``cosine_mean, cosine_min, cosine_p1 ...``), ``score_error_mean``
    (signed, exact minus compressed), ``score_error_mean_abs``, ``score_error_max_abs`` over each
    query's exact top-``k``, then the columns of :func:`ranking_effects`.
    """
    _check_docs(docs)
    check_queries(queries)
    reference = FlatIndex(docs).search(queries, k=k)
    if errors is None:
        errors = score_errors(queries, docs, indexes, k=k, reference=reference)
    cosines = cosine_distributions(docs, indexes).summary.drop(columns=["reconstruction"])
    cosines = cosines.rename(columns={c: f"cosine_{c}" for c in cosines.columns if c != "nbits"})
    magnitude = errors.assign(abs_error=errors.error.abs()).groupby("nbits")
    score = pd.DataFrame(
        {
            "score_error_mean": magnitude.error.mean(),
            "score_error_mean_abs": magnitude.abs_error.mean(),
            "score_error_max_abs": magnitude.abs_error.max(),
        }
    ).reset_index()
    storage = pd.DataFrame(
        [
            {
                "nbits": index.nbits,
                "n_centroids": index.n_centroids,
                "bytes_per_vector": index.codec.bytes_per_vector,
            }
            for index in _index_list(indexes)
        ]
    )
    rankings = ranking_effects(
        queries,
        docs,
        indexes,
        qrels=qrels,
        k=k,
        measure=measure,
        search=search,
        reference=reference,
        errors=errors,
    )
    return storage.merge(cosines, on="nbits").merge(score, on="nbits", how="left").merge(rankings, on="nbits")
