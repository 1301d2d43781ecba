"""MUVERA: one fixed-size vector per document, then exact MaxSim on the best (Jayaram et al., NeurIPS 2024,
arXiv 2405.19504).

A fixed dimensional encoding (FDE) turns a set of token vectors into one vector whose inner product with
another set's FDE approximates their MaxSim (Chamfer similarity):

* ``r_reps`` independent **repetitions**; in each, ``k_sim`` random Gaussian hyperplanes cut the space
  into ``2**k_sim`` **SimHash partitions** (a vector's partition is the pattern of signs it gets);
* per partition, a query sums its vectors there and a document averages its vectors there; a partition
  a document has no vector in is **filled** with the document's vector whose sign pattern is nearest in
  Hamming distance (``fill_empty``), so a query token always finds something to match;
* each partition block is reduced from ``dim`` to ``d_proj`` by a random ±1 **inner projection**
  (``d_proj == dim`` keeps it as is), and the blocks are concatenated: ``r_reps · 2**k_sim · d_proj``
  floats;
* an optional **final projection** (``d_final > 0``) folds that into ``d_final`` floats with a random
  Count-Sketch (each coordinate added, with a random sign, into one of ``d_final`` buckets).

Search scores every document's FDE against the query's by an exact inner product (one matrix-vector
product: at our corpus sizes an ANN library would not pay for itself), keeps the best ``candidates`` and
re-ranks them by exact MaxSim over the vectors of a re-ranking index: the stored token vectors
(``rerank_from="vectors"``, a :class:`~lirlab.index.flat.FlatIndex`) or PLAID's decompressed ones
(``rerank_from="plaid"``). Every random draw comes from ``seed``; seed and knobs are saved with the index,
the FDEs too.

Examples
--------
>>> import torch
>>> from lirlab.encoding import Encoding, offsets_from_lengths
>>> g = torch.Generator().manual_seed(0)
>>> docs = Encoding(ids=tuple(f"d{i}" for i in range(20)),
...                 vectors=torch.nn.functional.normalize(torch.randn(200, 16, generator=g), dim=1),
...                 token_ids=torch.zeros(200, dtype=torch.long),
...                 offsets=offsets_from_lengths(torch.full((20,), 10)), vocab=("tok",))
>>> index = MuveraIndex.from_encoding(docs, r_reps=4, k_sim=3, d_proj=8)
>>> index.fde_dim, index.search(docs.select([5]), k=3).docno.tolist()[0]
(256, 'd5')
>>> MuveraIndex.from_encoding(docs, r_reps=64, k_sim=10, d_proj=16, memory_budget_mib=1)
Traceback (most recent call last):
...
ValueError: FDEs of 20 documents at r_reps=64 × 2^k_sim=1024 × d_proj=16 = 1048576 floats take 80 MiB, over memory_budget_mib=1; lower r_reps, k_sim or d_proj, or set d_final
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lirlab import params
from lirlab.encoding import Encoding
from lirlab.index.base import Index, StageTimer, index_kind
from lirlab.index.knobs.muvera import BUILD_PARAMS, SEARCH_PARAMS
from lirlab.index.regions import load_regions, save_regions
from lirlab.maxsim import maxsim_candidates
from lirlab.storage import ArtifactError, ArtifactWriter, check_offsets, read_artifact

#: Document tokens turned into FDE contributions at a time (bounds the ``[tokens, r_reps, 2**k_sim]``
#: Hamming table of the empty-partition filling).
TOKEN_CHUNK = 4096

STAGES = ("fde_encoding", "fde_scoring", "rerank")


_FDE_KNOBS = ("r_reps", "k_sim", "d_proj", "d_final", "fill_empty", "seed")


class FDE:
    """The random draws of one FDE configuration, and the encodings they give.

    >>> fde = FDE(dim=4, r_reps=2, k_sim=1, d_proj=4, seed=0)
    >>> fde.dim, tuple(fde.hyperplanes.shape)
    (16, (2, 4, 1))
    """

    def __init__(
        self, dim: int, r_reps: int, k_sim: int, d_proj: int, d_final: int = 0, fill_empty=True, seed=0
    ):
        self.input_dim, self.r_reps, self.k_sim, self.d_proj = dim, r_reps, k_sim, d_proj
        self.d_final, self.fill_empty, self.seed = d_final, fill_empty, seed
        g = torch.Generator().manual_seed(seed)
        self.hyperplanes = torch.randn(r_reps, dim, k_sim, generator=g)
        if d_proj == dim:
            self.projections = None
        else:
            signs = torch.randint(0, 2, (r_reps, dim, d_proj), generator=g).float() * 2 - 1
            self.projections = signs / math.sqrt(d_proj)
        self.n_partitions = 1 << k_sim
        self.full_dim = r_reps * self.n_partitions * d_proj
        if d_final:
            self.sketch_bucket = torch.randint(0, d_final, (self.full_dim,), generator=g)
            self.sketch_sign = torch.randint(0, 2, (self.full_dim,), generator=g).float() * 2 - 1

    @property
    def dim(self) -> int:
        return self.d_final or self.full_dim

    def partitions(self, vectors: torch.Tensor) -> torch.Tensor:
        """``[n, r_reps]`` SimHash partition of each vector in each repetition (bit j = sign of hyperplane j)."""
        bits = torch.einsum("nd,rdk->nrk", vectors.float(), self.hyperplanes) > 0
        return (bits.long() << torch.arange(self.k_sim)).sum(dim=2)

    def project(self, vectors: torch.Tensor) -> torch.Tensor:
        """``[n, r_reps, d_proj]``: each vector's inner projection in every repetition."""
        if self.projections is None:
            return vectors.float().unsqueeze(1).expand(-1, self.r_reps, -1)
        return torch.einsum("nd,rdp->nrp", vectors.float(), self.projections)

    def finish(self, blocks: torch.Tensor) -> torch.Tensor:
        """``[n, r_reps, partitions, d_proj]`` blocks → ``[n, dim]`` FDEs (final projection applied)."""
        flat = blocks.reshape(blocks.shape[0], -1)
        if not self.d_final:
            return flat
        out = torch.zeros(flat.shape[0], self.d_final)
        return out.index_add_(1, self.sketch_bucket, flat * self.sketch_sign)

    def encode(self, items: Encoding, kind: str, progress: bool = False) -> torch.Tensor:
        """``[len(items), dim]`` FDEs: ``kind="query"`` sums per partition, ``"document"`` averages and
        (with ``fill_empty``) fills empty partitions."""
        if items.dim != self.input_dim:
            raise ValueError(f"vectors have dim {items.dim}, the FDE was drawn for dim {self.input_dim}")
        lengths = items.lengths.cpu().tolist()
        offsets = items.offsets.cpu().tolist()
        out = torch.zeros(len(items), self.dim)
        n_items = len(items)
        start = 0
        bar = tqdm(total=n_items, desc="FDE encoding", unit="doc", disable=not progress)
        while start < n_items:  # chunks of whole items, about TOKEN_CHUNK tokens each
            stop, tokens = start, 0
            while stop < n_items and (stop == start or tokens + lengths[stop] <= TOKEN_CHUNK):
                tokens += lengths[stop]
                stop += 1
            rows = slice(offsets[start], offsets[stop])
            out[start:stop] = self._encode_chunk(
                items.vectors[rows].cpu(), torch.tensor(lengths[start:stop]), kind == "document"
            )
            bar.update(stop - start)
            start = stop
        bar.close()
        return out

    def _encode_chunk(self, vectors: torch.Tensor, lengths: torch.Tensor, document: bool) -> torch.Tensor:
        n_items, n_tokens = int(lengths.numel()), int(vectors.shape[0])
        r, b = self.r_reps, self.n_partitions
        blocks = torch.zeros(n_items * r * b, self.d_proj)
        if n_tokens == 0:
            return self.finish(blocks.view(n_items, r, b, self.d_proj))
        item = torch.repeat_interleave(torch.arange(n_items), lengths)
        part = self.partitions(vectors)  # [n, r]
        projected = self.project(vectors)  # [n, r, d_proj]
        slot = (item.unsqueeze(1) * r + torch.arange(r)) * b + part  # [n, r]
        blocks.index_add_(0, slot.flatten(), projected.reshape(-1, self.d_proj))
        if document:
            counts = torch.bincount(slot.flatten(), minlength=n_items * r * b).float()
            blocks /= counts.clamp_min(1).unsqueeze(1)
            if self.fill_empty:
                empty = counts == 0
                # Hamming distance of every token's sign pattern to every partition's, in each repetition
                distance = _popcount(part.unsqueeze(2) ^ torch.arange(b))  # [n, r, b]
                local = torch.arange(n_tokens)
                key = distance * n_tokens + local.view(-1, 1, 1)
                target = (item.view(-1, 1, 1) * r + torch.arange(r).view(1, -1, 1)) * b + torch.arange(b)
                best = torch.full((n_items * r * b,), torch.iinfo(torch.long).max, dtype=torch.long)
                best.scatter_reduce_(0, target.flatten(), key.flatten(), "amin")
                fill = empty & (best < torch.iinfo(torch.long).max)
                token = best[fill] % n_tokens
                rep = (fill.nonzero().flatten() // b) % r
                blocks[fill] = projected[token, rep]
        return self.finish(blocks.view(n_items, r, b, self.d_proj))

    def config(self) -> dict[str, Any]:
        return {
            "r_reps": self.r_reps,
            "k_sim": self.k_sim,
            "d_proj": self.d_proj,
            "d_final": self.d_final,
            "fill_empty": self.fill_empty,
            "seed": self.seed,
        }


def _popcount(x: torch.Tensor) -> torch.Tensor:
    count = torch.zeros_like(x)
    while bool(x.any()):
        count += x & 1
        x = x >> 1
    return count


def check_budget(n_docs: int, fde: FDE, budget_mib: int) -> None:
    """Raise ``ValueError`` when ``n_docs`` FDEs of ``fde`` exceed ``budget_mib``."""
    size = n_docs * fde.dim * 4
    if size > budget_mib * 2**20:
        shape = f"r_reps={fde.r_reps} × 2^k_sim={fde.n_partitions} × d_proj={fde.d_proj}"
        if fde.d_final:
            shape += f" → d_final={fde.d_final}"
        raise ValueError(
            f"FDEs of {n_docs} documents at {shape} = {fde.dim} floats take {math.ceil(size / 2**20)} MiB, "
            f"over memory_budget_mib={budget_mib}; lower r_reps, k_sim or d_proj, or set d_final"
        )


class MuveraIndex(Index):
    """FDE retrieval with exact MaxSim re-ranking (see the module docstring).

    Parameters
    ----------
    fde : FDE
        The random draws.
    fdes : torch.Tensor
        ``[n_docs, fde.dim]`` document FDEs.
    rerank : Index
        The index whose :meth:`~lirlab.index.base.Index.documents` the re-ranking reads (same documents,
        same order).
    config : dict, optional
        Build settings saved with the index.
    """

    KIND = "muvera"
    TYPE = "lirlab.muvera"
    FORMAT_VERSION = 1
    SEARCH_PARAMS = SEARCH_PARAMS
    BUILD_PARAMS = BUILD_PARAMS
    STAGES = STAGES
    query_batch = 1

    def __init__(self, fde: FDE, fdes: torch.Tensor, rerank: Index, config: dict | None = None):
        if fdes.shape != (len(rerank), fde.dim):
            raise ValueError(f"fdes must be [{len(rerank)}, {fde.dim}], got {tuple(fdes.shape)}")
        super().__init__(rerank.docnos, encoder=rerank.encoder, model=rerank.model)
        self.fde, self.fdes, self.rerank = fde, fdes.float().contiguous(), rerank
        self.build_knobs = dict(config or {})
        for name, value in fde.config().items():  # the build knobs, as sweeps read them
            setattr(self, name, value)
        self.rerank_from = "plaid" if rerank.KIND == "plaid" else "vectors"

    @classmethod
    def from_index(cls, rerank: Index, progress: bool = False, **build) -> MuveraIndex:
        """FDEs of ``rerank``'s documents (as it returns them), re-ranked by ``rerank``."""
        build = {k: v for k, v in build.items() if k != "rerank_from"}
        settings = cls.resolve_build_knobs(build)
        fde = FDE(rerank.dim, *(settings[k] for k in _FDE_KNOBS))
        check_budget(len(rerank), fde, settings["memory_budget_mib"])
        fdes = fde.encode(rerank.documents(range(len(rerank))), "document", progress=progress)
        settings["rerank_from"] = "plaid" if rerank.KIND == "plaid" else "vectors"
        return cls(fde, fdes, rerank, settings)

    @classmethod
    def from_encoding(
        cls, docs: Encoding, *, encoder=None, model=None, device=None, progress: bool = False, **build
    ) -> MuveraIndex:
        settings = cls.resolve_build_knobs(build)
        check_budget(
            len(docs), FDE(docs.dim, *(settings[k] for k in _FDE_KNOBS)), settings["memory_budget_mib"]
        )
        if settings["rerank_from"] == "plaid":
            rerank = index_kind("plaid").from_encoding(docs, encoder=encoder, model=model, progress=progress)
        else:
            rerank = index_kind("flat").from_encoding(docs, encoder=encoder, model=model, device=device)
        return cls.from_index(rerank, progress=progress, **build)

    @property
    def dim(self) -> int:
        return self.rerank.dim

    @property
    def fde_dim(self) -> int:
        return self.fde.dim

    def documents(self, positions=None) -> Encoding:
        return self.rerank.documents(positions)

    def live_positions(self) -> torch.Tensor:
        return self.rerank.live_positions()

    def n_vectors(self) -> int:
        return self.rerank.n_vectors()

    def size_bytes(self) -> int:
        """The FDEs (float32) plus the re-ranking index."""
        return int(self.fdes.numel() * 4 + self.rerank.size_bytes())

    def to(self, device) -> MuveraIndex:
        if torch.device(device) == self.device:
            return self
        raise ValueError("a muvera index searches on the CPU only (its FDE scoring is a CPU matrix product)")

    @property
    def exact(self) -> bool:
        return self.rerank.exact

    def config(self) -> dict[str, Any]:
        return {**self.build_knobs, **self.fde.config(), "fde_dim": self.fde.dim}

    def fde_scores(self, queries: Encoding) -> torch.Tensor:
        """``[n_queries, n_docs]`` FDE inner products (what the first stage ranks by)."""
        return self.fde.encode(queries, "query") @ self.fdes.T

    def _search(self, queries: Encoding, k: int, knobs: dict, timer: StageTimer):
        live = self.live_positions()
        all_live = live.numel() == len(self)
        hits = []
        for qi in range(len(queries)):
            timer.start()
            query = queries.select([qi])
            encoded = self.fde.encode(query, "query")[0]
            timer.lap("fde_encoding")
            scores = self.fdes @ encoded
            if not all_live:
                mask = torch.full_like(scores, float("-inf"))
                mask[live] = 0
                scores = scores + mask
            n = min(max(knobs["candidates"], k), int(live.numel()))
            candidates = scores.topk(n).indices
            timer.lap("fde_scoring")
            docs = self.rerank.documents(candidates)
            exact = maxsim_candidates(query.vectors.float(), docs.vectors.float(), docs.lengths)
            top = exact.topk(min(k, n))
            hits.append((candidates[top.indices], top.values))
            timer.lap("rerank")
        return hits

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        """One folder: the FDEs, the knobs and seed, and the re-ranking index's arrays (flat vectors, or
        PLAID's codec, codes and residuals)."""
        with ArtifactWriter(
            path, self.TYPE, self.FORMAT_VERSION, **({"overwrite": True} if overwrite else {})
        ) as w:
            w.save_array("fdes", self.fdes.cpu().numpy())
            w.save_json("docnos", list(self.docnos))
            source = self.rerank
            if source.KIND == "plaid":
                codec = source.codec
                arrays = {
                    "centroids": codec.centroids,
                    "bucket_cutoffs": codec.bucket_cutoffs,
                    "bucket_weights": codec.bucket_weights,
                    "codes": source.codes,
                    "residuals": source.residuals,
                    "token_ids": source.token_ids.to(torch.int32),
                    "doc_offsets": source.doc_offsets,
                }
                vocab, mask_id = source.vocab, source.mask_token_id
                regions, global_view = source.compressed.regions, source.compressed.global_view
            else:
                docs = source.documents(range(len(source)))
                arrays = {
                    "vectors": docs.vectors.float(),
                    "token_ids": docs.token_ids.to(torch.int32),
                    "doc_offsets": docs.offsets,
                }
                vocab, mask_id = docs.vocab, docs.mask_token_id
                regions, global_view = docs.regions, docs.global_view
            for name, array in arrays.items():
                w.save_array(name, array.cpu().numpy())
            save_regions(w, regions, global_view)
            w.save_json("vocab", list(vocab))
            w.metadata.update(
                model=self.model,
                config={
                    **self.config(),
                    "rerank_kind": source.KIND,
                    "nbits": getattr(source, "nbits", None),
                    "mask_token_id": mask_id,
                },
                counts={"documents": len(self), "fde_dim": self.fde.dim},
            )

    @classmethod
    def load(cls, path, encoder=None, device=None, verify: bool = True) -> MuveraIndex:
        """Open a folder written by :meth:`save`. Its structure (shapes, offsets, ids, codes, knobs) is
        checked whether or not the files are hashed (``verify``): a damaged folder is an
        :class:`~lirlab.storage.ArtifactError` here, never an error (or a huge allocation) in a search."""
        art = read_artifact(path, cls.TYPE, cls.FORMAT_VERSION, verify=verify)
        folder = Path(path)
        meta = folder / "metadata.json"
        config = art.table("config")
        try:
            knobs = params.validate(BUILD_PARAMS, {k: config[k] for k in _FDE_KNOBS})
            rerank_kind, mask_token_id = config["rerank_kind"], config["mask_token_id"]
        except KeyError as e:
            raise ArtifactError(f"{meta}: config lacks {e}") from None
        except ValueError as e:
            raise ArtifactError(f"{meta}: config is not a valid MUVERA build ({e})") from None
        if rerank_kind not in ("plaid", "flat") or not isinstance(mask_token_id, int):
            raise ArtifactError(
                f"{meta}: config.rerank_kind must be 'plaid' or 'flat' and config.mask_token_id a whole number"
            )
        docnos, vocab = art.strings("docnos"), tuple(art.strings("vocab"))
        n_docs = len(docnos)
        fdes = art.checked_array("fdes", "f", 2, (n_docs, -1))
        fde_dim = knobs["d_final"] or knobs["r_reps"] * (1 << knobs["k_sim"]) * knobs["d_proj"]
        if fdes.shape[1] != fde_dim:
            raise ArtifactError(
                f"{folder / 'fdes.npy'}: {fdes.shape[1]} floats per document, the knobs give {fde_dim}"
            )
        token_ids = art.checked_array("token_ids", "iu", 1)
        rows = int(token_ids.shape[0])
        offsets = art.checked_array("doc_offsets", "iu", 1, (n_docs + 1,))
        check_offsets(offsets, rows, folder / "doc_offsets.npy")
        if vocab and rows and (int(token_ids.min()) < 0 or int(token_ids.max()) >= len(vocab)):
            raise ArtifactError(
                f"{folder / 'token_ids.npy'}: token ids outside the {len(vocab)}-entry vocab.json"
            )
        model = art.metadata.get("model", {})
        regions, global_view = load_regions(art, rows)
        token_ids, offsets = (
            torch.from_numpy(token_ids.astype(np.int64)),
            torch.from_numpy(offsets.astype(np.int64)),
        )
        try:
            if rerank_kind == "plaid":
                rerank = cls._load_plaid_rerank(
                    art, config, token_ids, offsets, docnos, vocab, encoder, model, (regions, global_view)
                )
                dim = rerank.dim
            else:
                vectors = art.checked_array("vectors", "f", 2, (rows, -1))
                dim = int(vectors.shape[1])
                docs = Encoding(
                    ids=tuple(docnos),
                    vectors=torch.from_numpy(vectors),
                    token_ids=token_ids,
                    offsets=offsets,
                    vocab=vocab,
                    mask_token_id=mask_token_id,
                    regions=regions,
                    global_view=global_view,
                )
                rerank = index_kind("flat")(docs, encoder=encoder, model=model)
            fde = FDE(dim, *(knobs[k] for k in _FDE_KNOBS))
            settings = {k: v for k, v in config.items() if k in BUILD_PARAMS}
            return cls(fde, torch.from_numpy(fdes), rerank, settings)
        except ArtifactError:
            raise
        except (ValueError, TypeError, IndexError, KeyError, RuntimeError) as e:
            raise ArtifactError(f"{folder}: inconsistent arrays ({e})") from None

    @staticmethod
    def _load_plaid_rerank(art, config, token_ids, offsets, docnos, vocab, encoder, model, regions) -> Index:
        """The PLAID re-ranking index :meth:`save` wrote beside the FDEs, its codes checked (``regions``:
        the stored vectors' ``(regions, global_view)``, both None for text)."""
        from lirlab.index.codec import ResidualCodec
        from lirlab.index.plaid.compressed import CompressedDocs

        rows = int(token_ids.shape[0])
        centroids = art.checked_array("centroids", "f", 2)
        codec = ResidualCodec(
            torch.from_numpy(centroids).float(),
            torch.from_numpy(art.checked_array("bucket_cutoffs", "f", 2)),
            torch.from_numpy(art.checked_array("bucket_weights", "f", 2)),
            int(config["nbits"]),
        )
        codes = art.checked_array("codes", "iu", 1, (rows,))
        if rows and (int(codes.min()) < 0 or int(codes.max()) >= centroids.shape[0]):
            raise ArtifactError(f"{art.path / 'codes.npy'}: codes outside the {centroids.shape[0]} centroids")
        residuals = art.checked_array("residuals", "u", 2, (rows, codec.packed_dim))
        compressed = CompressedDocs(
            torch.from_numpy(codes.astype(np.int64)),
            torch.from_numpy(residuals),
            token_ids,
            offsets,
            regions=regions[0],
            global_view=regions[1],
        )
        return index_kind("plaid")(
            codec,
            compressed,
            docnos,
            vocab,
            mask_token_id=int(config["mask_token_id"]),
            encoder=encoder,
            model=model,
        )
