"""Open an index folder written by Stanford colbert-ai (ColBERTv2 / PLAID) as a :class:`PlaidIndex`.

colbert-ai writes, in one folder: ``plan.json`` and ``metadata.json`` (the config, with ``nbits`` and
``dim``), ``centroids.pt``, ``buckets.pt`` (one set of residual bucket cutoffs and weights shared by all
dimensions), ``avg_residual.pt``, and per chunk ``N.codes.pt``, ``N.residuals.pt`` and
``doclens.N.json``; ``ivf.pid.pt`` holds the inverted lists as document ids, read by their lengths as
colbert-ai reads them (colbert-ai pads the id tensor past the lists' end; that tail is ignored). Every
``.pt`` file is read with ``torch.load(weights_only=True)``: tensors and tuples only, no code.
Tested against indexes colbert-ai 0.2.22 built itself at nbits 1, 2 and 4 (``tests/fixtures/colbert_ai``).

Two layout differences are translated: colbert-ai writes each bucket index least-significant bit first
inside its ``nbits`` group (lirlab: most-significant first), and its documents are numbered by passage
id, which become the string docnos ``"0"``, ``"1"``, ... unless ``docnos`` are given. colbert-ai indexes
store no token ids, so explanations from such an index show vectors without token strings.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import torch

from lirlab.index.codec import ResidualCodec, reverse_bit_groups
from lirlab.index.plaid import CompressedDocs, PlaidIndex
from lirlab.storage import ArtifactError


def _load_pt(file: Path):
    if not file.is_file():
        raise ArtifactError(f"{file}: missing (not a complete colbert-ai index)")
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and unpickler errors all mean the file cannot be used
        raise ArtifactError(f"{file}: cannot be read as a tensor file ({type(e).__name__}: {e})") from None


def _load_json(file: Path):
    if not file.is_file():
        raise ArtifactError(f"{file}: missing (not a complete colbert-ai index)")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ArtifactError(f"{file}: not valid JSON ({e})") from None


def is_stanford_index(path: str | os.PathLike) -> bool:
    """Whether ``path`` looks like a colbert-ai index folder."""
    path = Path(path)
    return (path / "centroids.pt").is_file() and (path / "buckets.pt").is_file()


def _chunk_numbers(path: Path) -> list[int]:
    numbers = sorted(
        int(m.group(1)) for f in path.iterdir() if (m := re.fullmatch(r"(\d+)\.codes\.pt", f.name))
    )
    if not numbers:
        raise ArtifactError(f"{path}: no N.codes.pt chunk files (not a colbert-ai index)")
    if numbers != list(range(len(numbers))):
        raise ArtifactError(f"{path}: chunk files are not numbered 0..{len(numbers) - 1}: {numbers}")
    return numbers


def _read_ivf(file: Path, n_centroids: int, n_docs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``ivf.pid.pt`` as ``(pids, offsets)``: the lists, read by their lengths as colbert-ai reads them.

    colbert-ai pads the concatenated lists with zeros (``optimize_ivf`` appends as many as the longest
    list when the last list would end closer than that to the end, for its strided views), so the pid
    tensor may hold more entries than the lengths add up to; the tail is not part of any list and is
    dropped here. Fewer entries than the lengths add up to is a damaged file.
    """
    loaded = _load_pt(file)
    if not (isinstance(loaded, tuple | list) and len(loaded) == 2):
        raise ArtifactError(f"{file}: expected (passage_ids, list_lengths)")
    pids, list_lengths = (torch.as_tensor(t) for t in loaded)
    if pids.is_floating_point() or list_lengths.is_floating_point():
        raise ArtifactError(f"{file}: passage ids and list lengths must be integers")
    pids, list_lengths = pids.flatten().long(), list_lengths.flatten().long()
    if list_lengths.numel() != n_centroids:
        raise ArtifactError(
            f"{file}: {list_lengths.numel()} inverted lists for {n_centroids} centroids "
            "(the index folder mixes files of different builds)"
        )
    if bool((list_lengths < 0).any()):
        raise ArtifactError(f"{file}: negative inverted-list lengths")
    total = int(list_lengths.sum())
    if total > pids.numel():
        raise ArtifactError(
            f"{file}: the {n_centroids} list lengths add up to {total} passage ids, the file holds only "
            f"{pids.numel()} (truncated or damaged; rebuild the index with colbert-ai)"
        )
    pids = pids[:total]
    if total and (int(pids.min()) < 0 or int(pids.max()) >= n_docs):
        raise ArtifactError(f"{file}: passage ids out of range for {n_docs} documents")
    offsets = torch.zeros(n_centroids + 1, dtype=torch.long)
    offsets[1:] = list_lengths.cumsum(0)
    return pids.to(torch.int32), offsets


