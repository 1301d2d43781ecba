"""Qdrant as an index kind: one point per document, its token vectors a multi-vector compared by MaxSim.

Embedded by default: the Qdrant engine runs in this process through ``qdrant-edge-py`` on a local
folder, nothing to start. ``url=`` (or ``client=``, a ``qdrant_client.QdrantClient``) puts the same
collection on a Qdrant server or cluster instead; the API key is read from an environment variable
(``QDRANT_API_KEY`` unless ``api_key_env=`` names another) and never saved. Install both with
``pip install 'lirlab[qdrant]'``.

Each point holds two named vectors: ``tokens``, the document's token vectors as a multi-vector with
Qdrant's MaxSim comparator over dot products (exactly ColBERT's late-interaction score), and
``pooled``, the L2-normalized mean of those vectors, which a search can prefetch candidates with before
re-ranking them by MaxSim (``prefetch=``). The payload holds the docno and any metadata given at build
time; :meth:`QdrantIndex.where` restricts a search to the documents whose payload matches.

What a saved index keeps: ``metadata.json`` (the backend, the collection settings, the model, and a
table of the shard's files with their sizes and digests), the docnos, and the token ids and lengths
beside the Qdrant folder (4 bytes a token against 512 for a 128-d vector). The engine rewrites some of
its files whenever it opens a shard and locks its write-ahead log, so a saved shard is never opened in
place: each :meth:`QdrantIndex.load` runs the engine on a private copy in the temporary folder (removed
by :meth:`QdrantIndex.close` or at exit; those of killed processes by the next open), which lets any
number of processes open one index and keeps the saved files as their digests say. :meth:`QdrantIndex.documents` reads the vectors back from Qdrant rather than from a copy
kept beside it: Qdrant stays the one place the vectors live (on a server they are not on this disk at
all), and the folder is not twice the size. Reading every vector back is slow (seconds per thousand
documents); the analyses that need it read a few documents.

Examples
--------
>>> import torch
>>> from lirlab.encoding import Encoding
>>> docs = Encoding(ids=("a", "b", "c"), vectors=torch.nn.functional.normalize(torch.eye(3)[[0, 1, 1, 2]], dim=1),
...                 token_ids=torch.tensor([1, 2, 2, 3]), offsets=torch.tensor([0, 1, 3, 4]),
...                 vocab=("[D]", "x", "y", "z"))
>>> queries = Encoding(ids=("q",), vectors=torch.tensor([[0.6, 0.8, 0.0]]), token_ids=torch.tensor([2]),
...                    offsets=torch.tensor([0, 1]), vocab=docs.vocab, kind="query")
>>> index = QdrantIndex.from_encoding(docs, metadata={"a": {"year": 2020}, "b": {"year": 2021},
...                                                   "c": {"year": 2021}})
>>> index.search(queries, k=2, exact=True).round(4)[["docno", "score", "rank"]].values.tolist()
[['b', 0.8, 1], ['a', 0.6, 2]]
>>> index.where(year=2021).search(queries, k=2)["docno"].tolist()
['b', 'c']
>>> index.documents([1]).tokens(0)
['y', 'y']
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
import re
import shutil
import stat
import struct
import tempfile
import time
import uuid
import warnings
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lirlab.data import as_documents
from lirlab.encoding import Encoding, offsets_from_lengths
from lirlab.index.base import Index, StageTimer
from lirlab.index.knobs.qdrant import BUILD_PARAMS, SEARCH_PARAMS
from lirlab.index.regions import joined as joined_regions
from lirlab.index.regions import load_regions, regions_at, save_regions
from lirlab.storage import (
    METADATA,
    PLAIN_NAME,
    READ_RETRIES,
    ArtifactError,
    ArtifactWriter,
    as_path,
    fsync_folder,
    read_artifact,
    size_and_digest,
)

try:  # POSIX only; elsewhere the private copies of processes that died are not cleaned
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

#: Named vectors of every point.
TOKENS, POOLED = "tokens", "pooled"
#: Payload key of the document id (metadata may not use it).
DOCNO = "docno"
#: Environment variable the server API key is read from unless ``api_key_env=`` names another.
API_KEY_ENV = "QDRANT_API_KEY"
#: Seconds a server has to answer before :class:`QdrantConnectionError`.
CONNECT_TIMEOUT = 5
#: Documents per upsert and per read-back request.
UPSERT_BATCH = 64
#: Folder of the Qdrant shard inside a saved index.
SHARD_FOLDER = "qdrant"
#: Private folders (in the temporary folder) that each open index runs the engine on.
PRIVATE_PREFIX = "lirlab-qdrant-"
#: Permissions of a private copy: this user only (what tells it from a look-alike someone else made).
PRIVATE_MODE = 0o700
#: A private folder whose process died (its lock free) is removed once at least this old.
DEAD_PRIVATE_AGE_S = 60.0
#: Block size of the shard digest and of the sparse copy.
DIGEST_BLOCK = 1 << 16
#: How the ``digest`` of each shard file in ``metadata.json`` is computed (holes and zeros hash alike).
DIGEST_RULE = "sha256 over each 64 KiB block that is not all zeros (offset, length, bytes), then the size"

_PRIVATE_NAME = re.compile(rf"^{PRIVATE_PREFIX}\d+-[0-9a-f]{{12}}$")
_SEEK_DATA, _SEEK_HOLE = getattr(os, "SEEK_DATA", None), getattr(os, "SEEK_HOLE", None)

INSTALL_HINT = "pip install 'lirlab[qdrant]'"


class QdrantNotInstalledError(ImportError):
    """``qdrant-edge-py`` or ``qdrant-client`` is missing."""


class QdrantConnectionError(RuntimeError):
    """A Qdrant server did not answer."""


def _import_edge():
    try:
        import qdrant_edge
    except ImportError:
        raise QdrantNotInstalledError(
            f"the embedded Qdrant engine is not installed: {INSTALL_HINT}"
        ) from None
    return qdrant_edge


def _import_client():
    try:
        import qdrant_client
        from qdrant_client import models
    except ImportError:
        raise QdrantNotInstalledError(f"qdrant-client is not installed: {INSTALL_HINT}") from None
    return qdrant_client, models


# ---------------------------------------------------------------------------------------------- payloads


def _check_value(value: Any, key: str, docno: str) -> None:
    ok = value is None or isinstance(value, (bool, str))
    if isinstance(value, int) and not isinstance(value, bool):
        ok = -(2**63) <= value < 2**63
    elif isinstance(value, float):
        ok = math.isfinite(value)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_value(item, key, docno)
        ok = True
    elif isinstance(value, Mapping):
        for sub, item in value.items():
            if not isinstance(sub, str):
                raise ValueError(
                    f"metadata of document {docno!r}: key {key!r} holds a dict with the non-string key {sub!r}, "
                    "which Qdrant cannot store; use string keys"
                )
            _check_value(item, f"{key}.{sub}", docno)
        ok = True
    if not ok:
        raise ValueError(
            f"metadata of document {docno!r}: key {key!r} holds {type(value).__name__} {value!r}, which Qdrant "
            "cannot store; use str, int (64-bit), finite float, bool, None, or lists and dicts of them"
        )


def payloads_for(docnos: Sequence[str], metadata) -> list[dict[str, Any]]:
    """One payload per document: its docno and its metadata, checked for values Qdrant can store.

    ``metadata`` is ``None``, a mapping docno -> dict (documents it omits get none) or a sequence of
    dicts aligned with ``docnos``.

    >>> payloads_for(["a"], {"a": {"year": 2020}})
    [{'docno': 'a', 'year': 2020}]
    >>> payloads_for(["a"], [{"when": {1, 2}}])
    Traceback (most recent call last):
    ...
    ValueError: metadata of document 'a': key 'when' holds set {1, 2}, which Qdrant cannot store; use str, int (64-bit), finite float, bool, None, or lists and dicts of them
    """
    if metadata is None:
        rows: list[Mapping] = [{}] * len(docnos)
    elif isinstance(metadata, Mapping):
        unknown = [d for d in metadata if d not in set(docnos)]
        if unknown:
            raise ValueError(f"metadata names a document the encoding does not hold: {unknown[0]!r}")
        rows = [metadata.get(d) or {} for d in docnos]
    else:
        rows = list(metadata)
        if len(rows) != len(docnos):
            raise ValueError(
                f"metadata has {len(rows)} entries for {len(docnos)} documents; give one per document"
            )
    payloads = []
    for docno, row in zip(docnos, rows):
        if not isinstance(row, Mapping):
            raise ValueError(f"metadata of document {docno!r} must be a dict, got {type(row).__name__}")
        for key, value in row.items():
            if not isinstance(key, str):
                raise ValueError(
                    f"metadata of document {docno!r}: key {key!r} is not a string; Qdrant needs string keys"
                )
            if key == DOCNO:
                raise ValueError(
                    f"metadata of document {docno!r}: key {DOCNO!r} is reserved for the document id; rename it"
                )
            _check_value(value, key, docno)
        payloads.append({DOCNO: docno, **row})
    return payloads


def _condition_parts(conditions: Mapping[str, Any]) -> list[tuple[str, str, Any]]:
    """``(key, 'match' | 'any' | 'range', value)`` for each condition; ValueError naming a bad one."""
    parts = []
    for key, value in conditions.items():
        if isinstance(value, Mapping):
            bad = sorted(set(value) - {"gt", "gte", "lt", "lte"})
            if bad or not value:
                raise ValueError(f"filter on {key!r}: a range takes gt, gte, lt, lte, got {sorted(value)}")
            parts.append((key, "range", {b: float(v) for b, v in value.items()}))
        elif isinstance(value, (list, tuple, set)):
            items = list(value)
            if (
                not items
                or not all(isinstance(v, str) for v in items)
                and not all(isinstance(v, int) and not isinstance(v, bool) for v in items)
            ):
                raise ValueError(f"filter on {key!r}: a list must hold only strings or only integers")
            parts.append((key, "any", items))
        elif isinstance(value, float):
            parts.append((key, "range", {"gte": value, "lte": value}))
        elif isinstance(value, (str, int, bool)):
            parts.append((key, "match", value))
        else:
            raise ValueError(
                f"filter on {key!r}: {type(value).__name__} is not a filter; give a value, a list of values "
                "or a range dict such as {'gte': 2019}"
            )
    return parts


# ---------------------------------------------------------------------------------------------- backends


class _EdgeBackend:
    """The Qdrant engine in-process on a local folder (``qdrant-edge-py``)."""

    kind = "embedded"

    def __init__(self, folder: Path, shard, private: _PrivateFolder | None = None, shown: Path | None = None):
        self.folder = Path(folder)
        self.shard = shard
        self.shown = shown or self.folder  # the saved shard a private copy was made from, for messages
        self.q = _import_edge()
        self._cleanup = weakref.finalize(self, _close_and_remove, shard, private)

    @classmethod
    def create(cls, folder: str | os.PathLike | None, dim: int, build: Mapping[str, Any]) -> _EdgeBackend:
        q = _import_edge()
        private = _PrivateFolder() if folder is None else None
        folder = private.path / "shard" if private is not None else Path(folder)
        if private is None and folder.exists() and any(folder.iterdir()):
            raise ValueError(f"{folder} is not empty; give an empty or new folder for the Qdrant shard")
        quant = {
            "none": None,
            "scalar": lambda: q.ScalarQuantizationConfig(q.ScalarType.Int8, quantile=0.99),
            "binary": lambda: q.BinaryQuantizationConfig(),
        }[build["quantization"]]

        def vector(multi: bool, m: int):
            return q.EdgeVectorParams(
                size=dim,
                distance=q.Distance.Dot,
                multivector_config=q.MultiVectorConfig(q.MultiVectorComparator.MaxSim) if multi else None,
                hnsw_config=q.HnswIndexConfig(m, build["ef_construct"], build["full_scan_threshold"]),
                quantization_config=quant() if quant else None,
            )

        config = q.EdgeConfig(
            vectors={TOKENS: vector(True, build["m"]), POOLED: vector(False, build["prefetch_m"])}
        )
        try:
            shard = q.EdgeShard.create(str(folder), config)
        except BaseException:
            if private is not None:
                private.remove()
            raise
        return cls(folder, shard, private)

    @classmethod
    def open_saved(cls, index_folder: Path, art, verify: bool) -> _EdgeBackend:
        """Open the shard of the index ``art`` was read from, in a private copy of it.

        The saved shard is never opened in place: the engine rewrites some of its files whenever it
        opens a shard and locks its write-ahead log, so every reader (process or notebook) gets its own
        copy, made from the same save as ``art``, checked against the shard table in its metadata.
        Raises :class:`_ShardReplaced` when a save replaced the index folder meanwhile.
        """
        q = _import_edge()
        config = art.table("config")
        name = config.get("folder", SHARD_FOLDER)
        if not isinstance(name, str) or not PLAIN_NAME.match(name):
            raise ArtifactError(
                f"{index_folder / METADATA}: config.folder {name!r} is not a folder name inside the index "
                "folder; lirlab opens only the shard saved beside its metadata (save the index again)"
            )
        expected = _shard_table(index_folder, art.metadata.get("shard"), verify)
        docnos_fd = art.fds.get("docnos.json")
        if docnos_fd is None:
            raise ArtifactError(f"{index_folder / METADATA}: does not list docnos.json; save the index again")
        private = _PrivateFolder()
        try:
            folder = private.path / "shard"
            _copy_saved_shard(index_folder, name, docnos_fd, folder, expected, verify)
            shard = _engine(index_folder / name, "open", lambda: q.EdgeShard.load(str(folder)))
        except BaseException:
            private.remove()
            raise
        return cls(folder, shard, private, index_folder / name)

    def upsert(self, ids, tokens, pooled, payloads) -> None:
        q = self.q
        points = [
            q.Point(i, {TOKENS: t, POOLED: p}, payload)
            for i, t, p, payload in zip(ids, tokens, pooled, payloads)
        ]
        self.shard.update(q.UpdateOperation.upsert_points(points))

    def finish(self) -> None:
        self.shard.optimize()
        self.shard.flush()

    def count(self) -> int:
        return int(_engine(self.shown, "count the points of", lambda: self.shard.info().points_count))

    def copy_to(self, folder: Path) -> dict[str, Any]:
        """Copy the shard into ``folder`` (new), durably; returns its shard table for ``metadata.json``."""
        self.shard.flush()
        source = os.open(self.folder, os.O_RDONLY | _O_DIRECTORY)
        try:
            files, folders = _copy_tree(source, self.folder, folder, None, digest=True, durable=True)
        finally:
            os.close(source)
        return {
            "digest": DIGEST_RULE,
            "files": {
                rel: {"bytes": size, "digest": digest} for rel, (size, digest) in sorted(files.items())
            },
            "folders": sorted(folders),
        }

    def _filter(self, conditions):
        if not conditions:
            return None
        q = self.q
        must = []
        for key, how, value in _condition_parts(conditions):
            if how == "match":
                must.append(q.FieldCondition(key, match=q.MatchValue(value)))
            elif how == "any":
                must.append(q.FieldCondition(key, match=q.MatchAny(value)))
            else:
                must.append(q.FieldCondition(key, range=q.RangeFloat(**value)))
        return q.Filter(must=must)

    def _params(self, knobs):
        q = self.q
        quant = None
        if knobs["oversampling"] != 1.0 or not knobs["rescore"]:
            quant = q.QuantizationSearchParams(rescore=knobs["rescore"], oversampling=knobs["oversampling"])
        return q.SearchParams(hnsw_ef=knobs["hnsw_ef"], exact=knobs["exact"], quantization=quant)

    def query(self, tokens, pooled, k, knobs, conditions) -> list[list[tuple[int, float]]]:
        q = self.q
        params = self._params(knobs)
        requests = []
        for i, (t, p) in enumerate(zip(tokens, pooled)):
            flt = self._filter(conditions[i] if conditions is not None else None)
            prefetches = None
            if knobs["prefetch"]:
                prefetches = [
                    q.Prefetch(
                        limit=max(knobs["prefetch"], k),
                        query=q.Query.Nearest(p, using=POOLED),
                        params=params,
                        filter=flt,
                    )
                ]
            requests.append(
                q.QueryRequest(
                    limit=k,
                    query=q.Query.Nearest(t, using=TOKENS),
                    prefetches=prefetches,
                    filter=flt,
                    params=params,
                    with_payload=False,
                    with_vector=False,
                )
            )
        if len(requests) == 1:
            results = [self.shard.query(requests[0])]
        else:
            results = self.shard.query_batch(q.QueryBatchRequest(requests))
        return [[(int(p.id), float(p.score)) for p in points] for points in results]

    def vectors(self, ids: Sequence[int]) -> list[np.ndarray]:
        records = self.shard.retrieve(list(ids), with_payload=False, with_vector=[TOKENS])
        by_id = {int(r.id): r.vector[TOKENS] for r in records}
        return [np.asarray(by_id[i], dtype=np.float32) for i in ids]

    def size_bytes(self) -> int:
        return disk_bytes(self.folder)

    def close(self) -> None:
        self._cleanup()


def disk_bytes(folder: str | os.PathLike) -> int:
    """Bytes a folder occupies on disk: Qdrant preallocates its files sparsely (32 MiB each, mostly
    holes), so the allocated blocks are counted, not the apparent sizes."""
    return sum(f.stat().st_blocks * 512 for f in Path(folder).rglob("*") if f.is_file())


_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class _ShardReplaced(Exception):
    """A save replaced the index folder while its shard was being copied: read it again."""


class _PrivateFolder:
    """A new folder in the temporary folder that only this process uses, locked while it lives.

    Folders of processes that died (killed, power loss) keep no lock; the next one made removes them
    once they are :data:`DEAD_PRIVATE_AGE_S` old (the age spares a folder made a moment ago and not yet
    locked). Only folders made as lirlab makes them are ever considered: named ``lirlab-qdrant-PID-TOKEN``,
    this user's, with permissions :data:`PRIVATE_MODE`.
    """

    def __init__(self):
        root = Path(tempfile.gettempdir())
        _remove_dead_private_folders(root)
        self.owner = os.getpid()
        self.path = root / f"{PRIVATE_PREFIX}{self.owner}-{uuid.uuid4().hex[:12]}"
        self.path.mkdir(mode=PRIVATE_MODE)
        self.path.chmod(PRIVATE_MODE)  # whatever the umask
        self._fd: int | None = os.open(self.path, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW)
        if fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def remove(self) -> None:
        """Delete the folder (only in the process that made it: a forked child leaves it to its parent)."""
        if os.getpid() == self.owner:
            shutil.rmtree(self.path, ignore_errors=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _remove_dead_private_folders(root: Path) -> None:
    if fcntl is None:  # pragma: no cover  (no locks to tell a live folder from a dead one)
        return
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    now = time.time()
    for entry in entries:
        if not _PRIVATE_NAME.match(entry.name):
            continue
        try:
            if not entry.is_dir(follow_symlinks=False):
                continue
            made = entry.stat(follow_symlinks=False)
            if made.st_uid != os.getuid() or stat.S_IMODE(made.st_mode) != PRIVATE_MODE:
                continue  # not made as lirlab makes its private copies
            if now - made.st_mtime < DEAD_PRIVATE_AGE_S:
                continue
            fd = os.open(entry.path, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # its process is alive
        try:
            shutil.rmtree(entry.path, ignore_errors=True)
        finally:
            os.close(fd)


def _close_and_remove(shard, private: _PrivateFolder | None) -> None:
    if private is not None and os.getpid() != private.owner:
        return  # a forked child exiting: the shard and its folder are its parent's
    try:
        shard.close()
    except Exception:  # closing twice, or at interpreter exit
        pass
    if private is not None:
        private.remove()


def _engine(shown: Path, doing: str, call):
    """``call()``, with any error of the engine (its Rust panics included) turned into one ArtifactError."""
    try:
        return call()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # the engine's error types are not exported; a panic is a BaseException
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise ArtifactError(
            f"{shown}: the Qdrant engine cannot {doing} the shard ({first}); it is damaged: save or build "
            "the index again"
        ) from None


_REL_PATH = re.compile(rf"^{PLAIN_NAME.pattern[1:-1]}(?:/{PLAIN_NAME.pattern[1:-1]})*$")


def _shard_table(
    index_folder: Path, table: Any, verify: bool
) -> tuple[dict[str, tuple[int, str]], list[str]] | None:
    """The shard table of ``metadata.json`` as ``({file: (bytes, digest)}, folders)``, checked; None for
    an index written before lirlab recorded one (refused when ``verify``: there is nothing to verify)."""
    meta_file = index_folder / METADATA
    if table is None:
        if verify:
            raise ArtifactError(
                f"{meta_file}: records no checksums of the Qdrant shard (written by an older lirlab), so it "
                "cannot be verified; load it once with verify=False and save it again"
            )
        return None
    files = table.get("files") if isinstance(table, dict) else None
    folders = table.get("folders") if isinstance(table, dict) else None
    if not isinstance(files, dict) or not isinstance(folders, list) or table.get("digest") != DIGEST_RULE:
        raise ArtifactError(
            f"{meta_file}: its 'shard' table is damaged or of another kind; save the index again"
        )
    checked = {}
    for rel, info in files.items():
        entry = size_and_digest(info, "digest")
        if not _REL_PATH.match(rel) or entry is None:
            raise ArtifactError(
                f"{meta_file}: the shard entry {rel!r} is not a file inside the shard with 'bytes' and a "
                "64-digit 'digest'; save the index again"
            )
        checked[rel] = entry
    if not all(isinstance(rel, str) and _REL_PATH.match(rel) for rel in folders):
        raise ArtifactError(
            f"{meta_file}: the shard's folder list names a path outside it; save the index again"
        )
    return checked, folders


def _copy_saved_shard(
    index_folder: Path,
    name: str,
    docnos_fd: int,
    dest: Path,
    expected: tuple[dict[str, tuple[int, str]], list[str]] | None,
    verify: bool,
) -> None:
    """Copy the shard ``name`` of the index folder whose ``docnos.json`` is open as ``docnos_fd`` into
    ``dest``, refusing symbolic links and anything the shard table does not list (sizes always checked,
    digests when ``verify``)."""
    shown = index_folder / name
    index_fd = os.open(index_folder, os.O_RDONLY | _O_DIRECTORY)
    try:
        docnos, ours = os.fstat(docnos_fd), None
        try:
            ours = os.stat("docnos.json", dir_fd=index_fd, follow_symlinks=False)
        except FileNotFoundError:
            pass
        if ours is None or (ours.st_dev, ours.st_ino) != (docnos.st_dev, docnos.st_ino):
            raise _ShardReplaced  # the folder at this path is no longer the save the metadata came from
        try:
            info = os.stat(name, dir_fd=index_fd, follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):
                raise ArtifactError(
                    f"{shown}: is a symbolic link; an index's Qdrant shard must be a folder inside it"
                )
            if not stat.S_ISDIR(info.st_mode):
                raise ArtifactError(f"{shown}: not a folder (the Qdrant shard of this index)")
            shard_fd = os.open(name, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW, dir_fd=index_fd)
        except FileNotFoundError:
            raise ArtifactError(f"{shown}: missing (the Qdrant shard of this index)") from None
        try:
            files, folders = expected if expected is not None else (None, [])
            _copy_tree(shard_fd, shown, dest, files, digest=verify and files is not None, durable=False)
            for rel in folders:  # empty folders the engine expects
                (dest / rel).mkdir(parents=True, exist_ok=True)
        finally:
            os.close(shard_fd)
    except ArtifactError:
        if _folder_replaced(index_folder, index_fd):
            raise _ShardReplaced from None  # a save's clean-up removed files under us: read the new one
        raise
    finally:
        os.close(index_fd)


def _folder_replaced(path: Path, dir_fd: int) -> bool:
    info = os.fstat(dir_fd)
    try:
        now = os.stat(path)
    except OSError:
        return True
    return info.st_nlink == 0 or (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino)


#: What the engine writes a file into before renaming it in place (``.atomicwriteXXXXXX/tmpfile.tmp``); a
#: writer killed in a flush leaves it behind in the shard, and a save must not copy it into the index.
ENGINE_SCRATCH = ".atomicwrite"


def _copy_tree(
    source_fd: int,
    shown: Path,
    dest: Path,
    expected: dict[str, tuple[int, str]] | None,
    digest: bool,
    durable: bool,
) -> tuple[dict[str, tuple[int, str | None]], list[str]]:
    """Copy the folder open as ``source_fd`` into the new folder ``dest`` without following links.

    Returns ``({file: (bytes, digest or None)}, folders)`` relative to the folder. With ``expected``
    (``{file: (bytes, digest)}``), a file it does not list, of another size, missing, or (when ``digest``)
    of another digest is an :class:`ArtifactError` naming it. ``durable`` fsyncs every file and folder.
    """
    copied: dict[str, tuple[int, str | None]] = {}
    folders: list[str] = []
    pending = [(os.dup(source_fd), "")]
    try:
        while pending:
            folder_fd, rel_folder = pending.pop()
            try:
                (dest / rel_folder).mkdir(mode=0o700)
                for entry in sorted(os.scandir(folder_fd), key=lambda e: e.name):
                    rel = f"{rel_folder}/{entry.name}" if rel_folder else entry.name
                    if expected is None and entry.name.startswith(ENGINE_SCRATCH):
                        continue  # a flush killed midway left it; the engine never reads it back
                    if entry.is_symlink():
                        raise ArtifactError(
                            f"{shown / rel}: is a symbolic link; only plain files inside the shard are read"
                        )
                    if entry.is_dir(follow_symlinks=False):
                        folders.append(rel)
                        child = os.open(
                            entry.name, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW, dir_fd=folder_fd
                        )
                        pending.append((child, rel))
                        continue
                    if expected is not None and rel not in expected:
                        raise ArtifactError(
                            f"{shown / rel}: not part of this index's Qdrant shard (copied in from another "
                            "index, or added); save the index again"
                        )
                    want = expected[rel] if expected is not None else None
                    copied[rel] = _copy_entry(
                        folder_fd, entry.name, shown / rel, dest / rel, want, digest, durable
                    )
                if durable:
                    fsync_folder(dest / rel_folder)
            finally:
                os.close(folder_fd)
    except FileNotFoundError as e:
        raise ArtifactError(f"{shown}: {e.filename or 'a file'} vanished while being read") from None
    finally:
        for fd, _ in pending:
            os.close(fd)
    if expected is not None:
        missing = sorted(set(expected) - set(copied))
        if missing:
            raise ArtifactError(f"{shown / missing[0]}: missing (part of this index's Qdrant shard)")
    return copied, folders


def _copy_entry(
    folder_fd: int,
    name: str,
    shown: Path,
    dest: Path,
    want: tuple[int, str] | None,
    digest: bool,
    durable: bool,
) -> tuple[int, str | None]:
    """Copy the file ``name`` of the folder open as ``folder_fd`` to ``dest``, checked against ``want``."""
    try:
        fd = os.open(name, os.O_RDONLY | _O_NOFOLLOW, dir_fd=folder_fd)
    except FileNotFoundError:
        raise ArtifactError(f"{shown}: missing (part of this index's Qdrant shard)") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ArtifactError(
                f"{shown}: is a symbolic link; only plain files inside the shard are read"
            ) from None
        raise ArtifactError(f"{shown}: cannot be opened ({e.strerror})") from None
    try:
        size = os.fstat(fd).st_size
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ArtifactError(f"{shown}: not a plain file; only plain files inside the shard are read")
        if want is not None and size != want[0]:
            raise ArtifactError(f"{shown}: {size} bytes, expected {want[0]} (truncated or replaced?)")
        found = _copy_file(fd, dest, size, digest, durable)
    finally:
        os.close(fd)
    if want is not None and digest and found != want[1]:
        raise ArtifactError(f"{shown}: checksum mismatch (the shard file was changed or damaged)")
    return size, found


def _copy_file(source_fd: int, dest: Path, size: int, digest: bool, durable: bool) -> str | None:
    """Copy ``size`` bytes of the file open as ``source_fd`` to the new file ``dest``, leaving holes where
    the source has holes or all-zero blocks (the engine preallocates 32 MiB files, mostly empty); returns
    the file's digest (:data:`DIGEST_RULE`) when ``digest``."""
    zero = bytes(DIGEST_BLOCK)
    hasher = hashlib.sha256() if digest else None
    out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW, 0o600)
    try:
        block = 0  # the first block not yet read
        while block < size:
            start, end = block, size
            if _SEEK_DATA is not None:
                try:
                    start = os.lseek(source_fd, block, _SEEK_DATA)
                    end = os.lseek(source_fd, start, _SEEK_HOLE)
                except OSError as e:
                    if e.errno == errno.ENXIO:
                        break  # only a hole is left
                    if e.errno != errno.EINVAL:
                        raise
                    start, end = block, size  # a file system without holes
            if hasher is None and _kernel_copy(source_fd, out, start, min(end, size), dest):
                block = min(end, size)
                continue
            block = max(block, start - start % DIGEST_BLOCK)
            while block < min(end, size):
                chunk = os.pread(source_fd, min(DIGEST_BLOCK, size - block), block)
                if not chunk:
                    raise ArtifactError(f"{dest.name}: ended early while being copied (changed on disk?)")
                if chunk != zero[: len(chunk)]:
                    os.pwrite(out, chunk, block)
                    if hasher is not None:
                        hasher.update(struct.pack("<QQ", block, len(chunk)))
                        hasher.update(chunk)
                block += DIGEST_BLOCK
        os.ftruncate(out, size)
        if durable:
            os.fsync(out)
    finally:
        os.close(out)
    if hasher is None:
        return None
    hasher.update(struct.pack("<Q", size))
    return hasher.hexdigest()


