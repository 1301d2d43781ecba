"""Write a trained encoder as a checkpoint other tools load as their own, durably, and read it back verified.

* :func:`save_stanford` — the colbert-ai (``HF_ColBERT``) layout: ``config.json`` with
  ``architectures: ["HF_ColBERT"]``, ``model.safetensors`` holding the transformer under ``bert.`` plus the
  bias-free ``linear.weight``, the tokenizer files, and ``artifact.metadata`` with the ColBERT settings;
* :func:`save_pylate` — the PyLate / sentence-transformers layout: the transformer at the folder root,
  ``modules.json`` (Transformer, then ``1_Dense``), ``1_Dense/{config.json, model.safetensors}``,
  ``sentence_bert_config.json`` and ``config_sentence_transformers.json`` (prefixes, lengths, query
  expansion, skiplist);
* :func:`save_checkpoint` — one training checkpoint: every layout of :data:`CHECKPOINT_LAYOUTS` in its
  own sub-folder (``stanford/``, ``pylate/``, ``sentence_transformers/``), the optimizer state and the
  trainer state;
  :func:`load_checkpoint` and :func:`verify_checkpoint` read it back.

Every folder is written with :class:`lirlab.storage.ArtifactWriter`, as indexes are: aside, every file and
folder fsynced, then swapped in atomically (a kill leaves the previous folder, never a half-written one,
and the next write or resume removes what the killed writer left). lirlab's ``metadata.json`` beside the
layouts records the size and sha256 of every file (``files`` for those at the top, ``tree`` for those in
sub-folders), so a damaged checkpoint is refused in one line instead of loading wrong weights; the
layouts themselves are exactly what colbert-ai and PyLate read, ``metadata.json`` is an extra file they
ignore. A folder holding other files is never replaced (``overwrite=True`` moves them aside).

The files follow ``../shared/tools/build_minilm_colbert.py`` (the reference both tools were checked
against). The Stanford layout has no switch for query augmentation: colbert-ai always pads queries with
``[MASK]``, and lirlab reads a Stanford folder that way; the PyLate layout records it
(``do_query_expansion``).

Examples
--------
>>> from lirlab.encoder import ColBERT
>>> encoder = ColBERT.load("benchmarks/models/minilm-colbert")  # doctest: +SKIP
>>> save_stanford(encoder, "out/stanford"); save_pylate(encoder, "out/pylate")  # doctest: +SKIP
>>> ColBERT.load("out/pylate").encode_queries(["bees"]).vectors  # doctest: +SKIP
>>> save_checkpoint("run/checkpoint-000001", encoder, trainer_state={"step": 1})  # doctest: +SKIP
>>> load_checkpoint("run/checkpoint-000001", layout="pylate")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import string
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from lirlab.encoder import ColBERT
from lirlab.st6 import write_dense_module, write_sentence_transformers
from lirlab.storage import (
    METADATA,
    PLAIN_NAME,
    ArtifactError,
    ArtifactWriter,
    ReplacedFolderWarning,
    clean_leftovers,
    fsync_folder,
    read_artifact,
    read_metadata,
)

CHECKPOINT_TYPE = "lirlab.train.checkpoint"
STANFORD_TYPE = "lirlab.train.stanford"
PYLATE_TYPE = "lirlab.train.pylate"
FOLDER_TYPE = "lirlab.train.folder"
FORMAT_VERSION = 1

#: The name of a training checkpoint folder: ``checkpoint-<step, 6 digits or more>``.
CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d{6,})$")
_CHECKPOINT_LEFTOVER = re.compile(r"^\.(checkpoint-\d{6,})\.(?:writing|retired)-")

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


# ---------------------------------------------------------------- durable folders


def _seal(writer: ArtifactWriter) -> None:
    """fsync every file and folder written into ``writer``'s staging folder and record its size and sha256."""
    staging = writer.staging
    tree: dict[str, dict[str, Any]] = {}
    for root, folders, names in os.walk(staging, topdown=False):
        here = Path(root)
        linked = [name for name in folders if (here / name).is_symlink()]
        if linked:
            raise ArtifactError(f"{here / linked[0]}: a symbolic link; a checkpoint holds only plain files")
        for name in sorted(names):
            file = here / name
            relative = file.relative_to(staging).as_posix()
            if relative in writer.files or relative == METADATA or relative.startswith("."):
                continue  # the writer's own files: it syncs and lists them
            if not all(PLAIN_NAME.match(part) for part in relative.split("/")):
                raise ArtifactError(
                    f"{relative!r} is not a plain file name for a checkpoint (letters, digits, _ . -)"
                )
            if file.is_symlink() or not file.is_file():
                raise ArtifactError(f"{relative}: not a plain file; a checkpoint holds only plain files")
            with open(file, "rb") as f:
                os.fsync(f.fileno())
                entry = {
                    "bytes": os.fstat(f.fileno()).st_size,
                    "sha256": hashlib.file_digest(f, "sha256").hexdigest(),
                }
            (writer.files if "/" not in relative else tree)[relative] = entry
        if here != staging:  # the writer syncs the staging folder itself when it commits
            fsync_folder(here)
    writer.metadata["tree"] = dict(sorted(tree.items()))


