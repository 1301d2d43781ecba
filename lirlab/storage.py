"""Self-describing on-disk artifacts, written atomically.

An artifact is a folder holding ``metadata.json`` (type, format version, config, counts, and the size
and sha256 of every array file) next to arrays in open formats (``.npy``, JSON). It is written into a
hidden sibling folder and renamed into place only when complete, so a crash or a kill leaves either
the old artifact or the new one, never a half-written one.

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
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

METADATA = "metadata.json"


class ArtifactError(ValueError):
    """An artifact folder is missing, damaged, of another type or of a newer format."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


class ArtifactWriter:
    """Context manager that writes an artifact aside and swaps it in on success.

    On an exception inside the ``with`` block the partial folder is removed and the previous
    artifact at ``path`` (if any) is untouched.
    """

    def __init__(self, path: str | os.PathLike, type_: str, format_version: int):
        self.path = Path(path)
        self.staging = self.path.parent / f".{self.path.name}.writing-{uuid.uuid4().hex[:8]}"
        self.metadata: dict[str, Any] = {"type": type_, "format_version": format_version}
        self.files: dict[str, dict[str, Any]] = {}

    def __enter__(self) -> ArtifactWriter:
        if self.path.exists() and not self.path.is_dir():
            raise ArtifactError(f"{self.path} exists and is not a folder")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.staging.mkdir()
        return self

    def _record(self, name: str) -> None:
        file = self.staging / name
        self.files[name] = {"bytes": file.stat().st_size, "sha256": sha256_of(file)}

    def save_array(self, name: str, array: np.ndarray) -> None:
        """Save ``array`` as ``name.npy``."""
        np.save(self.staging / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
        self._record(f"{name}.npy")

    def save_json(self, name: str, obj: Any) -> None:
        """Save ``obj`` as ``name.json`` (for lists of ids and similar)."""
        with open(self.staging / f"{name}.json", "w", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False)
        self._record(f"{name}.json")

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            return
        self.metadata["files"] = self.files
        with open(self.staging / METADATA, "w", encoding="utf-8") as f:
            json.dump(self.metadata, f, indent=2, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        retired = self.path.parent / f".{self.path.name}.retired-{uuid.uuid4().hex[:8]}"
        if self.path.exists():
            os.replace(self.path, retired)
        os.replace(self.staging, self.path)
        shutil.rmtree(retired, ignore_errors=True)


@dataclass(frozen=True)
class Artifact:
    """A verified artifact folder: its metadata and lazy access to its files."""

    path: Path
    metadata: dict[str, Any]

    def array(self, name: str, mmap: bool = False) -> np.ndarray:
        file = self.path / f"{name}.npy"
        try:
            return np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise ArtifactError(f"{file}: cannot be read as an array ({e})") from None

    def json(self, name: str) -> Any:
        file = self.path / f"{name}.json"
        try:
            with open(file, encoding="utf-8") as f:
                return json.load(f)
        except (ValueError, OSError) as e:
            raise ArtifactError(f"{file}: cannot be read as JSON ({e})") from None


def read_artifact(path: str | os.PathLike, type_: str, format_version: int, verify: bool = True) -> Artifact:
    """Open the artifact at ``path`` and check its type, version, files, sizes and (if ``verify``) checksums.

    Raises
    ------
    ArtifactError
        Naming the file that is missing or damaged, or the type/version mismatch.
    """
    path = Path(path)
    meta_file = path / METADATA
    if not path.is_dir():
        raise ArtifactError(f"{path}: no such index folder")
    if not meta_file.is_file():
        raise ArtifactError(f"{meta_file}: missing; {path} is not a lirlab artifact")
    try:
        metadata = json.loads(meta_file.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ArtifactError(f"{meta_file}: not valid JSON ({e})") from None
    if metadata.get("type") != type_:
        raise ArtifactError(f"{path} holds a {metadata.get('type')!r}, expected {type_!r}")
    version = metadata.get("format_version")
    if not isinstance(version, int) or version > format_version:
        raise ArtifactError(
            f"{meta_file}: format version {version} is newer than this lirlab reads ({format_version}); "
            "upgrade lirlab"
        )
    for name, info in metadata.get("files", {}).items():
        file = path / name
        if not file.is_file():
            raise ArtifactError(f"{file}: missing")
        if file.stat().st_size != info["bytes"]:
            raise ArtifactError(f"{file}: {file.stat().st_size} bytes, expected {info['bytes']} (truncated?)")
        if verify and sha256_of(file) != info["sha256"]:
            raise ArtifactError(f"{file}: checksum mismatch (the file was changed or damaged)")
    return Artifact(path, metadata)
