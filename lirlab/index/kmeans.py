"""Seeded spherical k-means for token vectors, in vectorized PyTorch (CPU or CUDA).

Centroids are L2-normalized after every update, so "nearest" means "highest cosine", the same
similarity MaxSim uses. Assignment runs in chunks of rows, so the ``[rows, centroids]`` similarity
buffer stays bounded however many vectors are clustered; on CPUs with int8 dot-product instructions
(torch's int8 route, :func:`lirlab.int8_products.int8_route`) it scores in int8 first and in float32
only the centroids a proven error bound cannot rule out (:func:`nearest_by_int8`), the same nearest
centroids about twice as fast.

Examples
--------
>>> import torch
>>> g = torch.Generator().manual_seed(0)
>>> points = torch.nn.functional.normalize(torch.randn(200, 8, generator=g), dim=1)
>>> centroids = spherical_kmeans(points, 4, iterations=3, seed=0)
>>> centroids.shape, bool(torch.allclose(centroids.norm(dim=1), torch.ones(4)))
(torch.Size([4, 8]), True)
>>> codes, cosines = nearest_centroids(points, centroids)
>>> codes.shape, bool((cosines <= 1.0001).all())
(torch.Size([200]), True)
"""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from lirlab.int8_products import RIGHT_LEVELS, as_uint8, int8_mm, int8_route
from lirlab.maxsim import FP32_UNIT_ROUNDOFF, quantize_rows

#: Bound on ``rows x centroids`` similarities materialized at once on a GPU (64 MiB of float32).
SIMILARITY_BUDGET = 1 << 24

#: The same bound on a CPU (4 MiB of float32): the block stays in cache between the multiply and the
#: max-reduce, about 1.5x faster than 64 MiB blocks on a 2-core Xeon (same codes and cosines).
CPU_SIMILARITY_BUDGET = 1 << 20

#: Columns per window of :func:`windowed_argmax` (nearest-centroid search on a CPU, when the number
#: of centroids is a multiple of it).
ARGMAX_WINDOW = 128

#: Rows whose int8 copies and error bounds :func:`nearest_by_int8` prepares at once (2 MiB at 128 dims).
INT8_PREPARED_ROWS = 1 << 14


