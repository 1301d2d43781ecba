"""What every index shares: turning queries into a run DataFrame."""

from __future__ import annotations

import warnings
from typing import Any

import pandas as pd
import torch

from lirlab.data import Query, as_queries
from lirlab.encoding import Encoding
from lirlab.results import run_frame


class FewerResultsWarning(UserWarning):
    """A search returned fewer than ``k`` results for some queries."""


class Index:
    """Base class: subclasses implement :meth:`search_encoded` over their own storage.

    Attributes
    ----------
    docnos : tuple of str
        Document ids, by internal position.
    encoder : lirlab.encoder.ColBERT or None
        Used to encode text queries; pass ``encoder=`` when loading an index to search with text.
    """

    docnos: tuple[str, ...]
    encoder: Any = None

    def __len__(self) -> int:
        return len(self.docnos)

    def search_encoded(
        self, queries: Encoding, k: int = 10, **knobs
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per query, ``(document positions, scores)`` best first."""
        raise NotImplementedError

    def encode_queries(self, queries) -> tuple[list[Query], Encoding]:
        if isinstance(queries, Encoding):
            return [Query(q, q) for q in queries.ids], queries
        records = as_queries(queries)
        if self.encoder is None:
            raise ValueError("this index has no encoder: load it with encoder=... or pass encoded queries")
        return records, self.encoder.encode_queries(records)

    def search(self, queries, k: int = 10, **knobs) -> pd.DataFrame:
        """Search text queries (or an :class:`Encoding`); returns ``qid, query, docno, score, rank``.

        When the index holds fewer than ``k`` documents, or a query reaches fewer, every available
        result is returned and a :class:`FewerResultsWarning` says so.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive whole number, got {k!r}")
        records, encoded = self.encode_queries(queries)
        hits = self.search_encoded(encoded, k=k, **knobs)
        short = [q.qid for q, (positions, _) in zip(records, hits) if len(positions) < k]
        if short:
            warnings.warn(
                f"{len(short)} of {len(records)} queries got fewer than k={k} results "
                f"(index holds {len(self)} documents); first: {short[0]!r}",
                FewerResultsWarning,
                stacklevel=2,
            )
        return run_frame([q.qid for q in records], [q.text for q in records], hits, self.docnos)
