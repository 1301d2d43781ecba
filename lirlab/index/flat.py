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
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lirlab.data import as_documents
from lirlab.encoding import Encoding
from lirlab.index.base import Index, StageTimer
from lirlab.index.knobs import flat as flat_knobs
from lirlab.index.pooling import Pooling, load_pooling, pool_if_asked, save_pooling
from lirlab.index.regions import load_regions, save_regions
from lirlab.maxsim import LengthGroupedDocs, pad_queries
from lirlab.storage import ArtifactError, ArtifactWriter, check_offsets, read_artifact


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
    pooling : lirlab.index.pooling.Pooling, optional
        For pooled ``docs``: which original tokens each vector stands for (``from_encoding`` with
        ``pool_factor`` > 1 sets it).
    first_pass : {"auto", "int8", "int8-torch", "int8-onnxruntime", "none"}
        Exact top-k search can first score every document in int8 with a proven error bound and
        rescore in fp32 only those that can still reach the top k (same results as fp32 MaxSim; see
        :class:`~lirlab.maxsim.LengthGroupedDocs`). ``"auto"`` does so on CPUs with an int8 route
        faster than float32 (:func:`lirlab.int8_products.int8_route`: VNNI, AMX and Arm dot products
        through torch, AVX2 through ONNX Runtime); ``"int8-<route>"`` forces a route.
    """

    KIND = "flat"
    TYPE = "lirlab.flat"
    FORMAT_VERSION = 1
    STAGES = ("bound_pass", "exact_maxsim", "top_k")
    SEARCH_PARAMS = flat_knobs.SEARCH_PARAMS
    BUILD_PARAMS = flat_knobs.BUILD_PARAMS

    def __init__(
        self,
        docs: Encoding,
        encoder=None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        model: dict[str, Any] | None = None,
        query_batch: int = 32,
        pooling: Pooling | None = None,
        first_pass: str = "auto",
    ):
        if not isinstance(docs, Encoding):
            raise ValueError(f"a flat index needs an Encoding of documents, got {type(docs).__name__}")
        super().__init__(docs.ids, encoder=encoder, model=model)
        self.docs = docs
        self.query_batch = query_batch
        self.pooling = pooling
        self.first_pass = first_pass
        self.scorer = LengthGroupedDocs(
            docs.vectors, docs.lengths, device=device, dtype=dtype, first_pass=first_pass
        )

    @classmethod
    def build(cls, docs, encoder, batch_size: int = 32, progress: bool = True, **kwargs) -> FlatIndex:
        """Encode ``docs`` (see :func:`lirlab.data.as_documents`) with ``encoder`` and index them
        (``pool_factor`` pools them first; other keywords go to the constructor)."""
        build = {name: kwargs.pop(name) for name in list(kwargs) if name in cls.BUILD_PARAMS}
        encoded = encoder.encode_documents(as_documents(docs), batch_size=batch_size, progress=progress)
        knobs = cls.resolve_build_knobs(build)
        pooled, pooling = pool_if_asked(encoded, knobs["pool_factor"], progress=progress)
        return cls(pooled, encoder=encoder, pooling=pooling, **kwargs)

    @classmethod
    def from_encoding(
        cls, docs: Encoding, *, encoder=None, model=None, device=None, progress: bool = False, **build
    ) -> FlatIndex:
        knobs = cls.resolve_build_knobs(build)
        pooled, pooling = pool_if_asked(docs, knobs["pool_factor"], progress=progress)
        return cls(pooled, encoder=encoder, model=model, device=device, pooling=pooling)

    def config(self) -> dict[str, Any]:
        return {"pool_factor": self.pooling.pool_factor if self.pooling is not None else 1}

    @property
    def exact(self) -> bool:
        return self.pooling is None

    @property
    def dim(self) -> int:
        return self.docs.dim

    @property
    def device(self) -> torch.device:
        return self.scorer.device

    def documents(self, positions=None) -> Encoding:
        return self.docs.select(self.positions_or_live(positions).tolist())

    def tokens(self, positions=None) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
        if positions is None:
            return self.docs.token_ids, self.docs.lengths, self.docs.vocab
        return super().tokens(positions)

    def n_vectors(self) -> int:
        return int(self.docs.vectors.shape[0])

    def size_bytes(self) -> int:
        return int(self.docs.vectors.numel()) * 4 + int(self.docs.token_ids.numel()) * 4

    def to(self, device: str | torch.device) -> FlatIndex:
        if torch.device(device) == self.device:
            return self
        return FlatIndex(
            self.docs,
            encoder=self.encoder,
            device=device,
            model=self.model,
            query_batch=self.query_batch,
            pooling=self.pooling,
            first_pass=self.first_pass,
        )

    def scores(self, queries: Encoding) -> torch.Tensor:
        """Exact MaxSim of every query against every document, ``[n_queries, n_docs]``."""
        if not len(queries):
            return torch.zeros(0, len(self.docnos))
        padded = pad_queries(queries)
        return torch.cat(
            [
                self.scorer.score(padded[i : i + self.query_batch])
                for i in range(0, len(queries), self.query_batch)
            ]
        )

    def _search(self, queries: Encoding, k: int, knobs: dict, timer: StageTimer):
        timer.start()
        top_scores, top_positions, _ = self.scorer.top_k(pad_queries(queries), k, lap=timer.lap)
        return list(zip(top_positions.cpu(), top_scores.cpu()))

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        """Write the index folder atomically (vectors as float32 ``.npy``)."""
        with ArtifactWriter(
            path, self.TYPE, self.FORMAT_VERSION, **({"overwrite": True} if overwrite else {})
        ) as w:
            w.save_array("vectors", self.docs.vectors.float().cpu().numpy())
            w.save_array("token_ids", self.docs.token_ids.cpu().numpy().astype(np.int32))
            w.save_array("offsets", self.docs.offsets.cpu().numpy().astype(np.int64))
            w.save_array("truncated", np.asarray(self.docs.truncated, dtype=bool))
            w.save_json("docnos", list(self.docnos))
            w.save_json("vocab", list(self.docs.vocab))
            save_pooling(w, self.pooling)
            save_regions(w, self.docs.regions, self.docs.global_view)
            w.metadata.update(
                model=self.model,
                counts={"documents": len(self.docnos), "tokens": int(self.docs.vectors.shape[0])},
                config={"dim": self.docs.dim, "mask_token_id": self.docs.mask_token_id, **self.config()},
                describe=self.describe(),
            )

    @classmethod
    def load(
        cls, path: str | os.PathLike, encoder=None, device=None, verify: bool = True, dtype=None
    ) -> FlatIndex:
        """Open an index folder written by :meth:`save`; errors name the missing or damaged file."""
        art = read_artifact(path, cls.TYPE, cls.FORMAT_VERSION, verify=verify)
        # Structural checks run always (hashing only with verify): a damaged folder is an ArtifactError
        # here, never an IndexError or a RuntimeError deep in a search.
        folder = Path(path)
        config = art.table("config")
        mask_token_id = config.get("mask_token_id")
        if mask_token_id is not None and (
            not isinstance(mask_token_id, int) or isinstance(mask_token_id, bool)
        ):
            raise ArtifactError(
                f"{folder / 'metadata.json'}: config.mask_token_id must be a whole number or null"
            )
        pool_factor = config.get("pool_factor", 1)
        if not isinstance(pool_factor, int) or isinstance(pool_factor, bool) or pool_factor < 1:
            raise ArtifactError(f"{folder / 'metadata.json'}: config.pool_factor must be a whole number >= 1")
        docnos = art.strings("docnos")
        vocab = art.strings("vocab")
        vectors = art.checked_array("vectors", "f", 2)
        rows = int(vectors.shape[0])
        token_ids = art.checked_array("token_ids", "iu", 1, (rows,))
        offsets = art.checked_array("offsets", "iu", 1, (len(docnos) + 1,))
        check_offsets(offsets, rows, folder / "offsets.npy")
        truncated = art.checked_array("truncated", "bui", 1, (len(docnos),))
        if vocab and token_ids.size and (int(token_ids.min()) < 0 or int(token_ids.max()) >= len(vocab)):
            raise ArtifactError(
                f"{folder / 'token_ids.npy'}: token ids outside the {len(vocab)}-entry vocab.json"
            )
        regions, global_view = load_regions(art, rows)
        try:
            docs = Encoding(
                ids=tuple(docnos),
                vectors=torch.from_numpy(vectors),
                token_ids=torch.from_numpy(token_ids.astype(np.int64)),
                offsets=torch.from_numpy(offsets.astype(np.int64)),
                vocab=tuple(vocab),
                truncated=tuple(bool(t) for t in truncated),
                mask_token_id=mask_token_id,
                exact=pool_factor == 1,
                regions=regions,
                global_view=global_view,
            )
            pooling = load_pooling(art, pool_factor, offsets, vocab)
            return cls(
                docs,
                encoder=encoder,
                device=device,
                dtype=dtype,
                model=art.table("model", required=False),
                pooling=pooling,
            )
        except (ValueError, TypeError, IndexError, RuntimeError) as e:
            if isinstance(e, ArtifactError):
                raise
            raise ArtifactError(f"{folder}: inconsistent arrays ({e})") from None
