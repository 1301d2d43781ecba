"""Page geometry in an index folder: where each stored vector lies on its page.

A page-image encoding carries :attr:`~lirlab.encoding.Encoding.regions` (one ``(x0, y0, x1, y1)`` box
per vector, as fractions of the page, NaN rows for vectors that are not image patches) and, for models
that also see a downscaled whole page, :attr:`~lirlab.encoding.Encoding.global_view`. Every index kind
keeps them beside its token ids, in the same row order, so an explanation after a reload still maps a
vector to its patch: ``regions.npy`` (float32 ``[rows, 4]``) and ``global_view.npy`` (bool ``[rows]``),
written only for page indexes and checked whenever a folder is loaded (hashing on or off).

Examples
--------
>>> import numpy as np, torch
>>> nan = float("nan")
>>> boxes = torch.tensor([[nan, nan, nan, nan], [0.0, 0.0, 0.5, 0.25]])
>>> sorted(region_arrays(boxes, None))
['regions']
>>> check_regions(np.array([[0.0, 0.0, 0.5, 1.5]], dtype=np.float32), None, "regions.npy")
Traceback (most recent call last):
...
lirlab.storage.ArtifactError: regions.npy: row 0 is not a box inside the page ((x0, y0, x1, y1) fractions in [0, 1] with x0 <= x1 and y0 <= y1, or all NaN): [0.0, 0.0, 0.5, 1.5]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lirlab.storage import ArtifactError

REGIONS, GLOBAL_VIEW = "regions", "global_view"


def region_arrays(regions: torch.Tensor | None, global_view: torch.Tensor | None) -> dict[str, np.ndarray]:
    """The arrays a page index writes (none for text)."""
    out = {}
    if regions is not None:
        out[REGIONS] = regions.detach().float().cpu().numpy()
    if global_view is not None:
        out[GLOBAL_VIEW] = global_view.detach().bool().cpu().numpy()
    return out


def save_regions(writer, regions: torch.Tensor | None, global_view: torch.Tensor | None) -> None:
    """Write ``regions.npy`` (and ``global_view.npy``) into the index folder being written, when given."""
    for name, values in region_arrays(regions, global_view).items():
        writer.save_array(name, values)


def check_regions(regions: np.ndarray, global_view: np.ndarray | None, file: str | Path) -> None:
    """Refuse boxes that are neither all NaN nor inside the page with ``x0 <= x1`` and ``y0 <= y1``,
    and global-view flags on rows that are not patches (an :class:`~lirlab.storage.ArtifactError` naming
    the file and the first bad row)."""
    missing = np.isnan(regions)
    patch = ~missing.any(axis=1)
    with np.errstate(invalid="ignore"):
        inside = (regions >= 0) & (regions <= 1)
        ordered = (regions[:, 0] <= regions[:, 2]) & (regions[:, 1] <= regions[:, 3])
    good = np.where(patch, inside.all(axis=1) & ordered, missing.all(axis=1))
    if not good.all():
        row = int(np.flatnonzero(~good)[0])
        raise ArtifactError(
            f"{file}: row {row} is not a box inside the page ((x0, y0, x1, y1) fractions in [0, 1] with "
            f"x0 <= x1 and y0 <= y1, or all NaN): {regions[row].tolist()}"
        )
    if global_view is not None and bool((global_view & ~patch).any()):
        row = int(np.flatnonzero(global_view & ~patch)[0])
        raise ArtifactError(
            f"{Path(file).with_name(GLOBAL_VIEW + '.npy')}: row {row} is marked as a global-view patch but "
            "has no box in regions.npy"
        )


def load_regions(artifact, rows: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(regions, global_view)`` of an index folder holding ``rows`` stored vectors (``None`` each when
    the folder has no such file: a text index), their shapes and boxes checked."""
    listed = artifact.metadata.get("files") or {}
    if f"{REGIONS}.npy" not in listed:
        if f"{GLOBAL_VIEW}.npy" in listed:
            raise ArtifactError(f"{artifact.path / 'global_view.npy'}: present without regions.npy")
        return None, None
    regions = np.ascontiguousarray(artifact.checked_array(REGIONS, "f", 2, (rows, 4)), dtype=np.float32)
    global_view = (
        artifact.checked_array(GLOBAL_VIEW, "b", 1, (rows,)) if f"{GLOBAL_VIEW}.npy" in listed else None
    )
    check_regions(regions, global_view, artifact.path / f"{REGIONS}.npy")
    return (
        torch.from_numpy(regions),
        None if global_view is None else torch.from_numpy(np.ascontiguousarray(global_view)),
    )


def regions_at(
    regions: torch.Tensor | None, global_view: torch.Tensor | None, rows: torch.Tensor
) -> dict[str, torch.Tensor | None]:
    """``regions=`` and ``global_view=`` keywords of an :class:`~lirlab.encoding.Encoding` of the stored
    vectors at ``rows`` (both ``None`` for text)."""
    if regions is None:
        return {"regions": None, "global_view": None}
    rows = rows.to(regions.device)
    return {
        "regions": regions[rows],
        "global_view": None if global_view is None else global_view[rows.to(global_view.device)],
    }


def joined(parts, what: str) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(regions, global_view)`` of consecutive parts (objects with ``regions``, ``global_view`` and
    ``vectors`` or ``codes``), refused when page and text parts are mixed; ``what`` names the parts."""
    paged = {p.regions is not None for p in parts}
    if len(paged) > 1:
        raise ValueError(f"cannot join {what} of page images (with regions) and of text: use one model")
    if paged != {True}:
        return None, None
    regions = torch.cat([p.regions.float().cpu() for p in parts])
    if all(p.global_view is None for p in parts):
        return regions, None
    global_view = torch.cat(
        [
            p.global_view.cpu()
            if p.global_view is not None
            else torch.zeros(int(p.regions.shape[0]), dtype=torch.bool)
            for p in parts
        ]
    )
    return regions, global_view
