"""Self-describing on-disk artifacts, replaced atomically and read consistently.

An artifact is a folder holding ``metadata.json`` (type, format version, config, counts, the size and
sha256 of every file, and a checksum of the metadata itself) next to arrays in open formats (``.npy``,
JSON). Every index kind saves and loads through :class:`ArtifactWriter` and :func:`read_artifact`.

How a save is made durable and atomic
-------------------------------------
1. The new artifact is written into a hidden sibling folder ``.NAME.writing-PID-TOKEN`` that its writer
   holds an exclusive ``flock`` on for as long as it runs; every file is fsynced, then the folder.
2. The sibling and the folder at ``path`` are swapped in one atomic step (``renameat2`` with
   ``RENAME_EXCHANGE`` on Linux, ``renamex_np`` with ``RENAME_SWAP`` on macOS): at every instant the
   name ``path`` holds either the complete old artifact or the complete new one. The parent folder is
   fsynced, then the old artifact (now under the sibling's name) is deleted.
3. Where no atomic swap exists (other systems, some network file systems) the old folder is renamed
   aside to ``.NAME.retired-PID-TOKEN`` and the new one renamed in; a kill between the two renames is
   repaired by the next :func:`read_artifact` or save, which rolls the complete new artifact forward.

Leftovers of writers that died (killed, power loss) are removed by the next save or load of the same
``path``; a folder whose writer still holds its lock is never touched. A staging folder carries a marker
file naming it (``.lirlab-writer.json``) until its commit, so the cleaner can prove it is lirlab's even
when it holds sub-folders (a Qdrant shard, a checkpoint's layouts); a folder it cannot prove is kept.

One writer at a time: a save that starts while another process (or another writer in this one) is
saving to the same ``path`` fails at once with :class:`ArtifactError` naming that process; the earlier
save goes on and commits. Of two saves that start in the same instant, the one that started later fails.

Saving refuses a ``path`` that holds anything but an artifact of ours (or nothing), and an artifact of
ours to which anything was added (a ``NOTES.md``), unless the caller passes ``overwrite=True``; then the
folder is moved aside whole to ``NAME.replaced-TOKEN`` with a :class:`ReplacedFolderWarning`. lirlab
deletes only what it provably wrote: its own artifacts holding nothing it did not list, and its
writers' staging folders. Files or folders that other code writes into :attr:`ArtifactWriter.staging`
(an engine's own files) are listed in ``metadata.json`` at the commit: top-level files with their size
and sha256 under ``files``, sub-folders by name under ``folders`` (the code that wrote a sub-folder checks
its contents itself).

Every function taking a path refuses, in one line, what cannot be one (``None``, numbers, bytes, a NUL
byte, names or paths longer than the system allows) with a ``ValueError`` (see :func:`as_path`).

How a load stays consistent
---------------------------
:func:`read_artifact` opens the folder once and every file relative to that open folder, keeping the
file descriptors: all files come from one save even when another process replaces the artifact
meanwhile (the reader retries from the start if the folder it opened is swapped out before every file
is open). ``metadata.json`` must carry its own checksum, which is always checked: without it the list
of files could be edited at will. Sizes are always checked against ``metadata.json`` and against each
``.npy`` header; with ``verify=True`` every file is also hashed. Only plain file and folder names inside
the folder are accepted (no ``..``, no absolute paths, no symbolic links), and a file or folder that
``metadata.json`` does not list cannot be opened.

Memory-mapped arrays and SIGBUS
-------------------------------
``mmap=True`` maps arrays straight from their files. lirlab never writes into or truncates a file of a
committed artifact (a save writes new files and unlinks the old ones, whose pages stay valid for every
process that still maps them), so saving never disturbs a running search. But if something else
truncates or rewrites a mapped file in place (``truncate``, ``cp`` over it, ``rsync --inplace``, a full
disk on a sparse copy), the next access to a page past the new end kills the process with ``SIGBUS``,
which Python cannot catch. The size checks on load cannot protect against a change made after loading:
replace index folders only with lirlab's ``save`` (or ``mv`` a complete copy into place), never by
overwriting their files.

Examples
--------
>>> import tempfile, numpy as np, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp()) / "art"
>>> with ArtifactWriter(root, "lirlab.example", 1) as w:
...     w.save_array("x", np.arange(3))
...     w.metadata["config"] = {"k": 1}
>>> art = read_artifact(root, "lirlab.example", 1)
>>> art.metadata["config"], art.array("x").tolist()
({'k': 1}, [0, 1, 2])
>>> (root / "notes.txt").exists(), sorted(p.name for p in root.parent.iterdir())
(False, ['art'])
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import hashlib
import io
import json
import mmap as _mmap
import os
import re
import shutil
import stat
import sys
import time
import uuid
import warnings
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

try:  # POSIX only; elsewhere writers do not lock and leftovers are cleaned by age
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

METADATA = "metadata.json"

#: Names allowed in ``metadata.json``'s ``files`` table and for :meth:`ArtifactWriter.save_array`.
PLAIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}$")

#: Leftovers of writers from lirlab versions before locking (no lock to test) are removed after this.
LEGACY_LEFTOVER_AGE_S = 600.0

#: How often a reader starts over when the folder it opened is replaced under it.
READ_RETRIES = 20

#: The file a writer keeps in its staging folder until the commit: it proves the folder is lirlab's.
WRITER_MARKER = ".lirlab-writer.json"

#: How long a writer waits for another live writer's marker before taking it for the earlier one.
MARKER_WAIT_S = 2.0

#: The date of the first lirlab that checksummed its metadata (what older folders are told).
CHECKSUMS_SINCE = "2 December 2026"


def _path_limit(name: str, default: int) -> int:
    try:
        return int(os.pathconf("/", name))
    except (AttributeError, OSError, ValueError):  # pragma: no cover  (systems without pathconf)
        return default


#: The longest file name and path (in bytes) the system takes.
NAME_MAX = _path_limit("PC_NAME_MAX", 255)
PATH_MAX = _path_limit("PC_PATH_MAX", 4096)
#: The longest artifact folder name: its staging and set-aside folders beside it are up to 32 bytes longer.
SAVE_NAME_MAX = NAME_MAX - 32

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)


class ReplacedFolderWarning(UserWarning):
    """A save with ``overwrite=True`` replaced a folder of other files; they were moved aside, not deleted."""


class ArtifactError(ValueError):
    """An artifact folder is missing, damaged, of another type or of a newer format."""


class _Replaced(Exception):
    """The folder being read was swapped out by a writer: start again."""


def as_path(value: Any, what: str = "path", saving: bool = False) -> Path:
    """``value`` as a :class:`~pathlib.Path`, or one ``ValueError`` line naming what no path can be.

    Refused: anything but a ``str`` or path-like of ``str`` (``None``, numbers, ``bytes``), a NUL byte,
    a path longer than :data:`PATH_MAX` or a name longer than :data:`NAME_MAX` bytes, and with ``saving``
    a last name longer than :data:`SAVE_NAME_MAX` (lirlab writes beside it under a longer name).

    >>> as_path("indexes/scifact")
    PosixPath('indexes/scifact')
    >>> as_path(None, "index path")
    Traceback (most recent call last):
    ...
    ValueError: index path: expected a path (a str or pathlib.Path), got NoneType None
    """
    if isinstance(value, (bytes, bytearray)):
        raise ValueError(
            f"{what}: got bytes {bytes(value)!r:.60}; pass a str or pathlib.Path (decode it with os.fsdecode)"
        )
    try:
        text = os.fspath(value)
    except TypeError:
        raise ValueError(
            f"{what}: expected a path (a str or pathlib.Path), got {type(value).__name__} {value!r:.60}"
        ) from None
    if not isinstance(text, str):
        raise ValueError(
            f"{what}: got bytes {text!r:.60}; pass a str or pathlib.Path (decode it with os.fsdecode)"
        )
    if "\x00" in text:
        raise ValueError(f"{what} {text!r:.80} holds a NUL byte, which no file name can: remove it")
    try:
        encoded = os.fsencode(text)
    except UnicodeEncodeError:
        raise ValueError(
            f"{what} {text.encode('utf-8', 'backslashreplace').decode()!r:.80} holds characters this "
            "system cannot put in a file name; rename it"
        ) from None
    if len(encoded) >= PATH_MAX:
        raise ValueError(
            f"{what} is {len(encoded)} bytes long, longer than the system allows ({PATH_MAX - 1}); "
            "choose a shorter path"
        )
    for name in encoded.split(b"/"):
        if len(name) > NAME_MAX:
            raise ValueError(
                f"{what}: the name {os.fsdecode(name[:40])!r}... is {len(name)} bytes long, longer than the file "
                f"system allows ({NAME_MAX}); choose a shorter name"
            )
    last = os.fsencode(Path(text).name)
    if saving and len(last) > SAVE_NAME_MAX:
        raise ValueError(
            f"{what}: the folder name {os.fsdecode(last[:40])!r}... is {len(last)} bytes long; lirlab saves to "
            f"names of at most {SAVE_NAME_MAX} bytes (it writes beside the folder under a longer name): "
            "choose a shorter name"
        )
    return Path(text)


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of the file at ``path``."""
    with open(path, "rb") as f:
        return _sha256_fd(f.fileno())