def read_stanford_index(
    path: str | os.PathLike,
    encoder=None,
    docnos: Sequence[str] | None = None,
    device: str | torch.device | None = None,
) -> PlaidIndex:
    """Load a colbert-ai index folder for search with lirlab's PLAID engine.

    Parameters
    ----------
    path : str or Path
        The index folder (the one holding ``plan.json`` and ``centroids.pt``).
    encoder : lirlab.encoder.ColBERT, optional
        The checkpoint that built the index, to search with text queries.
    docnos : sequence of str, optional
        External ids by passage id; default ``"0"``, ``"1"``, ...
    device : str, optional
        Where search runs.

    Raises
    ------
    ArtifactError
        Naming the file that is missing, unreadable or inconsistent.
    """
    path = Path(path)
    if not path.is_dir():
        raise ArtifactError(f"{path}: no such index folder")
    meta_file = path / "metadata.json" if (path / "metadata.json").is_file() else path / "plan.json"
    config = _load_json(meta_file).get("config", {})
    try:
        nbits, dim = int(config["nbits"]), int(config["dim"])
    except (KeyError, TypeError, ValueError):
        raise ArtifactError(f"{meta_file}: config lacks nbits or dim") from None

    centroids = _load_pt(path / "centroids.pt")
    buckets = _load_pt(path / "buckets.pt")
    if not (isinstance(buckets, tuple | list) and len(buckets) == 2):
        raise ArtifactError(f"{path / 'buckets.pt'}: expected (bucket_cutoffs, bucket_weights)")
    cutoffs, weights = (torch.as_tensor(b).float().flatten() for b in buckets)
    if centroids.ndim != 2 or centroids.shape[1] != dim:
        raise ArtifactError(f"{path / 'centroids.pt'}: shape {tuple(centroids.shape)}, expected [n, {dim}]")
    if cutoffs.numel() != (1 << nbits) - 1 or weights.numel() != 1 << nbits:
        raise ArtifactError(f"{path / 'buckets.pt'}: bucket sizes do not match nbits={nbits}")
    codec = ResidualCodec(
        centroids.float(), cutoffs.expand(dim, -1).contiguous(), weights.expand(dim, -1).contiguous(), nbits
    )

    codes, residuals, lengths = [], [], []
    for n in _chunk_numbers(path):
        chunk_codes = _load_pt(path / f"{n}.codes.pt").flatten()
        chunk_residuals = _load_pt(path / f"{n}.residuals.pt")
        doclens = _load_json(path / f"doclens.{n}.json")
        if chunk_residuals.shape != (chunk_codes.shape[0], codec.packed_dim):
            raise ArtifactError(
                f"{path / f'{n}.residuals.pt'}: shape {tuple(chunk_residuals.shape)}, "
                f"expected [{chunk_codes.shape[0]}, {codec.packed_dim}]"
            )
        if sum(doclens) != chunk_codes.shape[0]:
            raise ArtifactError(
                f"{path / f'doclens.{n}.json'}: lengths sum to {sum(doclens)}, chunk holds {chunk_codes.shape[0]}"
            )
        codes.append(chunk_codes.long())
        residuals.append(reverse_bit_groups(chunk_residuals.to(torch.uint8), nbits))
        lengths.extend(doclens)
    codes_all = torch.cat(codes)
    if int(codes_all.max()) >= codec.n_centroids or int(codes_all.min()) < 0:
        raise ArtifactError(f"{path}: centroid codes out of range for {codec.n_centroids} centroids")
    lengths_t = torch.tensor(lengths, dtype=torch.long)
    offsets = torch.zeros(len(lengths) + 1, dtype=torch.long)
    offsets[1:] = lengths_t.cumsum(0)
    names = (
        tuple(str(d) for d in docnos) if docnos is not None else tuple(str(i) for i in range(len(lengths)))
    )
    if len(names) != len(lengths):
        raise ValueError(f"{len(names)} docnos given for {len(lengths)} documents in {path}")

    ivf = None
    if (path / "ivf.pid.pt").is_file():
        ivf = _read_ivf(path / "ivf.pid.pt", codec.n_centroids, len(lengths))

    compressed = CompressedDocs(
        codes_all.to(codec.code_dtype),
        torch.cat(residuals),
        torch.full((codes_all.shape[0],), -1, dtype=torch.long),
        offsets,
    )
    return PlaidIndex(
        codec,
        compressed,
        names,
        (),
        ivf=ivf,
        encoder=encoder,
        model={"name": config.get("checkpoint", ""), "source": "colbert-ai"},
        config={
            "nbits": nbits,
            "dim": dim,
            "n_centroids": codec.n_centroids,
            # colbert-ai saves float16 centroids: saved again by lirlab they stay float16, losing nothing
            "centroid_dtype": "float16" if centroids.dtype == torch.float16 else "float32",
            "source": str(path),
        },
        device=device,
    )