@contextlib.contextmanager
def _durable_folder(path: str | os.PathLike, type_: str, overwrite: bool = False) -> Iterator[ArtifactWriter]:
    with ArtifactWriter(path, type_, FORMAT_VERSION, overwrite=overwrite) as writer:
        yield writer
        _seal(writer)


@contextlib.contextmanager
def write_atomically(
    path: str | os.PathLike, type_: str = FOLDER_TYPE, overwrite: bool = False
) -> Iterator[Path]:
    """Yield a staging folder to fill; on success it replaces ``path`` durably, on error it is removed.

    Whatever is written into it (sub-folders included) is fsynced and recorded in ``metadata.json`` with
    its size and sha256 (see :func:`verify_folder`). ``path`` may be missing, empty or a folder lirlab
    wrote; a folder of other files is refused unless ``overwrite``, and then moved aside, never deleted.
    """
    with _durable_folder(path, type_, overwrite) as writer:
        yield writer.staging


def verify_folder(path: str | os.PathLike, type_: str | None = None, verify: bool = True) -> dict[str, Any]:
    """Check a folder written by :func:`write_atomically` (or a checkpoint) and return its metadata.

    Sizes are always checked, and with ``verify`` every file is hashed against ``metadata.json``; files
    in sub-folders are opened one folder at a time without following symbolic links, so nothing outside
    the folder is ever read.

    Raises
    ------
    lirlab.storage.ArtifactError
        One line naming the file that is missing or damaged, or what is wrong with the metadata.
    """
    path = Path(path)
    art = read_artifact(path, type_, FORMAT_VERSION, verify=verify)
    try:
        tree = art.metadata.get("tree")
        if not isinstance(tree, dict):
            raise ArtifactError(
                f"{path / METADATA}: records no 'tree' table of files; write the folder again"
            )
        folder_fd = os.open(path, os.O_RDONLY | _O_DIRECTORY)
        try:
            for relative, entry in tree.items():
                _check_tree_file(path, folder_fd, relative, entry, verify)
        finally:
            os.close(folder_fd)
    finally:
        art.close()
    return art.metadata


def _check_tree_file(path: Path, folder_fd: int, relative: Any, entry: Any, verify: bool) -> None:
    parts = relative.split("/") if isinstance(relative, str) else []
    if len(parts) < 2 or not all(PLAIN_NAME.match(part) for part in parts):
        raise ArtifactError(
            f"{path / METADATA}: lists {relative!r}, which is not a path inside the checkpoint; "
            "refusing to open it"
        )
    size = entry.get("bytes") if isinstance(entry, dict) else None
    digest = entry.get("sha256") if isinstance(entry, dict) else None
    if not isinstance(size, int) or isinstance(size, bool) or not isinstance(digest, str):
        raise ArtifactError(f"{path / METADATA}: the entry for {relative} needs 'bytes' and 'sha256'")
    file = path / relative
    fds = []
    try:
        fd = folder_fd
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            flags = os.O_RDONLY | _O_NOFOLLOW | (0 if last else _O_DIRECTORY)
            try:
                fd = os.open(part, flags, dir_fd=fd)
            except FileNotFoundError:
                raise ArtifactError(f"{file}: missing") from None
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise ArtifactError(
                        f"{path / '/'.join(parts[: depth + 1])}: is a symbolic link or not a folder; "
                        "only plain files inside the checkpoint are read"
                    ) from None
                raise ArtifactError(f"{file}: cannot be opened ({e.strerror})") from None
            fds.append(fd)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ArtifactError(f"{file}: not a plain file")
        if info.st_size != size:
            raise ArtifactError(f"{file}: {info.st_size} bytes, expected {size} (truncated or changed)")
        if verify:
            with os.fdopen(os.dup(fd), "rb") as f:
                if hashlib.file_digest(f, "sha256").hexdigest() != digest:
                    raise ArtifactError(f"{file}: checksum mismatch (the file was changed or damaged)")
    finally:
        for fd in fds:
            os.close(fd)