def _sha256_fd(fd: int) -> str:
    digest = hashlib.sha256()
    offset = 0
    while block := os.pread(fd, 1 << 22, offset):
        digest.update(block)
        offset += len(block)
    return digest.hexdigest()


def metadata_checksum(metadata: dict[str, Any]) -> str:
    """The checksum ``metadata.json`` carries of itself: sha256 of its canonical JSON without ``checksum``.

    >>> metadata_checksum({"b": 1, "a": [2]}) == metadata_checksum({"a": [2], "b": 1, "checksum": "x"})
    True
    """
    body = {k: v for k, v in metadata.items() if k != "checksum"}
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _json_bytes(obj: Any, indent: int | None = None) -> bytes:
    """UTF-8 JSON; strings holding lone surrogates are written escaped (``\\udc80``), which round-trips."""
    try:
        return json.dumps(obj, ensure_ascii=False, indent=indent).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, ensure_ascii=True, indent=indent).encode("ascii")


def fsync_folder(path: Path) -> None:
    """Make a folder's entries (names created, renamed or removed in it) durable, where the system can."""
    try:
        fd = os.open(path, os.O_RDONLY | _O_DIRECTORY)
    except OSError:  # pragma: no cover  (systems that cannot open folders)
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------- atomic renames


def _libc():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name, use_errno=True)
    except OSError:  # pragma: no cover
        return None


_LIBC = _libc() if sys.platform.startswith(("linux", "darwin")) else None
_AT_FDCWD = -100
_LINUX_NOREPLACE, _LINUX_EXCHANGE = 1, 2
_DARWIN_SWAP, _DARWIN_EXCL = 2, 4
#: Set to False when the file system refuses an atomic swap; the two-rename fallback is used then.
_swap_supported = True


def _rename2(src: Path, dst: Path, flag: str) -> bool:
    """Rename with ``flag`` ("swap" or "noreplace"); False when the system has no such call."""
    if _LIBC is None:
        return False
    a, b = os.fsencode(src), os.fsencode(dst)
    if sys.platform.startswith("linux") and hasattr(_LIBC, "renameat2"):
        flags = _LINUX_EXCHANGE if flag == "swap" else _LINUX_NOREPLACE
        result = _LIBC.renameat2(_AT_FDCWD, a, _AT_FDCWD, b, ctypes.c_uint(flags))
    elif sys.platform == "darwin" and hasattr(_LIBC, "renamex_np"):  # pragma: no cover
        flags = _DARWIN_SWAP if flag == "swap" else _DARWIN_EXCL
        result = _LIBC.renamex_np(a, b, ctypes.c_uint(flags))
    else:  # pragma: no cover
        return False
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, getattr(errno, "ENOTSUP", -1), getattr(errno, "EOPNOTSUPP", -1)):
        return False
    raise OSError(code, os.strerror(code), str(src), None, str(dst))


def _swap(src: Path, dst: Path) -> bool:
    """Atomically exchange two existing paths; False where the system or file system cannot."""
    global _swap_supported
    if not _swap_supported:
        return False
    if _rename2(src, dst, "swap"):
        return True
    _swap_supported = False
    return False


