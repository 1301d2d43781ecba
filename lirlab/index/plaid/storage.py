"""A PLAID index folder (format version 2): ``metadata.json``, the codec, the compressed documents
and the IVF as ``.npy`` files, ``docnos.json`` and ``vocab.json``; written atomically through
:class:`lirlab.storage.ArtifactWriter`, read back through :func:`lirlab.storage.read_artifact`.

=================  ===========================================  =========================
file               holds                                        shape, dtype
=================  ===========================================  =========================
centroids          the codec's centroids                        [C, dim] float32/float16
bucket_cutoffs     residual bucket cutoffs per dimension        [dim, 2^nbits - 1] float32
bucket_weights     residual bucket values per dimension         [dim, 2^nbits] float32
codes              centroid code of every token                 [tokens] uint8/int16/int32
residuals          packed residuals                             [tokens, dim·nbits/8] uint8
token_ids          vocabulary ids                               [tokens] int16/uint16/int32
doc_offsets        token offsets of the documents               [docs + 1] int32/int64
ivf_positions      inverted lists (document positions)          [entries] int16/uint16/int32
ivf_offsets        where each centroid's list starts            [C + 1] int32/int64
deleted            deletion flags                               [docs] bool
=================  ===========================================  =========================

Integer arrays are written in the narrowest of the listed types that holds their values
(:func:`narrowest`): at SciFact's size (5,183 documents, a 30,522-entry vocabulary) token ids and list
positions take 2 bytes, offsets 4. ``metadata.json`` also records whether the IVF lists were built from
the codes (``ivf.exact``, which lets pruning read them). Version 1 folders (int32 token ids and list
positions, int64 offsets, no ``ivf`` entry) load unchanged; this version reads any of these widths, and
a lirlab that only knows version 1 refuses a version 2 folder in one line. uint16 arrays (ids or
positions from 32,768 to 65,535) are widened to int32 in memory, where torch's uint16 support is partial.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from lirlab.index.codec import ResidualCodec
from lirlab.index.knobs.codec import CENTROID_DTYPES, NBITS_CHOICES
from lirlab.index.plaid.compressed import CompressedDocs
from lirlab.index.plaid.ivf import IVF
from lirlab.index.pooling import load_pooling, save_pooling
from lirlab.index.regions import load_regions, save_regions
from lirlab.storage import ArtifactError, ArtifactWriter, read_artifact

if TYPE_CHECKING:
    from lirlab.index.base import Index
    from lirlab.index.plaid.index import PlaidIndex


def _tensor(array: np.ndarray) -> torch.Tensor:
    """A tensor sharing ``array``'s memory (memory-mapped arrays are read-only: the copy-free way)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(array)


def narrowest(values: torch.Tensor, kinds: tuple[type, ...]) -> np.ndarray:
    """``values`` as the first numpy integer type of ``kinds`` that holds all of them.

    >>> narrowest(torch.tensor([-1, 30521]), (np.int16, np.uint16, np.int32)).dtype
    dtype('int16')
    >>> narrowest(torch.tensor([0, 40000]), (np.int16, np.uint16, np.int32)).dtype
    dtype('uint16')
    """
    array = values.cpu().numpy()
    low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
    for kind in kinds:
        info = np.iinfo(kind)
        if info.min <= low and high <= info.max:
            return array.astype(kind, copy=False)
    return array.astype(kinds[-1])


#: Candidate types of the narrowed arrays, narrowest first (the last holds anything the index holds).
SMALL_IDS = (np.int16, np.uint16, np.int32)
OFFSETS = (np.int32, np.int64)


def centroid_dtype(config: dict) -> str:
    """The centroids' saved precision: ``config["centroid_dtype"]``, float32 for indexes built before it."""
    return config.get("centroid_dtype", "float32")


