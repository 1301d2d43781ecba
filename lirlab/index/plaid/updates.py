"""Changing a built PLAID index: :func:`add` documents (with the existing centroids and codec),
:func:`delete` them (searches skip them, positions stay), :func:`compact` (reclaim their space).

Each function computes everything first and only then swaps in a new
:class:`~lirlab.index.plaid.compressed.CompressedDocs` record and IVF, so an error leaves the index
unchanged. ``PlaidIndex.add``, ``delete`` and ``compact`` call them.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from lirlab.data import as_documents, check_unique
from lirlab.encoding import Encoding, offsets_from_lengths
from lirlab.index.plaid.build import DRIFT_QUANTILE, chunks
from lirlab.index.plaid.compressed import CompressedDocs, compress, join
from lirlab.index.plaid.ivf import IVF
from lirlab.index.plaid.knobs import CHUNK_DOCS, DEFAULT_CHUNK_DOCS
from lirlab.index.pooling import Pooling, pool_if_asked
from lirlab.index.regions import joined as joined_regions
from lirlab.index.regions import regions_at

if TYPE_CHECKING:
    from lirlab.index.plaid.index import PlaidIndex

#: :func:`add` warns when more than this share of new vectors drifted.
DRIFT_WARNING_LEVEL = 0.2


class DriftWarning(UserWarning):
    """Added documents sit far from the index's centroids: rebuilding would compress them better."""


@dataclass(frozen=True)
class AddReport:
    """What :func:`add` did.

    Attributes
    ----------
    n_documents, n_vectors : int
        Documents and token vectors added.
    drift : float
        Share of the new vectors whose cosine to their nearest centroid is below ``drift_threshold``.
    drift_threshold : float
        The build-time :data:`~lirlab.index.plaid.build.DRIFT_QUANTILE` quantile of nearest-centroid
        cosines (so about that share of in-distribution vectors fall below it).
    """

    n_documents: int
    n_vectors: int
    drift: float
    drift_threshold: float


def _check_vocab(index: PlaidIndex, encoded: Encoding) -> None:
    if index.vocab and encoded.vocab and encoded.vocab != index.vocab:
        raise ValueError("the new documents were encoded with another vocabulary than the index's")


def _live_docnos(index: PlaidIndex) -> dict[str, int]:
    return {index.docnos[i]: i for i in (~index.compressed.deleted).nonzero().flatten().tolist()}