def _single_projection(encoder: ColBERT) -> torch.Tensor:
    if len(encoder.projections) != 1 or encoder.projections[0].bias is not None:
        raise ValueError(
            "the Stanford layout holds one bias-free linear projection; this encoder has "
            f"{len(encoder.projections)} projection(s){' with a bias' if encoder.projections else ''}: "
            "save it in the PyLate layout instead"
        )
    return encoder.projections[0].weight.detach().float().cpu().contiguous()


def _transformer_state(encoder: ColBERT) -> dict[str, torch.Tensor]:
    state = encoder.model.state_dict()
    return {
        k: v.detach().float().cpu().contiguous() for k, v in state.items() if not k.endswith("position_ids")
    }


def _model_config(encoder: ColBERT, architectures: list[str]) -> dict:
    config = encoder.model.config.to_dict()
    config["architectures"] = architectures
    config["vocab_size"] = int(encoder.model.get_input_embeddings().weight.shape[0])
    config.pop("torch_dtype", None)
    config["dtype"] = "float32"
    return config


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2), encoding="utf-8")


def _mask_punctuation(encoder: ColBERT) -> bool:
    return set(encoder.config.skiplist) == set(string.punctuation)


def write_stanford(encoder: ColBERT, out: Path) -> None:
    """Write ``encoder`` in the colbert-ai layout into the existing, empty folder ``out``."""
    if encoder.config.query_marker is None or encoder.config.doc_marker is None:
        raise ValueError(
            "the Stanford layout needs query and document markers; use lirlab.train.prepare_encoder"
        )
    if encoder.config.skiplist and not _mask_punctuation(encoder):
        raise ValueError("the Stanford layout only records the punctuation skiplist (mask_punctuation)")
    linear = _single_projection(encoder)
    weights = {f"bert.{k}": v for k, v in _transformer_state(encoder).items()}
    weights["linear.weight"] = linear
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    _write_json(out / "config.json", _model_config(encoder, ["HF_ColBERT"]))
    encoder.tokenizer.save_pretrained(str(out))
    c = encoder.config
    _write_json(
        out / "artifact.metadata",
        {
            "query_token_id": c.query_marker,
            "doc_token_id": c.doc_marker,
            "query_token": "[Q]",
            "doc_token": "[D]",
            "dim": int(linear.shape[0]),
            "query_maxlen": int(c.query_maxlen),
            "doc_maxlen": int(c.doc_maxlen),
            "mask_punctuation": _mask_punctuation(encoder),
            "attend_to_mask_tokens": bool(c.attend_to_mask_tokens),
            "interaction": "colbert",
            "similarity": "cosine",
            "meta": {"version": "colbert-v0.4", "written_by": "lirlab.train"},
        },
    )


def write_pylate(encoder: ColBERT, out: Path) -> None:
    """Write ``encoder`` in the PyLate / sentence-transformers layout into the existing, empty ``out``."""
    if not encoder.projections:
        raise ValueError("the PyLate layout needs a projection; use lirlab.train.prepare_encoder")
    c = encoder.config
    save_file(_transformer_state(encoder), str(out / "model.safetensors"), metadata={"format": "pt"})
    _write_json(out / "config.json", _model_config(encoder, [type(encoder.model).__name__]))
    encoder.tokenizer.save_pretrained(str(out))
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]
    for i, layer in enumerate(encoder.projections, start=1):
        write_dense_module(layer, out / f"{i}_Dense", use_residual=False)
        modules.append({"idx": i, "name": str(i), "path": f"{i}_Dense", "type": "pylate.models.Dense.Dense"})
    _write_json(out / "modules.json", modules)
    _write_json(
        out / "sentence_bert_config.json",
        {"max_seq_length": int(c.doc_maxlen) - 1, "do_lower_case": False},
    )
    _write_json(
        out / "config_sentence_transformers.json",
        {
            "__version__": {"sentence_transformers": "5.3.0", "pytorch": torch.__version__},
            "prompts": {},
            "default_prompt_name": None,
            "similarity_fn_name": "MaxSim",
            "query_prefix": c.query_marker,
            "document_prefix": c.doc_marker,
            "query_length": int(c.query_maxlen),
            "document_length": int(c.doc_maxlen),
            "attend_to_expansion_tokens": bool(c.attend_to_mask_tokens),
            "do_query_expansion": bool(c.query_augmentation),
            "skiplist_words": list(c.skiplist),
            "model_type": "ColBERT",
        },
    )