def arrays(index: PlaidIndex) -> dict[str, np.ndarray]:
    """The arrays of the folder, by file name."""
    docs = index.compressed
    return {
        "centroids": index.codec.centroids.float().cpu().numpy().astype(centroid_dtype(index.config())),
        "bucket_cutoffs": index.codec.bucket_cutoffs.float().cpu().numpy(),
        "bucket_weights": index.codec.bucket_weights.float().cpu().numpy(),
        "codes": docs.codes.to(index.codec.code_dtype).cpu().numpy(),
        "residuals": docs.residuals.cpu().numpy(),
        "token_ids": narrowest(docs.token_ids, SMALL_IDS),
        "doc_offsets": narrowest(docs.doc_offsets, OFFSETS),
        "ivf_positions": narrowest(index.ivf.positions, SMALL_IDS),
        "ivf_offsets": narrowest(index.ivf.offsets, OFFSETS),
        "deleted": docs.deleted.cpu().numpy(),
    }


def size_on_disk_bytes(index: PlaidIndex) -> int:
    """Bytes of the arrays and id lists :func:`save` writes (npy headers and metadata excluded)."""
    total = sum(a.nbytes for a in arrays(index).values())
    lists = sum(len(json.dumps(list(x), ensure_ascii=False).encode()) for x in (index.docnos, index.vocab))
    return int(total + lists)


def save(
    index: PlaidIndex, path: str | os.PathLike, overwrite: bool = False, *, owner: Index | None = None
) -> None:
    """Write the index folder atomically: the old folder at ``path`` stays intact until the new one is
    complete.

    ``owner`` is the index whose type and description the folder records, when another kind searches
    these files its own way (WARP); default ``index``.
    """
    owner = index if owner is None else owner
    with ArtifactWriter(
        path, owner.TYPE, index.FORMAT_VERSION, **({"overwrite": True} if overwrite else {})
    ) as w:
        for name, array in arrays(index).items():
            w.save_array(name, array)
        w.save_json("docnos", list(index.docnos))
        w.save_json("vocab", list(index.vocab))
        save_pooling(w, index.pooling)
        save_regions(w, index.compressed.regions, index.compressed.global_view)
        w.metadata.update(
            model=index.model,
            config={
                **index.config(),
                "nbits": index.nbits,
                "dim": index.dim,
                "n_centroids": index.n_centroids,
                "mask_token_id": index.mask_token_id,
            },
            counts={
                "documents": len(index.docnos),
                "live_documents": index.n_live,
                "tokens": index.n_tokens,
                "bytes_per_vector": index.codec.bytes_per_vector,
            },
            build=index.stats,
            describe=owner.describe(),
            ivf={"exact": bool(index.ivf.exact)},
        )