def _rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; FileExistsError when ``dst`` exists (a plain rename where unsupported)."""
    try:
        if _rename2(src, dst, "noreplace"):
            return
    except OSError as e:
        if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise FileExistsError(e.errno, e.strerror, str(dst)) from None
        raise
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, "exists", str(dst))
    try:
        os.rename(src, dst)
    except OSError as e:  # a non-empty folder appeared meanwhile
        if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise FileExistsError(e.errno, e.strerror, str(dst)) from None
        raise


# ---------------------------------------------------------------- writers' locks and leftovers


def _leftover_re(name: str) -> re.Pattern:
    return re.compile(rf"^\.{re.escape(name)}\.(writing|retired)-(?:(\d+)-)?([0-9a-f]{{8}})$")


def _try_lock_dir(path: Path) -> int | None:
    """An fd holding an exclusive lock on folder ``path``, or None when a live writer holds it."""
    fd = os.open(path, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW)
    if fcntl is None:  # pragma: no cover
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _is_complete(folder: Path) -> bool:
    """Whether ``folder`` holds a whole artifact of ours (its metadata, written last, parses and checks out)."""
    try:
        meta = json.loads((folder / METADATA).read_bytes())
    except (OSError, ValueError):
        return False
    return (
        isinstance(meta, dict)
        and isinstance(meta.get("type"), str)
        and meta["type"].startswith("lirlab.")
        and meta.get("checksum") == metadata_checksum(meta)
    )


def _leftovers(target: Path) -> list[tuple[Path, str, bool]]:
    """``(folder, "writing" or "retired", legacy)`` for each writer's leftover beside ``target``, newest first."""
    pattern = _leftover_re(target.name)
    found = []
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return []
    for folder in entries:
        match = pattern.match(folder.name)
        if not match:
            continue
        try:
            info = os.lstat(folder)
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode):
            found.append((info.st_mtime, folder, match.group(1), match.group(2) is None))
    found.sort(key=lambda row: row[0], reverse=True)
    return [(folder, role, legacy) for _, folder, role, legacy in found]


def _restore_interrupted(target: Path) -> str | None:
    """When ``target`` is missing because a save died between two renames, put the artifact back.

    The new artifact is rolled forward when it is complete, else the previous one is put back. Returns a
    sentence saying what was restored, None when there was nothing to restore (a first save that never
    committed). Raises :class:`_Replaced` while a live writer is between its renames.
    """
    found = _leftovers(target)
    if not any(role == "retired" for _, role, _ in found):
        return None
    ordered = [row for row in found if row[1] == "writing"] + [row for row in found if row[1] == "retired"]
    for folder, role, legacy in ordered:
        if not _is_complete(folder):
            continue
        fd = None
        if role == "writing" and not legacy:
            fd = _try_lock_dir(folder)
            if fd is None:
                raise _Replaced  # its writer is alive and about to rename it into place
        try:
            _rename_noreplace(folder, target)
        except FileExistsError:
            return None
        except OSError as e:
            raise ArtifactError(
                f"{target}: missing because a save was interrupted; the "
                f"{'new' if role == 'writing' else 'previous'} artifact is complete in {folder} but could "
                f"not be moved back ({e.strerror}): run  mv '{folder}' '{target}'"
            ) from None
        finally:
            if fd is not None:
                os.close(fd)
        fsync_folder(target.parent)
        return f"restored {target} from {folder.name} (a save had been interrupted)"
    return None


def clean_leftovers(path: str | os.PathLike) -> list[str]:
    """Remove what writers that died left beside ``path``; returns the names removed.

    A writer's folder is removed only when no live process holds its lock; folders of lirlab versions
    that did not lock are removed once older than :data:`LEGACY_LEFTOVER_AGE_S`. While ``path`` itself is
    missing, the folders an interrupted swap left (what :func:`read_artifact` restores) are kept.
    Nothing else is touched.

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / ".idx.writing-123-0badc0de").mkdir()
    >>> clean_leftovers(root / "idx"), list(root.iterdir())
    (['.idx.writing-123-0badc0de'], [])
    """
    target = as_path(path)
    found = _leftovers(target)
    target_exists = os.path.lexists(target)
    swap_interrupted = not target_exists and any(role == "retired" for _, role, _ in found)
    removed: list[str] = []
    for folder, _role, legacy in found:
        if legacy:
            try:
                if time.time() - os.lstat(folder).st_mtime < LEGACY_LEFTOVER_AGE_S:
                    continue
            except OSError:
                continue
        if swap_interrupted:
            continue  # the only copies left: read_artifact restores one of them first
        try:
            fd = _try_lock_dir(folder)
        except OSError:
            continue
        if fd is None:
            continue  # a live writer's
        try:
            proof = _proof_of_ours(folder)
            if proof is None:
                continue  # a name like ours on a folder we did not write: never removed
            _remove_folder(folder, proof)
            if not os.path.lexists(folder):
                removed.append(folder.name)
        finally:
            os.close(fd)
    return sorted(removed)


def _proof_of_ours(folder: Path) -> str | None:
    """The entry that proves ``folder`` is lirlab's (to be removed last), ``""`` for a folder of nothing
    but plain files (a staging folder of an older lirlab, or one of its artifacts half removed), or None:
    then it is never removed. Proofs: a writer's marker naming the folder, or an artifact of ours that
    holds nothing its metadata does not list."""
    try:
        if _reads_as_marker_of(folder):
            return WRITER_MARKER
        ours, names, unlisted = _describe_contents(folder)
    except OSError:
        return None
    if ours and not unlisted:
        return METADATA
    plain = all(
        (PLAIN_NAME.match(name) or name == WRITER_MARKER)  # a marker its writer was killed writing
        and (folder / name).is_file()
        and not (folder / name).is_symlink()
        for name in names
    )
    return "" if plain else None


def _reads_as_marker_of(folder: Path) -> dict[str, Any] | None:
    """The writer's marker in ``folder`` when it is a plain file naming this very folder, else None."""
    marker = folder / WRITER_MARKER
    if marker.is_symlink() or not marker.is_file():
        return None
    try:
        record = json.loads(marker.read_bytes())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("writer") == folder.name else None


