"""Exhaustive ("flat") index over uncompressed token vectors: the quality reference.

Examples
--------
>>> import torch, tempfile
>>> from lirlab.encoding import Encoding
>>> docs = Encoding(ids=("a", "b"), vectors=torch.eye(2), token_ids=torch.tensor([0, 1]),
...                 offsets=torch.tensor([0, 1, 2]), vocab=("x", "y"))
>>> queries = Encoding(ids=("q",), vectors=torch.tensor([[0.0, 1.0]]), token_ids=torch.tensor([1]),
...                    offsets=torch.tensor([0, 1]), vocab=("x", "y"), kind="query")
>>> index = FlatIndex(docs)
>>> index.search(queries, k=2)[["docno", "score", "rank"]].values.tolist()
[['b', 1.0, 1], ['a', 0.0, 2]]
>>> folder = tempfile.mkdtemp() + "/idx"
>>> index.save(folder)
>>> FlatIndex.load(folder).docnos
('a', 'b')
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lirlab.data import as_documents
from lirlab.encoding import Encoding
from lirlab.index.base import Index
from lirlab.maxsim import LengthGroupedDocs, pad_queries
from lirlab.storage import ArtifactWriter, read_artifact


class FlatIndex(Index):
    """Exact MaxSim over every document.

    Parameters
    ----------
    docs : Encoding
        Encoded documents.
    encoder : lirlab.encoder.ColBERT, optional
        Encodes text queries in :meth:`search`.
    device, dtype :
        Where scoring runs and the precision the vectors are kept in (default: as given).
    model : dict, optional
        Description of the model that encoded ``docs`` (saved with the index).
    """

    TYPE = "lirlab.flat"
    FORMAT_VERSION = 1

    def __init__(
        self,
        docs: Encoding,
        encoder=None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        model: dict[str, Any] | None = None,
        query_batch: int = 32,
    ):
        self.docs = docs
        self.docnos = docs.ids
        self.encoder = encoder
        self.model = model if model is not None else (encoder.describe() if encoder is not None else {})
        self.query_batch = query_batch
        self.scorer = LengthGroupedDocs(docs.vectors, docs.lengths, device=device, dtype=dtype)

    @classmethod
    def build(cls, docs, encoder, batch_size: int = 32, progress: bool = True, **kwargs) -> FlatIndex:
        """Encode ``docs`` (see :func:`lirlab.data.as_documents`) with ``encoder`` and index them."""
        encoded = encoder.encode_documents(as_documents(docs), batch_size=batch_size, progress=progress)
        return cls(encoded, encoder=encoder, **kwargs)

    def scores(self, queries: Encoding) -> torch.Tensor:
        """Exact MaxSim of every query against every document, ``[n_queries, n_docs]``."""
        padded = pad_queries(queries)
        return (
            torch.cat(
                [
                    self.scorer.score(padded[i : i + self.query_batch])
                    for i in range(0, len(queries), self.query_batch)
                ]
            )
            if len(queries)
            else torch.zeros(0, len(self.docnos))
        )

    def search_encoded(
        self, queries: Encoding, k: int = 10, progress: bool = False
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        hits = []
        k = min(k, len(self.docnos))
        batches = range(0, len(queries), self.query_batch)
        for start in tqdm(batches, desc="search", unit="batch", disable=not progress):
            scores = self.scorer.score(
                pad_queries(queries.select(range(start, min(start + self.query_batch, len(queries)))))
            )
            top_scores, top_positions = scores.topk(k, dim=1)
            hits.extend(zip(top_positions.cpu(), top_scores.cpu()))
        return hits

    def save(self, path: str | os.PathLike) -> None:
        """Write the index folder atomically (vectors as float32 ``.npy``)."""
        with ArtifactWriter(path, self.TYPE, self.FORMAT_VERSION) as w:
            w.save_array("vectors", self.docs.vectors.float().cpu().numpy())
            w.save_array("token_ids", self.docs.token_ids.cpu().numpy().astype(np.int32))
            w.save_array("offsets", self.docs.offsets.cpu().numpy().astype(np.int64))
            w.save_array("truncated", np.asarray(self.docs.truncated, dtype=bool))
            w.save_json("docnos", list(self.docnos))
            w.save_json("vocab", list(self.docs.vocab))
            w.metadata.update(
                model=self.model,
                counts={"documents": len(self.docnos), "tokens": int(self.docs.vectors.shape[0])},
                config={"dim": self.docs.dim, "mask_token_id": self.docs.mask_token_id},
            )

    @classmethod
    def load(
        cls, path: str | os.PathLike, encoder=None, device=None, dtype=None, verify: bool = True
    ) -> FlatIndex:
        """Open an index folder written by :meth:`save`; errors name the missing or damaged file."""
        art = read_artifact(path, cls.TYPE, cls.FORMAT_VERSION, verify=verify)
        docs = Encoding(
            ids=tuple(art.json("docnos")),
            vectors=torch.from_numpy(art.array("vectors")),
            token_ids=torch.from_numpy(art.array("token_ids").astype(np.int64)),
            offsets=torch.from_numpy(art.array("offsets")),
            vocab=tuple(art.json("vocab")),
            truncated=tuple(bool(t) for t in art.array("truncated")),
            mask_token_id=art.metadata["config"]["mask_token_id"],
        )
        return cls(docs, encoder=encoder, device=device, dtype=dtype, model=art.metadata.get("model", {}))