def load(
    cls: type[PlaidIndex],
    path: str | os.PathLike,
    encoder=None,
    device: str | torch.device | None = None,
    mmap: bool = False,
    verify: bool = True,
    artifact_type: str | None = None,
) -> PlaidIndex:
    """Open an index folder written by :func:`save` (see ``PlaidIndex.load``); ``artifact_type`` is the
    type the folder must record when it was saved for another kind (default ``cls.TYPE``)."""
    art = read_artifact(path, artifact_type or cls.TYPE, cls.FORMAT_VERSION, verify=verify)
    folder = Path(path)
    meta = folder / "metadata.json"
    config = art.table("config")
    try:
        nbits, dim, n_centroids = int(config["nbits"]), int(config["dim"]), int(config["n_centroids"])
        mask_token_id = int(config["mask_token_id"])
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise ArtifactError(f"{meta}: config lacks a valid {e} entry") from None
    if nbits not in NBITS_CHOICES or not 0 < dim <= 1 << 16 or not 0 < n_centroids < 1 << 31:
        raise ArtifactError(
            f"{meta}: config nbits={nbits}, dim={dim}, n_centroids={n_centroids} is not a valid index "
            f"(nbits one of {list(NBITS_CHOICES)})"
        )
    if centroid_dtype(config) not in CENTROID_DTYPES:
        raise ArtifactError(
            f"{meta}: config centroid_dtype={centroid_dtype(config)!r} is not one of {list(CENTROID_DTYPES)}"
        )
    lazy = mmap and (device is None or torch.device(device).type == "cpu")

    def array(name: str, shape: tuple | None = None, kinds: str = "iu", big: bool = False) -> torch.Tensor:
        values = art.array(name, mmap=lazy and big)
        if values.dtype.kind not in kinds or (shape is not None and values.shape != shape):
            raise ArtifactError(
                f"{folder / (name + '.npy')}: {values.dtype}{list(values.shape)} does not fit the index "
                f"(expected {'float' if kinds == 'f' else 'integer'} {list(shape) if shape else ''})"
            )
        if values.dtype == np.uint16:  # torch cannot index_select or min/max uint16 tensors
            values = values.astype(np.int32)
        return _tensor(values)

    docnos = art.strings("docnos")
    vocab = art.strings("vocab")
    n_docs = len(docnos)
    n_buckets = 1 << nbits
    centroids = array("centroids", (n_centroids, dim), "f").float()
    cutoffs = array("bucket_cutoffs", (dim, n_buckets - 1), "f")
    weights = array("bucket_weights", (dim, n_buckets), "f")
    try:
        codec = ResidualCodec(centroids.clone(), cutoffs.clone(), weights.clone(), nbits)
    except ValueError as e:
        raise ArtifactError(f"{meta}: config does not describe a valid codec ({e})") from None
    doc_offsets = array("doc_offsets", (n_docs + 1,))
    n_tokens = int(doc_offsets[-1])
    codes = array("codes", (n_tokens,), big=True)
    residuals = array("residuals", (n_tokens, codec.packed_dim), "u", big=True)
    token_ids = array("token_ids", (n_tokens,), big=True)
    ivf_offsets = array("ivf_offsets", (n_centroids + 1,))
    ivf_positions = array("ivf_positions", (int(ivf_offsets[-1]),))
    deleted = array("deleted", (n_docs,), "b")
    if n_docs and bool((doc_offsets[1:] < doc_offsets[:-1]).any()) or int(doc_offsets[0]) != 0:
        raise ArtifactError(f"{folder / 'doc_offsets.npy'}: offsets must start at 0 and never decrease")
    if bool((ivf_offsets[1:] < ivf_offsets[:-1]).any()) or int(ivf_offsets[0]) != 0:
        raise ArtifactError(f"{folder / 'ivf_offsets.npy'}: offsets must start at 0 and never decrease")
    if ivf_positions.numel() and (int(ivf_positions.min()) < 0 or int(ivf_positions.max()) >= n_docs):
        raise ArtifactError(f"{folder / 'ivf_positions.npy'}: positions outside 0..{n_docs - 1}")
    if n_tokens and (int(codes.max()) >= n_centroids or int(codes.min()) < 0):
        raise ArtifactError(
            f"{folder / 'codes.npy'}: codes outside the {n_centroids} centroids (0..{n_centroids - 1})"
        )
    if n_tokens and vocab and (int(token_ids.min()) < 0 or int(token_ids.max()) >= len(vocab)):
        raise ArtifactError(
            f"{folder / 'token_ids.npy'}: token ids outside the {len(vocab)}-entry vocab.json"
        )
    model, stats = art.table("model", required=False), art.table("build", required=False)
    pool_factor = config.get("pool_factor", 1)
    if not isinstance(pool_factor, int) or isinstance(pool_factor, bool) or pool_factor < 1:
        raise ArtifactError(f"{meta}: config.pool_factor must be a whole number >= 1")
    pooling = load_pooling(art, pool_factor, doc_offsets.numpy(), vocab)
    regions, global_view = load_regions(art, n_tokens)
    try:
        compressed = CompressedDocs(
            codes, residuals, token_ids, doc_offsets.clone(), deleted.clone(), regions, global_view
        )
        return cls(
            codec,
            compressed,
            docnos,
            vocab,
            mask_token_id=mask_token_id,
            ivf=IVF(ivf_positions, ivf_offsets, bool(art.table("ivf", required=False).get("exact", False))),
            encoder=encoder,
            model=model,
            config=config,
            stats=stats,
            device=device,
            pooling=pooling,
        )
    except ArtifactError:
        raise
    except (ValueError, TypeError, IndexError, KeyError, RuntimeError) as e:
        raise ArtifactError(f"{folder}: inconsistent arrays ({e})") from None