def nearest_centroids(
    vectors: torch.Tensor, centroids: torch.Tensor, budget: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of and cosine to each row's most similar centroid, computed chunk by chunk.

    Parameters
    ----------
    vectors : torch.Tensor
        ``[n, dim]`` rows (any float dtype; compared in the centroids' dtype).
    centroids : torch.Tensor
        ``[k, dim]`` L2-normalized centroids; the result lives on their device.
    budget : int, optional
        Upper bound on similarities held at once (default :data:`CPU_SIMILARITY_BUDGET` on a CPU,
        :data:`SIMILARITY_BUDGET` elsewhere).

    Returns
    -------
    codes : torch.Tensor
        ``[n]`` int64 centroid indices.
    cosines : torch.Tensor
        ``[n]`` float32 similarity to that centroid.
    """
    if budget is None:
        budget = CPU_SIMILARITY_BUDGET if centroids.device.type == "cpu" else SIMILARITY_BUDGET
    n, n_centroids = vectors.shape[0], centroids.shape[0]
    rows_per_chunk = max(1, min(n, budget // max(1, n_centroids)))
    windowed = centroids.device.type == "cpu" and n_centroids % ARGMAX_WINDOW == 0
    if windowed and centroids.dtype == torch.float32 and int8_first_pass_available():
        return nearest_by_int8(vectors, centroids, rows_per_chunk)
    # Every block lands in one buffer, and the results in preallocated tensors: allocating per block
    # let glibc place the small, long-lived result tensors in the freed blocks, so each new block
    # needed fresh memory (gigabytes over one k-means).
    codes = torch.empty(n, dtype=torch.long, device=centroids.device)
    best = torch.empty(n, dtype=centroids.dtype, device=centroids.device)
    block = torch.empty(rows_per_chunk, n_centroids, dtype=centroids.dtype, device=centroids.device)
    for start in range(0, n, rows_per_chunk):
        chunk = vectors[start : start + rows_per_chunk].to(device=centroids.device, dtype=centroids.dtype)
        sims = block[: chunk.shape[0]]
        torch.mm(chunk, centroids.T, out=sims)
        stop = start + chunk.shape[0]
        if windowed:
            windowed_argmax(sims, best[start:stop], codes[start:stop])
        else:
            torch.max(sims, dim=1, out=(best[start:stop], codes[start:stop]))
    return codes, best.float()


def int8_first_pass_available() -> bool:
    """Whether :func:`nearest_centroids` scores in int8 first on this machine: torch's int8 route (int8
    dot-product instructions, :func:`lirlab.int8_products.int8_route`) and the numba kernels on.

    ONNX Runtime's route is exact here too (tests force it) but not faster: on a 2-core AMD Zen 3 (AVX2)
    the nearest of 8,192 centroids for 200,000 SciFact vectors took 13.7 s through it against 5.4 s in
    float32, the int32 products' window maxima and the rescoring costing more than the multiply saves.
    """
    from lirlab.index.plaid import kernels  # not at the top: the plaid package imports this module

    return kernels.enabled("cpu") and int8_route() == "torch"


def nearest_by_int8(
    vectors: torch.Tensor, centroids: torch.Tensor, rows_per_block: int, route: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`nearest_centroids` on a CPU with a proven int8 first pass: the same codes, and cosines
    to float rounding.

    Rows are rounded to int8 with one step each, centroids with one step for all (``s_x``, ``s_c``),
    so the int32 product ``P`` of the roundings is exact and ``s_x s_c P`` differs from the true cosine
    by at most ``e = sqrt(d)/2 (s_x |c|max + s_c (|x| + sqrt(d) s_x / 2))``. A centroid whose ``P`` is
    below the row's best by more than ``(2 e + m) / (s_x s_c)`` cannot be the nearest, even to float32
    rounding (``m = 4 gamma_d |x| |c|max`` bounds how far two float32 sums of the same products may
    disagree); the few others are scored in float32
    (:func:`~lirlab.index.plaid.kernels.rescore_nearest`, first of ties). A block with a row whose
    runner-up comes within ``m`` of its best is redone by the float32 multiply, so the codes are the
    float32 search's, and the cosines equal its to rounding. The int8 multiply runs by ``route``
    (:mod:`lirlab.int8_products`; this CPU's fastest by default): about four times as fast as float32
    on VNNI CPUs through torch, three times on AVX2 through ONNX Runtime.
    """
    from lirlab.index.plaid import kernels

    route = route or int8_route() or "torch"
    n, dim = vectors.shape
    root = math.sqrt(dim)
    rounded_centroids, centroid_step = quantize_rows(
        centroids, torch.zeros(centroids.shape[0], dtype=torch.long), 1, RIGHT_LEVELS[route]
    )
    rounded_centroids, centroid_step = rounded_centroids.T.contiguous(), float(centroid_step[0])
    largest_norm = float(centroids.norm(dim=1).max())
    centroids = centroids.contiguous()
    gamma = dim * FP32_UNIT_ROUNDOFF / (1 - dim * FP32_UNIT_ROUNDOFF)
    codes = torch.empty(n, dtype=torch.long)
    best = torch.empty(n, dtype=torch.float32)
    for first in range(0, n, INT8_PREPARED_ROWS):
        rows = vectors[first : first + INT8_PREPARED_ROWS].to(device="cpu", dtype=torch.float32).contiguous()
        rounded, step = quantize_rows(rows, torch.arange(rows.shape[0]), rows.shape[0])  # one step a row
        left = as_uint8(rounded) if route == "onnxruntime" else rounded
        norms = rows.norm(dim=1)
        bound = root / 2 * (step * largest_norm + centroid_step * (norms + root * step / 2))
        # two float32 sums of the same products differ by at most 2 gamma_dim |x| |c| each way
        margins = 4 * gamma * norms * largest_norm
        # in units of P, widened for the float32 rounding of the bound itself, plus one unit
        slack = torch.ceil((2 * bound + margins) * (1 + 1e-4) / (step * centroid_step)).to(torch.int32) + 1
        for start in range(0, rows.shape[0], rows_per_block):
            stop = min(start + rows_per_block, rows.shape[0])
            block = slice(first + start, first + stop)
            approx = int8_mm(left[start:stop], rounded_centroids, route)
            window_best = approx.view(stop - start, -1, ARGMAX_WINDOW).amax(dim=2)
            thresholds = window_best.amax(dim=1) - slack[start:stop]
            ambiguous = kernels.rescore_nearest(
                approx,
                window_best,
                thresholds,
                rows[start:stop],
                centroids,
                margins[start:stop],
                codes[block],
                best[block],
            )
            if bool(ambiguous.any()):  # a near tie: the float32 multiply decides, as without this pass
                sims = rows[start:stop] @ centroids.T
                windowed_argmax(sims, best[block], codes[block])
    return codes, best


def windowed_argmax(sims: torch.Tensor, best: torch.Tensor, codes: torch.Tensor) -> None:
    """``torch.max(sims, dim=1, out=(best, codes))`` (the first index of each row's maximum) in two
    steps: each window of :data:`ARGMAX_WINDOW` columns' maximum without its index, the first window
    holding the row's maximum, then the first index of it there. On a CPU, a max-reduce that keeps
    indices is several times slower than one that does not, and the index is then sought in one window.

    >>> sims = torch.zeros(2, 2 * ARGMAX_WINDOW)
    >>> sims[0, 3] = sims[0, ARGMAX_WINDOW + 1] = 1.0  # a tie across windows: the first wins
    >>> sims[1, ARGMAX_WINDOW + 5] = 2.0
    >>> best, codes = torch.empty(2), torch.empty(2, dtype=torch.long)
    >>> windowed_argmax(sims, best, codes)
    >>> best.tolist(), codes.tolist()
    ([1.0, 2.0], [3, 133])
    """
    rows = sims.shape[0]
    windows = sims.view(rows, -1, ARGMAX_WINDOW)
    torch.max(windows.amax(dim=2), dim=1, out=(best, codes))
    within = windows[torch.arange(rows, device=sims.device), codes].argmax(dim=1)
    codes.mul_(ARGMAX_WINDOW).add_(within)


def spherical_kmeans(
    vectors: torch.Tensor,
    n_centroids: int,
    iterations: int = 4,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Cluster unit vectors into ``n_centroids`` unit centroids.

    Starts from ``n_centroids`` distinct rows picked by a seeded permutation, then alternates
    nearest-centroid assignment and mean-then-normalize updates. A centroid that loses all its members
    is moved onto the row its cluster serves worst (lowest cosine to its centroid), so none stays empty.

    Parameters
    ----------
    vectors : torch.Tensor
        ``[n, dim]`` training rows, ``n >= n_centroids``.
    n_centroids : int
        Number of clusters.
    iterations : int
        Assignment/update rounds (ColBERTv2 uses 4 to 20; quality saturates early for IVF use).
    seed : int
        Seeds the initial choice; equal inputs and seeds give equal centroids on the same device.
    device :
        Where to compute (default: where ``vectors`` are).
    progress : bool
        Show a progress bar over iterations.

    Returns
    -------
    torch.Tensor
        ``[n_centroids, dim]`` float32, L2-normalized rows, on ``device``.
    """
    n = vectors.shape[0]
    if n_centroids < 1:
        raise ValueError(f"n_centroids must be >= 1, got {n_centroids}")
    if n < n_centroids:
        raise ValueError(f"k-means needs at least n_centroids={n_centroids} vectors, got {n}")
    device = torch.device(device) if device is not None else vectors.device
    points = vectors.to(device=device, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    first = torch.randperm(n, generator=generator)[:n_centroids].to(device)
    centroids = torch.nn.functional.normalize(points[first].clone(), dim=1)
    for _ in tqdm(range(iterations), desc="k-means", unit="iter", disable=not progress):
        codes, cosines = nearest_centroids(points, centroids)
        sums = torch.zeros_like(centroids).index_add_(0, codes, points)
        counts = torch.bincount(codes, minlength=n_centroids)
        empty = (counts == 0).nonzero().flatten()
        if empty.numel():
            worst_served = cosines.argsort()[: empty.numel()]
            sums[empty] = points[worst_served]
        centroids = torch.nn.functional.normalize(sums, dim=1)
    return centroids
