"""The compressed documents of a PLAID index, as one record.

:class:`CompressedDocs` holds, in document-position order, every token's centroid code, its packed
residual and its vocabulary id, the offsets cutting tokens into documents and the deletion flags. It is
frozen: updates (:mod:`lirlab.index.plaid.updates`) build a new record. :class:`CompressedChunk` is what
compressing one encoded chunk yields while building or adding (lengths instead of offsets, plus each
token's cosine to its centroid for the drift statistics).

Examples
--------
>>> import torch
>>> docs = CompressedDocs(
...     codes=torch.tensor([0, 1, 1], dtype=torch.uint8),
...     residuals=torch.zeros(3, 2, dtype=torch.uint8),
...     token_ids=torch.tensor([5, 6, 7]),
...     doc_offsets=torch.tensor([0, 2, 3]),
... )
>>> docs.n_docs, docs.n_tokens, docs.doc_lengths.tolist(), docs.deleted.tolist()
(2, 3, [2, 1], [False, False])
>>> docs.rows(torch.tensor([1, 0])).tolist()
[2, 0, 1]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch

from lirlab.encoding import Encoding, offsets_from_lengths, rows_of
from lirlab.index.codec import ResidualCodec
from lirlab.index.regions import joined as joined_regions
from lirlab.index.regions import regions_at


@dataclass(frozen=True)
class CompressedDocs:
    """Codes, residuals and token ids of every document, documents in position order.

    Parameters
    ----------
    codes : torch.Tensor
        ``[n_tokens]`` centroid code of every token (the codec's code dtype).
    residuals : torch.Tensor
        ``[n_tokens, packed_dim]`` uint8 packed residuals.
    token_ids : torch.Tensor
        ``[n_tokens]`` vocabulary ids (-1 where unknown, as in a colbert-ai index).
    doc_offsets : torch.Tensor
        ``[n_docs + 1]`` int64; document ``i`` owns token rows ``doc_offsets[i]:doc_offsets[i+1]``.
    deleted : torch.Tensor, optional
        ``[n_docs]`` bool, documents removed by ``PlaidIndex.delete`` (default: none).
    regions, global_view : torch.Tensor, optional
        Page images: each token's patch box and global-view flag (see
        :attr:`lirlab.encoding.Encoding.regions`), kept on the CPU (search never reads them); ``None`` for
        text.
    """

    codes: torch.Tensor
    residuals: torch.Tensor
    token_ids: torch.Tensor
    doc_offsets: torch.Tensor
    deleted: torch.Tensor | None = None
    regions: torch.Tensor | None = field(default=None, repr=False)
    global_view: torch.Tensor | None = field(default=None, repr=False)
    doc_lengths: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self):
        n_tokens = int(self.codes.shape[0])
        n_docs = int(self.doc_offsets.shape[0]) - 1
        if self.residuals.ndim != 2 or self.residuals.shape[0] != n_tokens:
            raise ValueError(f"residuals must be [{n_tokens}, packed_dim], got {tuple(self.residuals.shape)}")
        if self.token_ids.shape != (n_tokens,):
            raise ValueError(f"token_ids must have {n_tokens} entries, got {tuple(self.token_ids.shape)}")
        if (
            self.doc_offsets.ndim != 1
            or n_docs < 0
            or int(self.doc_offsets[0]) != 0
            or int(self.doc_offsets[-1]) != n_tokens
        ):
            raise ValueError(f"doc_offsets must run from 0 to {n_tokens}")
        device = self.codes.device
        object.__setattr__(self, "doc_offsets", self.doc_offsets.to(device=device, dtype=torch.long))
        deleted = self.deleted if self.deleted is not None else torch.zeros(n_docs, dtype=torch.bool)
        if deleted.shape != (n_docs,):
            raise ValueError(f"deleted must have {n_docs} entries, got {tuple(deleted.shape)}")
        object.__setattr__(self, "deleted", deleted.to(device=device, dtype=torch.bool))
        if self.regions is not None and tuple(self.regions.shape) != (n_tokens, 4):
            raise ValueError(f"regions must be [{n_tokens}, 4], got {tuple(self.regions.shape)}")
        if self.global_view is not None and (self.regions is None or self.global_view.shape != (n_tokens,)):
            raise ValueError(f"global_view must be [{n_tokens}] and come with regions")
        object.__setattr__(self, "doc_lengths", self.doc_offsets[1:] - self.doc_offsets[:-1])

    @property
    def n_docs(self) -> int:
        return int(self.doc_offsets.shape[0]) - 1

    @property
    def n_tokens(self) -> int:
        return int(self.codes.shape[0])

    @property
    def device(self) -> torch.device:
        return self.codes.device

    def to(self, device: str | torch.device) -> CompressedDocs:
        """The same record with every array on ``device``."""
        device = torch.device(device)
        return CompressedDocs(
            self.codes.to(device),
            self.residuals.to(device),
            self.token_ids.to(device),
            self.doc_offsets.to(device),
            self.deleted.to(device),
            self.regions,
            self.global_view,
        )

    def with_deleted(self, deleted: torch.Tensor) -> CompressedDocs:
        """The same documents with new deletion flags (what search caches about the tokens carries over)."""
        out = replace(self, deleted=deleted)
        if "_inverse_norms" in self.__dict__:
            object.__setattr__(out, "_inverse_norms", self.__dict__["_inverse_norms"])
        return out

    def rows(self, positions: torch.Tensor) -> torch.Tensor:
        """Token rows of the documents at ``positions``, document after document."""
        return rows_of(self.doc_offsets, positions)

    def padded_rows(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token rows ``[n, max_len]`` of the documents at ``positions`` (0 where padded) and the mask."""
        starts = self.doc_offsets[positions]
        lengths = self.doc_lengths[positions]
        width = int(lengths.max()) if lengths.numel() else 0
        steps = torch.arange(width, device=self.device)
        mask = steps.unsqueeze(0) < lengths.unsqueeze(1)
        rows = (starts.unsqueeze(1) + steps.unsqueeze(0)).masked_fill(~mask, 0)
        return rows, mask

    def decompress(self, codec: ResidualCodec, rows: torch.Tensor, budget: int) -> torch.Tensor:
        """Reconstructed ``[len(rows), dim]`` float32 vectors of token ``rows``, ``budget`` floats at a time."""
        if not rows.numel():
            return torch.zeros(0, codec.dim, device=self.device)
        return torch.cat(
            [
                codec.decompress(self.codes.index_select(0, part), self.residuals.index_select(0, part))
                for part in rows.split(max(1, budget // codec.dim))
            ]
        )


@dataclass
class CompressedChunk:
    """Compressed documents in order: what survives of an encoded chunk."""

    codes: torch.Tensor
    residuals: torch.Tensor
    token_ids: torch.Tensor
    lengths: torch.Tensor
    cosines: torch.Tensor = field(repr=False)
    regions: torch.Tensor | None = field(default=None, repr=False)
    global_view: torch.Tensor | None = field(default=None, repr=False)


def compress(codec: ResidualCodec, encoded: Encoding) -> CompressedChunk:
    """Codes, residuals and centroid cosines of encoded documents (kept on the CPU)."""
    if encoded.dim != codec.dim:
        raise ValueError(f"document vectors have dim {encoded.dim}, the index has dim {codec.dim}")
    vectors = encoded.vectors.to(device=codec.device, dtype=torch.float32)
    codes, cosines = codec.assign(vectors)
    codes, residuals = codec.compress(vectors, codes)
    return CompressedChunk(
        codes.cpu(),
        residuals.cpu(),
        encoded.token_ids.to(torch.int32).cpu(),
        encoded.lengths.cpu(),
        cosines.cpu(),
        None if encoded.regions is None else encoded.regions.float().cpu(),
        None if encoded.global_view is None else encoded.global_view.cpu(),
    )


def join(parts: Sequence[CompressedChunk], order: torch.Tensor | None = None) -> CompressedChunk:
    """Concatenate compressed parts, then (if given) put documents in ``order`` (indices into the join)."""
    joined = CompressedChunk(
        *(
            torch.cat([getattr(p, name) for p in parts])
            for name in ("codes", "residuals", "token_ids", "lengths", "cosines")
        ),
        *joined_regions(parts, "compressed documents"),
    )
    if order is None:
        return joined
    rows = rows_of(offsets_from_lengths(joined.lengths), order)
    return CompressedChunk(
        joined.codes[rows],
        joined.residuals[rows],
        joined.token_ids[rows],
        joined.lengths[order],
        joined.cosines[rows],
        **regions_at(joined.regions, joined.global_view, rows),
    )