def _kernel_copy(source_fd: int, out: int, start: int, end: int, dest: Path) -> bool:
    """Copy bytes ``start:end`` at the same offsets inside the kernel (``copy_file_range``: no trip
    through Python, several times faster); False where the system or file system cannot."""
    if not hasattr(os, "copy_file_range"):
        return False
    offset = start
    try:
        while offset < end:
            copied = os.copy_file_range(source_fd, out, end - offset, offset, offset)
            if not copied:
                raise ArtifactError(f"{dest.name}: ended early while being copied (changed on disk?)")
            offset += copied
    except OSError as e:
        if e.errno in (errno.ENOSYS, errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
            return False  # the caller copies the range itself
        raise
    return True


class _ClientBackend:
    """A collection on a Qdrant server or cluster, or in qdrant-client's local mode, through qdrant-client."""

    kind = "server"

    def __init__(self, client, collection: str, url: str | None, api_key_env: str):
        self.client = client
        self.collection = collection
        self.url = url
        self.api_key_env = api_key_env
        _, self.models = _import_client()

    @staticmethod
    def connect(url: str | None, client, api_key_env: str, timeout: int = CONNECT_TIMEOUT):
        qdrant_client, _ = _import_client()
        if client is None:
            if not url:
                raise ValueError("a Qdrant server index needs url= or client=")
            client = qdrant_client.QdrantClient(
                url=url,
                api_key=os.environ.get(api_key_env) or None,
                timeout=timeout,
                check_compatibility=False,
            )
        try:
            client.get_collections()
        except Exception as e:  # connection refused, timeout, 401, 404: all mean "not a usable server"
            where = url or "the given client"
            hint = f" (API key read from ${api_key_env})" if os.environ.get(api_key_env) else ""
            raise QdrantConnectionError(
                f"the Qdrant server at {where} did not answer within {timeout} s{hint}: "
                f"{str(e).splitlines()[0] if str(e) else type(e).__name__}; check the URL and that the server runs"
            ) from None
        return client

    @classmethod
    def create(
        cls, client, collection: str, url, api_key_env, dim: int, build, model: Mapping
    ) -> _ClientBackend:
        m = _import_client()[1]
        backend = cls(client, collection, url, api_key_env)
        if client.collection_exists(collection):
            backend.check_model(model, dim)
            raise ValueError(
                f"collection {collection!r} already exists on {url or 'the client'}; give another collection= "
                "or delete it there first (lirlab never overwrites a collection it may not have written)"
            )
        quant = {
            "none": None,
            "scalar": lambda: m.ScalarQuantization(
                scalar=m.ScalarQuantizationConfig(type=m.ScalarType.INT8, quantile=0.99)
            ),
            "binary": lambda: m.BinaryQuantization(binary=m.BinaryQuantizationConfig()),
        }[build["quantization"]]

        def vector(multi: bool, hnsw_m: int):
            return m.VectorParams(
                size=dim,
                distance=m.Distance.DOT,
                multivector_config=m.MultiVectorConfig(comparator=m.MultiVectorComparator.MAX_SIM)
                if multi
                else None,
                hnsw_config=m.HnswConfigDiff(
                    m=hnsw_m,
                    ef_construct=build["ef_construct"],
                    full_scan_threshold=build["full_scan_threshold"],
                ),
                quantization_config=quant() if quant else None,
            )

        client.create_collection(
            collection,
            vectors_config={TOKENS: vector(True, build["m"]), POOLED: vector(False, build["prefetch_m"])},
            metadata={"lirlab_model": model.get("name", ""), "lirlab_dim": dim},
        )
        return backend

    def check_model(self, model: Mapping, dim: int) -> None:
        """Refuse a collection whose vectors or recorded model differ from ``model``/``dim``, naming both."""
        info = self.client.get_collection(self.collection)
        vectors = info.config.params.vectors
        size = vectors[TOKENS].size if isinstance(vectors, Mapping) and TOKENS in vectors else None
        stored = (info.config.metadata or {}) if hasattr(info.config, "metadata") else {}
        if size is None:
            raise ValueError(
                f"collection {self.collection!r} has no {TOKENS!r} vectors: it was not written by lirlab"
            )
        _refuse_other_model(
            f"collection {self.collection!r}", stored.get("lirlab_model"), size, model.get("name"), dim
        )

    def upsert(self, ids, tokens, pooled, payloads) -> None:
        m = self.models
        points = [
            m.PointStruct(id=i, vector={TOKENS: t, POOLED: p}, payload=payload)
            for i, t, p, payload in zip(ids, tokens, pooled, payloads)
        ]
        self.client.upsert(self.collection, points=points, wait=True)

    def finish(self) -> None:
        pass

    def count(self) -> int:
        return int(self.client.count(self.collection, exact=True).count)

    def _filter(self, conditions):
        if not conditions:
            return None
        m = self.models
        must = []
        for key, how, value in _condition_parts(conditions):
            if how == "match":
                must.append(m.FieldCondition(key=key, match=m.MatchValue(value=value)))
            elif how == "any":
                must.append(m.FieldCondition(key=key, match=m.MatchAny(any=value)))
            else:
                must.append(m.FieldCondition(key=key, range=m.Range(**value)))
        return m.Filter(must=must)

    def query(self, tokens, pooled, k, knobs, conditions) -> list[list[tuple[int, float]]]:
        m = self.models
        quant = None
        if knobs["oversampling"] != 1.0 or not knobs["rescore"]:
            quant = m.QuantizationSearchParams(rescore=knobs["rescore"], oversampling=knobs["oversampling"])
        params = m.SearchParams(hnsw_ef=knobs["hnsw_ef"], exact=knobs["exact"], quantization=quant)
        requests = []
        for i, (t, p) in enumerate(zip(tokens, pooled)):
            flt = self._filter(conditions[i] if conditions is not None else None)
            prefetch = None
            if knobs["prefetch"]:
                prefetch = m.Prefetch(
                    query=p, using=POOLED, limit=max(knobs["prefetch"], k), params=params, filter=flt
                )
            requests.append(
                m.QueryRequest(
                    query=t,
                    using=TOKENS,
                    limit=k,
                    prefetch=prefetch,
                    filter=flt,
                    params=params,
                    with_payload=False,
                )
            )
        with warnings.catch_warnings():  # local mode says search params do not apply to its exact search
            warnings.filterwarnings("ignore", message="Local mode performs exact")
            responses = self.client.query_batch_points(self.collection, requests)
        return [[(int(p.id), float(p.score)) for p in r.points] for r in responses]

    def vectors(self, ids: Sequence[int]) -> list[np.ndarray]:
        records = self.client.retrieve(self.collection, list(ids), with_payload=False, with_vectors=[TOKENS])
        by_id = {int(r.id): r.vector[TOKENS] for r in records}
        return [np.asarray(by_id[i], dtype=np.float32) for i in ids]

    def size_bytes(self) -> int:
        return 0  # the server's disk is not ours to measure

    def close(self) -> None:
        pass


def _checked_tokens(art, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """``token_ids.npy`` and ``lengths.npy``, refused unless there is one length per document, none is
    negative and they add up to the tokens: checked whether or not the files were hashed, so a damaged
    folder fails here, never in a search."""
    n_docs = len(art.strings("docnos"))
    token_ids = art.checked_array("token_ids", "iu", 1)
    lengths = art.checked_array("lengths", "iu", 1, (n_docs,))
    if (lengths.size and int(lengths.min()) < 0) or int(lengths.sum(dtype=np.int64)) != token_ids.shape[0]:
        raise ArtifactError(
            f"{folder / 'lengths.npy'}: document lengths must be >= 0 and add up to the "
            f"{token_ids.shape[0]} tokens of token_ids.npy"
        )
    return token_ids, lengths


def _refuse_other_encoder(where: str, model: Mapping[str, Any], dim: int, encoder) -> None:
    """Refuse ``encoder`` for an index built by ``model``: another dimension, or (by the encoder
    fingerprint when both have one, else by name) other vectors."""
    from lirlab.index.base import encoder_fingerprint, fingerprints_match

    stored, current = model.get("fingerprint"), encoder_fingerprint(encoder)
    name = getattr(encoder, "name", None)
    if stored and current:
        same = fingerprints_match(stored, current)
    else:
        same = not model.get("name") or not name or model.get("name") == name
    if encoder.dim != dim or not same:
        raise ValueError(
            f"{where} was built with {model.get('name') or 'an unrecorded model'!s} (dim {dim}), "
            f"not {name or 'this model'!s} (dim {encoder.dim}): search it with the model that built it, or build anew"
        )


def _refuse_other_model(where: str, stored_name, stored_dim: int, name, dim: int) -> None:
    if stored_dim != dim or (stored_name and name and stored_name != name):
        raise ValueError(
            f"{where} was built with {stored_name or 'an unrecorded model'!s} (dim {stored_dim}), "
            f"not {name or 'this model'!s} (dim {dim}): search it with the model that built it, or build anew"
        )


# ---------------------------------------------------------------------------------------------- the index


def _pooled(vectors: torch.Tensor) -> list[float]:
    mean = vectors.float().mean(0)
    return torch.nn.functional.normalize(mean, dim=0).tolist()


class QdrantIndex(Index):
    """Documents in a Qdrant multi-vector collection, searched by Qdrant's MaxSim.

    Build with :meth:`from_encoding` (encoded documents) or :meth:`build` (texts and an encoder); open a
    saved one with :meth:`load`.

    Parameters
    ----------
    backend :
        The embedded shard or the server collection (made by :meth:`from_encoding`/:meth:`load`).
    docnos : sequence of str
        Document ids by position (the point id of each document is its position).
    token_ids, lengths : torch.Tensor
        Token ids of every stored vector and the vector count of every document (kept beside Qdrant).
    vocab, truncated, mask_token_id, regions, global_view :
        As in :class:`~lirlab.encoding.Encoding` (``regions`` and ``global_view``: page images only).
    build : dict
        The :attr:`BUILD_PARAMS` the collection was made with.
    encoder, model :
        As in :class:`~lirlab.index.base.Index`.
    """

    KIND = "qdrant"
    TYPE = "lirlab.qdrant"
    #: 2: the shard is checked against a table of its files (sizes and digests) in ``metadata.json``.
    FORMAT_VERSION = 2
    STAGES = ("qdrant_query", "collect")
    BUILD_PARAMS = BUILD_PARAMS
    SEARCH_PARAMS = SEARCH_PARAMS
    query_batch = 16

    def __init__(
        self,
        backend,
        docnos: Sequence[str],
        token_ids: torch.Tensor,
        lengths: torch.Tensor,
        vocab: Sequence[str],
        dim: int,
        build: Mapping[str, Any],
        truncated: Sequence[bool] = (),
        mask_token_id: int = -1,
        encoder=None,
        model: Mapping[str, Any] | None = None,
        payload_keys: Sequence[str] = (),
        regions: torch.Tensor | None = None,
        global_view: torch.Tensor | None = None,
    ):
        super().__init__(docnos, encoder=encoder, model=dict(model) if model is not None else None)
        self.backend = backend
        self.token_ids = token_ids
        self.offsets = offsets_from_lengths(lengths)
        self.vocab = tuple(vocab)
        self._dim = int(dim)
        self.build_knobs = dict(build)
        self.truncated = tuple(truncated) or (False,) * len(self.docnos)
        self.mask_token_id = mask_token_id
        self.payload_keys = tuple(payload_keys)
        self.regions, self.global_view = regions, global_view
        self.conditions: Mapping[str, Any] | list | None = None

    # ------------------------------------------------------------------ building

    @classmethod
    def from_encoding(
        cls,
        docs: Encoding,
        *,
        encoder=None,
        model=None,
        device=None,
        progress: bool = False,
        metadata=None,
        path: str | os.PathLike | None = None,
        url: str | None = None,
        client=None,
        collection: str = "lirlab",
        api_key_env: str = API_KEY_ENV,
        **build,
    ) -> QdrantIndex:
        """Write ``docs`` into a new Qdrant collection, one point per document.

        Parameters
        ----------
        docs : Encoding or iterable of Encoding
            Encoded documents; an iterable of chunks (for example what
            :func:`lirlab.integrations.ray.encode_chunks` streams) is written chunk by chunk, never
            holding the corpus twice.
        encoder, model : optional
            The encoder (for text queries) and/or its description, saved with the index.
        device : ignored
            Qdrant scores on its own threads.
        progress : bool
            Show a progress bar over documents.
        metadata : mapping or sequence, optional
            Payload per document (see :func:`payloads_for`); :meth:`where` filters on it.
        path : path, optional
            Folder for the embedded shard (default: a temporary one, removed when the index is; :meth:`save`
            copies the shard into the index folder).
        url, client : optional
            A Qdrant server URL, or a ``qdrant_client.QdrantClient`` (local mode included): the collection
            goes there instead of the embedded engine.
        collection : str
            Collection name on the server.
        api_key_env : str
            Environment variable holding the server's API key (read, never saved).
        **build
            :attr:`BUILD_PARAMS`.
        """
        knobs = cls.resolve_build_knobs(build)
        chunks = iter([docs]) if isinstance(docs, Encoding) else iter(docs)
        first = next(chunks, None)
        if not isinstance(first, Encoding):
            raise ValueError(
                f"a qdrant index needs an Encoding (or an iterable of them) of documents, got {type(first).__name__}"
            )
        model_info = dict(model) if model is not None else None
        if model_info is None and encoder is not None:
            from lirlab.index.base import describe_encoder

            model_info = describe_encoder(encoder)
        model_info = model_info or {}
        dim = first.dim
        if url is not None or client is not None:
            client = _ClientBackend.connect(url, client, api_key_env)
            backend = _ClientBackend.create(client, collection, url, api_key_env, dim, knobs, model_info)
        else:
            backend = _EdgeBackend.create(path, dim, knobs)
        docnos: list[str] = []
        token_ids, lengths, truncated, keys, geometry = [], [], [], set(), []
        meta_by_docno = metadata if isinstance(metadata, Mapping) or metadata is None else None
        meta_rows = None if meta_by_docno is not None or metadata is None else list(metadata)
        bar = tqdm(desc="qdrant upsert", unit="doc", disable=not progress)
        chunk: Encoding | None = first
        while chunk is not None:
            if chunk.dim != dim:
                raise ValueError(f"encoding chunks differ in dimension: {dim} then {chunk.dim}")
            if chunk.vocab != first.vocab:
                raise ValueError("encoding chunks come from different vocabularies (different models?)")
            start = len(docnos)
            if meta_rows is not None:
                rows = meta_rows[start : start + len(chunk)]
            else:
                rows = (
                    {d: meta_by_docno[d] for d in chunk.ids if d in meta_by_docno} if meta_by_docno else None
                )
            if meta_rows is not None and len(rows) != len(chunk):
                raise ValueError(
                    f"metadata has {len(meta_rows)} entries, fewer than the documents; give one per document"
                )
            payloads = payloads_for(chunk.ids, rows)
            keys.update(k for p in payloads for k in p)
            for lo in range(0, len(chunk), UPSERT_BATCH):
                hi = min(lo + UPSERT_BATCH, len(chunk))
                vectors = [chunk.vectors_of(i).float() for i in range(lo, hi)]
                empty = [chunk.ids[lo + j] for j, v in enumerate(vectors) if not len(v)]
                if empty:
                    raise ValueError(
                        f"document {empty[0]!r} has no token vectors; Qdrant cannot store an empty one"
                    )
                backend.upsert(
                    list(range(start + lo, start + hi)),
                    [v.tolist() for v in vectors],
                    [_pooled(v) for v in vectors],
                    payloads[lo:hi],
                )
                bar.update(hi - lo)
            docnos.extend(chunk.ids)
            token_ids.append(chunk.token_ids.to(torch.int64).cpu())
            lengths.append(chunk.lengths.cpu())
            truncated.extend(chunk.truncated)
            geometry.append(SimpleNamespace(regions=chunk.regions, global_view=chunk.global_view))
            last = chunk
            chunk = next(chunks, None)
        bar.close()
        if meta_rows is not None and len(meta_rows) != len(docnos):
            raise ValueError(
                f"metadata has {len(meta_rows)} entries for {len(docnos)} documents; give one per document"
            )
        if meta_by_docno:
            missing = set(meta_by_docno) - set(docnos)
            if missing:
                raise ValueError(
                    f"metadata names a document the encoding does not hold: {sorted(missing)[0]!r}"
                )
        if len(set(docnos)) != len(docnos):
            raise ValueError("document ids repeat across the encoding; give each document once")
        regions, global_view = joined_regions(geometry, "encoding chunks")
        backend.finish()
        keys.discard(DOCNO)
        return cls(
            backend,
            docnos,
            torch.cat(token_ids),
            torch.cat(lengths),
            first.vocab,
            dim,
            knobs,
            truncated=truncated,
            mask_token_id=last.mask_token_id,
            encoder=encoder,
            model=model_info,
            payload_keys=sorted(keys),
            regions=regions,
            global_view=global_view,
        )

    @classmethod
    def build(cls, docs, encoder, batch_size: int = 32, progress: bool = True, **kwargs) -> QdrantIndex:
        """Encode ``docs`` (see :func:`lirlab.data.as_documents`) with ``encoder`` and index them."""
        encoded = encoder.encode_documents(as_documents(docs), batch_size=batch_size, progress=progress)
        return cls.from_encoding(encoded, encoder=encoder, progress=progress, **kwargs)

    # ------------------------------------------------------------------ what callers ask

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def backend_kind(self) -> str:
        """``"embedded"`` (qdrant-edge-py) or ``"server"`` (qdrant-client)."""
        return self.backend.kind

    def documents(self, positions=None) -> Encoding:
        """Token vectors of the documents at ``positions``, read back from Qdrant (the float32 originals,
        also under quantization)."""
        positions = self.positions_or_live(positions).tolist()
        vectors = []
        for lo in range(0, len(positions), UPSERT_BATCH):
            vectors.extend(self.backend.vectors(positions[lo : lo + UPSERT_BATCH]))
        pos = torch.as_tensor(positions, dtype=torch.long)
        from lirlab.encoding import rows_of

        rows = rows_of(self.offsets, pos)
        return Encoding(
            ids=tuple(self.docnos[i] for i in positions),
            vectors=torch.from_numpy(np.concatenate(vectors)) if vectors else torch.zeros(0, self.dim),
            token_ids=self.token_ids[rows],
            offsets=offsets_from_lengths(self.offsets[pos + 1] - self.offsets[pos]),
            vocab=self.vocab,
            truncated=tuple(self.truncated[i] for i in positions),
            mask_token_id=self.mask_token_id,
            **regions_at(self.regions, self.global_view, rows),
        )

    def tokens(self, positions=None):
        pos = self.positions_or_live(positions)
        from lirlab.encoding import rows_of

        rows = rows_of(self.offsets, pos)
        return self.token_ids[rows], self.offsets[pos + 1] - self.offsets[pos], self.vocab

    def n_vectors(self) -> int:
        return int(self.offsets[-1])

    def size_bytes(self) -> int:
        """Bytes the embedded shard occupies on disk (allocated blocks; 0 for a server collection: its
        disk is not measured here)."""
        return self.backend.size_bytes()

    def to(self, device) -> QdrantIndex:
        """Qdrant scores on its own threads; any device is accepted and nothing moves."""
        return self

    def config(self) -> dict[str, Any]:
        return {"backend": self.backend_kind, **self.build_knobs}

    def where(
        self, conditions: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None, **equal
    ) -> QdrantIndex:
        """The same index with its searches restricted by payload filters (a Qdrant ``Filter``).

        ``conditions`` maps a payload key to a value (match), a list of values (match any) or a range dict
        (``{"gte": 2019, "lt": 2022}``); keywords add equality conditions. A list of such mappings gives
        one filter per query, in query order. Fewer than ``k`` results come back when fewer documents match.
        """
        if conditions is not None and not isinstance(conditions, Mapping):
            per_query = [dict(c or {}) for c in conditions]
            if equal:
                per_query = [{**c, **equal} for c in per_query]
            for c in per_query:
                self._check_keys(c)
                _condition_parts(c)
            chosen: Mapping | list = per_query
        else:
            chosen = {**(conditions or {}), **equal}
            self._check_keys(chosen)
            _condition_parts(chosen)
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        view.conditions = chosen
        view.last_timings = None
        return view

    def _check_keys(self, conditions: Mapping[str, Any]) -> None:
        known = set(self.payload_keys) | {DOCNO}
        unknown = sorted(set(conditions) - known)
        if unknown:
            raise ValueError(
                f"no document has the payload key {unknown[0]!r}; keys: {', '.join(sorted(known))}"
            )

    def batch_size_for(self, queries: Encoding) -> int:
        if isinstance(self.conditions, list):
            if len(self.conditions) != len(queries):
                raise ValueError(
                    f"where() was given {len(self.conditions)} per-query filters for {len(queries)} queries"
                )
            return len(queries)
        return self.query_batch

    # ------------------------------------------------------------------ search

    def _search(self, queries: Encoding, k: int, knobs: dict, timer: StageTimer):
        timer.start()
        tokens = [queries.vectors_of(i).float().tolist() for i in range(len(queries))]
        pooled = [_pooled(queries.vectors_of(i)) if knobs["prefetch"] else None for i in range(len(queries))]
        conditions = None
        if isinstance(self.conditions, list):
            conditions = self.conditions
        elif self.conditions:
            conditions = [self.conditions] * len(queries)
        results = self.backend.query(tokens, pooled, k, knobs, conditions)
        timer.lap("qdrant_query")
        hits = [
            (
                torch.tensor([i for i, _ in points], dtype=torch.long),
                torch.tensor([s for _, s in points], dtype=torch.float32),
            )
            for points in results
        ]
        timer.lap("collect")
        return hits

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        """Write the index folder atomically: metadata, docnos, token ids, and (embedded) the Qdrant shard.

        ``overwrite`` means what it means for every kind (:class:`~lirlab.storage.ArtifactWriter`): an
        index of ours at ``path`` is replaced without it; a folder of other files is refused without it
        and moved aside with it. A server collection stays on the server: the folder records its URL and
        collection name (and the environment variable the API key is read from, never the key).
        """
        path = as_path(path, "index path", saving=True)
        if self.backend_kind == "embedded" and path.resolve() in self.backend.folder.resolve().parents:
            raise ValueError(f"{path} holds the live Qdrant shard of this index; save it elsewhere")
        with ArtifactWriter(path, self.TYPE, self.FORMAT_VERSION, overwrite=overwrite) as w:
            if self.backend_kind == "embedded":
                # the shard table lets load() check every file of the shard, which no reader ever
                # opens in place (each runs the engine on a private copy), so it never changes
                w.metadata["shard"] = self.backend.copy_to(w.staging / SHARD_FOLDER)
                where: dict[str, Any] = {"folder": SHARD_FOLDER}
            else:
                where = {
                    "url": self.backend.url,
                    "collection": self.backend.collection,
                    "api_key_env": self.backend.api_key_env,
                }
            w.save_json("docnos", list(self.docnos))
            w.save_json("vocab", list(self.vocab))
            w.save_array("token_ids", self.token_ids.numpy().astype(np.int32))
            w.save_array("lengths", (self.offsets[1:] - self.offsets[:-1]).numpy().astype(np.int32))
            w.save_array("truncated", np.asarray(self.truncated, dtype=bool))
            save_regions(w, self.regions, self.global_view)
            w.metadata.update(
                model=self.model,
                counts={"documents": len(self.docnos), "tokens": self.n_vectors()},
                config={
                    "dim": self.dim,
                    "mask_token_id": self.mask_token_id,
                    "backend": self.backend_kind,
                    **where,
                    "build": self.build_knobs,
                    "payload_keys": list(self.payload_keys),
                    "qdrant_vectors": {
                        TOKENS: "multi-vector, MaxSim over dot products",
                        POOLED: "L2-normalized mean of the token vectors, dot product",
                    },
                },
                describe=self.describe(),
            )

    @classmethod
    def load(
        cls, path, encoder=None, device=None, verify: bool = True, client=None, url: str | None = None
    ) -> QdrantIndex:
        """Open a folder written by :meth:`save`.

        An embedded index runs the engine on a private copy of its shard (in the temporary folder, removed
        by :meth:`close` or at exit), so any number of processes and notebooks can open one index at once
        and a save replacing it never disturbs them; the copy comes from the same save as the metadata
        and docnos, and every shard file is checked against the metadata (sizes always, digests with
        ``verify``). A server index reconnects to the recorded URL (or to ``url=``/``client=``), reading
        the API key from the recorded environment variable. An ``encoder`` of another model or dimension
        than the one that built the index is refused, naming both.
        """
        path = as_path(path, "index path")
        for attempt in range(READ_RETRIES):
            art = read_artifact(path, cls.TYPE, cls.FORMAT_VERSION, verify=verify)
            config = art.table("config")
            if config.get("backend") == "server":
                break
            try:
                backend = _EdgeBackend.open_saved(path, art, verify)
            except _ShardReplaced:
                art.close()
                time.sleep(min(0.002 * 2**attempt, 0.2))
                continue
            break
        else:
            raise ArtifactError(f"{path}: replaced {READ_RETRIES} times while being read; try again")
        token_ids, lengths = _checked_tokens(art, Path(path))
        model = art.metadata.get("model", {})
        dim = int(config["dim"])
        try:
            if encoder is not None:
                _refuse_other_encoder(f"the index at {path}", model, dim, encoder)
            regions, global_view = load_regions(art, int(token_ids.shape[0]))
            docnos = art.json("docnos")
            if config.get("backend") == "server":
                env = config.get("api_key_env", API_KEY_ENV)
                url = url or config.get("url")
                backend = _ClientBackend(
                    _ClientBackend.connect(url, client, env), config["collection"], url, env
                )
                backend.check_model(model, dim)
            found = backend.count()
            if found != len(docnos):
                raise ArtifactError(
                    f"{path}: Qdrant holds {found} points for {len(docnos)} docnos (damaged or changed?)"
                )
        except BaseException:
            if config.get("backend") != "server":
                backend.close()
            raise
        return cls(
            backend,
            docnos,
            torch.from_numpy(token_ids.astype(np.int64)),
            torch.from_numpy(lengths.astype(np.int64)),
            art.json("vocab"),
            dim,
            config.get("build", {}),
            truncated=tuple(bool(t) for t in art.array("truncated")),
            mask_token_id=config.get("mask_token_id", -1),
            encoder=encoder,
            model=model,
            payload_keys=config.get("payload_keys", ()),
            regions=regions,
            global_view=global_view,
        )

    def close(self) -> None:
        """Release the embedded shard (and remove its private copy, or the temporary folder it was built in)."""
        self.backend.close()