def add(
    index: PlaidIndex,
    docs,
    encoder=None,
    *,
    batch_size: int = 32,
    chunk_docs: int = DEFAULT_CHUNK_DOCS,
    progress: bool = False,
) -> AddReport:
    """Compress new documents with the existing centroids and codec and append them.

    Parameters
    ----------
    docs : Encoding or documents
        Encoded documents, or anything :func:`lirlab.data.as_documents` accepts (then encoded with
        ``encoder`` or the index's own encoder).

    Returns
    -------
    AddReport
        Counts and drift; a :class:`DriftWarning` is issued when drift exceeds
        :data:`DRIFT_WARNING_LEVEL` (the centroids no longer fit: consider rebuilding).

    Raises
    ------
    ValueError
        A docno is not a string, is already live in the index (or repeated), or the vectors do not fit
        the index; the index is unchanged.
    """
    chunk_docs = CHUNK_DOCS.validate(chunk_docs)
    live = _live_docnos(index)
    if isinstance(docs, Encoding):
        ids = docs.ids
    else:
        records = as_documents(docs)
        ids = tuple(d.docno for d in records)
    for docno in ids:
        if not isinstance(docno, str):  # an Encoding built by hand: as_documents checked the others
            raise ValueError(
                f"document id {docno!r:.40} is a {type(docno).__name__}, not text: give every document a "
                "string id (e.g. str(n)); the index is unchanged"
            )
    check_unique(ids, "document id")
    clashes = [d for d in ids if d in live]
    if clashes:
        raise ValueError(f"{len(clashes)} document id(s) already in the index, first: {clashes[0]!r}")
    pool_factor = index.pooling.pool_factor if index.pooling is not None else 1
    poolings = []

    def pooled(encoded: Encoding) -> Encoding:
        """New documents pooled like the indexed ones (the mapping kept)."""
        encoded, pooling = pool_if_asked(encoded, pool_factor, check_length=False)
        if pooling is not None:
            poolings.append(pooling)
        return encoded

    if isinstance(docs, Encoding):
        _check_vocab(index, docs)
        parts = [
            compress(index.codec, pooled(docs.select(chunk.tolist())))
            for chunk in chunks(torch.arange(len(docs)), chunk_docs)
        ]
    else:
        encoder = encoder or index.encoder
        if encoder is None:
            raise ValueError("add() needs encoded documents or an encoder (pass encoder=...)")
        parts = []
        for chunk in tqdm(
            chunks(torch.arange(len(records)), chunk_docs),
            desc="encode + compress",
            unit="chunk",
            disable=not progress,
        ):
            encoded = encoder.encode_documents(
                [records[i] for i in chunk.tolist()], batch_size=batch_size, progress=False
            )
            _check_vocab(index, encoded)
            parts.append(compress(index.codec, pooled(encoded)))
    threshold = float(index.stats.get("drift_threshold", -1.0))
    if not ids:
        return AddReport(0, 0, 0.0, threshold)
    new = join(parts)
    drift = float((new.cosines < threshold).float().mean()) if new.cosines.numel() else 0.0
    report = AddReport(len(ids), int(new.codes.numel()), drift, threshold)

    old, device = index.compressed, index.device
    new_offsets = offsets_from_lengths(new.lengths).to(device)
    ivf = index.ivf.merge(IVF.build(new.codes.to(device), new_offsets, index.n_centroids), shift=old.n_docs)
    compressed = CompressedDocs(
        torch.cat([old.codes, new.codes.to(device)]),
        torch.cat([old.residuals, new.residuals.to(device)]),
        torch.cat([old.token_ids, new.token_ids.to(device=device)]),  # the wider of the two types
        torch.cat([old.doc_offsets, old.doc_offsets[-1] + new_offsets[1:]]),
        torch.cat([old.deleted, torch.zeros(len(ids), dtype=torch.bool, device=device)]),
        *joined_regions([old, new], "the index's documents and new documents"),
    )
    # Everything is computed: now swap in (nothing below can fail).
    pooling = Pooling.concat([index.pooling, *poolings]) if index.pooling is not None else None
    index.replace_documents(compressed, ivf, index.docnos + tuple(ids), pooling)
    index.stats = {
        **index.stats,
        "adds": [
            *index.stats.get("adds", []),
            {"documents": report.n_documents, "vectors": report.n_vectors, "drift": report.drift},
        ],
    }
    if drift > DRIFT_WARNING_LEVEL:
        warnings.warn(
            f"{drift:.0%} of the added vectors lie farther from their centroid than {DRIFT_QUANTILE:.0%} "
            f"of the indexed ones (cosine < {threshold:.3f}); they compress and are found less well. "
            "Consider rebuilding the index.",
            DriftWarning,
            stacklevel=3,
        )
    return report


def delete(index: PlaidIndex, docnos: str | Iterable[str]) -> int:
    """Mark documents deleted: searches skip them; other documents keep their positions.

    Raises ``ValueError`` naming the ids that are not live in the index (nothing is deleted then).
    Returns the number of documents deleted. :func:`compact` reclaims their space.
    """
    wanted = [docnos] if isinstance(docnos, str) else list(docnos)
    live = _live_docnos(index)
    unknown = [d for d in wanted if d not in live]
    if unknown:
        raise ValueError(
            f"unknown or already deleted document id(s): {unknown[:10]!r}"
            + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
        )
    positions = torch.tensor(sorted({live[d] for d in wanted}), dtype=torch.long, device=index.device)
    deleted = index.compressed.deleted.clone()
    deleted[positions] = True
    index.replace_documents(index.compressed.with_deleted(deleted), index.ivf, index.docnos, index.pooling)
    return int(positions.numel())


def compact(index: PlaidIndex) -> int:
    """Physically remove deleted documents (positions of later documents shift) and rebuild the IVF.

    Returns the number of documents removed.
    """
    old = index.compressed
    removed = int(old.deleted.sum())
    if removed == 0:
        return 0
    keep = (~old.deleted).nonzero().flatten()
    rows = old.rows(keep)
    codes = old.codes[rows]
    offsets = offsets_from_lengths(old.doc_lengths[keep].cpu()).to(index.device)
    compressed = CompressedDocs(
        codes,
        old.residuals[rows],
        old.token_ids[rows],
        offsets,
        **regions_at(old.regions, old.global_view, rows.cpu()),
    )
    ivf = IVF.build(codes, offsets, index.n_centroids)
    pooling = index.pooling.select(keep.cpu()) if index.pooling is not None else None
    index.replace_documents(compressed, ivf, tuple(index.docnos[i] for i in keep.tolist()), pooling)
    return removed
