"""Building a PLAID index: k-means on a sample, the residual codec, then compression chunk by chunk.

:func:`build_parts` is shared by ``PlaidIndex.build`` (text + encoder) and ``PlaidIndex.from_encoding``
(encoded documents): both hand it a function that returns the encoding of some document positions and
the :data:`~lirlab.index.plaid.knobs.BUILD_PARAMS` values, validated once by the caller.

Examples
--------
>>> import torch
>>> from lirlab.encoding import Encoding, offsets_from_lengths
>>> g = torch.Generator().manual_seed(0)
>>> docs = Encoding(ids=tuple(f"d{i}" for i in range(20)),
...                 vectors=torch.nn.functional.normalize(torch.randn(100, 8, generator=g), dim=1),
...                 token_ids=torch.zeros(100, dtype=torch.long),
...                 offsets=offsets_from_lengths(torch.full((20,), 5)), vocab=("t",))
>>> knobs = {"nbits": 2, "n_centroids": 4, "kmeans_iterations": 2, "kmeans_sample": None, "seed": 0}
>>> built = build_parts(len(docs), lambda p: docs.select(p.tolist()), knobs, chunk_docs=7)
>>> built.docnos == docs.ids, built.compressed.n_tokens, built.codec.n_centroids
(True, 100, 4)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from lirlab.encoding import Encoding, offsets_from_lengths
from lirlab.index.base import StageTimer
from lirlab.index.codec import ResidualCodec, check_layout
from lirlab.index.kmeans import spherical_kmeans
from lirlab.index.plaid.compressed import CompressedDocs, compress, join
from lirlab.index.plaid.knobs import MAX_DEFAULT_SAMPLE_DOCS, MAX_SAMPLE_VECTORS
from lirlab.index.pooling import Pooling, pool_if_asked

#: Share of sample vectors held out of k-means to fit the residual buckets (at most 50,000 vectors).
HELDOUT_SHARE = 0.05

#: Build-time nearest-centroid cosine quantile below which an added vector counts as drifted.
DRIFT_QUANTILE = 0.05

#: Vectors compressed per call while building (bounds the compression temporaries, ~20x the vectors).
COMPRESS_TOKENS = 1 << 14

#: Bins of the nearest-centroid cosine histogram kept at build time (resolution 2 / bins).
COSINE_BINS = 2000

#: What a build spends its time on, the keys of ``timings`` in :func:`build_parts`: encoding (the
#: ``encode`` calls), k-means and fitting the codec, compression (with putting documents in order).
BUILD_STAGES = ("encoding", "kmeans", "compression")


@dataclass(frozen=True)
class Built:
    """What :func:`build_parts` returns: everything a ``PlaidIndex`` is made of."""

    codec: ResidualCodec
    compressed: CompressedDocs
    docnos: tuple[str, ...]
    vocab: tuple[str, ...]
    mask_token_id: int
    config: dict[str, Any]
    stats: dict[str, Any]
    pooling: Pooling | None = None


def compress_bounded(codec: ResidualCodec, encoded: Encoding, max_tokens: int | None = None) -> list:
    """:func:`compress` over groups of whole documents of at most ``max_tokens`` tokens each.

    Compression holds several temporaries per vector (residuals, bucket comparisons, sums: about 20
    times the float32 vector), so it runs on groups of at most :data:`COMPRESS_TOKENS` vectors (a
    longer document forms a group alone): its peak memory is bounded however large the sample or
    chunk. The parts equal one call over everything, row for row.

    >>> from lirlab.encoding import Encoding, offsets_from_lengths
    >>> lengths = torch.tensor([3, 4, 2, 5])
    >>> docs = Encoding(ids=("a", "b", "c", "d"), vectors=torch.eye(14, 4), token_ids=torch.zeros(14, dtype=torch.long),
    ...                 offsets=offsets_from_lengths(lengths), vocab=("t",))
    >>> [len(group) for group in token_groups(docs.lengths, 7)]
    [2, 2]
    """
    limit = COMPRESS_TOKENS if max_tokens is None else max_tokens
    return [compress(codec, encoded.select(group.tolist())) for group in token_groups(encoded.lengths, limit)]


def token_groups(lengths: torch.Tensor, max_tokens: int) -> list[torch.Tensor]:
    """Consecutive document positions in groups of at most ``max_tokens`` tokens (at least one document each)."""
    groups, start, total = [], 0, 0
    for i, n in enumerate(lengths.tolist()):
        if i > start and total + n > max_tokens:
            groups.append(torch.arange(start, i))
            start, total = i, 0
        total += n
    if start < len(lengths):
        groups.append(torch.arange(start, len(lengths)))
    return groups


def chunks(positions: torch.Tensor, size: int) -> list[torch.Tensor]:
    return [positions[i : i + size] for i in range(0, positions.numel(), size)]


def cosine_histogram(cosines: torch.Tensor) -> torch.Tensor:
    return torch.histc(cosines.float().cpu().clamp(-1, 1), bins=COSINE_BINS, min=-1.0, max=1.0).double()


def histogram_quantile(histogram: torch.Tensor, q: float) -> float:
    """Lower edge of the bin holding the ``q`` quantile."""
    cumulative = histogram.cumsum(0)
    total = float(cumulative[-1])
    if total == 0:
        return -1.0
    bin_index = int(torch.searchsorted(cumulative, torch.tensor([q * total], dtype=cumulative.dtype)).item())
    return -1.0 + 2.0 * min(bin_index, COSINE_BINS - 1) / COSINE_BINS


def encode_sample(
    in_sample: torch.Tensor,
    encode: Callable[[torch.Tensor], Encoding],
    chunk_docs: int,
    generator: torch.Generator,
    progress: bool,
    max_vectors: int | None = None,
) -> list[Encoding]:
    """Encode the sampled documents (``in_sample``, updated in place) chunk by chunk, in position order,
    holding at most about ``max_vectors`` (default :data:`MAX_SAMPLE_VECTORS`) token vectors.

    When the first chunk's tokens per document say the whole sample would exceed the cap, the sampled
    documents not yet encoded are thinned at random (seeded) to fit; encoding also stops at the cap.
    Documents dropped from the sample are cleared from ``in_sample`` and get encoded with the rest.
    """
    cap = MAX_SAMPLE_VECTORS if max_vectors is None else max_vectors
    positions = in_sample.nonzero().flatten()
    first, later = positions[:chunk_docs], positions[chunk_docs:]
    bar = tqdm(total=int(positions.numel()), desc="encode k-means sample", unit="doc", disable=not progress)
    parts = [encode(first)]
    held = int(parts[0].vectors.shape[0])
    bar.update(int(first.numel()))
    per_doc = max(held / max(1, int(first.numel())), 1e-9)
    room = max(0, int((cap - held) / per_doc))
    if later.numel() > room:
        keep = torch.randperm(int(later.numel()), generator=generator)[:room].sort().values
        in_sample[later] = False
        later = later[keep]
        in_sample[later] = True
        bar.total = int(first.numel() + later.numel())
    for chunk in chunks(later, chunk_docs):
        if held >= cap:
            in_sample[chunk] = False
            continue
        parts.append(encode(chunk))
        held += int(parts[-1].vectors.shape[0])
        bar.update(int(chunk.numel()))
    bar.close()
    return parts


def gather_rows(parts: list[Encoding], rows: torch.Tensor) -> torch.Tensor:
    """``Encoding.concat(parts).vectors[rows]`` without building the concatenation.

    >>> from lirlab.encoding import Encoding, offsets_from_lengths
    >>> def part(start, n):
    ...     return Encoding(ids=tuple(str(i) for i in range(n)), vectors=torch.arange(start, start + n).float()[:, None],
    ...                     token_ids=torch.zeros(n, dtype=torch.long), offsets=offsets_from_lengths(torch.ones(n, dtype=torch.long)), vocab=("t",))
    >>> gather_rows([part(0, 2), part(2, 3)], torch.tensor([4, 0, 2])).flatten().tolist()
    [4.0, 0.0, 2.0]
    """
    sizes = torch.tensor([0] + [int(p.vectors.shape[0]) for p in parts])
    bounds = sizes.cumsum(0)
    which = torch.searchsorted(bounds, rows, right=True) - 1
    out = torch.empty((int(rows.numel()), parts[0].vectors.shape[1]), dtype=parts[0].vectors.dtype)
    for i, part in enumerate(parts):
        selected = (which == i).nonzero().flatten()
        if selected.numel():
            out[selected] = part.vectors[rows[selected] - bounds[i]]
    return out


def build_parts(
    n_docs: int,
    encode: Callable[[torch.Tensor], Encoding],
    knobs: dict[str, Any],
    *,
    chunk_docs: int,
    device: str | torch.device | None = None,
    progress: bool = False,
    timings: dict[str, float] | None = None,
    centroids: torch.Tensor | None = None,
) -> Built:
    """Encode (through ``encode``) and compress ``n_docs`` documents.

    A seeded sample of ``kmeans_sample`` documents is encoded first (in chunks of ``chunk_docs``) and
    its vectors train k-means (95%) and the residual buckets (5% held out); then the sample and every
    further chunk are compressed, keeping only codes, packed residuals, token ids and lengths. Each
    document is encoded exactly once; peak memory is the sample's vectors (or one chunk's, whichever is
    larger) and the compressed index.

    Parameters
    ----------
    n_docs : int
        Documents to index, at positions ``0..n_docs-1``.
    encode : callable
        Positions tensor → their :class:`~lirlab.encoding.Encoding`, in that order.
    knobs : dict
        Validated :data:`~lirlab.index.plaid.knobs.BUILD_PARAMS` values.
    chunk_docs : int
        Documents encoded at a time.
    device :
        Where k-means and compression run (default: CPU).
    progress : bool
        Show progress bars.
    timings : dict, optional
        Filled with the seconds spent on each of :data:`BUILD_STAGES`.
    centroids : torch.Tensor, optional
        The k-means result of a build of the same documents with the same k-means knobs, reused
        instead of running k-means again (k-means does not depend on ``nbits``).
    """
    if n_docs == 0:
        raise ValueError("cannot build an index of 0 documents")
    timer = StageTimer(BUILD_STAGES, timings is not None, device or "cpu")
    timer.start()
    seed = knobs["seed"]
    pool_factor = knobs.get("pool_factor", 1)
    poolings: list[Pooling] = []  # one per encoded chunk, in encoding order

    def encode_chunk(positions: torch.Tensor) -> Encoding:
        # pool_factor is checked against the first chunk (the start of the random sample)
        encoded, pooling = pool_if_asked(encode(positions), pool_factor, check_length=not poolings)
        if pooling is not None:
            poolings.append(pooling)
        timer.lap("encoding")
        return encoded

    device = torch.device(device) if device is not None else torch.device("cpu")
    generator = torch.Generator().manual_seed(seed)

    # 1. Encode the k-means sample (once; it is compressed below, not encoded again). Its vectors are
    #    held until the codec is trained, so it stops at MAX_SAMPLE_VECTORS: once the first chunk shows
    #    the tokens per document, the rest of the sample is thinned (seeded) to fit, and what is left
    #    out is encoded with the other documents. Below the cap nothing changes.
    n_sample = knobs["kmeans_sample"] or min(
        n_docs, max(1, int(16 * math.sqrt(120 * n_docs))), MAX_DEFAULT_SAMPLE_DOCS
    )
    n_sample = min(n_sample, n_docs)
    in_sample = torch.zeros(n_docs, dtype=torch.bool)
    in_sample[torch.randperm(n_docs, generator=generator)[:n_sample]] = True
    sample_parts = encode_sample(in_sample, encode_chunk, chunk_docs, generator, progress)
    sample_positions = in_sample.nonzero().flatten()
    n_sample = int(sample_positions.numel())
    check_layout(sample_parts[0].dim, knobs["nbits"])

    # 2. Train k-means on 95% of the sample's vectors, the residual buckets on the rest (both gathered
    #    straight from the encoded chunks: the sample is never concatenated, so it is held once).
    n_vectors = sum(int(part.vectors.shape[0]) for part in sample_parts)
    n_heldout = min(50_000, max(2, int(HELDOUT_SHARE * n_vectors)))
    if n_vectors - n_heldout < 1:
        raise ValueError(f"the k-means sample holds only {n_vectors} token vectors; need at least 3")
    permutation = torch.randperm(n_vectors, generator=generator)
    heldout_rows, train_rows = permutation[:n_heldout], permutation[n_heldout:]
    n_train = int(train_rows.numel())
    if knobs["n_centroids"] is None:
        estimated_tokens = n_vectors / n_sample * n_docs
        n_centroids = min(2 ** int(math.floor(math.log2(16 * math.sqrt(estimated_tokens)))), n_train)
    else:
        n_centroids = knobs["n_centroids"]
        if n_centroids > n_train:
            raise ValueError(
                f"n_centroids={n_centroids} exceeds the {n_train} k-means training vectors; "
                "lower it or raise kmeans_sample"
            )
    per_centroid = knobs.get("kmeans_points_per_centroid")
    if per_centroid is not None and n_train > per_centroid * n_centroids:
        train_rows = train_rows[: per_centroid * n_centroids]  # the permutation is seeded: a random subset
    n_trained = int(train_rows.numel())
    if centroids is None:
        centroids = spherical_kmeans(
            gather_rows(sample_parts, train_rows),
            n_centroids,
            iterations=knobs["kmeans_iterations"],
            seed=seed,
            device=device,
            progress=progress,
        )
    elif tuple(centroids.shape) != (n_centroids, sample_parts[0].dim):
        raise ValueError(
            f"the centroids given are {tuple(centroids.shape)}; this build needs ({n_centroids}, {sample_parts[0].dim})"
        )
    centroid_dtype = knobs.get("centroid_dtype", "float32")
    if centroid_dtype == "float16":  # rounded before the residuals, so saving them in float16 loses nothing
        centroids = centroids.half().float()
    codec = ResidualCodec.train(centroids, gather_rows(sample_parts, heldout_rows), knobs["nbits"], seed=seed)
    timer.lap("kmeans")

    # 3. Compress the sample part by part (compression temporaries are ~20x the vectors they compress,
    #    so one call over the whole sample would dominate peak memory), then encode and compress the
    #    remaining documents chunk by chunk.
    del train_rows, heldout_rows, permutation
    vocab, mask_token_id = sample_parts[0].vocab, sample_parts[0].mask_token_id
    parts, docnos = [], []
    while sample_parts:
        part = sample_parts.pop(0)
        parts.extend(compress_bounded(codec, part))
        docnos.extend(part.ids)
        del part
    timer.lap("compression")
    rest = (~in_sample).nonzero().flatten()
    bar = tqdm(total=int(rest.numel()), desc="encode + compress", unit="doc", disable=not progress)
    for chunk in chunks(rest, chunk_docs):
        encoded = encode_chunk(chunk)
        parts.extend(compress_bounded(codec, encoded))
        docnos.extend(encoded.ids)
        timer.lap("compression")
        bar.update(int(chunk.numel()))
    bar.close()

    # 4. Put documents back in input order.
    order = torch.argsort(torch.cat([sample_positions, rest]))
    joined = join(parts, order)
    docnos = [docnos[i] for i in order.tolist()]
    histogram = cosine_histogram(joined.cosines)
    config = {
        "nbits": knobs["nbits"],
        "dim": codec.dim,
        "n_centroids": n_centroids,
        "mask_token_id": mask_token_id,
        "pool_factor": pool_factor,
        "centroid_dtype": centroid_dtype,
        "kmeans": {
            "iterations": knobs["kmeans_iterations"],
            "sample_documents": n_sample,
            "training_vectors": n_trained,
            "points_per_centroid": per_centroid,
            "heldout_vectors": n_heldout,
            "seed": seed,
        },
    }
    stats = {
        "drift_quantile": DRIFT_QUANTILE,
        "drift_threshold": histogram_quantile(histogram, DRIFT_QUANTILE),
        "nearest_cosine_mean": float(joined.cosines.double().mean()) if joined.cosines.numel() else 0.0,
        "nearest_cosine_quantiles": {f"{q:g}": histogram_quantile(histogram, q) for q in (0.01, 0.05, 0.5)},
        "adds": [],
    }
    compressed = CompressedDocs(
        joined.codes,
        joined.residuals,
        joined.token_ids,
        offsets_from_lengths(joined.lengths),
        regions=joined.regions,
        global_view=joined.global_view,
    )
    pooling = Pooling.concat(poolings).select(order) if poolings else None
    timer.lap("compression")
    if timings is not None:
        timings.update(timer.totals)
    return Built(codec, compressed, tuple(docnos), tuple(vocab), mask_token_id, config, stats, pooling)
