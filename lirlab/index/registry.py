"""The registry of index kinds and foreign index formats: the one list the CLI, training, help and docs read.

Each index kind is registered once, here, by name, artifact type, the class that implements it (imported
on first use) and the module declaring its knobs, which imports no torch: listing the kinds, their knobs
and their help costs nothing, and a new kind appears at every edge by adding one line below. Each
foreign format (an index folder another tool wrote) is registered with how to recognise its folder and
the reader that opens it.

A folder is opened by what it records first: a folder carrying lirlab's metadata (a ``metadata.json``
naming a ``type``) is opened as that kind and never taken for a foreign one; the foreign formats are
tried, in registration order, only on a folder without it.

Examples
--------
>>> kind_names()
('bm25', 'bm25_rerank', 'flat', 'muvera', 'plaid', 'qdrant', 'warp')
>>> list(search_params("warp"))
['nprobe', 't_prime', 'bound']
>>> kind("lirlab.plaid").name, format_names()
('plaid', ('colbert-ai', 'fast-plaid'))
>>> kind("nope")
Traceback (most recent call last):
...
ValueError: unknown index kind 'nope'; known: bm25, bm25_rerank, flat, muvera, plaid, qdrant, warp
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lirlab import storage
from lirlab.params import Param, markdown_table

if TYPE_CHECKING:
    from lirlab.index.base import Index

#: Which declarations :func:`knob_table` and :meth:`Kind.params` read.
KNOB_GROUPS = ("search", "build")


def _resolve(target: str | Any) -> Any:
    """The object a ``"package.module:name"`` string names (its module imported now), or ``target``."""
    if not isinstance(target, str):
        return target
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Kind:
    """One registered index kind.

    Attributes
    ----------
    name : str
        The kind's ``KIND`` (``--kind`` on the command line, the ``method`` column of sweeps).
    type : str
        The artifact type its folders record in ``metadata.json``.
    index_class : str or type
        The class, or ``"module:Class"`` imported on first use.
    knobs : str or None
        Module declaring ``SEARCH_PARAMS`` and ``BUILD_PARAMS`` without importing torch; ``None`` reads
        them from the class.
    summary : str
        One line for ``--help``.
    """

    name: str
    type: str
    index_class: str | type
    knobs: str | None
    summary: str

    def load_class(self) -> type[Index]:
        """The class, imported now if it was registered by its path."""
        cls = _resolve(self.index_class)
        if cls.KIND != self.name or cls.TYPE != self.type:
            raise RuntimeError(
                f"{self.index_class} declares KIND={cls.KIND!r}, TYPE={cls.TYPE!r}; the registry lists it as "
                f"{self.name!r}, {self.type!r}"
            )
        return cls

    def params(self, which: str) -> dict[str, Param]:
        """The declared ``"search"`` or ``"build"`` knobs (``k`` aside)."""
        if which not in KNOB_GROUPS:
            raise ValueError(f"knobs are 'search' or 'build', got {which!r}")
        attribute = f"{which.upper()}_PARAMS"
        if self.knobs is None:
            return getattr(self.load_class(), attribute)
        return getattr(importlib.import_module(self.knobs), attribute)


@dataclass(frozen=True)
class Format:
    """One foreign index format: a folder another tool wrote, searched by one of lirlab's kinds.

    Attributes
    ----------
    name : str
        The tool's name (``"colbert-ai"``).
    recognise : callable
        ``recognise(folder: Path) -> bool``, from the folder's file names alone (imports nothing).
    reader : str or callable
        ``reader(path, encoder=None, device=None, **options) -> Index``, or ``"module:function"``
        imported on first use.
    opens_as : str
        The kind the reader returns (its search knobs apply).
    summary : str
        One line for ``--help``.
    """

    name: str
    recognise: Callable[[Path], bool]
    reader: str | Callable
    opens_as: str
    summary: str

    def read(self, path, encoder=None, device=None, **options) -> Index:
        return _resolve(self.reader)(path, encoder=encoder, device=device, **options)


_KINDS: dict[str, Kind] = {}
_FORMATS: dict[str, Format] = {}
#: Index classes defined at run time (a notebook's, a test's), by artifact type: :func:`kind_class` and
#: :func:`load_index` find them, the edges that list kinds (the CLI, help) list only registered ones.
_DEFINED: dict[str, type] = {}


def register_kind(
    index_class: str | type,
    *,
    name: str | None = None,
    artifact_type: str | None = None,
    knobs: str | None = None,
    summary: str = "",
) -> Kind:
    """Add an index kind to the registry (replacing the entry of the same name).

    Parameters
    ----------
    index_class : type or str
        A subclass of :class:`~lirlab.index.base.Index`, or ``"module:Class"`` to import on first use
        (then ``name``, ``artifact_type`` and ``knobs`` are required: listing the kind imports nothing).
    name, artifact_type : str, optional
        The kind's ``KIND`` and ``TYPE``; default: the class's.
    knobs : str, optional
        Module declaring the kind's ``SEARCH_PARAMS`` and ``BUILD_PARAMS`` without importing torch;
        default: the class's own attributes.
    summary : str
        One line saying what the kind is, for ``--help``; default: the first line of the class's docstring.

    Examples
    --------
    >>> from lirlab.index.flat import FlatIndex
    >>> class Exhaustive(FlatIndex):
    ...     '''Flat, under another name.'''
    ...     KIND, TYPE = "exhaustive", "example.exhaustive"
    >>> register_kind(Exhaustive).summary, "exhaustive" in kind_names()
    ('Flat, under another name.', True)
    >>> unregister_kind("exhaustive"); "exhaustive" in kind_names()
    False
    """
    if isinstance(index_class, str):
        if not (name and artifact_type and knobs) or ":" not in index_class:
            raise ValueError(
                "a kind registered by its import path needs 'module:Class', name=, artifact_type= and knobs="
            )
    else:
        # Any subclass of Index has loaded lirlab.index.base; importing it here would be a cycle.
        base = sys.modules.get("lirlab.index.base")
        if base is None or not (isinstance(index_class, type) and issubclass(index_class, base.Index)):
            raise ValueError(f"an index kind is a subclass of lirlab.index.base.Index, got {index_class!r}")
        name = name or index_class.KIND
        artifact_type = artifact_type or index_class.TYPE
        summary = summary or (index_class.__doc__ or "").strip().split("\n")[0]
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(
            f"an index kind's name is a Python identifier (it names flags and columns), got {name!r}"
        )
    if not isinstance(artifact_type, str) or not artifact_type:
        raise ValueError(f"the {name} kind needs an artifact type (its TYPE), got {artifact_type!r}")
    clash = next((k for k in _KINDS.values() if k.type == artifact_type and k.name != name), None)
    if clash is not None:
        raise ValueError(f"artifact type {artifact_type!r} is already the {clash.name} kind's")
    entry = Kind(name, artifact_type, index_class, knobs, summary)
    _KINDS[name] = entry
    return entry


def unregister_kind(name: str) -> None:
    """Remove the kind registered as ``name`` (a test's, once it is done)."""
    _KINDS.pop(name, None)


def register_format(
    name: str,
    recognise: Callable[[Path], bool],
    reader: str | Callable,
    *,
    opens_as: str = "plaid",
    summary: str = "",
) -> Format:
    """Add a foreign index format (see :class:`Format`); tried in registration order on folders without
    lirlab's metadata."""
    if not callable(recognise):
        raise ValueError(f"recognise must be a function of the folder's path, got {recognise!r}")
    entry = Format(name, recognise, reader, opens_as, summary)
    _FORMATS[name] = entry
    return entry


def note_defined(cls: type) -> None:
    """Remember an index class defined at run time (called by ``Index.__init_subclass__``)."""
    if cls.TYPE:
        _DEFINED[cls.TYPE] = cls


def kind_names() -> tuple[str, ...]:
    """Every registered index kind, sorted."""
    return tuple(sorted(_KINDS))


def format_names() -> tuple[str, ...]:
    """Every registered foreign index format, in the order folders are matched against them."""
    return tuple(_FORMATS)


def kinds() -> tuple[Kind, ...]:
    """Every registered :class:`Kind`, sorted by name."""
    return tuple(_KINDS[name] for name in kind_names())


def formats() -> tuple[Format, ...]:
    """Every registered :class:`Format`, in matching order."""
    return tuple(_FORMATS.values())


def kind(name_or_type: str) -> Kind:
    """The entry of a kind by ``KIND`` (``"plaid"``) or artifact ``TYPE`` (``"lirlab.plaid"``).

    Index classes defined at run time without being registered are found too.
    """
    if name_or_type in _KINDS:
        return _KINDS[name_or_type]
    for entry in _KINDS.values():
        if entry.type == name_or_type:
            return entry
    defined = _DEFINED.get(name_or_type) or next(
        (cls for cls in reversed(_DEFINED.values()) if cls.KIND == name_or_type), None
    )
    if defined is not None:
        return Kind(defined.KIND, defined.TYPE, defined, None, "")
    raise ValueError(f"unknown index kind {name_or_type!r}; known: {', '.join(kind_names())}")


def kind_class(name_or_type: str) -> type[Index]:
    """The index class of a kind, by ``KIND`` or artifact ``TYPE`` (imported now if need be)."""
    return kind(name_or_type).load_class()


def search_params(name: str) -> dict[str, Param]:
    """The search knobs a kind declares (``k`` aside), read without importing the kind."""
    return kind(name).params("search")


def build_params(name: str) -> dict[str, Param]:
    """The build knobs a kind declares, read without importing the kind."""
    return kind(name).params("build")


def knob_names() -> tuple[str, ...]:
    """Every knob name a kind declares, search then build, kind by kind: the registered kinds (sorted),
    then the index classes defined at run time (the columns a sweep's table may hold)."""
    declared = [(entry.params("search"), entry.params("build")) for entry in kinds()]
    registered = {entry.type for entry in _KINDS.values()}
    declared += [(c.SEARCH_PARAMS, c.BUILD_PARAMS) for t, c in _DEFINED.items() if t not in registered]
    return tuple(dict.fromkeys(name for group in declared for knobs in group for name in knobs))


def knob_table(name: str, which: str = "search") -> str:
    """The Markdown table of a kind's ``"search"`` or ``"build"`` knobs, for the docs.

    >>> knob_table("bm25_rerank").splitlines()[2].split("|")[1:3]
    [' `depth` ', ' 100 ']
    """
    return markdown_table(kind(name).params(which))


def _has_files(*names: str) -> Callable[[Path], bool]:
    def recognise(folder: Path) -> bool:
        return all((folder / name).is_file() for name in names)

    recognise.__doc__ = f"Whether the folder holds {', '.join(names)}."
    return recognise


def _carries_lirlab_metadata(folder: Path) -> bool:
    """Whether ``folder`` has a ``metadata.json`` that is not a foreign tool's: one lirlab cannot read, or
    one naming a ``type`` (foreign tools that write a ``metadata.json`` record no ``type``)."""
    meta = folder / storage.METADATA
    if not os.path.lexists(meta):
        return False
    try:
        recorded = json.loads(meta.read_bytes().decode("utf-8"))
    except (OSError, ValueError):
        return True
    return not isinstance(recorded, dict) or "type" in recorded


def identify(path: str | os.PathLike) -> Kind | Format:
    """What the folder at ``path`` is: a lirlab kind (by the type its metadata records, checked first) or
    a registered foreign format.

    Raises
    ------
    lirlab.storage.ArtifactError
        ``path`` is no folder, or neither lirlab's nor one a registered format recognises.
    ValueError
        Its metadata records a type that is no registered kind.
    """
    folder = storage.as_path(path, "index path")
    try:
        recorded = storage.peek_type(folder)
    except storage.ArtifactError:
        if folder.is_dir() and not _carries_lirlab_metadata(folder):
            for entry in _FORMATS.values():
                if entry.recognise(folder):
                    return entry
        raise
    try:
        return kind(recorded)
    except ValueError:
        raise storage.ArtifactError(
            f"{path}: records type {recorded!r}, which is no index kind lirlab knows "
            f"({', '.join(kind_names())})"
        ) from None


def load_index(path, encoder=None, device=None, verify: bool = True, **options) -> Index:
    """Open any index folder: a registered kind's (by the type its metadata records) or a registered
    foreign format's.

    Parameters
    ----------
    path : str or Path
        The folder.
    encoder : lirlab.encoder.ColBERT, optional
        Encodes text queries (a foreign folder does not name its model).
    device : str, optional
        Where search runs.
    verify : bool
        Hash every file of a lirlab folder against its metadata (foreign folders carry no checksums).
    **options
        Passed to the kind's ``load`` or the format's reader (``mmap=`` for PLAID, ``docnos=`` for a
        foreign folder).
    """
    entry = identify(path)
    if isinstance(entry, Format):
        return entry.read(path, encoder=encoder, device=device, **options)
    return entry.load_class().load(path, encoder=encoder, device=device, verify=verify, **options)


register_kind(
    "lirlab.index.flat:FlatIndex",
    name="flat",
    artifact_type="lirlab.flat",
    knobs="lirlab.index.knobs.flat",
    summary="exact MaxSim over every stored token vector",
)
register_kind(
    "lirlab.index.plaid:PlaidIndex",
    name="plaid",
    artifact_type="lirlab.plaid",
    knobs="lirlab.index.plaid.knobs",
    summary="ColBERTv2 residual compression searched by PLAID's four stages",
)
register_kind(
    "lirlab.index.warp:WarpIndex",
    name="warp",
    artifact_type="lirlab.warp",
    knobs="lirlab.index.knobs.warp",
    summary="WARP's engine over PLAID's compressed files",
)
register_kind(
    "lirlab.index.muvera:MuveraIndex",
    name="muvera",
    artifact_type="lirlab.muvera",
    knobs="lirlab.index.knobs.muvera",
    summary="MUVERA's fixed dimensional encodings, candidates re-ranked by exact MaxSim",
)
register_kind(
    "lirlab.index.qdrant:QdrantIndex",
    name="qdrant",
    artifact_type="lirlab.qdrant",
    knobs="lirlab.index.knobs.qdrant",
    summary="a Qdrant collection of multi-vectors (embedded, or a server)",
)
register_kind(
    "lirlab.index.bm25:BM25Index",
    name="bm25",
    artifact_type="lirlab.bm25",
    knobs="lirlab.index.knobs.bm25",
    summary="BM25 over the documents' text (a lexical baseline)",
)
register_kind(
    "lirlab.index.bm25:BM25RerankIndex",
    name="bm25_rerank",
    artifact_type="lirlab.bm25_rerank",
    knobs="lirlab.index.knobs.bm25_rerank",
    summary="BM25's candidates re-ranked by exact MaxSim",
)
register_format(
    "colbert-ai",
    _has_files("centroids.pt", "buckets.pt"),
    "lirlab.index.stanford:read_stanford_index",
    summary="an index folder written by colbert-ai (Stanford ColBERT), searched with PLAID",
)
register_format(
    "fast-plaid",
    _has_files("centroids.npy", "bucket_weights.npy"),
    "lirlab.index.fast_plaid:read_fast_plaid_index",
    summary="an index folder written by fast-plaid, searched with PLAID",
)
