"""The inverted file: for every centroid, the ascending positions of the documents holding a token
assigned to it.

Examples
--------
>>> import torch
>>> ivf = IVF.build(torch.tensor([2, 0, 2, 1]), torch.tensor([0, 2, 4]), n_centroids=3)
>>> [ivf.list(c).tolist() for c in range(3)]
[[0], [1], [0, 1]]
>>> ivf.lookup(torch.tensor([2, 1]))[0].tolist()
[0, 1, 1]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lirlab.encoding import offsets_from_lengths, rows_of


@dataclass(frozen=True)
class IVF:
    """Inverted lists: ``positions`` (int32, grouped by centroid, ascending within a list) cut by
    ``offsets`` (``[n_centroids + 1]`` int64).

    ``exact`` says the lists were built from the documents' codes (:meth:`build`, :meth:`merge`): a
    document is listed under a centroid exactly when one of its tokens has that code, so pruning may
    read the lists instead of the tokens. Lists read from another tool's index are not assumed exact.
    """

    positions: torch.Tensor
    offsets: torch.Tensor
    exact: bool = False

    @property
    def n_centroids(self) -> int:
        return int(self.offsets.shape[0]) - 1

    def to(self, device: str | torch.device) -> IVF:
        return IVF(self.positions.to(device), self.offsets.to(device=device, dtype=torch.long), self.exact)

    def list(self, centroid: int) -> torch.Tensor:
        """The positions listed under one centroid."""
        return self.positions[int(self.offsets[centroid]) : int(self.offsets[centroid + 1])]

    def lookup(self, centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The lists of ``centroids`` concatenated (int64 positions) and each list's length."""
        docs = self.positions[rows_of(self.offsets, centroids)].long()
        return docs, self.offsets[centroids + 1] - self.offsets[centroids]

    @classmethod
    def build(cls, codes: torch.Tensor, doc_offsets: torch.Tensor, n_centroids: int) -> IVF:
        """The lists of documents cut from ``codes`` by ``doc_offsets``."""
        lengths = doc_offsets[1:] - doc_offsets[:-1]
        n_docs = int(lengths.shape[0])
        device = codes.device
        if n_docs == 0 or codes.numel() == 0:
            return cls(
                torch.zeros(0, dtype=torch.int32, device=device),
                torch.zeros(n_centroids + 1, dtype=torch.long, device=device),
                True,
            )
        doc_of_token = torch.repeat_interleave(torch.arange(n_docs, device=device), lengths.to(device))
        keys = torch.unique(codes.to(device).long() * n_docs + doc_of_token)
        counts = torch.bincount(keys // n_docs, minlength=n_centroids)
        return cls((keys % n_docs).to(torch.int32), offsets_from_lengths(counts.cpu()).to(device), True)

    def merge(self, other: IVF, shift: int) -> IVF:
        """Union with ``other``'s lists over documents numbered from ``shift`` on, each list ascending."""
        positions, offsets = self.positions, self.offsets
        new_positions, new_offsets = other.positions.long() + shift, other.offsets
        n_centroids = self.n_centroids
        span = (
            int(
                max(
                    positions.max().item() if positions.numel() else 0,
                    new_positions.max().item() if new_positions.numel() else 0,
                )
            )
            + 1
        )
        centroid_ids = torch.arange(n_centroids, device=positions.device)
        old_keys = torch.repeat_interleave(centroid_ids, offsets[1:] - offsets[:-1]) * span + positions.long()
        new_keys = (
            torch.repeat_interleave(centroid_ids, new_offsets[1:] - new_offsets[:-1]) * span + new_positions
        )
        keys = torch.cat([old_keys, new_keys]).sort().values
        counts = torch.bincount(keys // span, minlength=n_centroids)
        return IVF(
            (keys % span).to(torch.int32),
            offsets_from_lengths(counts.cpu()).to(positions.device),
            self.exact and other.exact,
        )