#: The layouts every training checkpoint holds, each in a sub-folder of its name: ``write(encoder, folder)``.
CHECKPOINT_LAYOUTS: dict[str, Callable[[ColBERT, Path], None]] = {
    "stanford": write_stanford,
    "pylate": write_pylate,
    "sentence_transformers": write_sentence_transformers,
}


def save_stanford(encoder: ColBERT, folder: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``encoder`` in the colbert-ai layout (see the module notes); returns the folder.

    ``folder`` may be missing, empty or an earlier export; a folder of other files is refused unless
    ``overwrite`` (then they are moved aside to ``NAME.replaced-TOKEN``, never deleted).
    """
    with write_atomically(folder, STANFORD_TYPE, overwrite) as out:
        write_stanford(encoder, out)
    return Path(folder)


def save_pylate(encoder: ColBERT, folder: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``encoder`` in the PyLate / sentence-transformers layout (see the module notes); returns it.

    ``folder`` is treated as by :func:`save_stanford`.
    """
    with write_atomically(folder, PYLATE_TYPE, overwrite) as out:
        write_pylate(encoder, out)
    return Path(folder)


# ---------------------------------------------------------------- training checkpoints


def nonfinite_parameters(encoder: ColBERT) -> list[str]:
    """Names of the encoder's weights (transformer, then projections) holding NaN or infinite values."""
    named = [(f"model.{k}", v) for k, v in encoder.model.named_parameters()]
    named += [
        (f"projections.{i}.{k}", v)
        for i, p in enumerate(encoder.projections)
        for k, v in p.named_parameters()
    ]
    return [name for name, value in named if not bool(torch.isfinite(value.detach()).all())]


def _optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, entries in state["state"].items():
        for name, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"{pid}/{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}/{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def load_optimizer_state(optimizer: torch.optim.Optimizer, folder: str | os.PathLike) -> None:
    """Restore the optimizer state saved in checkpoint ``folder`` (verify the folder first)."""
    folder = Path(folder)
    tensors = load_file(str(folder / "optimizer.safetensors"))
    meta = json.loads((folder / "optimizer.json").read_text(encoding="utf-8"))
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        pid, name = key.split("/", 1)
        state.setdefault(int(pid), {})[name] = value
    for key, value in meta["scalars"].items():
        pid, name = key.split("/", 1)
        state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(
    folder: str | os.PathLike,
    encoder: ColBERT,
    optimizer: torch.optim.Optimizer | None = None,
    trainer_state: dict[str, Any] | None = None,
) -> Path:
    """Write one training checkpoint durably and atomically; returns the folder.

    The folder holds every layout of :data:`CHECKPOINT_LAYOUTS` in a sub-folder of its name, the
    optimizer state (``optimizer.safetensors`` + ``optimizer.json``) when given, ``trainer_state.json``,
    and lirlab's ``metadata.json`` with the size and sha256 of every file (also recording
    ``trainer_state``). A kill at any moment leaves the previous checkpoint at ``folder`` (or none),
    never a damaged one; what the killed writer left is removed by the next write to ``folder``, by
    :func:`clean_checkpoint_leftovers`, and by a resumed run.

    Parameters
    ----------
    folder : path-like
        The checkpoint folder (a run names it ``checkpoint-<step>``); a folder of other files is refused.
    encoder : lirlab.encoder.ColBERT
        The weights to save, with markers and a projection (:func:`lirlab.train.prepare_encoder`).
    optimizer : torch.optim.Optimizer, optional
        Its state is saved for an exact resume.
    trainer_state : dict, optional
        JSON-able facts about the run (step, training seconds, ...).

    Raises
    ------
    ValueError
        The weights hold NaN or infinite values (training diverged): such weights are never saved.
    """
    bad = nonfinite_parameters(encoder)
    if bad:
        raise ValueError(
            f"{folder}: the encoder's weights are not finite ({bad[0]}"
            f"{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}); refusing to save them as a "
            "checkpoint: training diverged, lower the learning rate"
        )
    if _recorded_type(Path(folder)) == CHECKPOINT_TYPE and _entries_not_written(Path(folder)):
        _move_aside(Path(folder))  # a checkpoint of ours that files were added to: they are kept
    trainer_state = dict(trainer_state or {})
    with _durable_folder(folder, CHECKPOINT_TYPE) as writer:
        for name, write in CHECKPOINT_LAYOUTS.items():
            (writer.staging / name).mkdir()
            write(encoder, writer.staging / name)
        if optimizer is not None:
            tensors, meta = _optimizer_state(optimizer)
            save_file(tensors, str(writer.staging / "optimizer.safetensors"))
            (writer.staging / "optimizer.json").write_text(json.dumps(meta), encoding="utf-8")
        (writer.staging / "trainer_state.json").write_text(
            json.dumps(trainer_state, indent=2), encoding="utf-8"
        )
        writer.metadata["layouts"] = list(CHECKPOINT_LAYOUTS)
        writer.metadata["trainer_state"] = trainer_state
    return Path(folder)


def verify_checkpoint(folder: str | os.PathLike, verify: bool = True) -> dict[str, Any]:
    """Check the checkpoint at ``folder`` (see :func:`verify_folder`) and return its ``metadata.json``.

    Raises
    ------
    lirlab.storage.ArtifactError
        One line naming what is missing or damaged (a folder lirlab did not write as a checkpoint too).
    """
    return verify_folder(folder, CHECKPOINT_TYPE, verify=verify)


def load_checkpoint(
    folder: str | os.PathLike, layout: str = "stanford", device=None, verify: bool = True
) -> ColBERT:
    """The encoder saved in checkpoint ``folder``, read from its ``layout`` sub-folder once verified.

    Raises
    ------
    lirlab.storage.ArtifactError
        The checkpoint is damaged (one line naming the file), or holds no such layout.
    """
    meta = verify_checkpoint(folder, verify=verify)
    if layout not in meta.get("layouts", ()):
        raise ArtifactError(
            f"{folder}: holds no {layout!r} layout (it has {', '.join(meta.get('layouts', ()))})"
        )
    return ColBERT.load(Path(folder) / layout, device=device)


def clean_checkpoint_leftovers(out: str | os.PathLike) -> list[str]:
    """Remove what killed checkpoint writers left in run folder ``out``; returns the names removed.

    A write interrupted between its two renames is first completed (or undone) as
    :func:`lirlab.storage.read_artifact` does; a folder whose writer is still alive is never touched.
    """
    out = Path(out)
    try:
        names = [p.name for p in out.iterdir()]
    except OSError:
        return []
    removed: list[str] = []
    for target in sorted({m.group(1) for name in names if (m := _CHECKPOINT_LEFTOVER.match(name))}):
        if not os.path.lexists(out / target):
            with contextlib.suppress(ArtifactError):
                read_metadata(out / target)  # restores a checkpoint whose swap was interrupted
        removed += clean_leftovers(out / target)
    return sorted(removed)


def _read_metadata_file(folder: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((folder / METADATA).read_bytes())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _recorded_type(folder: Path) -> str | None:
    meta = _read_metadata_file(folder)
    return meta.get("type") if meta else None


def _entries_not_written(folder: Path) -> list[str]:
    """What lies under ``folder`` that its ``metadata.json`` does not record (everything, without one)."""
    meta = _read_metadata_file(folder)
    if meta is None or not str(meta.get("type", "")).startswith("lirlab."):
        return sorted(os.listdir(folder))
    recorded = {METADATA}
    for table in ("files", "tree"):
        recorded.update(meta.get(table) or ())
    recorded.update(
        "/".join(p.split("/")[:depth]) for p in list(recorded) for depth in range(1, p.count("/") + 1)
    )
    recorded.update(meta.get("folders") or ())
    found = []
    for root, folders, names in os.walk(folder):
        for name in folders + names:
            relative = (Path(root) / name).relative_to(folder).as_posix()
            if relative not in recorded:
                found.append(relative)
    return sorted(found)


def _move_aside(folder: Path) -> Path:
    kept = folder.with_name(f"{folder.name}.replaced-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}")
    folder.rename(kept)
    warnings.warn(
        f"{folder} holds what lirlab did not write ({', '.join(_entries_not_written(kept)[:3])}); "
        f"it was moved to {kept.name}, not deleted",
        ReplacedFolderWarning,
        stacklevel=3,
    )
    return kept


def remove_written(folder: str | os.PathLike) -> bool:
    """Delete ``folder`` (a checkpoint, or mined negatives) if it holds only what lirlab wrote there and
    recorded in its ``metadata.json``; True when deleted.

    A folder holding anything else (notes added to it, a folder from an older lirlab without
    ``metadata.json``) is moved aside to ``NAME.replaced-TIME-TOKEN`` with a
    :class:`~lirlab.storage.ReplacedFolderWarning` instead: lirlab deletes only what it provably wrote.
    """
    folder = Path(folder)
    if _entries_not_written(folder):
        _move_aside(folder)
        return False
    shutil.rmtree(folder)
    return True
