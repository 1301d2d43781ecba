"""Encode a corpus on Ray workers: shards of documents out, :class:`~lirlab.encoding.Encoding` shards back
in corpus order (``pip install 'lirlab[ray]'``).

Every worker is a Ray actor that loads the encoder once (by the name or folder it was loaded from, with
the same settings) and encodes the shards it is sent; a GPU worker when the cluster has GPUs. The
driver keeps only a few shards in flight and yields them in order, so a consumer writes them away as
they come: :meth:`lirlab.index.qdrant.QdrantIndex.from_encoding` takes the stream directly, and
:func:`concat` packs it into one Encoding for ``FlatIndex``/``PlaidIndex.from_encoding`` without holding
the corpus twice.

Without an ``address``, a small local Ray runtime is started (``num_workers`` actors of ``cpus_per_worker``
CPUs, no dashboard) and stopped afterwards; with one (``"ray://head:10001"`` or ``"auto"``), the
cluster's workers are used and the cluster is left running.

Examples
--------
>>> from lirlab.integrations.ray import ray_available
>>> isinstance(ray_available(), bool)
True
>>> from lirlab.encoder import ColBERT  # doctest: +SKIP
>>> encoder = ColBERT.load("minilm")  # doctest: +SKIP
>>> with RayEncoder(encoder, num_workers=2) as ray_encoder:  # doctest: +SKIP
...     docs = concat(ray_encoder.encode_chunks({"d1": "bees eat honey", "d2": "ants eat sugar"}))
"""

from __future__ import annotations

import itertools
import os
import tempfile
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lirlab.data import Document, as_documents
from lirlab.encoding import Encoding, offsets_from_lengths

INSTALL_HINT = "Ray is not installed: pip install 'lirlab[ray]'"


class RayNotInstalledError(ImportError):
    """Ray is missing (the ``ray`` extra)."""


class RayStartError(RuntimeError):
    """The local Ray runtime did not come up."""


#: Object store of the local runtime: 128 MiB (Ray's minimum is 75 MiB; a shard of 128 documents of
#: 180 tokens of 128 float32 is 12 MB).
LOCAL_OBJECT_STORE_BYTES = 128 * 2**20


def _raylet_error() -> str:
    """The last fatal line of the newest local session's raylet log, if any (Ray's own start-up error
    only says "the current node timed out"; the cause is there)."""
    log = Path(tempfile.gettempdir(), "ray", "session_latest", "logs", "raylet.err")
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    fatal = [ln for ln in lines if "Check failed" in ln or "Timed out" in ln or " F " in ln]
    return fatal[-1][-200:] if fatal else ""


def _start_local(ray, num_cpus: int, object_store_memory: int, attempts: int) -> None:
    """Start a small local Ray runtime: ``num_cpus`` CPUs, no dashboard, a small object store, no
    usage-stats reporting; retried ``attempts`` times before :class:`RayStartError`."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network call from a laptop or CI
    options = dict(
        num_cpus=num_cpus,
        include_dashboard=False,
        object_store_memory=object_store_memory,
        log_to_driver=False,
        configure_logging=False,
    )
    for attempt in range(1, attempts + 1):
        try:
            ray.init(**options)
            return
        except Exception as e:  # Ray raises a bare Exception when its node does not start
            ray.shutdown()  # stop whatever part of the runtime did start
            if attempt < attempts:
                time.sleep(2.0)
                continue
            cause = _raylet_error()
            raise RayStartError(
                f"the local Ray runtime did not start after {attempts} attempt(s) "
                f"({str(e).splitlines()[0][:120]}{'; raylet: ' + cause if cause else ''}); on a loaded "
                "machine its raylet gives up after waiting 15 s for its agents (ray-project/ray#65983): "
                "retry when the machine is quieter, or start a cluster with 'ray start --head' and pass "
                "address='auto'"
            ) from None


def ray_available() -> bool:
    """Whether Ray can be imported."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def _import_ray():
    try:
        import ray
    except ImportError:
        raise RayNotInstalledError(INSTALL_HINT) from None
    return ray


class _Worker:
    """Ray actor body: one encoder, many shards."""

    def __init__(self, name: str, overrides: dict[str, Any], device: str, threads: int):
        torch.set_num_threads(max(1, threads))
        from lirlab.encoder import ColBERT

        self.encoder = ColBERT.load(name, device=device, **overrides)

    def vocab(self) -> tuple[str, ...]:
        return self.encoder.vocab

    def encode(self, docnos: list[str], texts: list[str], batch_size: int) -> dict[str, Any]:
        docs = [Document(d, t) for d, t in zip(docnos, texts)]
        enc = self.encoder.encode_documents(docs, batch_size=batch_size, progress=False)
        return {
            "ids": list(enc.ids),
            "vectors": enc.vectors.float().cpu().numpy(),
            "token_ids": enc.token_ids.cpu().numpy().astype(np.int32),
            "lengths": enc.lengths.cpu().numpy().astype(np.int32),
            "truncated": list(enc.truncated),
            "mask_token_id": int(enc.mask_token_id),
        }


