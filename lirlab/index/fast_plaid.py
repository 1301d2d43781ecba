"""Open an index folder written by fast-plaid (the engine PyLate builds by default) as a :class:`PlaidIndex`.

fast-plaid writes plain NumPy ``.npy`` files and JSON, read here as lirlab reads its own folders
(:func:`lirlab.storage.read_npy`: arrays only, no pickled objects, no symbolic links to files elsewhere): ``metadata.json`` (``nbits``, ``num_chunks``, ``num_documents``),
``centroids.npy`` (float16 ``[n_centroids, dim]``), ``bucket_cutoffs.npy`` and ``bucket_weights.npy``
(one set shared by every dimension, as in colbert-ai), ``doclens.N.json`` per chunk, ``ivf.npy`` and
``ivf_lengths.npy`` (the inverted lists as document ids), and the document codes and packed residuals
either as one file for the whole index (``merged_codes.npy``, ``merged_residuals.npy``, with
``merged_*.manifest.json`` giving each chunk's rows; fast-plaid pads them with rows past the last
document, which are dropped) or per chunk (``N.codes.npy``, ``N.residuals.npy``). The bit layout of a
residual byte is colbert-ai's (each bucket index least-significant bit first), translated as for
:func:`~lirlab.index.stanford.read_stanford_index`.

Not read: ``embeddings.npy`` and ``buffer.npy`` (raw vectors fast-plaid keeps to rebuild small
collections, or to re-cluster documents added by ``update``, which are already compressed and listed
like the others; search does not need them), ``avg_residual.npy`` and ``cluster_threshold.npy`` (build
statistics), and the document metadata database (``metadata.db``: fast-plaid's filtering; pass
``subset=`` to lirlab's search instead where the kind supports it). Refused with a message naming the
fix: an index built with ``compress_only=True`` (no inverted lists), and a folder whose update is not
folded in yet (chunk files the manifest does not mark as merged): open it once with fast-plaid, which
merges them, then read it here. Checked on an index fast-plaid built, then updated and deleted from
(the ids stay dense; fast-plaid's top-10 equal lirlab's up to float16 near-ties).

Documents are numbered by position (fast-plaid's document ids), which become the string docnos
``"0"``, ``"1"``, ... unless ``docnos`` are given. fast-plaid stores no token ids, so explanations show
vectors without token strings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from lirlab.index.codec import ResidualCodec, reverse_bit_groups
from lirlab.index.plaid import CompressedDocs, PlaidIndex
from lirlab.storage import ArtifactError, as_path, read_npy, read_plain_bytes


def is_fast_plaid_index(path: str | os.PathLike) -> bool:
    """Whether ``path`` looks like a fast-plaid index folder."""
    path = as_path(path, "index path")
    return (path / "centroids.npy").is_file() and (path / "bucket_weights.npy").is_file()


def _load_npy(file: Path, mmap: bool = False) -> np.ndarray:
    try:
        return read_npy(file, mmap=mmap)
    except FileNotFoundError:
        raise ArtifactError(f"{file}: missing (not a complete fast-plaid index)") from None


def _load_json(file: Path):
    try:
        return json.loads(read_plain_bytes(file).decode("utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{file}: missing (not a complete fast-plaid index)") from None
    except ValueError as e:
        raise ArtifactError(f"{file}: not valid JSON ({e})") from None


def _integer(array: np.ndarray, file: Path) -> torch.Tensor:
    if array.dtype.kind not in "iu":
        raise ArtifactError(f"{file}: expected integers, found {array.dtype}")
    return torch.from_numpy(np.asarray(array, dtype=np.int64))


def _rows(path: Path, suffix: str, n_chunks: int, total: int, dtype) -> np.ndarray:
    """The codes or residuals of every document, in order: from the per-chunk files when all exist,
    else from the merged file (its first ``total`` rows; the rest is padding)."""
    chunk_files = [path / f"{n}.{suffix}.npy" for n in range(n_chunks)]
    merged = path / f"merged_{suffix}.npy"
    present = [f.is_file() for f in chunk_files]
    if all(present) and not merged.is_file():
        return np.concatenate([np.asarray(_load_npy(f), dtype=dtype) for f in chunk_files])
    if not merged.is_file():
        raise ArtifactError(f"{merged}: missing, and {sum(present)} of {n_chunks} {suffix} chunk files exist")
    manifest_file = path / f"merged_{suffix}.manifest.json"
    if manifest_file.is_file():
        manifest = _load_json(manifest_file)
        staged = [
            f.name
            for f in chunk_files
            if f.is_file() and not (manifest.get(f.name) or {}).get("merged", False)
        ]
        if staged:
            raise ArtifactError(
                f"{path}: {staged[0]} holds an update fast-plaid has not merged yet; open the index once "
                "with fast-plaid (which merges it), then read it here"
            )
    rows = _load_npy(merged, mmap=True)
    if rows.shape[0] < total:
        raise ArtifactError(f"{merged}: {rows.shape[0]} rows for {total} token vectors (truncated)")
    return np.array(rows[:total], dtype=dtype)


def read_fast_plaid_index(
    path: str | os.PathLike,
    encoder=None,
    docnos: Sequence[str] | None = None,
    device: str | torch.device | None = None,
) -> PlaidIndex:
    """Load a fast-plaid index folder for search with lirlab's PLAID engine.

    Parameters
    ----------
    path : str or Path
        The index folder (the one holding ``metadata.json`` and ``centroids.npy``).
    encoder : lirlab.encoder.ColBERT, optional
        The checkpoint whose vectors were indexed, to search with text queries.
    docnos : sequence of str, optional
        External ids by fast-plaid document id; default ``"0"``, ``"1"``, ...
    device : str, optional
        Where search runs.

    Raises
    ------
    ArtifactError
        Naming the file that is missing, unreadable, inconsistent, a symbolic link, or the unfinished
        update.
    ValueError
        ``path`` cannot be a path (see :func:`lirlab.storage.as_path`).
    """
    path = as_path(path, "index path")
    if not path.is_dir():
        raise ArtifactError(f"{path}: no such index folder")
    meta_file = path / "metadata.json"
    meta = _load_json(meta_file)
    try:
        nbits, n_chunks = int(meta["nbits"]), int(meta["num_chunks"])
    except (KeyError, TypeError, ValueError):
        raise ArtifactError(f"{meta_file}: lacks nbits or num_chunks") from None
    if meta.get("compress_only"):
        raise ArtifactError(
            f"{meta_file}: built with compress_only=True (no inverted file): it cannot be searched"
        )

    stored_centroids = np.asarray(_load_npy(path / "centroids.npy"))
    centroids = torch.from_numpy(stored_centroids.astype(np.float32))
    if centroids.ndim != 2:
        raise ArtifactError(f"{path / 'centroids.npy'}: shape {tuple(centroids.shape)}, expected [n, dim]")
    n_centroids, dim = centroids.shape
    cutoffs = torch.from_numpy(np.asarray(_load_npy(path / "bucket_cutoffs.npy"), dtype=np.float32)).flatten()
    weights = torch.from_numpy(np.asarray(_load_npy(path / "bucket_weights.npy"), dtype=np.float32)).flatten()
    if cutoffs.numel() != (1 << nbits) - 1 or weights.numel() != 1 << nbits:
        raise ArtifactError(f"{path}: bucket_cutoffs/bucket_weights sizes do not match nbits={nbits}")
    try:
        codec = ResidualCodec(
            centroids, cutoffs.expand(dim, -1).contiguous(), weights.expand(dim, -1).contiguous(), nbits
        )
    except ValueError as e:
        raise ArtifactError(f"{path}: {e}") from None

    lengths: list[int] = []
    for n in range(n_chunks):
        chunk = _load_json(path / f"doclens.{n}.json")
        if not (isinstance(chunk, list) and all(isinstance(x, int) and x >= 0 for x in chunk)):
            raise ArtifactError(f"{path / f'doclens.{n}.json'}: expected a list of document lengths")
        lengths.extend(chunk)
    total = sum(lengths)
    codes = torch.from_numpy(_rows(path, "codes", n_chunks, total, np.int64).reshape(-1))
    residuals = torch.from_numpy(_rows(path, "residuals", n_chunks, total, np.uint8))
    if codes.shape[0] != total:
        raise ArtifactError(f"{path}: {codes.shape[0]} centroid codes for {total} token vectors")
    if residuals.shape != (total, codec.packed_dim):
        raise ArtifactError(
            f"{path}: residuals of shape {tuple(residuals.shape)}, expected [{total}, {codec.packed_dim}]"
        )
    if total and (int(codes.min()) < 0 or int(codes.max()) >= n_centroids):
        raise ArtifactError(f"{path}: centroid codes out of range for {n_centroids} centroids")

    ivf_file, lengths_file = path / "ivf.npy", path / "ivf_lengths.npy"
    pids = _integer(_load_npy(ivf_file), ivf_file).flatten()
    list_lengths = _integer(_load_npy(lengths_file), lengths_file).flatten()
    if list_lengths.numel() != n_centroids or bool((list_lengths < 0).any()):
        raise ArtifactError(
            f"{lengths_file}: {list_lengths.numel()} list lengths for {n_centroids} centroids"
        )
    listed = int(list_lengths.sum())
    if listed > pids.numel():
        raise ArtifactError(f"{ivf_file}: the lists add up to {listed} ids, the file holds {pids.numel()}")
    pids = pids[:listed]
    if listed and (int(pids.min()) < 0 or int(pids.max()) >= len(lengths)):
        raise ArtifactError(f"{ivf_file}: document ids out of range for {len(lengths)} documents")
    ivf_offsets = torch.zeros(n_centroids + 1, dtype=torch.long)
    ivf_offsets[1:] = list_lengths.cumsum(0)

    names = (
        tuple(str(d) for d in docnos) if docnos is not None else tuple(str(i) for i in range(len(lengths)))
    )
    if len(names) != len(lengths):
        raise ValueError(f"{len(names)} docnos given for {len(lengths)} documents in {path}")
    offsets = torch.zeros(len(lengths) + 1, dtype=torch.long)
    offsets[1:] = torch.tensor(lengths, dtype=torch.long).cumsum(0)
    compressed = CompressedDocs(
        codes.to(codec.code_dtype),
        reverse_bit_groups(residuals, nbits),
        torch.full((total,), -1, dtype=torch.long),
        offsets,
    )
    return PlaidIndex(
        codec,
        compressed,
        names,
        (),
        ivf=(pids.to(torch.int32), ivf_offsets),
        encoder=encoder,
        model={"name": "", "source": "fast-plaid"},
        config={
            "nbits": nbits,
            "dim": dim,
            "n_centroids": n_centroids,
            "centroid_dtype": "float16" if stored_centroids.dtype == np.float16 else "float32",
            "source": str(path),
        },
        device=device,
    )