def _remove_folder(folder: Path, last: str) -> None:
    """Delete ``folder``, its entry ``last`` (what proves it is lirlab's) after all the others: a removal
    killed midway leaves a folder the next cleaning still recognises as ours."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return
    for name in [n for n in names if n != last] + ([last] if last in names else []):
        entry = folder / name
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink()
        except FileNotFoundError:
            pass
    try:
        os.rmdir(folder)
    except OSError:
        pass


def _describe_contents(folder: Path) -> tuple[bool, list[str], list[str]]:
    """(whether ``folder`` holds an artifact of ours, the names it holds, those its metadata does not list)."""
    names = sorted(os.listdir(folder))
    meta = folder / METADATA
    if METADATA in names and meta.is_file() and not meta.is_symlink():
        try:
            record = json.loads(meta.read_bytes())
        except (OSError, ValueError):
            record = None
        kind = record.get("type") if isinstance(record, dict) else None
        if isinstance(kind, str) and kind.startswith("lirlab."):
            files, folders = record.get("files"), record.get("folders")
            listed = {METADATA, WRITER_MARKER}
            listed.update(files if isinstance(files, dict) else ())
            if isinstance(folders, list):
                listed.update(f for f in folders if isinstance(f, str))
            return True, names, [n for n in names if n not in listed]
    return False, names, names


# ---------------------------------------------------------------- writing


def check_target(path: str | os.PathLike, overwrite: bool = False) -> None:
    """Raise :class:`ArtifactError` unless an artifact may be saved at ``path``: it is missing, an empty
    folder, an artifact of ours, or ``overwrite`` is set (a folder of other files). Checked by every
    save; call it first to refuse before hours of encoding.

    >>> check_target("/nonexistent/new-index") is None
    True
    """
    path = as_path(path, saving=True)
    target = Path(os.path.realpath(path))
    if not os.path.lexists(target):
        return
    if not target.is_dir():
        raise ArtifactError(f"{path} exists and is not a folder; choose another path")
    ours, names, unlisted = _describe_contents(target)
    if not unlisted or overwrite:
        return
    shown = ", ".join(repr(n) for n in unlisted[:3]) + (", ..." if len(unlisted) > 3 else "")
    if ours:
        raise ArtifactError(
            f"{path} is a lirlab artifact but also holds {len(unlisted)} "
            f"{'entry' if len(unlisted) == 1 else 'entries'} lirlab did not write ({shown}); saving would "
            "delete them: move them out of the folder, choose another folder, or pass overwrite=True to "
            "move the whole folder aside"
        )
    raise ArtifactError(
        f"{path} holds {len(names)} {'entry' if len(names) == 1 else 'entries'} that is not a "
        f"lirlab artifact ({shown}); saving would delete them: choose an empty or new folder, or pass "
        "overwrite=True to replace its contents"
    )


class ArtifactWriter:
    """Context manager that writes an artifact aside and swaps it in atomically on success.

    Parameters
    ----------
    path : path-like
        The artifact folder.
    type_, format_version :
        Recorded in ``metadata.json`` and checked by :func:`read_artifact`.
    overwrite : bool
        Replace ``path`` even when it holds files that are not an artifact of ours, or an artifact of ours
        with files added to it (the folder is moved aside whole to ``NAME.replaced-TOKEN`` beside it, with
        a :class:`ReplacedFolderWarning`; never deleted). Without it such a folder is refused with
        :class:`ArtifactError`; an empty folder or one of our artifacts as we wrote it is always replaced.

    Attributes
    ----------
    staging : Path
        The private folder being written (inside the ``with`` block). Files and sub-folders that other
        code writes there (an engine's shard, a checkpoint's layouts) become part of the artifact: at the
        commit every one is fsynced, top-level files are listed with their size and sha256, sub-folders
        by name (:meth:`Artifact.folder` opens them; their contents are their writer's to check).
        Symbolic links are refused.

    Notes
    -----
    On an exception inside the ``with`` block the partial folder is removed and the previous artifact at
    ``path`` (if any) is untouched. A second writer for the same ``path`` while this one runs fails in
    ``__enter__`` with :class:`ArtifactError` naming this process.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "thesis.tex").write_text("years of work")
    >>> ArtifactWriter(folder, "lirlab.example", 1).__enter__()
    Traceback (most recent call last):
    ...
    lirlab.storage.ArtifactError: ... holds 1 entry that is not a lirlab artifact ('thesis.tex'); ...
    """

    def __init__(self, path: str | os.PathLike, type_: str, format_version: int, overwrite: bool = False):
        self.path = as_path(path, saving=True)
        self.overwrite = bool(overwrite)
        self.metadata: dict[str, Any] = {"type": type_, "format_version": format_version}
        self.files: dict[str, dict[str, Any]] = {}
        self.staging: Path | None = None
        self._lock_fd: int | None = None
        self._target = self.path

    # -- setup

    def _check_target(self) -> None:
        check_target(self.path, self.overwrite)

    def __enter__(self) -> ArtifactWriter:
        path = self.path
        self._target = Path(os.path.realpath(path)) if path.is_symlink() else Path(os.path.abspath(path))
        self._check_target()
        parent = self._target.parent
        missing = [p for p in [parent, *parent.parents] if not p.exists()]
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ArtifactError(
                f"{parent}: cannot create the folder to save {self.path} into ({e.strerror})"
            ) from None
        for created in reversed(missing):
            fsync_folder(created.parent)
        if not os.path.lexists(self._target):
            _restore_interrupted_quietly(self._target)
        clean_leftovers(self._target)
        for _ in range(10):
            staging = parent / f".{self._target.name}.writing-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            try:
                staging.mkdir()
                fd = _try_lock_dir(staging)
            except FileNotFoundError:
                continue  # a cleaner removed it before we locked it
            except OSError as e:
                raise ArtifactError(f"{parent}: cannot write there ({e.strerror})") from None
            if fd is None:
                continue
            try:
                same = os.stat(staging).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.staging, self._lock_fd = staging, fd
                try:
                    self._refuse_if_another_writer()
                except BaseException:
                    self.__exit__(ArtifactError, None, None)
                    raise
                return self
            os.close(fd)
        raise ArtifactError(f"{parent}: could not create a private folder to write {self.path} in")

    def _refuse_if_another_writer(self) -> None:
        """Mark the staging folder as ours, then fail if another live writer of the same path began first.

        Every writer marks its folder (with the time it began) before it looks for others, and waits for
        the marker of a live writer it sees without one: of any two, both see both markers and agree on
        which began first, so exactly the later one fails.
        """
        started = time.time_ns()
        with open(self.staging / WRITER_MARKER, "xb") as f:
            f.write(_json_bytes({"writer": self.staging.name, "pid": os.getpid(), "started_ns": started}))
            f.flush()
            os.fsync(f.fileno())
        for folder, role, legacy in _leftovers(self._target):
            if role != "writing" or legacy or folder == self.staging or not _held_by_live_writer(folder):
                continue
            record = _wait_for_marker(folder)
            if record is None and not _held_by_live_writer(folder):
                continue  # it gave up (a writer that began earlier refused it) or ended meanwhile
            record = record or {}
            began = record.get("started_ns")
            began = began if isinstance(began, int) and not isinstance(began, bool) else None
            if began is not None and (began, folder.name) > (started, self.staging.name):
                continue  # it began after this one: it is the one to fail
            pid = record.get("pid", _leftover_re(self._target.name).match(folder.name).group(2))
            since = time.strftime(" since %H:%M:%S", time.localtime(began / 1e9)) if began else ""
            raise ArtifactError(
                f"{self.path}: another process (pid {pid}) is saving to it{since}; wait for it to finish, "
                "or save to another folder"
            )

    # -- files

    def _file(self, name: str) -> Path:
        if not isinstance(name, str) or not PLAIN_NAME.match(name) or name == METADATA:
            raise ArtifactError(f"{name!r} is not a plain file name for an artifact (letters, digits, _ . -)")
        if name in self.files:
            raise ArtifactError(f"{name} is written twice into {self.path}")
        return self.staging / name

    def _write(self, name: str, write) -> None:
        file = self._file(name)
        with open(file, "xb+") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
            self.files[name] = {"bytes": os.fstat(f.fileno()).st_size, "sha256": _sha256_fd(f.fileno())}

    def save_array(self, name: str, array: np.ndarray) -> None:
        """Save ``array`` as ``name.npy`` (no pickled objects)."""
        self._write(f"{name}.npy", lambda f: np.save(f, np.ascontiguousarray(array), allow_pickle=False))

    def save_json(self, name: str, obj: Any) -> None:
        """Save ``obj`` as ``name.json`` (for lists of ids and similar)."""
        data = _json_bytes(obj)
        self._write(f"{name}.json", lambda f: f.write(data))

    # -- commit

    def _list_what_others_wrote(self) -> None:
        """List (and fsync) the files and folders written into the staging folder by other code."""
        self.files.pop(WRITER_MARKER, None)  # code that hashed every file it found also hashed the marker
        folders = []
        for entry in sorted(os.scandir(self.staging), key=lambda e: e.name):
            name = entry.name
            if name == WRITER_MARKER or name in self.files:
                continue
            if entry.is_symlink():
                raise ArtifactError(
                    f"{self.path}: {name!r} was written as a symbolic link; an artifact holds only plain "
                    "files and folders"
                )
            if not PLAIN_NAME.match(name) or name == METADATA:
                raise ArtifactError(
                    f"{self.path}: {name!r} was written into the artifact, but is not a plain file name "
                    "(letters, digits, _ . -) other than metadata.json"
                )
            if entry.is_dir():
                _fsync_tree(Path(entry.path), self.path)
                folders.append(name)
            elif entry.is_file():
                with open(entry.path, "rb") as f:
                    os.fsync(f.fileno())
                    self.files[name] = {
                        "bytes": os.fstat(f.fileno()).st_size,
                        "sha256": _sha256_fd(f.fileno()),
                    }
            else:
                raise ArtifactError(f"{self.path}: {name!r} is neither a file nor a folder")
        if folders:
            self.metadata["folders"] = folders

    def _commit(self) -> None:
        staging, target = self.staging, self._target
        self._list_what_others_wrote()
        self.metadata["files"] = dict(sorted(self.files.items()))
        self.metadata["checksum"] = metadata_checksum(self.metadata)
        with open(staging / METADATA, "wb") as f:
            f.write(_json_bytes(self.metadata, indent=2))
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging / WRITER_MARKER)  # from here the metadata proves the folder is ours
        fsync_folder(staging)
        parent = target.parent
        for _ in range(20):
            try:
                info = os.lstat(target)
            except FileNotFoundError:
                try:
                    _rename_noreplace(staging, target)
                except FileExistsError:
                    continue  # another writer committed first: replace its artifact
                self.staging = None
                fsync_folder(parent)
                return
            if not stat.S_ISDIR(info.st_mode):
                raise ArtifactError(f"{self.path} exists and is not a folder; choose another path")
            _, names, unlisted = _describe_contents(target)
            if not names:
                try:
                    os.rmdir(target)  # an empty folder: removed only while still empty
                except OSError:
                    pass
                continue
            if unlisted and not self.overwrite:
                self._check_target()  # files appeared since __enter__: refuse with the same message
            if unlisted:
                _move_aside(target)  # overwrite=True: the user's files are kept, under a visible name
                continue
            if _swap(staging, target):
                # the staging path now holds the replaced folder: from here only _remove_replaced,
                # which checks it again, may delete it (not __exit__'s clean-up of our staging folder)
                self.staging = None
                fsync_folder(parent)  # the commit point is durable from here
            else:
                retired = parent / f".{target.name}.retired-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                os.rename(target, retired)
                try:
                    os.rename(staging, target)
                except FileExistsError:  # pragma: no cover  (a concurrent writer got in between)
                    os.rename(retired, target)
                    continue
                self.staging = None
                fsync_folder(parent)
                staging = retired
            _remove_replaced(staging, target, names, (info.st_dev, info.st_ino))
            return
        raise ArtifactError(f"{self.path}: kept changing while saving; is another program writing there?")

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._commit()
        finally:
            if self.staging is not None:
                _remove_folder(self.staging, WRITER_MARKER)
                self.staging = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None


def _remove_replaced(
    previous: Path, target: Path, checked: list[str], checked_folder: tuple[int, int]
) -> None:
    """Delete the folder a commit swapped out of ``target`` if it is an artifact of ours, or the very
    folder checked before the swap (``checked_folder``: its device and inode; ``checked``: the names it
    held then) partly removed by another writer's cleaning; a folder put at ``target`` in between is
    moved aside instead, whatever names it holds."""
    try:
        ours, names, unlisted = _describe_contents(previous)
        info = os.lstat(previous)
        same_folder = (info.st_dev, info.st_ino) == checked_folder
        if ours and not unlisted:
            _remove_folder(previous, METADATA)
        elif same_folder and set(names) <= set(checked):
            _remove_folder(previous, "")
        else:
            _move_aside(previous, target)
    except FileNotFoundError:
        pass  # already removed by another writer's cleaning


def _move_aside(folder: Path, target: Path | None = None) -> None:
    """Rename a folder of files lirlab did not write (replaced with ``overwrite=True``) to a visible
    ``NAME.replaced-TOKEN`` beside ``target`` (default: the folder itself): lirlab never deletes it."""
    target = target or folder
    kept = target.parent / f"{target.name}.replaced-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    os.rename(folder, kept)
    fsync_folder(target.parent)
    warnings.warn(
        f"{target} held files lirlab did not write; they were moved to {kept}, not deleted",
        ReplacedFolderWarning,
        stacklevel=5,
    )


def _held_by_live_writer(folder: Path) -> bool:
    """Whether a live writer holds the lock on ``folder`` (False once it is gone)."""
    try:
        fd = _try_lock_dir(folder)
    except OSError:
        return False
    if fd is None:
        return True
    os.close(fd)
    return False


def _wait_for_marker(folder: Path) -> dict[str, Any] | None:
    """The marker of the live writer of ``folder``, waiting for it to be written (None if it never is)."""
    deadline = time.monotonic() + MARKER_WAIT_S
    while True:
        record = _reads_as_marker_of(folder)
        if record is not None or time.monotonic() > deadline or not os.path.lexists(folder):
            return record
        time.sleep(0.005)


def _fsync_tree(folder: Path, artifact: Path) -> None:
    """fsync every file and folder under ``folder``, refusing symbolic links (they could point anywhere)."""
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            if os.path.islink(os.path.join(root, name)):
                raise ArtifactError(
                    f"{artifact}: {os.path.relpath(os.path.join(root, name), folder.parent)!r} was written as a "
                    "symbolic link; an artifact holds only plain files and folders"
                )
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                os.fsync(f.fileno())
        fsync_folder(Path(root))


def _restore_interrupted_quietly(target: Path) -> None:
    for _ in range(50):
        try:
            _restore_interrupted(target)
            return
        except _Replaced:
            time.sleep(0.02)
        except ArtifactError:
            return


# ---------------------------------------------------------------- reading


def check_offsets(offsets, n_rows: int, file: str | os.PathLike) -> None:
    """Refuse document offsets that do not start at 0, decrease, or do not end at ``n_rows``.

    >>> check_offsets(np.array([0, 2, 1]), 1, "offsets.npy")
    Traceback (most recent call last):
    ...
    lirlab.storage.ArtifactError: offsets.npy: offsets must start at 0, never decrease and end at 1 (the rows), got [0, 2, 1]
    """
    values = np.asarray(offsets)
    if values.ndim != 1 or values.size == 0:
        raise ArtifactError(f"{file}: offsets must be a non-empty list, got shape {list(values.shape)}")
    if int(values[0]) != 0 or int(values[-1]) != n_rows or bool((values[1:] < values[:-1]).any()):
        shown = values[:6].tolist()
        raise ArtifactError(
            f"{file}: offsets must start at 0, never decrease and end at {n_rows} (the rows), got "
            f"{shown}{' ...' if values.size > 6 else ''}"
        )


class _FdReader(io.RawIOBase):
    """A read-only file object over an fd that reads with ``pread`` (for numpy's header parser)."""

    def __init__(self, fd: int):
        self.fd, self.pos = fd, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = os.pread(self.fd, len(buffer), self.pos)
        buffer[: len(data)] = data
        self.pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self.pos


def _close_all(fds: dict[str, int]) -> None:
    for fd in fds.values():
        try:
            os.close(fd)
        except OSError:  # pragma: no cover
            pass
    fds.clear()


@dataclass(frozen=True)
class Artifact:
    """A checked artifact folder: its metadata and access to its files.

    The files were opened when the artifact was read, so they all belong to the same save even if the
    folder has been replaced since; :meth:`close` (or garbage collection) releases them.
    """

    path: Path
    metadata: dict[str, Any]
    fds: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        if self.fds:
            weakref.finalize(self, _close_all, self.fds)

    def close(self) -> None:
        _close_all(self.fds)

    def _fd(self, file_name: str) -> tuple[int, bool]:
        """(fd, whether the caller must close it) for a file listed in the metadata."""
        files = self.metadata.get("files")
        if isinstance(files, dict) and file_name not in files:
            raise ArtifactError(
                f"{self.path / METADATA} does not list {file_name}; the folder was edited or damaged"
            )
        if file_name in self.fds:
            return self.fds[file_name], False
        try:
            return os.open(self.path / file_name, os.O_RDONLY | _O_NOFOLLOW | _O_BINARY), True
        except OSError as e:
            raise ArtifactError(f"{self.path / file_name}: cannot be opened ({e.strerror})") from None

    def folder(self, name: str) -> Path:
        """The sub-folder ``name`` that ``metadata.json`` lists (checked on load to be a real folder).

        Unlike files, a folder is not held open: it is found by path, so a reader that must not see a
        later save's contents copies it or opens it at once (its writer's code checks its contents).
        """
        if name not in self.metadata.get("folders", []):
            raise ArtifactError(
                f"{self.path / METADATA} does not list the folder {name!r}; the folder was edited or damaged"
            )
        return self.path / name

    def array(self, name: str, mmap: bool = False) -> np.ndarray:
        """The array ``name.npy`` (memory-mapped read-only with ``mmap=True``)."""
        file_name = f"{name}.npy"
        fd, owned = self._fd(file_name)
        try:
            return _read_npy(fd, self.path / file_name, mmap)
        finally:
            if owned:
                os.close(fd)

    def table(self, key: str, required: bool = True) -> dict[str, Any]:
        """``metadata[key]`` checked to be a table (``{}`` when absent and not ``required``)."""
        if key not in self.metadata and not required:
            return {}
        value = self.metadata.get(key)
        if not isinstance(value, dict):
            raise ArtifactError(
                f"{self.path / METADATA}: {key!r} must be a table, got {type(value).__name__}"
            )
        return value

    def strings(self, name: str, length: int | None = None) -> list[str]:
        """The JSON list of strings ``name.json`` (of ``length`` items when given)."""
        values = self.json(name)
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ArtifactError(f"{self.path / (name + '.json')}: must hold a list of strings")
        if length is not None and len(values) != length:
            raise ArtifactError(f"{self.path / (name + '.json')}: {len(values)} entries, expected {length}")
        return values

    def checked_array(
        self, name: str, kinds: str, ndim: int, shape: tuple | None = None, mmap: bool = False
    ) -> np.ndarray:
        """:meth:`array` refused unless its dtype kind is in ``kinds`` (numpy letters: ``f`` float,
        ``i``/``u`` integers, ``b`` bool) and it has ``ndim`` dimensions (and ``shape``, ``-1`` = any)."""
        values = self.array(name, mmap=mmap)
        fits = values.dtype.kind in kinds and values.ndim == ndim
        if fits and shape is not None:
            fits = all(want in (-1, got) for want, got in zip(shape, values.shape))
        if not fits:
            wanted = "x".join("*" if n == -1 else str(n) for n in shape) if shape else f"{ndim}-d"
            raise ArtifactError(
                f"{self.path / (name + '.npy')}: {values.dtype}{list(values.shape)} does not fit the index "
                f"(expected {'/'.join(kinds)} kind, shape {wanted})"
            )
        return values

    def json(self, name: str) -> Any:
        """The JSON document ``name.json``."""
        file_name = f"{name}.json"
        fd, owned = self._fd(file_name)
        try:
            data = _read_all(fd)
            return json.loads(data.decode("utf-8"))
        except (ValueError, OSError) as e:
            raise ArtifactError(f"{self.path / file_name}: cannot be read as JSON ({e})") from None
        finally:
            if owned:
                os.close(fd)


def _read_all(fd: int) -> bytes:
    chunks, offset = [], 0
    while block := os.pread(fd, 1 << 22, offset):
        chunks.append(block)
        offset += len(block)
    return b"".join(chunks)


def _read_npy(fd: int, file: Path, mmap: bool) -> np.ndarray:
    reader = _FdReader(fd)
    try:
        version = np.lib.format.read_magic(reader)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(reader)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(reader)
        else:
            raise ValueError(f"npy format version {version} is not one lirlab writes")
    except (ValueError, OSError, EOFError) as e:
        raise ArtifactError(f"{file}: cannot be read as an array ({e})") from None
    if dtype.hasobject:
        raise ArtifactError(f"{file}: holds Python objects, which lirlab never writes and will not unpickle")
    offset = reader.tell()
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    expected = offset + count * dtype.itemsize
    size = os.fstat(fd).st_size
    if size != expected:
        raise ArtifactError(
            f"{file}: {size} bytes, but its header describes {expected} ({dtype}{list(shape)}): "
            f"{'truncated' if size < expected else 'trailing data'}; the file is damaged"
        )
    order = "F" if fortran else "C"
    if count * dtype.itemsize == 0:
        return np.empty(shape, dtype=dtype, order=order)
    if mmap:
        start = offset - offset % _mmap.ALLOCATIONGRANULARITY
        mapped = _mmap.mmap(fd, expected - start, access=_mmap.ACCESS_READ, offset=start)
        return np.ndarray(shape, dtype=dtype, buffer=mapped, offset=offset - start, order=order)
    values = np.empty(count, dtype=dtype)
    view = memoryview(values.view(np.uint8).reshape(-1))
    done = 0
    while done < len(view):
        n = (
            os.preadv(fd, [view[done:]], offset + done)
            if hasattr(os, "preadv")
            else _pread_into(fd, view, done, offset)
        )
        if n <= 0:
            raise ArtifactError(f"{file}: ended early while reading (changed on disk?)")
        done += n
    return values.reshape(shape, order=order)


def open_plain_file(file: str | os.PathLike) -> int:
    """A read-only fd of ``file``, refusing a symbolic link or anything but a plain file, as
    :func:`read_artifact` does (for readers of other tools' folders); ``FileNotFoundError`` passes."""
    try:
        fd = os.open(file, os.O_RDONLY | _O_NOFOLLOW | _O_BINARY)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ArtifactError(
                f"{file}: is a symbolic link; only plain files inside the folder are read"
            ) from None
        if isinstance(e, FileNotFoundError):
            raise
        raise ArtifactError(f"{file}: cannot be opened ({e.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ArtifactError(f"{file}: not a plain file")
    return fd


def read_npy(file: str | os.PathLike, mmap: bool = False) -> np.ndarray:
    """The array in the ``.npy`` file ``file`` (memory-mapped read-only with ``mmap``), read as
    :meth:`Artifact.array` reads: no symbolic link, no pickled objects, a size that fits its header."""
    fd = open_plain_file(file)
    try:
        return _read_npy(fd, Path(file), mmap)
    finally:
        os.close(fd)  # a memory map keeps its own handle


def read_plain_bytes(file: str | os.PathLike) -> bytes:
    """The bytes of ``file``, refusing a symbolic link or anything but a plain file (see :func:`open_plain_file`)."""
    fd = open_plain_file(file)
    try:
        return _read_all(fd)
    finally:
        os.close(fd)


def _pread_into(fd: int, view: memoryview, done: int, offset: int) -> int:  # pragma: no cover
    data = os.pread(fd, len(view) - done, offset + done)
    view[done : done + len(data)] = data
    return len(data)


def _check_files_table(meta_file: Path, files: Any) -> dict[str, tuple[int, str]]:
    """The ``files`` table as ``{name: (bytes, sha256)}``, refusing anything malformed or outside the folder."""
    if not isinstance(files, dict):
        raise ArtifactError(
            f"{meta_file}: its 'files' table is missing or not a table, so the files cannot be checked; "
            "the metadata was edited or damaged (save the index again)"
        )
    table = {}
    for name, info in files.items():
        if not isinstance(name, str) or not PLAIN_NAME.match(name) or name == METADATA:
            raise ArtifactError(
                f"{meta_file}: lists {name!r}, which is not a plain file name inside the folder; refusing to open it"
            )
        entry = size_and_digest(info, "sha256")
        if entry is None:
            raise ArtifactError(
                f"{meta_file}: the entry for {name} needs 'bytes' (a whole number) and 'sha256' (64 hex digits)"
            )
        table[name] = entry
    return table


def size_and_digest(info: Any, digest_key: str) -> tuple[int, str] | None:
    """A metadata file entry's ``bytes`` and 64-hex-digit ``digest_key``, or None when either is malformed."""
    size = info.get("bytes") if isinstance(info, dict) else None
    digest = info.get(digest_key) if isinstance(info, dict) else None
    if (
        not isinstance(size, int)
        or isinstance(size, bool)
        or size < 0
        or not isinstance(digest, str)
        or not re.fullmatch(r"[0-9a-f]{64}", digest)
    ):
        return None
    return size, digest


def _check_folders_list(meta_file: Path, folders: Any) -> list[str]:
    """The ``folders`` list, refusing anything malformed or outside the folder."""
    if not isinstance(folders, list):
        raise ArtifactError(f"{meta_file}: its 'folders' entry must be a list of folder names")
    for name in folders:
        if not isinstance(name, str) or not PLAIN_NAME.match(name) or name == METADATA:
            raise ArtifactError(
                f"{meta_file}: lists {name!r}, which is not a plain folder name inside the folder; "
                "refusing to open it"
            )
    return folders


def _inode(fd: int) -> tuple[int, int, int]:
    info = os.fstat(fd)
    return info.st_dev, info.st_ino, info.st_nlink


def _replaced(path: Path, dir_fd: int) -> bool:
    """Whether ``path`` no longer names the folder open as ``dir_fd``."""
    dev, ino, nlink = _inode(dir_fd)
    try:
        now = os.stat(path)
    except OSError:
        return True
    return nlink == 0 or (now.st_dev, now.st_ino) != (dev, ino)


def _open_in(dir_fd: int, name: str) -> int:
    return os.open(name, os.O_RDONLY | _O_NOFOLLOW | _O_BINARY, dir_fd=dir_fd)


def _read_once(path: Path, type_: str | None, format_version: int | None, verify: bool) -> Artifact:
    try:
        dir_fd = os.open(path, os.O_RDONLY | _O_DIRECTORY)
    except FileNotFoundError:
        restored = _restore_interrupted(path)
        if restored:
            raise _Replaced from None
        raise ArtifactError(f"{path}: no such index folder") from None
    except NotADirectoryError:
        raise ArtifactError(f"{path}: is a file, not an index folder") from None
    except OSError as e:
        raise ArtifactError(f"{path}: cannot be opened ({e.strerror})") from None
    fds: dict[str, int] = {}
    try:
        meta_file = path / METADATA
        try:
            meta_fd = _open_in(dir_fd, METADATA)
        except FileNotFoundError:
            if _replaced(path, dir_fd):
                raise _Replaced from None
            raise ArtifactError(f"{meta_file}: missing; {path} is not a lirlab artifact") from None
        except OSError as e:
            raise ArtifactError(f"{meta_file}: cannot be opened ({e.strerror})") from None
        try:
            raw = _read_all(meta_fd)
        finally:
            os.close(meta_fd)
        try:
            metadata = json.loads(raw.decode("utf-8"))
        except ValueError as e:
            raise ArtifactError(f"{meta_file}: not valid JSON ({e})") from None
        if not isinstance(metadata, dict):
            raise ArtifactError(f"{meta_file}: holds a {type(metadata).__name__}, not a metadata table")
        if type_ is not None and metadata.get("type") != type_:
            raise ArtifactError(f"{path} holds a {metadata.get('type')!r}, expected {type_!r}")
        version = metadata.get("format_version")
        if format_version is not None and (
            not isinstance(version, int) or isinstance(version, bool) or version > format_version
        ):
            raise ArtifactError(
                f"{meta_file}: format version {version} is newer than this lirlab reads ({format_version}); "
                "upgrade lirlab"
            )
        if metadata.get("checksum") is None:
            raise ArtifactError(
                f"{meta_file}: carries no checksum of itself, so its list of files cannot be trusted: the "
                "metadata was edited or damaged, or the folder was written by a lirlab from before "
                f"{CHECKSUMS_SINCE}; build and save the index again"
            )
        if metadata["checksum"] != metadata_checksum(metadata):
            raise ArtifactError(
                f"{meta_file}: checksum mismatch (the metadata was edited or damaged, so its list of files "
                "cannot be trusted); save the index again"
            )
        table = _check_files_table(meta_file, metadata.get("files"))
        for name in _check_folders_list(meta_file, metadata.get("folders", [])):
            try:
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                if _replaced(path, dir_fd):
                    raise _Replaced from None
                raise ArtifactError(f"{path / name}: missing") from None
            if stat.S_ISLNK(info.st_mode):
                raise ArtifactError(
                    f"{path / name}: is a symbolic link; only folders inside the index are read"
                )
            if not stat.S_ISDIR(info.st_mode):
                raise ArtifactError(f"{path / name}: not a folder")
        for name, (size, digest) in table.items():
            file = path / name
            try:
                fd = _open_in(dir_fd, name)
            except FileNotFoundError:
                if _replaced(path, dir_fd):
                    raise _Replaced from None
                raise ArtifactError(f"{file}: missing") from None
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise ArtifactError(
                        f"{file}: is a symbolic link; only plain files inside the folder are read"
                    ) from None
                raise ArtifactError(f"{file}: cannot be opened ({e.strerror})") from None
            fds[name] = fd
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ArtifactError(f"{file}: not a plain file")
            if info.st_size != size:
                raise ArtifactError(f"{file}: {info.st_size} bytes, expected {size} (truncated?)")
            if verify and _sha256_fd(fd) != digest:
                raise ArtifactError(f"{file}: checksum mismatch (the file was changed or damaged)")
        art = Artifact(path, metadata, fds)
        fds = {}
        return art
    finally:
        _close_all(fds)
        os.close(dir_fd)


def read_artifact(
    path: str | os.PathLike, type_: str | None, format_version: int | None, verify: bool = True
) -> Artifact:
    """Open the artifact at ``path`` and check its type, version, metadata, files and sizes.

    With ``verify`` every file is also hashed against ``metadata.json``. An artifact being replaced by
    another process is read whole, old or new; a save that was interrupted is restored, and leftovers of
    dead writers beside ``path`` are removed.

    Raises
    ------
    ArtifactError
        Naming the file that is missing or damaged, or the type/version mismatch.
    ValueError
        ``path`` cannot be a path (see :func:`as_path`).
    """
    path = as_path(path)
    for attempt in range(READ_RETRIES):
        try:
            art = _read_once(path, type_, format_version, verify)
        except _Replaced:
            time.sleep(min(0.002 * 2**attempt, 0.2))
            continue
        try:
            clean_leftovers(Path(os.path.realpath(path)))
        except OSError:  # pragma: no cover  (read-only media)
            pass
        return art
    raise ArtifactError(f"{path}: replaced {READ_RETRIES} times while being read; try again")


def peek_type(path: str | os.PathLike) -> str:
    """The ``type`` recorded by the artifact at ``path`` (what :func:`lirlab.index.base.load_index` opens).

    >>> peek_type("/nonexistent/idx")
    Traceback (most recent call last):
    ...
    lirlab.storage.ArtifactError: /nonexistent/idx: no such index folder
    """
    path = as_path(path)
    meta = path / METADATA
    if not path.is_dir():
        if os.path.lexists(path):
            raise ArtifactError(f"{path}: is a file, not an index folder")
        _restore_interrupted_quietly(path)
        if not path.is_dir():
            raise ArtifactError(f"{path}: no such index folder")
    try:
        kind = json.loads(meta.read_bytes().decode("utf-8")).get("type")
    except FileNotFoundError:
        raise ArtifactError(f"{path}: not a lirlab index folder (no {METADATA})") from None
    except (OSError, ValueError, AttributeError):
        raise ArtifactError(f"{meta}: not a readable lirlab metadata file") from None
    if not isinstance(kind, str):
        raise ArtifactError(f"{meta}: records no index type")
    return kind


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The checked ``metadata.json`` of the artifact at ``path`` (any type; files' sizes checked, not hashed).

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp()) / "art"
    >>> with ArtifactWriter(root, "lirlab.example", 1) as w:
    ...     w.metadata["model"] = {"name": "minilm"}
    >>> read_metadata(root)["model"]
    {'name': 'minilm'}
    """
    art = read_artifact(path, None, None, verify=False)
    art.close()
    return art.metadata