class RayEncoder:
    """Encoder actors on a Ray runtime; :meth:`encode_chunks` streams a corpus through them.

    Parameters
    ----------
    encoder : lirlab.encoder.ColBERT or str
        The encoder to replicate (workers load it by ``encoder.name`` with its settings) or a model name /
        folder every worker can read.
    num_workers : int
        Actors, each with its own copy of the model.
    cpus_per_worker : int
        CPUs (and torch threads) per actor.
    gpus_per_worker : float, optional
        GPUs per actor; default 1 when the cluster has at least ``num_workers`` GPUs, else 0 (CPU).
    address : str, optional
        A running cluster (``"auto"``, ``"ray://host:10001"``); default: a local runtime started here.
    object_store_memory : int
        Bytes of shared memory for the local runtime's object store (shards in flight are a few MB);
        Ray's default takes 30% of the machine's memory. Not used with ``address``.
    start_attempts : int
        Tries at starting the local runtime before :class:`RayStartError` (a loaded machine can miss
        Ray's fixed start-up timeouts once and make it the next time, its imports then cached).
    **overrides
        Encoder settings for a model given by name (``doc_maxlen=...``).
    """

    def __init__(
        self,
        encoder,
        num_workers: int = 2,
        cpus_per_worker: int = 1,
        gpus_per_worker: float | None = None,
        address: str | None = None,
        object_store_memory: int = LOCAL_OBJECT_STORE_BYTES,
        start_attempts: int = 2,
        **overrides,
    ):
        ray = _import_ray()
        if num_workers < 1 or cpus_per_worker < 1 or start_attempts < 1:
            raise ValueError(
                "num_workers, cpus_per_worker and start_attempts must be >= 1, "
                f"got {num_workers}, {cpus_per_worker} and {start_attempts}"
            )
        if isinstance(encoder, (str, os.PathLike)):
            name, settings = str(encoder), dict(overrides)
        else:
            name = encoder.name
            settings = {k: v for k, v in asdict(encoder.config).items() if k != "checkpoint_format"}
            settings["skiplist"] = tuple(settings["skiplist"])
            settings.update(overrides)
        if Path(name).is_dir():
            name = str(Path(name).resolve())  # workers do not share the driver's working directory
        self.ray = ray
        self.started_here = False
        if not ray.is_initialized():
            if address is None:
                _start_local(ray, num_workers * cpus_per_worker, object_store_memory, start_attempts)
                self.started_here = True
            else:
                ray.init(address=address, log_to_driver=False)
        if gpus_per_worker is None:
            gpus_per_worker = 1 if ray.cluster_resources().get("GPU", 0) >= num_workers else 0
        device = "cuda" if gpus_per_worker else "cpu"
        actor = ray.remote(num_cpus=cpus_per_worker, num_gpus=gpus_per_worker)(_Worker)
        self.workers = [actor.remote(name, settings, device, cpus_per_worker) for _ in range(num_workers)]
        self.vocab: tuple[str, ...] = tuple(ray.get(self.workers[0].vocab.remote()))
        self.device = device

    def __enter__(self) -> RayEncoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the actors (and the local runtime when this object started it)."""
        for w in self.workers:
            self.ray.kill(w)
        self.workers = []
        if self.started_here:
            self.ray.shutdown()
            self.started_here = False

    def encode_chunks(
        self, docs, shard_size: int = 128, batch_size: int = 32, in_flight: int = 2, progress: bool = True
    ) -> Iterator[Encoding]:
        """Encode ``docs`` (see :func:`lirlab.data.as_documents`), yielding one Encoding per shard of
        ``shard_size`` documents, in corpus order.

        At most ``in_flight`` shards per worker are queued or held at once.
        """
        if not self.workers:
            raise ValueError("this RayEncoder is closed")
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        records = as_documents(docs) if not isinstance(docs, Iterator) else docs
        shards = _batched(records, shard_size)
        pending: deque = deque()
        limit = max(1, in_flight) * len(self.workers)
        turn = itertools.cycle(self.workers)
        bar = tqdm(desc="encode documents (ray)", unit="doc", disable=not progress)
        try:
            for shard in shards:
                if len(pending) >= limit:
                    yield self._take(pending, bar)
                worker = next(turn)
                pending.append(
                    worker.encode.remote([d.docno for d in shard], [d.full_text for d in shard], batch_size)
                )
            while pending:
                yield self._take(pending, bar)
        finally:
            bar.close()
            for ref in pending:
                self.ray.cancel(ref)

    def _take(self, pending: deque, bar) -> Encoding:
        out = self.ray.get(pending.popleft())
        bar.update(len(out["ids"]))
        return Encoding(
            ids=tuple(out["ids"]),
            vectors=torch.from_numpy(np.array(out["vectors"])),
            token_ids=torch.from_numpy(out["token_ids"].astype(np.int64)),
            offsets=offsets_from_lengths(torch.from_numpy(out["lengths"].astype(np.int64))),
            vocab=self.vocab,
            truncated=tuple(out["truncated"]),
            mask_token_id=out["mask_token_id"],
        )

    def encode(self, docs, **kwargs) -> Encoding:
        """:meth:`encode_chunks` packed into one Encoding (see :func:`concat`)."""
        return concat(self.encode_chunks(docs, **kwargs))


def _batched(items: Iterable, size: int) -> Iterator[list]:
    it = iter(items)
    while batch := list(itertools.islice(it, size)):
        yield batch


def encode_chunks(
    docs, encoder, num_workers: int = 2, address: str | None = None, **kwargs
) -> Iterator[Encoding]:
    """Encode ``docs`` on Ray with a :class:`RayEncoder` made for the call; shards in corpus order.

    ``kwargs`` go to :meth:`RayEncoder.encode_chunks` (``shard_size``, ``batch_size``, ``progress``) or to
    :class:`RayEncoder` (``cpus_per_worker``, ``gpus_per_worker``).
    """
    stream_keys = {"shard_size", "batch_size", "in_flight", "progress"}
    stream = {k: v for k, v in kwargs.items() if k in stream_keys}
    setup = {k: v for k, v in kwargs.items() if k not in stream_keys}
    with RayEncoder(encoder, num_workers=num_workers, address=address, **setup) as ray_encoder:
        yield from ray_encoder.encode_chunks(docs, **stream)


def concat(chunks: Iterable[Encoding], expected_docs: int | None = None) -> Encoding:
    """Pack a stream of Encoding shards into one, freeing each shard once copied.

    The vectors go into one growing buffer (sized from the first shard and ``expected_docs``, grown by a
    quarter when short), so the peak is about one corpus plus a shard, not the two copies of collecting
    the shards and concatenating them.

    >>> a = Encoding(ids=("a",), vectors=torch.ones(2, 3), token_ids=torch.tensor([1, 2]),
    ...              offsets=torch.tensor([0, 2]), vocab=("x", "y", "z"))
    >>> b = Encoding(ids=("b",), vectors=torch.zeros(1, 3), token_ids=torch.tensor([0]),
    ...              offsets=torch.tensor([0, 1]), vocab=a.vocab)
    >>> both = concat(iter([a, b]))
    >>> both.ids, both.lengths.tolist(), both.vectors.sum().item()
    (('a', 'b'), [2, 1], 6.0)
    """
    it = iter(chunks)
    first = next(it, None)
    if first is None:
        raise ValueError("nothing to concatenate: the stream yielded no Encoding")
    per_doc = first.vectors.shape[0] / max(1, len(first))
    capacity = max(first.vectors.shape[0], int(per_doc * (expected_docs or len(first)) * 1.05) + 1)
    buffer = torch.empty(capacity, first.dim, dtype=first.vectors.dtype)
    used = 0
    ids: list[str] = []
    token_ids: list[torch.Tensor] = []
    lengths: list[torch.Tensor] = []
    truncated: list[bool] = []
    chunk: Encoding | None = first
    while chunk is not None:
        if chunk.vocab is not first.vocab and chunk.vocab != first.vocab:
            raise ValueError("the shards come from different vocabularies (different models?)")
        rows = chunk.vectors.shape[0]
        if used + rows > buffer.shape[0]:
            grown = torch.empty(max(used + rows, int(buffer.shape[0] * 1.25)), first.dim, dtype=buffer.dtype)
            grown[:used] = buffer[:used]
            buffer = grown
        buffer[used : used + rows] = chunk.vectors
        used += rows
        ids.extend(chunk.ids)
        token_ids.append(chunk.token_ids)
        lengths.append(chunk.lengths)
        truncated.extend(chunk.truncated)
        chunk = next(it, None)
    return Encoding(
        ids=tuple(ids),
        vectors=buffer[:used],
        token_ids=torch.cat(token_ids),
        offsets=offsets_from_lengths(torch.cat(lengths)),
        vocab=first.vocab,
        truncated=tuple(truncated),
        mask_token_id=first.mask_token_id,
    )


__all__: Sequence[str] = (
    "RayEncoder",
    "RayNotInstalledError",
    "RayStartError",
    "concat",
    "encode_chunks",
    "ray_available",
)
